//! `runwarden serve`.

use super::Cli;
use anyhow::Context;
use runwarden::incident::grouping::GroupingConfig;
use runwarden::pipeline::AgentConfig;
use runwarden::server::{ServeConfig, Server};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Alertmanager-style group_wait, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    group_wait_ms: u64,
    /// Labels alerts are grouped by (comma-separated).
    #[arg(
        long,
        default_value = "alertname,namespace,service",
        value_delimiter = ','
    )]
    group_by: Vec<String>,
    /// Largest webhook body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let agent = cli
        .open_agent(AgentConfig {
            llm: runwarden::analysis::llm::LlmConfig::from_env().map_err(anyhow::Error::msg)?,
            ..AgentConfig::default()
        })
        .await?;
    let config = ServeConfig {
        grouping: GroupingConfig {
            group_by: args.group_by.clone(),
            group_wait_ms: args.group_wait_ms,
            ..GroupingConfig::default()
        },
        max_body_bytes: args.max_body_bytes,
        pagerduty_secret: std::env::var("RUNWARDEN_PAGERDUTY_SECRET")
            .ok()
            .filter(|s| !s.is_empty()),
        approver_token: std::env::var("RUNWARDEN_APPROVER_TOKEN")
            .ok()
            .filter(|s| !s.is_empty()),
        ..ServeConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "runwarden serving on http://{} (data in {})",
        listener.local_addr()?,
        cli.data_dir.display()
    );
    Server::new(Arc::new(agent), config).serve(listener).await?;
    Ok(ExitCode::SUCCESS)
}

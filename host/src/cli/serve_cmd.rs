//! `runwarden serve`.

use super::Cli;
use anyhow::Context;
use runwarden::incident::grouping::GroupingConfig;
use runwarden::pipeline::AgentConfig;
use runwarden::server::{Access, ServeConfig, Server, Source};
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
    /// Access file: API tokens and roles, webhook credentials, rate limits.
    /// Without one the API and every webhook are refused.
    #[arg(long)]
    access: Option<std::path::PathBuf>,
    /// Accept webhooks without credentials from every source (local trials
    /// only: refused unless listening on a loopback address).
    #[arg(long)]
    insecure_local_webhooks: bool,
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let agent = cli
        .open_agent(AgentConfig {
            llm: runwarden::analysis::llm::LlmConfig::from_env().map_err(anyhow::Error::msg)?,
            ..AgentConfig::default()
        })
        .await?;
    let mut access = match &args.access {
        Some(path) => Access::load(path)?,
        None => Access::default(),
    };
    if args.insecure_local_webhooks {
        access = access.allow_unauthenticated(&Source::ALL);
    }
    let config = ServeConfig {
        grouping: GroupingConfig {
            group_by: args.group_by.clone(),
            group_wait_ms: args.group_wait_ms,
            ..GroupingConfig::default()
        },
        max_body_bytes: args.max_body_bytes,
        access,
        ..ServeConfig::default()
    };
    // An incident the last run died in the middle of is marked and escalated
    // before anything new happens; its action is not re-run.
    for id in agent.recover_interrupted().await? {
        eprintln!("{id}: interrupted mid-action by the last run; marked and escalated");
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if args.insecure_local_webhooks && !listener.local_addr()?.ip().is_loopback() {
        anyhow::bail!(
            "--insecure-local-webhooks needs a loopback --listen address, not {}",
            args.listen
        );
    }
    eprintln!(
        "runwarden serving on http://{} (data in {})",
        listener.local_addr()?,
        cli.data_dir.display()
    );
    Server::new(Arc::new(agent), config).serve(listener).await?;
    Ok(ExitCode::SUCCESS)
}

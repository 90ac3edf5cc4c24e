//! `runwarden mcp`: the granted tools and sources for MCP clients.

use super::Cli;
use anyhow::Context;
use rmcp::ServiceExt;
use runwarden::mcp::McpServer;
use runwarden::pipeline::AgentConfig;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct McpArgs {
    /// Serve streamable HTTP on this address (at /mcp) instead of stdio.
    #[arg(long)]
    listen: Option<String>,
    /// Access file (needed with --listen): callers need a token with the
    /// approver role.
    #[arg(long)]
    access: Option<std::path::PathBuf>,
}

pub async fn run(cli: &Cli, args: &McpArgs) -> anyhow::Result<ExitCode> {
    let agent = Arc::new(cli.open_agent(AgentConfig::default()).await?);
    super::refuse_broken_runbooks(&agent).await?;
    match &args.listen {
        None => {
            // stdout carries the protocol: everything else goes to stderr.
            let running = McpServer::new(agent, "stdio")
                .serve(rmcp::transport::stdio())
                .await
                .context("MCP over stdio")?;
            running.waiting().await?;
        }
        Some(addr) => {
            let access = match &args.access {
                Some(path) => runwarden::server::Access::load(path)?,
                None => anyhow::bail!(
                    "MCP over HTTP needs --access: callers need a token with the approver role"
                ),
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            eprintln!("runwarden MCP on http://{}/mcp", listener.local_addr()?);
            axum::serve(listener, runwarden::mcp::http_router(agent, access)).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `runwarden audit verify`, `report`, `incidents`, `approvals`, `approve`, `deny`.

use super::Cli;
use anyhow::Context;
use runwarden::pipeline::{Agent, AgentConfig};
use runwarden::store::Store;
use std::process::ExitCode;

fn store(cli: &Cli) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let location = cli.store_location()?;
    location.open().with_context(|| match &location {
        runwarden::store::StoreLocation::Sqlite(dir) => {
            format!("opening the store in {}", dir.display())
        }
        runwarden::store::StoreLocation::Postgres(_) => "opening the --store database".into(),
    })
}

pub fn audit_verify(cli: &Cli) -> anyhow::Result<ExitCode> {
    let v = store(cli)?.verify_audit()?;
    match &v.broken {
        None => {
            println!(
                "audit trail intact: {} records, hash chain verified",
                v.records
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(why) => {
            println!("audit trail BROKEN after {} records: {why}", v.records);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn audit_show(cli: &Cli, incident: Option<&str>) -> anyhow::Result<ExitCode> {
    for record in store(cli)?.audit(incident)? {
        println!("{}", serde_json::to_string(&record)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(cli: &Cli, id: &str) -> anyhow::Result<ExitCode> {
    print!("{}", store(cli)?.report(id)?);
    Ok(ExitCode::SUCCESS)
}

pub fn incidents(cli: &Cli) -> anyhow::Result<ExitCode> {
    for i in store(cli)?.incidents()? {
        println!(
            "{:<8} {:<16} {:<40} {}",
            i.id,
            format!("{:?}", i.state),
            i.title,
            i.opened_at.to_rfc3339()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn approvals(cli: &Cli, all: bool) -> anyhow::Result<ExitCode> {
    for a in store(cli)?.approvals()? {
        if all || a.state == runwarden::store::ApprovalState::Pending {
            println!(
                "{:<8} {:<9} {:<8} {}.{} {} (policy {}, expires {}) — {}",
                a.id,
                format!("{:?}", a.state),
                a.incident,
                a.plugin,
                a.tool,
                a.arguments,
                a.policy_version,
                a.expires_at.format("%H:%M:%S"),
                a.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn agent(cli: &Cli) -> anyhow::Result<Agent> {
    cli.open_agent(AgentConfig::default()).await
}

pub fn operator() -> String {
    std::env::var("USER")
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

pub async fn approve(cli: &Cli, id: &str) -> anyhow::Result<ExitCode> {
    let outcome = agent(cli).await?.approve(id, &operator()).await?;
    println!("{}", outcome.summary());
    Ok(
        if matches!(
            outcome.status,
            runwarden::pipeline::act::ActionStatus::Recovered
        ) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

pub async fn deny(cli: &Cli, id: &str) -> anyhow::Result<ExitCode> {
    agent(cli).await?.deny(id, &operator())?;
    println!("{id} denied; the incident is escalated to a human");
    Ok(ExitCode::SUCCESS)
}

pub async fn breaker(cli: &Cli, reset: bool) -> anyhow::Result<ExitCode> {
    let agent = agent(cli).await?;
    if reset {
        match agent.reset_breaker(&operator())? {
            Some(why) => println!("circuit breaker closed (it was open: {why})"),
            None => println!("circuit breaker was already closed"),
        }
    } else {
        match agent.breaker() {
            Some(why) => {
                println!("circuit breaker OPEN: {why}; `runwarden breaker reset` closes it")
            }
            None => println!("circuit breaker closed"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

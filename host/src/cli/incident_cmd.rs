//! `runwarden audit verify`, `report`, `incidents`, `approvals`, `approve`, `deny`.

use super::Cli;
use anyhow::Context;
use runwarden::pipeline::{Agent, AgentConfig};
use runwarden::store::Store;
use std::process::ExitCode;

fn store(cli: &Cli) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let location = cli.store_location()?;
    location.open().with_context(|| opening(&location))
}

fn opening(location: &runwarden::store::StoreLocation) -> String {
    match &location.database {
        runwarden::store::Database::Sqlite => {
            format!("opening the store in {}", location.data_dir.display())
        }
        runwarden::store::Database::Postgres(_) => "opening the --store database".into(),
    }
}

pub fn audit_verify(
    cli: &Cli,
    expected: Option<&runwarden::store::Head>,
) -> anyhow::Result<ExitCode> {
    // A missing store (or key) is not an intact one: never create one to
    // verify.
    let location = cli.store_location()?;
    let store = match location.open_existing() {
        Ok(store) => store,
        Err(e) => {
            println!(
                "audit trail NOT VERIFIED: {e} ({}; wrong --data-dir or --audit-key-file, or the store was removed)",
                opening(&location)
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let v = store.verify_audit_to(expected)?;
    match &v.broken {
        None => {
            println!(
                "audit trail intact: {} records, keyed hash chain verified up to its head {}; incidents, approvals and reports match it",
                v.records,
                v.head.as_deref().unwrap_or("(empty)")
            );
            if v.anchored.is_none() && v.records > 0 && expected.is_none() {
                println!(
                    "note: no chain head is anchored in this data directory; pass --head SEQ:HASH from the log to rule out deletion of the newest records"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(why) => {
            println!("audit trail BROKEN after {} records: {why}", v.records);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The audit trail: one line per record for people, or JSON lines.
pub fn audit_show(cli: &Cli, incident: Option<&str>, jsonl: bool) -> anyhow::Result<ExitCode> {
    let records = store(cli)?.audit(incident)?;
    if records.is_empty() {
        eprintln!(
            "no audit records{}",
            demo_hint(cli).map(|h| format!("; {h}")).unwrap_or_default()
        );
    }
    for record in records {
        if jsonl {
            println!("{}", serde_json::to_string(&record)?);
        } else {
            let line = runwarden::pipeline::report::line(&record)
                .unwrap_or_else(|| format!("{} {}", record.kind, record.body));
            println!(
                "{:>5} {} {:<8} {line}",
                record.seq,
                record.at.format("%Y-%m-%d %H:%M:%S%.3f"),
                record.incident.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(cli: &Cli, id: &str) -> anyhow::Result<ExitCode> {
    match store(cli)?.report(id) {
        Ok(text) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(runwarden::store::StoreError::NotFound { .. }) => {
            anyhow::bail!(
                "no report for {id} in this store{}",
                demo_hint(cli).map(|h| format!("; {h}")).unwrap_or_default()
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Where the demo keeps its store, if a demo ran with this data directory.
fn demo_hint(cli: &Cli) -> Option<String> {
    let demo = cli.data_dir.join("demo");
    demo.is_dir().then(|| {
        format!(
            "the demo's incidents are in {0}: runwarden --data-dir {0} incidents",
            demo.display()
        )
    })
}

pub fn incidents(cli: &Cli) -> anyhow::Result<ExitCode> {
    let list = store(cli)?.incidents()?;
    if list.is_empty() {
        eprintln!(
            "no incidents in this store{}",
            demo_hint(cli).map(|h| format!("; {h}")).unwrap_or_default()
        );
    }
    for i in list {
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
                "{:<8} {:<9} {:<8} {}.{} {} (policy {}, expires {}{}{})",
                a.id,
                format!("{:?}", a.state),
                a.incident,
                a.plugin,
                a.tool,
                a.arguments,
                a.policy_version,
                a.expires_at.format("%H:%M:%S"),
                a.requested_by
                    .as_deref()
                    .map(|r| format!(", requested by {r}"))
                    .unwrap_or_default(),
                a.decided_by
                    .as_deref()
                    .map(|d| format!(", decided by {d}"))
                    .unwrap_or_default(),
            );
            for e in &a.effects {
                println!("           effect: {}", e.describe());
            }
            for p in a.provenance.as_array().into_iter().flatten() {
                println!(
                    "           argument {} = {} from {} ({})",
                    p["argument"].as_str().unwrap_or("?"),
                    p["value"],
                    p["sources"],
                    p["detail"].as_str().unwrap_or("")
                );
            }
            let reasons = if a.reasons.is_empty() {
                vec![a.reason.clone()]
            } else {
                a.reasons.clone()
            };
            for r in reasons {
                println!("           waits because {r}");
            }
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

/// Where a decision is sent: the running agent's API, or the local store.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// The running agent (`runwarden serve`), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "RUNWARDEN_SERVER")]
    server: Option<String>,
    /// A file holding an approver token for --server (the access file's
    /// token; its name is the identity the audit trail records).
    #[arg(long, env = "RUNWARDEN_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
}

/// POSTs a decision to the server's API; prints its answer.
async fn decide_remotely(
    server: &str,
    remote: &Remote,
    id: &str,
    decision: &str,
) -> anyhow::Result<ExitCode> {
    let Some(file) = &remote.token_file else {
        anyhow::bail!(
            "--server needs --token-file (an approver token of the server's access file)"
        );
    };
    let token = std::fs::read_to_string(file)
        .with_context(|| format!("reading the token from {}", file.display()))?;
    let url = format!(
        "{}/api/approvals/{id}/{decision}",
        server.trim_end_matches('/')
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token.trim())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if status.is_success() {
        println!("{}", serde_json::to_string_pretty(&body)?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{url}: HTTP {status}: {}",
            body["error"].as_str().unwrap_or(&body.to_string())
        );
        Ok(ExitCode::FAILURE)
    }
}

pub async fn approve(cli: &Cli, id: &str, remote: &Remote) -> anyhow::Result<ExitCode> {
    if let Some(server) = &remote.server {
        return decide_remotely(server, remote, id, "approve").await;
    }
    let outcome = agent(cli).await?.approve(id, &operator()).await?;
    println!("{}", outcome.summary());
    // The approval was carried out; whether it fixed things is the summary's
    // (and the incident's) to say. A failed action is a failure.
    Ok(
        if matches!(
            outcome.status,
            runwarden::pipeline::act::ActionStatus::Failed { .. }
        ) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

pub async fn deny(cli: &Cli, id: &str, remote: &Remote) -> anyhow::Result<ExitCode> {
    if let Some(server) = &remote.server {
        return decide_remotely(server, remote, id, "deny").await;
    }
    agent(cli).await?.deny(id, &operator())?;
    println!("{id} denied; the incident is escalated to a human");
    Ok(ExitCode::SUCCESS)
}

pub async fn close(cli: &Cli, id: &str, reason: &str) -> anyhow::Result<ExitCode> {
    agent(cli).await?.close_incident(id, &operator(), reason)?;
    println!("{id} closed: {reason}");
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

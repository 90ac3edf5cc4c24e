//! `runwarden demo`: the payment-api incident end to end on embedded
//! defaults.
//!
//! A deploy added an unbounded cache; pods are OOM-killed and the 5xx ratio
//! is above 5 %. The embedded Alertmanager webhook goes through intake, the
//! context sources (real components) gather evidence, the runbook planner
//! decides, the guardrails check, the k8s-remediation component plans and
//! executes a rollback on the simulated cluster, verification sees the pods
//! recover, and the report is written. Prometheus and Loki are not running
//! on a fresh machine; their sources show up as gaps.

use super::Cli;
use anyhow::Context;
use runwarden::capability::k8s::sim::SimulatedCluster;
use runwarden::capability::secrets::EnvSecretStore;
use runwarden::pipeline::{Agent, AgentConfig, AgentPaths};
use runwarden::sandbox::state::HostServices;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALERT: &str = include_str!("demo-alert.json");

/// The demo's policies or runbooks: `dir` when it exists; else, run from
/// another directory, the ones of the source tree this binary was built
/// from, if it is still there.
fn shipped(dir: &std::path::Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    if dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    let tree = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    if dir.is_relative() && tree.is_dir() {
        let tree = tree.canonicalize().unwrap_or(tree);
        println!(
            "({} not found here: using {})",
            dir.display(),
            tree.display()
        );
        return Ok(tree);
    }
    anyhow::bail!(
        "{} not found, and the source tree this binary was built from ({}) is gone: run the demo from a checkout of runwarden, or pass --policies and --runbooks",
        dir.display(),
        tree.display()
    )
}

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    println!(
        "runwarden demo: payment-api after a bad deploy (simulated cluster, embedded alert)\n"
    );
    let data = cli.data_dir.join("demo");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    let cluster = Arc::new(SimulatedCluster::demo());
    let services = HostServices {
        cluster: cluster.clone(),
        secrets: Arc::new(EnvSecretStore::from_env()),
    };
    let config = AgentConfig {
        source_deadline: Duration::from_secs(3),
        verify_interval: Duration::from_millis(100),
        verify_timeout: Some(Duration::from_secs(10)),
        ..AgentConfig::default()
    };
    let policies = shipped(&cli.policies, "policies")?;
    let runbooks = shipped(&cli.runbooks, "runbooks")?;
    let (agent, problems) = Agent::open(
        AgentPaths {
            policies: &policies,
            runbooks: &runbooks,
            store: cli.store_in(&data)?,
        },
        services,
        &cli.cache(),
        config,
    )?;
    for p in problems {
        println!("policy refused a plugin: {p}");
    }
    super::refuse_broken_runbooks(&agent).await?;
    let delivery = runwarden::intake::alertmanager::parse(ALERT.as_bytes())?;
    let outcome = agent.handle(&delivery.alerts).await?;

    println!("timeline ({}):", outcome.incident);
    let records = agent.store.audit(Some(&outcome.incident))?;
    let first = records.first().map(|r| r.at);
    for r in &records {
        if let (Some(line), Some(t0)) = (runwarden::pipeline::report::line(r), first) {
            println!(
                "  +{:>7.3}s  {line}",
                (r.at - t0).num_microseconds().unwrap_or(0) as f64 / 1e6
            );
        }
    }
    let d = cluster
        .deployment("payments", "payment-api")
        .context("deployment vanished")?;
    println!(
        "\ncluster: payments/payment-api revision {} image {} | {}/{} ready\n",
        d.revision,
        d.images.join(","),
        d.ready_replicas,
        d.replicas
    );
    let report = agent.store.report(&outcome.incident)?;
    println!("{report}");
    let report_file = data.join(format!("{}.md", outcome.incident));
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    std::fs::write(&report_file, &report)
        .with_context(|| format!("writing {}", report_file.display()))?;
    let verified = agent.store.verify_audit()?;
    println!(
        "audit trail: {} records, hash chain {}",
        verified.records,
        if verified.ok() {
            "intact".to_string()
        } else {
            format!("BROKEN: {}", verified.broken.unwrap_or_default())
        }
    );
    println!(
        "phases: context {} ms, decision {} ms, action+verification {} ms; whole demo {} ms",
        outcome.timings.context_ms,
        outcome.timings.decide_ms,
        outcome.timings.act_ms,
        started.elapsed().as_millis()
    );
    println!(
        "report: {}\ndata:   {} (try: runwarden --data-dir {} report {} | audit show --incident {})",
        report_file.display(),
        data.display(),
        data.display(),
        outcome.incident,
        outcome.incident
    );
    println!(
        "note: a rollback creates a new revision with the old pod template, as `kubectl rollout undo` does: rolling revision 2 back to 1 leaves revision 3 running 1's image."
    );
    Ok(
        if outcome.state == runwarden::store::IncidentState::Resolved {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

//! `runwarden demo`: the plugin host end to end on embedded defaults.
//!
//! The payment-api incident on the simulated cluster: a deploy added an
//! unbounded cache, pods are OOM-killed. The demo gathers context through the
//! real context-source components, shows a policy denial, plans and executes
//! a rollback through the k8s-remediation component, and checks the result.
//! The decision itself is the one the runbook for this alert prescribes; the
//! runbook planner, LLM analysis and reports arrive with the incident
//! pipeline (issue 3).

use super::Cli;
use anyhow::{Context, bail};
use runwarden::bindings::types::{Alert, AlertStatus, Pair, TimeWindow, ToolCall};
use runwarden::capability::Verdict;
use runwarden::capability::k8s::sim::SimulatedCluster;
use runwarden::capability::secrets::EnvSecretStore;
use runwarden::plugin::CallReport;
use runwarden::policy::PluginKind;
use runwarden::registry::Registry;
use runwarden::sandbox::state::HostServices;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// When the alert fired: 16 minutes after revision 2 rolled out in the
/// embedded cluster.
const ALERT_STARTS_AT: i64 = 1_795_760_960_000;

struct Timeline(Instant);

impl Timeline {
    fn say(&self, phase: &str, text: impl AsRef<str>) {
        println!(
            "[+{:>7.3}s] {phase:<8} {}",
            self.0.elapsed().as_secs_f64(),
            text.as_ref()
        );
    }

    fn denials(&self, report: &CallReport) {
        for c in &report.capability_calls {
            if let Verdict::Denied(reason) = &c.verdict {
                self.say(
                    "guard",
                    format!(
                        "{} {} {}: DENIED by policy: {reason}",
                        c.capability, c.operation, c.target
                    ),
                );
            }
        }
    }
}

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    println!(
        "runwarden demo: payment-api after a bad deploy (simulated cluster, embedded state)\n"
    );
    let cluster = Arc::new(SimulatedCluster::demo());
    let services = HostServices {
        cluster: cluster.clone(),
        secrets: Arc::new(EnvSecretStore::from_env()),
    };
    let engine = runwarden::sandbox::new_engine()?;
    let t = Timeline(Instant::now());
    let (registry, problems) = Registry::load(engine, &cli.cache(), &cli.policies, services)
        .with_context(|| format!("loading policies from {}", cli.policies.display()))?;
    for p in &problems {
        t.say("policy", format!("refused: {p}"));
    }
    let names: Vec<&str> = registry.plugins().map(|p| p.name()).collect();
    t.say(
        "policy",
        format!("{} plugins loaded: {}", names.len(), names.join(", ")),
    );

    let label = |k: &str, v: &str| Pair {
        key: k.into(),
        value: v.into(),
    };
    let alert = Alert {
        name: "HighErrorRate".into(),
        status: AlertStatus::Firing,
        fingerprint: "demo-payment-api".into(),
        labels: vec![
            label("alertname", "HighErrorRate"),
            label("namespace", "payments"),
            label("service", "payment-api"),
            label("severity", "critical"),
        ],
        annotations: vec![label("summary", "payment-api 5xx ratio above 5%")],
        starts_at: ALERT_STARTS_AT,
    };
    t.say(
        "alert",
        "HighErrorRate firing for payments/payment-api (5xx ratio above 5%)",
    );

    let window = TimeWindow {
        start: ALERT_STARTS_AT - 60 * 60_000,
        end: ALERT_STARTS_AT + 10 * 60_000,
    };
    let mut saw_rollout = false;
    let mut saw_oom = false;
    for source in registry.of_kind(PluginKind::ContextSource) {
        let called = source.gather(&registry.services, &alert, window).await;
        match called.result {
            Ok(evidence) => {
                for e in evidence {
                    saw_rollout |= e.summary.contains("rolled out revision");
                    saw_oom |= e.summary.contains("OOMKill");
                    t.say("context", format!("{}: {}", source.name(), e.summary));
                }
            }
            Err(e) => t.say("context", format!("{}: gap ({e})", source.name())),
        }
    }

    let Some(tool) = registry.get("k8s-remediation") else {
        bail!("the k8s-remediation plugin did not load")
    };
    let specs = tool
        .describe_tools(&registry.services)
        .await
        .result
        .map_err(|e| anyhow::anyhow!("describe: {e}"))?;

    // What an over-eager agent might try: the policy refuses it.
    let (overreach, _) = runwarden::toolcall::validate(
        &specs,
        "scale_deployment",
        r#"{"namespace":"kube-system","name":"coredns","replicas":0}"#,
    )?;
    let called = tool.execute(&registry.services, &overreach).await;
    t.denials(&called.report);

    if !(saw_rollout && saw_oom) {
        t.say(
            "decide",
            "no recent rollout with OOM kills in the evidence: no action",
        );
        return Ok(ExitCode::SUCCESS);
    }
    t.say("decide", "runbook HighErrorRate: a rollout shortly before the alert and OOMKilled pods -> roll back (confidence high)");
    let (rollback, _): (ToolCall, _) = runwarden::toolcall::validate(
        &specs,
        "rollback_deployment",
        r#"{"namespace":"payments","name":"payment-api"}"#,
    )?;
    match tool.plan(&registry.services, &rollback).await.result {
        Ok(plan) => t.say("plan", plan.summary),
        Err(e) => bail!("plan failed: {e}"),
    }
    let executed = tool.execute(&registry.services, &rollback).await;
    match &executed.result {
        Ok(outcome) => t.say("execute", &outcome.summary),
        Err(e) => bail!("rollback failed: {e}"),
    }
    let d = cluster
        .deployment("payments", "payment-api")
        .context("deployment vanished")?;
    let pods = cluster.pod_names("payments");
    t.say(
        "verify",
        format!(
            "payments/payment-api revision {} image {} | {}/{} ready | pods {}",
            d.revision,
            d.images.join(","),
            d.ready_replicas,
            d.replicas,
            pods.join(", ")
        ),
    );
    println!(
        "\nEvery step above ran inside WebAssembly components, each limited to its policy (policies/*.toml)."
    );
    println!("Try: runwarden plugin inspect policies/k8s-remediation.toml");
    Ok(if d.ready_replicas == d.replicas {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

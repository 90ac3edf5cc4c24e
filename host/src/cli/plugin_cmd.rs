//! `runwarden plugin ...`: inspect, list, call and gather (keygen, sign,
//! verify and diff are in `supply_cmd`).

use super::Cli;
use anyhow::{Context, bail};
use clap::Subcommand;
use runwarden::bindings::types::{Alert, AlertStatus, Pair, TimeWindow};
use runwarden::inspect;
use runwarden::plugin::{CallReport, Called};
use runwarden::registry::Registry;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// What a reviewer needs on one screen: imports, exports, tools with
    /// effect and risk, requested vs granted capabilities, limits, digest.
    Inspect {
        /// A policy file (.toml) or a component (.wasm).
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the plugins the policies load.
    List,
    /// Create a publisher's ed25519 key pair.
    Keygen {
        #[arg(long)]
        publisher: String,
        /// Where the private key is written (it must not exist yet).
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Sign a component and its manifest's capability requests.
    Sign {
        /// The publisher's private key (from `plugin keygen`).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        publisher: String,
        component: PathBuf,
        manifest: PathBuf,
        /// Default: `<component>.sig.json`.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check a policy's plugin signature against the trusted publishers.
    Verify { policy: PathBuf },
    /// What changed between two versions (policies or components) for a
    /// reviewer; exit status 3 when what the plugin can do grew.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Call one tool as an operator action: plan, the same guardrails as
    /// the agent's own proposals (approval where the autonomy policy wants
    /// one; a second person approves), execution bound to the plan, and the
    /// audit trail with you as the requester.
    Call {
        plugin: String,
        tool: String,
        /// The tool's arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Only plan: show what would change, change nothing, record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Admin override: skip the autonomy step (never the capability
        /// grant, plan binding, blast radius, cooldown, breaker or audit);
        /// the audit record says so.
        #[arg(long)]
        skip_autonomy: bool,
        /// Write the simulated cluster's state here afterwards.
        #[arg(long)]
        save_cluster: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run a context source for an alert.
    Gather {
        plugin: String,
        /// The alert name.
        #[arg(long, default_value = "HighErrorRate")]
        alert: String,
        /// Alert labels as key=value (repeatable).
        #[arg(long = "label", value_parser = parse_pair)]
        labels: Vec<(String, String)>,
        /// Minutes before now that the window starts.
        #[arg(long, default_value_t = 60)]
        window_minutes: i64,
        #[arg(long)]
        json: bool,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

async fn registry(
    cli: &Cli,
) -> anyhow::Result<(
    Registry,
    Option<std::sync::Arc<runwarden::capability::k8s::sim::SimulatedCluster>>,
)> {
    let engine = runwarden::sandbox::new_engine()?;
    let (services, sim) = cli.services().await?;
    let (registry, problems) = Registry::load(engine, &cli.cache(), &cli.policies, services)
        .with_context(|| format!("loading policies from {}", cli.policies.display()))?;
    for p in problems {
        eprintln!("warning: {p}");
    }
    Ok((registry, sim))
}

fn print_report(report: &CallReport) {
    for c in &report.capability_calls {
        let verdict = match &c.verdict {
            runwarden::capability::Verdict::Allowed => "allowed".to_string(),
            runwarden::capability::Verdict::Denied(r) => format!("DENIED: {r}"),
            runwarden::capability::Verdict::Unplanned(r) => format!("DENIED (not planned): {r}"),
            runwarden::capability::Verdict::Failed(r) => format!("failed: {r}"),
        };
        println!(
            "  {:<8} {:<12} {:<50} {verdict}",
            c.capability.name(),
            c.operation,
            c.target
        );
    }
    for l in &report.logs {
        println!("  log      {:<5} {}", l.level, l.message);
    }
    println!(
        "  ({} µs, {} KiB of memory)",
        report.elapsed.as_micros(),
        report.memory_bytes / 1024
    );
}

/// `plugin call --dry-run`: the plan and its typed effects, nothing else.
async fn dry_run_call(
    cli: &Cli,
    services: runwarden::sandbox::state::HostServices,
    plugin: &str,
    tool: &str,
    arguments: &serde_json::Value,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = runwarden::sandbox::new_engine()?;
    let (registry, problems) = Registry::load(engine, &cli.cache(), &cli.policies, services)
        .with_context(|| format!("loading policies from {}", cli.policies.display()))?;
    for p in problems {
        eprintln!("warning: {p}");
    }
    let Some(p) = registry.get(plugin) else {
        bail!(
            "no plugin `{plugin}` in {} (loaded: {})",
            cli.policies.display(),
            registry
                .plugins()
                .map(|p| p.name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let planned =
        runwarden::pipeline::planned::plan_call(p, &registry.services, tool, arguments).await?;
    if json {
        let value = serde_json::json!({
            "summary": planned.plan.summary, "effects": planned.effects,
            "read_only": planned.spec.effect == runwarden::bindings::types::Effect::Read,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("plan: {}", planned.plan.summary);
        for line in planned.effect_lines() {
            println!("  effect: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn finish<T: serde::Serialize>(called: Called<T>, json: bool) -> anyhow::Result<ExitCode> {
    let ok = called.result.is_ok();
    if json {
        let value = serde_json::json!({
            "ok": ok,
            "result": called.result.as_ref().ok(),
            "error": called.result.as_ref().err().map(ToString::to_string),
            "report": called.report,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("capability calls:");
        print_report(&called.report);
        match &called.result {
            Ok(v) => println!("result:\n{}", serde_json::to_string_pretty(v)?),
            Err(e) => println!("error: {e}"),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn run(cli: &Cli, cmd: &PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Inspect { path, json } => {
            let engine = runwarden::sandbox::new_engine()?;
            let report = inspect::inspect(&engine, &cli.cache(), path).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", inspect::render(&report));
            }
            Ok(if report.problems.iter().any(|p| !p.starts_with("note:")) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        PluginCommand::Keygen { publisher, out_dir } => {
            super::supply_cmd::keygen(publisher, out_dir)
        }
        PluginCommand::Sign {
            key,
            publisher,
            component,
            manifest,
            out,
        } => super::supply_cmd::sign(key, publisher, component, manifest, out.as_ref()),
        PluginCommand::Verify { policy } => super::supply_cmd::verify(policy),
        PluginCommand::Diff { old, new, json } => {
            super::supply_cmd::diff(cli, old, new, *json).await
        }
        PluginCommand::List => {
            let (registry, _) = registry(cli).await?;
            for p in registry.plugins() {
                println!(
                    "{:<20} {:<16} {}",
                    p.name(),
                    p.kind().to_string(),
                    p.policy.manifest.plugin.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Call {
            plugin,
            tool,
            params,
            dry_run,
            skip_autonomy,
            save_cluster,
            json,
        } => {
            let arguments: serde_json::Value = serde_json::from_str(params)
                .with_context(|| format!("--params is not JSON: {params}"))?;
            let (services, sim) = cli.services().await?;
            let code = if *dry_run {
                dry_run_call(cli, services, plugin, tool, &arguments, *json).await?
            } else {
                let agent = cli.open_agent_on(services, Default::default())?;
                if agent.registry.get(plugin).is_none() {
                    bail!("no plugin `{plugin}` in {}", cli.policies.display());
                }
                let requester = runwarden::pipeline::act::Requester {
                    identity: Some(super::incident_cmd::operator()),
                    skip_autonomy: *skip_autonomy,
                };
                let done = agent
                    .run_requested_via(
                        runwarden::pipeline::requested::Channel::Cli,
                        &requester,
                        plugin,
                        tool,
                        arguments,
                    )
                    .await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&done)?);
                } else {
                    println!("{}: {}", done.incident, done.outcome.summary());
                    for e in &done.outcome.effects {
                        println!("  effect: {}", e.describe());
                    }
                    for v in &done.outcome.verdicts {
                        println!("  {:<16} {}", v.step, serde_json::to_string(&v.verdict)?);
                    }
                    if let Some(detail) = &done.outcome.detail {
                        println!("{}", serde_json::to_string_pretty(detail)?);
                    }
                }
                use runwarden::pipeline::act::ActionStatus as S;
                match done.outcome.status {
                    S::Recovered
                    | S::NotRecovered
                    | S::Read
                    | S::Observed
                    | S::WaitingApproval { .. } => ExitCode::SUCCESS,
                    S::Refused { .. } | S::Failed { .. } => ExitCode::FAILURE,
                }
            };
            if let (Some(path), Some(sim)) = (save_cluster, sim) {
                std::fs::write(path, serde_json::to_string_pretty(&sim.snapshot())?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(code)
        }
        PluginCommand::Gather {
            plugin,
            alert,
            labels,
            window_minutes,
            json,
        } => {
            let (registry, _) = registry(cli).await?;
            let Some(p) = registry.get(plugin) else {
                bail!("no plugin `{plugin}` in {}", cli.policies.display())
            };
            let now = now_ms();
            let mut all_labels = vec![Pair {
                key: "alertname".into(),
                value: alert.clone(),
            }];
            all_labels.extend(labels.iter().map(|(k, v)| Pair {
                key: k.clone(),
                value: v.clone(),
            }));
            let alert = Alert {
                name: alert.clone(),
                status: AlertStatus::Firing,
                fingerprint: "cli".into(),
                labels: all_labels,
                annotations: vec![],
                starts_at: now - 5 * 60_000,
            };
            let window = TimeWindow {
                start: now - window_minutes * 60_000,
                end: now,
            };
            finish(p.gather(&registry.services, &alert, window).await, *json)
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

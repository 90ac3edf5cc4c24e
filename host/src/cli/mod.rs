//! Subcommands. Each prints for a person by default and JSON with `--json`.

mod bench_cmd;
mod demo;
mod incident_cmd;
mod mcp_cmd;
mod plugin_cmd;
mod policy_cmd;
mod rbac_cmd;
mod replay_cmd;
mod serve_cmd;
mod supply_cmd;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runwarden::capability::k8s::sim::SimulatedCluster;
use runwarden::capability::k8s::{ClusterBackend, kube_backend::KubeBackend};
use runwarden::capability::secrets::EnvSecretStore;
use runwarden::sandbox::cache::CompileCache;
use runwarden::sandbox::state::HostServices;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "runwarden",
    version,
    about = "On-call incident response with capability-scoped WebAssembly plugins"
)]
pub struct Cli {
    /// Directory of plugin policies.
    #[arg(
        long,
        global = true,
        default_value = "policies",
        env = "RUNWARDEN_POLICIES"
    )]
    policies: PathBuf,
    /// Where compiled components are cached ("off" disables the cache).
    #[arg(
        long,
        global = true,
        default_value = ".runwarden/cache",
        env = "RUNWARDEN_CACHE_DIR"
    )]
    cache_dir: String,
    /// Log lines on stderr: text for a terminal, json for a log collector.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "RUNWARDEN_LOG_FORMAT"
    )]
    log_format: runwarden::telemetry::LogFormat,
    /// Runbooks (decision trees) directory.
    #[arg(
        long,
        global = true,
        default_value = "runbooks",
        env = "RUNWARDEN_RUNBOOKS"
    )]
    runbooks: PathBuf,
    /// Where incidents, the audit trail, approvals and reports are kept.
    #[arg(
        long,
        global = true,
        default_value = ".runwarden",
        env = "RUNWARDEN_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// A shared store for several replicas (postgres://user@host/db);
    /// without it, SQLite in --data-dir.
    #[arg(long, global = true, env = "RUNWARDEN_STORE", hide_env_values = true)]
    store: Option<String>,
    /// The audit chain's HMAC key (a file of at least 16 bytes, e.g. a
    /// mounted Secret); without it, `audit.key` in --data-dir, created on
    /// first use. Replicas sharing a PostgreSQL store need the same key.
    #[arg(long, global = true, env = "RUNWARDEN_AUDIT_KEY_FILE")]
    audit_key_file: Option<PathBuf>,
    /// Cluster backend: "sim" (the embedded demo cluster, its bad rollout
    /// 16 minutes before the process started), "sim:FILE" (a
    /// simulated cluster from a JSON state file) or "kube" (a real cluster via
    /// KUBECONFIG or the in-cluster service account).
    #[arg(long, global = true, default_value = "sim", env = "RUNWARDEN_CLUSTER")]
    cluster: String,
    #[command(subcommand)]
    command: Command,
    /// Whether `--data-dir` (or its variable) was given rather than
    /// defaulted: `replay` keeps its stores only when asked to.
    #[arg(skip)]
    data_dir_given: bool,
}

impl Cli {
    /// Parses the command line, noting which defaults were overridden.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let given = |m: &clap::ArgMatches| {
            matches!(
                m.value_source("data_dir"),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        cli.data_dir_given =
            given(&matches) || matches.subcommand().is_some_and(|(_, sub)| given(sub));
        cli
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the payment-api incident on the embedded simulated cluster.
    Demo,
    /// Run scenario directories through the whole pipeline and compare with
    /// what they expect.
    Replay {
        /// Scenario directories, or directories of scenarios.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Receive alert webhooks and run incidents; serve the API.
    Serve(serve_cmd::ServeArgs),
    /// The benchmarks of BENCHMARKS.md, as ratios measured in one run.
    Bench(bench_cmd::BenchArgs),
    /// Check the audit trail's hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print an incident's post-incident report.
    Report { incident: String },
    /// List incidents.
    Incidents,
    /// Close an incident by hand (resolved, with the reason; audited). The
    /// next firing of its alerts opens a new incident.
    Close {
        incident: String,
        #[arg(long)]
        reason: String,
    },
    /// List pending approvals (`--all` for decided ones too).
    Approvals {
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending action: it runs now, after the guardrails re-check.
    /// With --server, the running agent runs it, audited with the token's
    /// identity; without, this process runs it against the local store.
    Approve {
        id: String,
        #[command(flatten)]
        remote: incident_cmd::Remote,
    },
    /// Deny a pending action; the incident is escalated.
    Deny {
        id: String,
        #[command(flatten)]
        remote: incident_cmd::Remote,
    },
    /// Show or reset the circuit breaker (only a human closes it).
    #[command(subcommand)]
    Breaker(BreakerCommand),
    /// Inspect, list and call plugins.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
    /// Validate policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Serve the granted tools and context sources to MCP clients (stdio,
    /// or streamable HTTP with --listen), through the same guardrails.
    Mcp(mcp_cmd::McpArgs),
    /// Print the Kubernetes Roles the granted k8s capabilities need, and
    /// nothing more (plus the leader-election Lease's with --lease).
    Rbac(rbac_cmd::RbacArgs),
}

#[derive(Subcommand)]
enum BreakerCommand {
    /// Whether the breaker is open, and why.
    Status,
    /// Close the breaker; the agent may act again.
    Reset,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the keyed hash chain and check it against its anchored head and
    /// the incidents, approvals and reports tables; exit non-zero on any
    /// edit, deletion, truncation, re-hash or reordering.
    Verify {
        /// A head from the log (`SEQ:HASH`, logged at each append), checked
        /// too: catches a truncation even if the anchor file went with it.
        #[arg(long)]
        head: Option<runwarden::store::Head>,
    },
    /// Print the audit records, of one incident (`audit show INC-1`) or all.
    Show {
        incident: Option<String>,
        /// Kept for scripts: the same as a positional incident.
        #[arg(long = "incident", conflicts_with = "incident")]
        incident_flag: Option<String>,
        /// One JSON object a line, every field (what `export` writes).
        #[arg(long)]
        jsonl: bool,
    },
    /// Every audit record as JSON lines (for archives and SIEMs).
    Export {
        #[arg(long)]
        incident: Option<String>,
        /// Accepted for clarity; export always writes JSON lines.
        #[arg(long)]
        jsonl: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Demo => demo::run(&cli).await,
        Command::Replay { dirs, json } => replay_cmd::run(&cli, dirs, *json).await,
        Command::Serve(args) => serve_cmd::run(&cli, args).await,
        Command::Bench(args) => bench_cmd::run(&cli, args).await,
        Command::Audit(AuditCommand::Verify { head }) => {
            incident_cmd::audit_verify(&cli, head.as_ref())
        }
        Command::Audit(AuditCommand::Show {
            incident,
            incident_flag,
            jsonl,
        }) => incident_cmd::audit_show(
            &cli,
            incident.as_deref().or(incident_flag.as_deref()),
            *jsonl,
        ),
        Command::Audit(AuditCommand::Export { incident, .. }) => {
            incident_cmd::audit_show(&cli, incident.as_deref(), true)
        }
        Command::Report { incident } => incident_cmd::report(&cli, incident),
        Command::Incidents => incident_cmd::incidents(&cli),
        Command::Close { incident, reason } => incident_cmd::close(&cli, incident, reason).await,
        Command::Approvals { all } => incident_cmd::approvals(&cli, *all),
        Command::Approve { id, remote } => incident_cmd::approve(&cli, id, remote).await,
        Command::Deny { id, remote } => incident_cmd::deny(&cli, id, remote).await,
        Command::Breaker(BreakerCommand::Status) => incident_cmd::breaker(&cli, false).await,
        Command::Breaker(BreakerCommand::Reset) => incident_cmd::breaker(&cli, true).await,
        Command::Plugin(cmd) => plugin_cmd::run(&cli, cmd).await,
        Command::Policy(cmd) => policy_cmd::run(&cli, cmd).await,
        Command::Rbac(args) => rbac_cmd::run(&cli, args),
        Command::Mcp(args) => mcp_cmd::run(&cli, args).await,
    }
}

impl Cli {
    pub fn log_format(&self) -> runwarden::telemetry::LogFormat {
        self.log_format
    }

    /// `--store`, else SQLite in `dir`.
    fn store_in(&self, dir: &std::path::Path) -> anyhow::Result<runwarden::store::StoreLocation> {
        Ok(
            runwarden::store::StoreLocation::parse(self.store.as_deref(), dir)?
                .with_audit_key(self.audit_key_file.clone()),
        )
    }

    fn store_location(&self) -> anyhow::Result<runwarden::store::StoreLocation> {
        self.store_in(&self.data_dir)
    }

    /// Long-running commands log each incident step at `info`.
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Mcp(_))
    }

    fn cache(&self) -> CompileCache {
        if self.cache_dir == "off" {
            CompileCache::disabled()
        } else {
            CompileCache::at(&self.cache_dir)
        }
    }

    /// The cluster backend and, for a simulated one, a handle to save it.
    async fn cluster(
        &self,
    ) -> anyhow::Result<(Arc<dyn ClusterBackend>, Option<Arc<SimulatedCluster>>)> {
        match self.cluster.as_str() {
            "sim" => {
                // Anchored to now, so a live alert meets a recent rollout.
                let sim = Arc::new(SimulatedCluster::demo_now());
                Ok((sim.clone(), Some(sim)))
            }
            "kube" => Ok((Arc::new(KubeBackend::connect().await?), None)),
            other => {
                let path = other.strip_prefix("sim:").with_context(|| {
                    format!("--cluster {other:?}: expected sim, sim:FILE or kube")
                })?;
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--cluster: cannot read {path}"))?;
                let sim = Arc::new(
                    SimulatedCluster::from_json(&text)
                        .with_context(|| format!("--cluster: {path} is not a cluster state"))?,
                );
                Ok((sim.clone(), Some(sim)))
            }
        }
    }

    /// The agent over this command line's policies, runbooks and data.
    async fn open_agent(
        &self,
        config: runwarden::pipeline::AgentConfig,
    ) -> anyhow::Result<runwarden::pipeline::Agent> {
        let (services, _) = self.services().await?;
        self.open_agent_on(services, config)
    }

    /// The agent over services the caller already holds (e.g. to save the
    /// simulated cluster afterwards).
    fn open_agent_on(
        &self,
        services: HostServices,
        config: runwarden::pipeline::AgentConfig,
    ) -> anyhow::Result<runwarden::pipeline::Agent> {
        let paths = runwarden::pipeline::AgentPaths {
            policies: &self.policies,
            runbooks: &self.runbooks,
            store: self.store_location()?,
        };
        let (agent, problems) =
            runwarden::pipeline::Agent::open(paths, services, &self.cache(), config)?;
        for p in problems {
            eprintln!("warning: {p}");
        }
        Ok(agent)
    }

    async fn services(&self) -> anyhow::Result<(HostServices, Option<Arc<SimulatedCluster>>)> {
        let (cluster, sim) = self.cluster().await?;
        Ok((
            HostServices {
                cluster,
                secrets: Arc::new(EnvSecretStore::from_env()),
            },
            sim,
        ))
    }
}

/// For the long-running commands: what `policy check` finds wrong in the
/// runbooks stops them at start, not at 3 AM.
async fn refuse_broken_runbooks(agent: &runwarden::pipeline::Agent) -> anyhow::Result<()> {
    let wrong = agent.check_runbook_actions().await;
    if wrong.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} problem(s) in the runbooks (`runwarden policy check` lists them too):\n  {}",
            wrong.len(),
            wrong.join("\n  ")
        )
    }
}

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
    /// Labels that name a shared cause (comma-separated): alerts carrying
    /// one of them group by its value alone, across namespaces and alert
    /// names (one node down: one incident). Empty to switch off.
    #[arg(long, default_value = "node", value_delimiter = ',')]
    correlate_by: Vec<String>,
    /// At most this many escalations page people per --paging-window-s;
    /// the next one sends one summary page, the rest are audited only.
    #[arg(long, default_value_t = 5)]
    paging_budget: usize,
    #[arg(long, default_value_t = 600)]
    paging_window_s: u64,
    /// Seconds after which a new firing of an escalated incident's group
    /// opens a new incident (a resolved incident's group reopens at once).
    #[arg(long, default_value_t = 300)]
    refire_after_s: u64,
    /// On SIGTERM, how long in-flight incidents may take to finish.
    #[arg(long, default_value_t = 30)]
    drain_s: u64,
    /// Largest webhook body read, in bytes. An Alertmanager or Grafana post
    /// over it is accepted as far as it fits (whole alerts) and the
    /// overflow opens an incident; other senders get 413.
    #[arg(long, default_value_t = runwarden::server::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Seconds a webhook body may take to arrive (then 408).
    #[arg(long, default_value_t = 30)]
    body_timeout_s: u64,
    /// Seconds a request's headers may take to arrive (then the connection
    /// is closed).
    #[arg(long, default_value_t = 10)]
    header_timeout_s: u64,
    /// Access file: API tokens and roles, webhook credentials, rate limits.
    /// Without one the API and every webhook are refused.
    #[arg(long)]
    access: Option<std::path::PathBuf>,
    /// Accept webhooks without credentials from every source (local trials
    /// only: refused unless listening on a loopback address).
    #[arg(long)]
    insecure_local_webhooks: bool,
    /// Run as one of several replicas: lead through this Kubernetes Lease
    /// (NAMESPACE/NAME, in the cluster of KUBECONFIG or the service
    /// account). Standbys answer webhooks 503 and report not-ready.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    lease: Option<String>,
    /// This replica's name in the Lease (default: $POD_NAME, else the host
    /// name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

/// Starts the election for `--lease`; the handle finishes when this replica
/// steps down after leading.
async fn elect(
    args: &ServeArgs,
) -> anyhow::Result<(
    runwarden::leader::Leadership,
    Option<tokio::task::JoinHandle<()>>,
)> {
    use runwarden::leader::{Elector, ElectorConfig, Leadership, kube_lease::KubeLease};
    let Some(lease) = &args.lease else {
        return Ok((Leadership::single(), None));
    };
    let (namespace, name) = lease
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .with_context(|| format!("--lease {lease:?}: expected NAMESPACE/NAME"))?;
    let identity = match &args.identity {
        Some(id) if !id.trim().is_empty() => id.clone(),
        _ => format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "runwarden".into()),
            std::process::id()
        ),
    };
    let client = kube::Client::try_default()
        .await
        .context("--lease needs a Kubernetes API (KUBECONFIG or the in-cluster service account)")?;
    let leadership = Leadership::elected(format!("lease {namespace}/{name} as {identity}"));
    let elector = Elector::new(
        Arc::new(KubeLease::new(client, namespace, name)),
        ElectorConfig::new(identity),
    );
    let handle = tokio::spawn(elector.run(leadership.clone()));
    Ok((leadership, Some(handle)))
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let agent = cli
        .open_agent(AgentConfig {
            llm: runwarden::analysis::llm::LlmConfig::from_env().map_err(anyhow::Error::msg)?,
            budgets: runwarden::pipeline::investigate::Budgets::from_env()
                .map_err(anyhow::Error::msg)?,
            paging: runwarden::pipeline::escalate::PagingBudget {
                max_pages: args.paging_budget,
                window: std::time::Duration::from_secs(args.paging_window_s),
            },
            ..AgentConfig::default()
        })
        .await?;
    super::refuse_broken_runbooks(&agent).await?;
    let (leadership, elector) = elect(args).await?;
    let mut access = match &args.access {
        Some(path) => Access::load(path)?,
        None => Access::default(),
    };
    if args.insecure_local_webhooks {
        access = access.allow_unauthenticated(&Source::ALL);
        tracing::warn!(
            "--insecure-local-webhooks: every webhook is accepted without credentials (loopback only)"
        );
    }
    if args.access.is_none() {
        tracing::warn!(
            "no --access file: every API request{} is refused (401/403); see policies/access.toml.example",
            if args.insecure_local_webhooks {
                ""
            } else {
                " and every webhook"
            }
        );
    }
    for missing in runwarden::pipeline::missing_secrets(
        &agent.registry,
        agent.registry.services.secrets.as_ref(),
    ) {
        tracing::warn!("{missing}; /readyz reports it as degraded");
    }
    tracing::info!(
        plugins = agent.registry.plugins().count(),
        mode = ?agent.autonomy_now().mode,
        policy = %agent.autonomy.version,
        "agent ready"
    );
    let config = ServeConfig {
        leadership,
        grouping: GroupingConfig {
            group_by: args.group_by.clone(),
            correlate_by: args
                .correlate_by
                .iter()
                .filter(|l| !l.is_empty())
                .cloned()
                .collect(),
            group_wait_ms: args.group_wait_ms,
            ..GroupingConfig::default()
        },
        max_body_bytes: args.max_body_bytes,
        body_timeout: std::time::Duration::from_secs(args.body_timeout_s.max(1)),
        header_timeout: std::time::Duration::from_secs(args.header_timeout_s.max(1)),
        refire_after: std::time::Duration::from_secs(args.refire_after_s),
        access,
        ..ServeConfig::default()
    };
    // An incident the last run died in the middle of is marked and escalated
    // before anything new happens; its action is not re-run. Several
    // replicas: the one that becomes leader does it (the server's flusher).
    if elector.is_none() {
        for id in agent.recover_interrupted().await? {
            eprintln!("{id}: interrupted mid-action by the last run; marked and escalated");
        }
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
    // SIGTERM drains: accepted alerts become incidents and the incidents in
    // flight finish (up to --drain-s) before the process exits.
    let drain = std::time::Duration::from_secs(args.drain_s);
    let server = Server::new(Arc::new(agent), config);
    if elector.is_none() {
        // Accepted before a crash, never taken up by an incident: filed again.
        let restored = server.restore_pending()?;
        if restored > 0 {
            tracing::warn!(
                restored,
                "alerts accepted before the last stop are filed again"
            );
        }
    }
    let server = server.serve_until_signal(listener, drain);
    let unfinished = match elector {
        None => server.await?,
        Some(stepped_down) => tokio::select! {
            served = server => served?,
            _ = stepped_down => anyhow::bail!(
                "lost the lease: exiting so that no action of this replica runs beside the new leader's"
            ),
        },
    };
    if unfinished > 0 {
        tracing::error!(
            unfinished,
            "drain deadline passed with incidents still running; the next start marks them interrupted"
        );
        return Ok(ExitCode::FAILURE);
    }
    tracing::info!("drained; exiting");
    Ok(ExitCode::SUCCESS)
}

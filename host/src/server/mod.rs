//! `runwarden serve`: webhook intake, grouping into incidents, and the HTTP
//! API for incidents, reports and approvals.
//!
//! Intake answers fast (202) and never runs an incident inline: alerts go to
//! the grouper, and a flusher opens an incident for every group whose
//! `group_wait` has passed. Who may call what is the access policy's
//! (`access.rs`): API tokens with roles, per-source webhook credentials and
//! rate limits; with none configured, the API and the webhooks are refused.

pub mod access;
mod api;
mod health;
pub mod listen;
mod webhooks;

pub use health::Check;

pub use access::{Access, Role, Source};

use crate::incident::grouping::{Grouper, GroupingConfig, Ingested};
use crate::intake::Alert;
use crate::pipeline::Agent;
use axum::Router;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub grouping: GroupingConfig,
    /// Largest webhook body read; an Alertmanager body over it is accepted
    /// as far as it fits (see `webhooks.rs`).
    pub max_body_bytes: usize,
    /// How long a webhook's body may take to arrive.
    pub body_timeout: Duration,
    /// How long a request's headers may take to arrive.
    pub header_timeout: Duration,
    /// API tokens, webhook credentials and rate limits.
    pub access: Access,
    /// How often due groups are turned into incidents.
    pub flush_every: Duration,
    /// Whether this replica leads (always, for a single replica). An
    /// elected replica, when it becomes the leader and before it opens any
    /// incident, reloads the guard state (cooldowns, breaker) the previous
    /// leader stored and settles the incidents it left mid-action; a single
    /// replica does both at start, before it listens (`serve_cmd.rs`).
    pub leadership: crate::leader::Leadership,
    /// An escalated (or interrupted) incident quiet for this long no longer
    /// takes its group's new firings: they open a new incident.
    pub refire_after: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            grouping: GroupingConfig::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            access: Access::default(),
            flush_every: Duration::from_millis(500),
            leadership: crate::leader::Leadership::single(),
            refire_after: Duration::from_secs(5 * 60),
        }
    }
}

/// Room for a storm of ~20,000 alerts in one Alertmanager post (a
/// kube-prometheus alert is 0.7–0.9 KB as JSON: BENCHMARKS.md).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

pub struct Server {
    pub agent: Arc<Agent>,
    pub grouper: Mutex<Grouper>,
    pub config: ServeConfig,
    pub limiter: access::RateLimiter,
    pub intake: IntakeCounters,
    /// `None` if the process could not install the recorder.
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Incidents being handled right now (a drain waits for them).
    inflight: std::sync::atomic::AtomicUsize,
    /// PagerDuty event ids taken, the newest `SEEN_EVENTS` (replays).
    seen_events: Mutex<(
        std::collections::HashSet<String>,
        std::collections::VecDeque<String>,
    )>,
}

/// An incident being handled: its outcome, or `None` if handling failed
/// (logged).
pub type Handling = tokio::task::JoinHandle<Option<crate::pipeline::IncidentOutcome>>;

/// How many PagerDuty event ids are remembered against replays.
const SEEN_EVENTS: usize = 10_000;

/// What intake did, per source: deliveries accepted, alerts in them,
/// deliveries shed by the rate limit, refused for credentials, malformed.
#[derive(Debug, Default)]
pub struct IntakeCounters(std::collections::BTreeMap<Source, [std::sync::atomic::AtomicU64; 5]>);

#[derive(Debug, Clone, Copy)]
pub enum IntakeEvent {
    Accepted = 0,
    Alerts = 1,
    Shed = 2,
    Unauthorized = 3,
    Malformed = 4,
}

impl IntakeEvent {
    /// Each event's name, indexed by its value.
    pub const NAMES: [&'static str; 5] =
        ["accepted", "alerts", "shed", "unauthorized", "malformed"];
}

impl IntakeCounters {
    fn new() -> Self {
        IntakeCounters(
            Source::ALL
                .iter()
                .map(|s| (*s, Default::default()))
                .collect(),
        )
    }

    pub fn add(&self, source: Source, event: IntakeEvent, n: u64) {
        if let Some(c) = self.0.get(&source) {
            c[event as usize].fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Every counter as (source, event, count).
    pub fn counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.0
            .iter()
            .flat_map(|(s, c)| {
                IntakeEvent::NAMES
                    .iter()
                    .zip(c.iter())
                    .map(|(e, n)| (s.name(), *e, n.load(std::sync::atomic::Ordering::Relaxed)))
            })
            .collect()
    }

    /// `{source: {event: count}}`, for `/api/intake`.
    pub fn snapshot(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (source, event, n) in self.counts() {
            if let serde_json::Value::Object(events) =
                out.entry(source).or_insert_with(|| serde_json::json!({}))
            {
                events.insert(event.to_string(), n.into());
            }
        }
        serde_json::Value::Object(out)
    }
}

fn now_ms() -> i64 {
    crate::pipeline::now_ms()
}

/// How often pending approvals are checked for expiry.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Serves `app` in the background on an ephemeral loopback port and returns
/// its origin (`http://127.0.0.1:PORT`): recorded answers and scripted models
/// for replays, stand-ins and servers under test for benchmarks.
pub async fn spawn_on_loopback(app: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(origin)
}

impl Server {
    pub fn new(agent: Arc<Agent>, config: ServeConfig) -> Arc<Self> {
        Arc::new(Server {
            grouper: Mutex::new(Grouper::new(config.grouping.clone())),
            agent,
            config,
            limiter: access::RateLimiter::default(),
            intake: IntakeCounters::new(),
            metrics: crate::telemetry::install()
                .inspect_err(|e| tracing::error!("{e}"))
                .ok(),
            inflight: std::sync::atomic::AtomicUsize::new(0),
            seen_events: Mutex::default(),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        webhooks::routes()
            .merge(api::routes())
            .merge(health::routes())
            .with_state(self.clone())
    }

    /// Files accepted alerts; updates to open incidents are audited at once.
    pub fn accept(&self, alerts: Vec<Alert>) {
        let now = now_ms();
        let Ok(mut grouper) = self.grouper.lock() else {
            return;
        };
        // One store read per incident and delivery, not per alert: a storm
        // into one open incident must not read the store a thousand times
        // under the grouper's lock.
        let mut over: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        for alert in alerts {
            let (name, fp, status) = (alert.name.clone(), alert.fingerprint.clone(), alert.status);
            // A firing alert of a group whose incident is over starts a new
            // incident (a recurrence), instead of being filed under the old.
            let key = grouper.key_of(&alert);
            let mut recurrence_of = None;
            if let Some(old) = grouper.group(&key).and_then(|g| g.incident.clone())
                && status == crate::intake::Status::Firing
                && *over
                    .entry(old.clone())
                    .or_insert_with(|| self.incident_is_over(&old, now))
            {
                grouper.close(&key);
                let body = serde_json::json!({"alertname": name, "fingerprint": fp, "recurrence": "a new incident opens for this group"});
                if let Err(e) = self.agent.audit(&old, "recurrence", body) {
                    tracing::error!("audit of a recurrence failed: {e}");
                }
                recurrence_of = Some(old);
            }
            let ingested = grouper.ingest(alert, now);
            if let Some(old) = recurrence_of {
                grouper.recurs(&key, &old);
            }
            if let Ingested::Incident { id, resolved } = ingested {
                // Every alert of the group resolved: the group's slot is
                // freed; a later firing opens a new incident.
                if resolved {
                    grouper.close(&key);
                }
                let body = serde_json::json!({"alertname": name, "fingerprint": fp, "status": status, "all_resolved": resolved});
                if let Err(e) = self.agent.audit(&id, "alert-update", body) {
                    tracing::error!("audit of alert update failed: {e}");
                }
            }
        }
    }

    /// Files again every alert accepted (recorded before its 202) that no
    /// incident took up — the process stopped during `group_wait`. Only the
    /// last day's deliveries are considered. Returns how many were filed.
    pub fn restore_pending(&self) -> Result<usize, crate::store::StoreError> {
        let horizon = chrono::Utc::now() - chrono::Duration::hours(24);
        // Bounded by time: a long history is not read at every start.
        let records = self.agent.store.audit_of_kinds_since(
            &[webhooks::RECEIVED, "alert", "alert-update"],
            Some(horizon),
        )?;
        // Latest delivery per fingerprint, and whether an incident took it
        // up afterwards.
        let mut pending: BTreeMap<String, Alert> = BTreeMap::new();
        for r in records {
            match r.kind.as_str() {
                webhooks::RECEIVED => {
                    let alerts: Vec<Alert> =
                        serde_json::from_value(r.body["alerts"].clone()).unwrap_or_default();
                    for a in alerts {
                        // PagerDuty event ids taken before (by this or an
                        // earlier leader) stay taken: a replay after a
                        // restart or a failover is still a replay.
                        if let Some(id) = a.annotations.get("pagerduty_event_id") {
                            self.seen_pagerduty_event(id);
                        }
                        pending.insert(a.fingerprint.clone(), a);
                    }
                }
                "alert" => {
                    for a in r.body["alerts"].as_array().into_iter().flatten() {
                        if let Some(fp) = a["fingerprint"].as_str() {
                            pending.remove(fp);
                        }
                    }
                }
                "alert-update" => {
                    if let Some(fp) = r.body["fingerprint"].as_str() {
                        pending.remove(fp);
                    }
                }
                _ => {}
            }
        }
        let n = pending.len();
        if n > 0 {
            self.accept(pending.into_values().collect());
        }
        Ok(n)
    }

    /// Remembers a PagerDuty event id; false if it was seen already.
    pub fn seen_pagerduty_event(&self, id: &str) -> bool {
        let Ok(mut seen) = self.seen_events.lock() else {
            return true;
        };
        let (set, order) = &mut *seen;
        if !set.insert(id.to_string()) {
            return false;
        }
        order.push_back(id.to_string());
        if order.len() > SEEN_EVENTS
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    /// Whether a group's incident no longer takes its alerts: resolved, or
    /// escalated/interrupted and quiet for `refire_after`. (An incident a
    /// human still works on — open, remediating, waiting for approval —
    /// keeps its group.)
    fn incident_is_over(&self, id: &str, now_ms: i64) -> bool {
        use crate::store::IncidentState as S;
        let Ok(inc) = self.agent.store.incident(id) else {
            return false;
        };
        let quiet = inc.closed_at.is_some_and(|c| {
            now_ms - c.timestamp_millis()
                >= i64::try_from(self.config.refire_after.as_millis()).unwrap_or(i64::MAX)
        });
        match inc.state {
            S::Resolved => true,
            S::Escalated | S::Interrupted => quiet,
            S::Open | S::Remediating | S::WaitingApproval => false,
        }
    }

    /// Opens an incident for each due group; returns their ids.
    pub fn flush(self: &Arc<Self>) -> Vec<String> {
        self.open_incidents(false)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// Opens an incident for every group still waiting for its siblings
    /// (a drain: accepted alerts are handled, not dropped).
    pub fn flush_all(self: &Arc<Self>) -> Vec<String> {
        self.open_incidents(true)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// `flush_all`, with each incident's handling to await: a replay of
    /// several deliveries judges what each incident did.
    pub fn flush_all_handled(self: &Arc<Self>) -> Vec<(String, Handling)> {
        self.open_incidents(true)
    }

    fn open_incidents(self: &Arc<Self>, all: bool) -> Vec<(String, Handling)> {
        // A standby holds no groups (its webhooks answer 503), and must not
        // act even if it did.
        if !self.config.leadership.is_leader() {
            return vec![];
        }
        type Due = (
            crate::incident::grouping::GroupKey,
            Vec<Alert>,
            Option<String>,
        );
        let due: Vec<Due> = {
            let Ok(grouper) = self.grouper.lock() else {
                return vec![];
            };
            grouper
                .due(if all { i64::MAX } else { now_ms() })
                .into_iter()
                .filter_map(|k| {
                    grouper.group(&k).map(|g| {
                        (
                            k.clone(),
                            g.alerts.values().cloned().collect(),
                            g.previous.clone(),
                        )
                    })
                })
                .collect()
        };
        let mut opened = Vec::new();
        for (key, alerts, previous) in due {
            let id = match self.agent.store.next_incident_id() {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!("cannot allocate an incident id: {e}");
                    continue;
                }
            };
            if let Ok(mut g) = self.grouper.lock() {
                g.opened(&key, &id);
            }
            // A recurrence is linked to the incident before it, both ways.
            if let Some(previous) = previous
                && let Err(e) = self.agent.audit(
                    &id,
                    "recurrence-of",
                    serde_json::json!({"previous": previous}),
                )
            {
                tracing::error!(incident = %id, "audit of a recurrence link failed: {e}");
            }
            let server = self.clone();
            server
                .inflight
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let incident = id.clone();
            let handling = tokio::spawn(async move {
                let out = match server.agent.handle_as(&incident, &alerts).await {
                    Ok(out) => {
                        tracing::info!(incident = %incident, state = ?out.state, "incident handled");
                        Some(out)
                    }
                    Err(e) => {
                        tracing::error!(incident = %incident, "incident failed: {e}");
                        None
                    }
                };
                server
                    .inflight
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                out
            });
            opened.push((id, handling));
        }
        opened
    }

    /// The flusher (groups into incidents) and the expiry of unanswered
    /// approvals, in the background.
    fn spawn_background(self: &Arc<Self>) {
        let flusher = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flusher.config.flush_every);
            let leadership = &flusher.config.leadership;
            let mut recovered = !leadership.is_elected();
            let mut expiry_checked = std::time::Instant::now();
            loop {
                tick.tick().await;
                if !recovered && leadership.is_leader() {
                    if let Err(e) = flusher.agent.reload_guard() {
                        tracing::error!("cannot reload the guard state: {e}");
                    }
                    match flusher.agent.recover_interrupted().await {
                        Ok(ids) => {
                            for id in ids {
                                tracing::warn!(incident = %id, "interrupted mid-action by the previous leader; marked and escalated");
                            }
                        }
                        Err(e) => tracing::error!("recovery of interrupted incidents failed: {e}"),
                    }
                    match flusher.restore_pending() {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            restored = n,
                            "alerts the previous leader accepted are filed again"
                        ),
                        Err(e) => tracing::error!("restoring accepted alerts failed: {e}"),
                    }
                    recovered = true;
                }
                if recovered {
                    flusher.flush();
                }
                if recovered && expiry_checked.elapsed() >= EXPIRY_CHECK_EVERY {
                    expiry_checked = std::time::Instant::now();
                    // An approval nobody answered in time is audited and its
                    // incident escalated, not left waiting forever.
                    match flusher.agent.expire_overdue().await {
                        Ok(ids) => {
                            for id in ids {
                                tracing::warn!(approval = %id, "expired unanswered; incident escalated");
                            }
                        }
                        Err(e) => tracing::error!("expiring overdue approvals failed: {e}"),
                    }
                }
            }
        });
    }

    /// Serves until the listener fails; the flusher (and the expiry of
    /// unanswered approvals) runs alongside.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.spawn_background();
        let timeout = self.config.header_timeout;
        listen::serve(listener, self.router(), timeout, std::future::pending()).await
    }

    /// Like [`Server::serve`], until SIGTERM or SIGINT; then drains: no new
    /// connections (senders retry), every accepted alert's group becomes an
    /// incident now, and the incidents in flight finish, within `deadline`.
    /// Returns how many incidents were still running at the deadline.
    pub async fn serve_until_signal(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        deadline: Duration,
    ) -> std::io::Result<usize> {
        let server = self.clone();
        self.spawn_background();
        let timeout = self.config.header_timeout;
        listen::serve(listener, self.router(), timeout, terminated()).await?;
        tracing::warn!("signal received: draining (new connections refused)");
        let opened = server.flush_all();
        if !opened.is_empty() {
            tracing::info!(incidents = ?opened, "accepted alerts opened as incidents before exit");
        }
        let until = std::time::Instant::now() + deadline;
        loop {
            let n = server.inflight.load(std::sync::atomic::Ordering::SeqCst);
            if n == 0 || std::time::Instant::now() >= until {
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// SIGTERM (what Kubernetes and systemd send) or SIGINT.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::error!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! `runwarden serve`: webhook intake, grouping into incidents, and the HTTP
//! API for incidents, reports and approvals.
//!
//! Intake answers fast (202) and never runs an incident inline: alerts go to
//! the grouper, and a flusher opens an incident for every group whose
//! `group_wait` has passed. State-changing API calls need the approver token
//! (`RUNWARDEN_APPROVER_TOKEN`); without one configured they are disabled —
//! there is no default token. (Roles and per-source webhook authentication
//! come with the hardening work.)

mod api;
mod webhooks;

use crate::incident::grouping::{Grouper, GroupingConfig, Ingested};
use crate::intake::Alert;
use crate::pipeline::Agent;
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub grouping: GroupingConfig,
    /// Largest webhook body accepted.
    pub max_body_bytes: usize,
    /// PagerDuty webhook signing secret; PagerDuty intake is refused without it.
    pub pagerduty_secret: Option<String>,
    /// Bearer token for approve/deny. `None` disables them.
    pub approver_token: Option<String>,
    /// How often due groups are turned into incidents.
    pub flush_every: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            grouping: GroupingConfig::default(),
            max_body_bytes: 1 << 20,
            pagerduty_secret: None,
            approver_token: None,
            flush_every: Duration::from_millis(500),
        }
    }
}

pub struct Server {
    pub agent: Arc<Agent>,
    pub grouper: Mutex<Grouper>,
    pub config: ServeConfig,
}

fn now_ms() -> i64 {
    crate::pipeline::now_ms()
}

impl Server {
    pub fn new(agent: Arc<Agent>, config: ServeConfig) -> Arc<Self> {
        Arc::new(Server {
            grouper: Mutex::new(Grouper::new(config.grouping.clone())),
            agent,
            config,
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        webhooks::routes(self.config.max_body_bytes)
            .merge(api::routes())
            .with_state(self.clone())
    }

    /// Files accepted alerts; updates to open incidents are audited at once.
    pub fn accept(&self, alerts: Vec<Alert>) {
        let now = now_ms();
        let Ok(mut grouper) = self.grouper.lock() else {
            return;
        };
        for alert in alerts {
            let (name, fp, status) = (alert.name.clone(), alert.fingerprint.clone(), alert.status);
            if let Ingested::Incident { id, resolved } = grouper.ingest(alert, now) {
                let body = serde_json::json!({"alertname": name, "fingerprint": fp, "status": status, "all_resolved": resolved});
                if let Err(e) = self.agent.audit(&id, "alert-update", body) {
                    tracing::error!("audit of alert update failed: {e}");
                }
            }
        }
    }

    /// Opens an incident for each due group; returns their ids.
    pub fn flush(self: &Arc<Self>) -> Vec<String> {
        let due: Vec<(crate::incident::grouping::GroupKey, Vec<Alert>)> = {
            let Ok(grouper) = self.grouper.lock() else {
                return vec![];
            };
            grouper
                .due(now_ms())
                .into_iter()
                .filter_map(|k| {
                    grouper
                        .group(&k)
                        .map(|g| (k.clone(), g.alerts.values().cloned().collect()))
                })
                .collect()
        };
        let mut opened = Vec::new();
        for (key, alerts) in due {
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
            opened.push(id.clone());
            let server = self.clone();
            tokio::spawn(async move {
                match server.agent.handle_as(&id, &alerts).await {
                    Ok(out) => {
                        tracing::info!(incident = %id, state = ?out.state, "incident handled")
                    }
                    Err(e) => tracing::error!(incident = %id, "incident failed: {e}"),
                }
            });
        }
        opened
    }

    /// Serves until the listener fails; the flusher runs alongside.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let flusher = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(flusher.config.flush_every);
            loop {
                tick.tick().await;
                flusher.flush();
            }
        });
        axum::serve(listener, self.router()).await
    }
}

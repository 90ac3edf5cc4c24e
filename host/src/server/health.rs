//! Probes and metrics: `/healthz` (liveness), `/readyz` (readiness) and
//! `/metrics` (Prometheus text).
//!
//! Liveness says only that the process answers: restarting an agent because
//! its database is slow would lose in-flight work. Readiness says whether
//! this replica should receive webhooks: its store takes a write, at least one
//! plugin is loaded, and it holds the leadership when several replicas run.
//! Both are open (kubelet probes carry no token) and reveal nothing but
//! the names of failed checks. `/metrics` needs the viewer role: plugin
//! names and incident counts are not for everyone.

use super::Server;
use super::access::Role;
use crate::telemetry;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// One readiness check's result.
#[derive(Debug, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// A failed check that does not stop webhooks: the replica still takes
    /// alerts, and `/readyz` says it is degraded and why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degrades_only: bool,
}

impl Server {
    /// The readiness checks, in order.
    pub fn readiness(&self) -> Vec<Check> {
        let store = self.agent.store.probe_write();
        let plugins = self.agent.registry.plugins().count();
        let leadership = &self.config.leadership;
        let missing = crate::pipeline::missing_secrets(
            &self.agent.registry,
            self.agent.registry.services.secrets.as_ref(),
        );
        vec![
            Check {
                degrades_only: false,
                name: "store",
                ok: store.is_ok(),
                detail: match store {
                    Ok(()) => "writes".into(),
                    Err(e) => e.to_string(),
                },
            },
            Check {
                degrades_only: false,
                name: "plugins",
                ok: plugins > 0,
                detail: format!("{plugins} loaded"),
            },
            Check {
                degrades_only: false,
                name: "leader",
                ok: leadership.is_leader(),
                detail: leadership.describe(),
            },
            Check {
                degrades_only: true,
                name: "secrets",
                ok: missing.is_empty(),
                detail: if missing.is_empty() {
                    "every granted secret has a value".into()
                } else {
                    missing.join("; ")
                },
            },
        ]
    }

    /// Sets the gauges read from state kept elsewhere, then renders.
    pub fn render_metrics(&self) -> Option<String> {
        let handle = self.metrics.as_ref()?;
        if let Ok(states) = self.agent.store.incident_states() {
            for state in crate::store::IncidentState::ALL {
                let name = state.name();
                let n = states.get(name).copied().unwrap_or(0);
                telemetry::gauge(
                    telemetry::INCIDENTS,
                    &[("state", name.to_string())],
                    n as f64,
                );
            }
        }
        let open = self
            .agent
            .guard
            .lock()
            .map(|g| g.breaker_tripped.is_some())
            .unwrap_or(true);
        telemetry::gauge(telemetry::BREAKER_OPEN, &[], if open { 1.0 } else { 0.0 });
        for (source, event, n) in self.intake.counts() {
            telemetry::counter_total(
                telemetry::INTAKE,
                &[("source", source.to_string()), ("event", event.to_string())],
                n,
            );
        }
        if let Ok(g) = self.grouper.lock() {
            let c = g.counters;
            telemetry::counter_total(telemetry::ALERTS_RECEIVED, &[], c.received);
            telemetry::counter_total(telemetry::ALERTS_NOT_KEPT, &[], c.not_kept);
            telemetry::counter_total(telemetry::ALERTS_OVERFLOWED, &[], c.overflowed);
        }
        let leading = self.config.leadership.is_leader();
        telemetry::gauge(telemetry::IS_LEADER, &[], if leading { 1.0 } else { 0.0 });
        Some(handle.render())
    }
}

async fn readyz(State(s): State<Arc<Server>>) -> Response {
    let checks = s.readiness();
    let ready = checks.iter().all(|c| c.ok || c.degrades_only);
    let degraded = checks.iter().any(|c| !c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"ready": ready, "degraded": degraded, "checks": checks})),
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = super::api::caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    match s.render_metrics() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed in this process",
        )
            .into_response(),
    }
}

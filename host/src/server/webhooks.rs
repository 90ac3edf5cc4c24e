//! The intake endpoints: one per sender, each with a body limit.

use super::Server;
use crate::intake::{IntakeError, alertmanager, opsgenie, pagerduty};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

pub fn routes(max_body: usize) -> Router<Arc<Server>> {
    Router::new()
        .route("/webhooks/alertmanager", post(alertmanager_hook))
        .route("/webhooks/grafana", post(alertmanager_hook))
        .route("/webhooks/pagerduty", post(pagerduty_hook))
        .route("/webhooks/opsgenie", post(opsgenie_hook))
        .layer(DefaultBodyLimit::max(max_body))
}

fn refuse(status: StatusCode, e: &IntakeError) -> Response {
    tracing::warn!("webhook refused: {e}");
    (
        status,
        axum::Json(serde_json::json!({"error": e.to_string()})),
    )
        .into_response()
}

fn accepted(server: &Server, alerts: Vec<crate::intake::Alert>, truncated: u64) -> Response {
    let n = alerts.len();
    server.accept(alerts);
    if truncated > 0 {
        tracing::warn!(truncated, "the sender truncated alerts from this delivery");
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"accepted": n, "truncated_by_sender": truncated})),
    )
        .into_response()
}

async fn alertmanager_hook(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    match alertmanager::parse(&body) {
        Ok(d) => accepted(&server, d.alerts, d.truncated),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e),
    }
}

async fn opsgenie_hook(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    match opsgenie::parse(&body) {
        Ok(alerts) => accepted(&server, alerts, 0),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e),
    }
}

async fn pagerduty_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = server.config.pagerduty_secret.as_deref() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &IntakeError::Signature(
                "no PagerDuty signing secret is configured (RUNWARDEN_PAGERDUTY_SECRET)".into(),
            ),
        );
    };
    let signature = headers
        .get("x-pagerduty-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(e) = pagerduty::verify_signature(&body, signature, secret.as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, &e);
    }
    match pagerduty::parse(&body) {
        Ok(alerts) => accepted(&server, alerts, 0),
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e),
    }
}

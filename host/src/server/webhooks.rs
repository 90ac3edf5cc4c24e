//! The intake endpoints: one per sender, each with a body limit, a rate
//! limit, and its own credential check before the body is parsed.

use super::access::{OPSGENIE_SECRET_HEADER, Refusal, Source};
use super::{IntakeEvent, Server};
use crate::intake::{IntakeError, alertmanager, opsgenie, pagerduty};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

pub fn routes(max_body: usize) -> Router<Arc<Server>> {
    Router::new()
        .route("/webhooks/alertmanager", post(alertmanager_hook))
        .route("/webhooks/grafana", post(grafana_hook))
        .route("/webhooks/pagerduty", post(pagerduty_hook))
        .route("/webhooks/opsgenie", post(opsgenie_hook))
        .layer(DefaultBodyLimit::max(max_body))
        // One error shape everywhere: the body limit's 413 as JSON too.
        .layer(axum::middleware::map_response(
            move |r: Response| async move {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the body is over the {max_body}-byte limit (serve --max-body-bytes)"
                        ),
                    )
                } else {
                    r
                }
            },
        ))
}

fn json_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

fn refuse(server: &Server, source: Source, status: StatusCode, e: &IntakeError) -> Response {
    tracing::warn!(source = source.name(), "webhook refused: {e}");
    let event = if status == StatusCode::BAD_REQUEST {
        IntakeEvent::Malformed
    } else {
        IntakeEvent::Unauthorized
    };
    server.intake.add(source, event, 1);
    json_error(status, e.to_string())
}

/// Why a delivery was not admitted.
enum NotAdmitted {
    /// This replica is a standby: the sender retries, and reaches the
    /// leader once readiness has moved the Service there.
    Standby,
    Shed(Source),
    Refused(Refusal),
}

impl IntoResponse for NotAdmitted {
    fn into_response(self) -> Response {
        match self {
            NotAdmitted::Standby => {
                let mut resp = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this replica is a standby, not the leader; retry".into(),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
                resp
            }
            NotAdmitted::Shed(source) => {
                let mut resp = json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "{} intake is over its rate limit; retry later",
                        source.name()
                    ),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                resp
            }
            NotAdmitted::Refused(Refusal::Unauthenticated(r)) => {
                json_error(StatusCode::UNAUTHORIZED, r)
            }
            NotAdmitted::Refused(Refusal::Forbidden(r)) => json_error(StatusCode::FORBIDDEN, r),
        }
    }
}

/// Leadership, credentials, then the rate limit, before the body is looked
/// at: a sender without the credential is refused at once and never spends
/// the valid sender's rate budget (so unauthenticated traffic cannot push
/// Alertmanager's posts into 429).
fn admit(server: &Server, source: Source, headers: &HeaderMap) -> Result<(), NotAdmitted> {
    if !server.config.leadership.is_leader() {
        return Err(NotAdmitted::Standby);
    }
    let access = &server.config.access;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    access
        .check_webhook(
            source,
            text(header::AUTHORIZATION.as_str()),
            text(OPSGENIE_SECRET_HEADER),
        )
        .map_err(|refusal| {
            server.intake.add(source, IntakeEvent::Unauthorized, 1);
            tracing::warn!(source = source.name(), "webhook refused: {refusal}");
            NotAdmitted::Refused(refusal)
        })?;
    if let Some(auth) = access.webhook(source)
        && !server
            .limiter
            .admit(source, auth, std::time::Instant::now())
    {
        server.intake.add(source, IntakeEvent::Shed, 1);
        return Err(NotAdmitted::Shed(source));
    }
    Ok(())
}

/// The audit kind of a delivery's alerts, recorded before the 202.
pub const RECEIVED: &str = "alert-received";

fn accepted(
    server: &Server,
    source: Source,
    alerts: Vec<crate::intake::Alert>,
    truncated: u64,
) -> Response {
    let n = alerts.len();
    // Durable before the 202: an accepted alert survives a crash during
    // group_wait (`Server::restore_pending` files it again at start). A
    // store that cannot write answers 503, so the sender retries.
    let record = crate::redact::redact_json(
        &serde_json::json!({"source": source.name(), "alerts": alerts}),
    );
    if let Err(e) = server.agent.store.append_audit(None, RECEIVED, &record) {
        tracing::error!(source = source.name(), "cannot record accepted alerts: {e}");
        let mut resp = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the alerts could not be recorded ({e}); retry"),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return resp;
    }
    server.intake.add(source, IntakeEvent::Accepted, 1);
    server.intake.add(source, IntakeEvent::Alerts, n as u64);
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

async fn alertmanager_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    envelope(&server, Source::Alertmanager, &headers, &body)
}

async fn grafana_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    envelope(&server, Source::Grafana, &headers, &body)
}

/// Alertmanager and Grafana share the webhook envelope.
fn envelope(server: &Server, source: Source, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(r) = admit(server, source, headers) {
        return r.into_response();
    }
    match alertmanager::parse(body) {
        Ok(d) => accepted(server, source, d.alerts, d.truncated),
        Err(e) => refuse(server, source, StatusCode::BAD_REQUEST, &e),
    }
}

async fn opsgenie_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admit(&server, Source::Opsgenie, &headers) {
        return r.into_response();
    }
    match opsgenie::parse(&body) {
        Ok(alerts) => accepted(&server, Source::Opsgenie, alerts, 0),
        Err(e) => refuse(&server, Source::Opsgenie, StatusCode::BAD_REQUEST, &e),
    }
}

async fn pagerduty_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = Source::Pagerduty;
    if let Err(r) = admit(&server, source, &headers) {
        return r.into_response();
    }
    // `admit` passed: either a signing secret is configured, or the access
    // file explicitly allows unsigned PagerDuty webhooks.
    if let Some(secret) = server
        .config
        .access
        .webhook(source)
        .and_then(|w| w.signing_secret.as_deref())
    {
        let signature = headers
            .get("x-pagerduty-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Err(e) = pagerduty::verify_signature(&body, signature, secret.as_bytes()) {
            return refuse(&server, source, StatusCode::UNAUTHORIZED, &e);
        }
    }
    // A signed delivery replayed (by an attacker, or a retry of one already
    // taken) is answered, not taken again: it could flip a resolved alert
    // back to firing.
    if let Some(id) = pagerduty::event_id(&body)
        && !server.seen_pagerduty_event(&id)
    {
        return (
            StatusCode::OK,
            axum::Json(serde_json::json!({"duplicate": id})),
        )
            .into_response();
    }
    match pagerduty::parse(&body) {
        Ok(alerts) => accepted(&server, source, alerts, 0),
        Err(e) => refuse(&server, source, StatusCode::BAD_REQUEST, &e),
    }
}

//! The intake endpoints: one per sender, each with its own credential
//! check and rate limit, both on the headers alone, before a byte of the
//! body is read. Then the body is read against a size limit and a deadline:
//! a slow sender cannot hold a connection, and an Alertmanager storm larger
//! than the limit is accepted as far as it fits (whole alerts), with the
//! overflow opened as an incident of its own, never lost whole.

use super::access::{OPSGENIE_SECRET_HEADER, Refusal, Source};
use super::{IntakeEvent, Server};
use crate::intake::{IntakeError, alertmanager, opsgenie, pagerduty};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/webhooks/alertmanager", post(alertmanager_hook))
        .route("/webhooks/grafana", post(grafana_hook))
        .route("/webhooks/pagerduty", post(pagerduty_hook))
        .route("/webhooks/opsgenie", post(opsgenie_hook))
}

/// A body as read against the limit and the deadline.
enum Read {
    Whole(Bytes),
    /// The first `limit` bytes; the rest was not read.
    OverLimit(Bytes),
    Refused(Response),
}

/// Reads at most `limit` bytes of `body`, within `deadline` in all.
async fn read_body(body: Body, limit: usize, deadline: std::time::Duration) -> Read {
    use http_body_util::BodyExt;
    let read = async move {
        let mut body = body;
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    return Read::Refused(json_error(
                        StatusCode::BAD_REQUEST,
                        format!("the body could not be read: {e}"),
                    ));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let room = limit - buf.len();
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                return Read::OverLimit(buf.freeze());
            }
            buf.extend_from_slice(&data);
        }
        Read::Whole(buf.freeze())
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(read) => read,
        Err(_) => Read::Refused(json_error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s (serve --body-timeout-s)",
                deadline.as_secs()
            ),
        )),
    }
}

/// The whole body or a refusal: for senders whose body is signed or small
/// (PagerDuty, OpsGenie), a cut body is useless.
async fn whole_body(server: &Server, body: Body) -> Result<Bytes, Response> {
    let limit = server.config.max_body_bytes;
    match read_body(body, limit, server.config.body_timeout).await {
        Read::Whole(b) => Ok(b),
        Read::OverLimit(_) => Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the {limit}-byte limit (serve --max-body-bytes)"),
        )),
        Read::Refused(r) => Err(r),
    }
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

/// How old a PagerDuty event may be when delivered (its retries end well
/// within it); older ones are replays.
pub const REPLAY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60 * 60);

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
    // The parsers redacted every alert already (`Alert::redacted`).
    let record = serde_json::json!({"source": source.name(), "alerts": alerts});
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
    body: Body,
) -> Response {
    envelope(&server, Source::Alertmanager, &headers, body).await
}

async fn grafana_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    envelope(&server, Source::Grafana, &headers, body).await
}

/// Alertmanager and Grafana share the webhook envelope.
async fn envelope(server: &Server, source: Source, headers: &HeaderMap, body: Body) -> Response {
    if let Err(r) = admit(server, source, headers) {
        return r.into_response();
    }
    let limit = server.config.max_body_bytes;
    match read_body(body, limit, server.config.body_timeout).await {
        Read::Whole(body) => match alertmanager::parse(&body) {
            Ok(d) => accepted(server, source, d.alerts, d.truncated),
            Err(e) => refuse(server, source, StatusCode::BAD_REQUEST, &e),
        },
        Read::OverLimit(prefix) => {
            let sender = if source == Source::Grafana {
                crate::intake::Sender::Grafana
            } else {
                crate::intake::Sender::Alertmanager
            };
            match alertmanager::parse_prefix(&prefix, sender) {
                // Not one whole alert before the cut: nothing worth keeping.
                Ok(alerts) if alerts.is_empty() => json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body is over the {limit}-byte limit (serve --max-body-bytes) and holds no whole alert before it"
                    ),
                ),
                Ok(mut alerts) => {
                    let declared = headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    tracing::error!(
                        source = source.name(),
                        limit,
                        kept = alerts.len(),
                        declared,
                        "a webhook body over the limit: the whole alerts before the cut are accepted, the overflow opens an incident"
                    );
                    alerts.push(overflow_alert(sender, limit, alerts.len(), declared));
                    accepted(server, source, alerts, 0)
                }
                Err(e) => refuse(server, source, StatusCode::PAYLOAD_TOO_LARGE, &e),
            }
        }
        Read::Refused(r) => r,
    }
}

/// The alert that stands for the part of a storm over the body limit, so a
/// human is told what was not read.
fn overflow_alert(
    sender: crate::intake::Sender,
    limit: usize,
    kept: usize,
    declared: Option<u64>,
) -> crate::intake::Alert {
    let labels = [
        ("alertname", "RunwardenIntakeOverflow"),
        ("severity", "critical"),
        (
            "source",
            if sender == crate::intake::Sender::Grafana {
                "grafana"
            } else {
                "alertmanager"
            },
        ),
    ];
    let size = declared.map_or_else(|| "unknown".to_string(), |d| format!("{d} bytes"));
    crate::intake::Alert {
        sender,
        name: "RunwardenIntakeOverflow".into(),
        status: crate::intake::Status::Firing,
        fingerprint: format!("runwarden-intake-overflow-{}", labels[2].1),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        annotations: [(
            "description".to_string(),
            format!(
                "A webhook body ({size}) was over serve --max-body-bytes ({limit} bytes): the {kept} whole alerts before the limit were accepted; the rest were not read. See the sender's active alerts for the whole group, and raise the limit or set max_alerts in its webhook configuration."
            ),
        )]
        .into_iter()
        .collect(),
        starts_at: chrono::Utc::now(),
        ends_at: None,
        generator_url: None,
    }
}

async fn opsgenie_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = admit(&server, Source::Opsgenie, &headers) {
        return r.into_response();
    }
    let body = match whole_body(&server, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match opsgenie::parse(&body) {
        Ok(alerts) => accepted(&server, Source::Opsgenie, alerts, 0),
        Err(e) => refuse(&server, Source::Opsgenie, StatusCode::BAD_REQUEST, &e),
    }
}

async fn pagerduty_hook(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let source = Source::Pagerduty;
    if let Err(r) = admit(&server, source, &headers) {
        return r.into_response();
    }
    let body = match whole_body(&server, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
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
    // A signed delivery from outside the replay window (an old capture
    // replayed after its id was forgotten) is answered, not taken.
    if let Some(at) = pagerduty::occurred_at(&body) {
        let age = chrono::Utc::now() - at;
        let window = chrono::Duration::from_std(REPLAY_WINDOW).unwrap_or(chrono::TimeDelta::MAX);
        if age > window || -age > chrono::Duration::minutes(5) {
            tracing::warn!(occurred_at = %at, "a PagerDuty delivery outside the replay window was not taken");
            return (
                StatusCode::OK,
                axum::Json(serde_json::json!({"stale": at, "window_s": REPLAY_WINDOW.as_secs()})),
            )
                .into_response();
        }
    }
    // A signed delivery replayed (by an attacker, or a retry of one already
    // taken) is answered, not taken again: it could flip a resolved alert
    // back to firing. Ids taken in the last day are remembered across
    // restarts and failovers (`Server::restore_pending`).
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

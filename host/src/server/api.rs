//! The read API (role viewer), approvals (approver), and the circuit
//! breaker and autonomy mode (admin). Probes and `/metrics`: `health.rs`.

use super::Server;
use super::access::{Refusal, Role};
use crate::pipeline::approvals::ApprovalError;
use crate::pipeline::autonomy::Mode;
use crate::store::StoreError;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}/report", get(report))
        .route("/api/incidents/{id}/close", post(close_incident))
        .route("/api/approvals", get(approvals))
        .route("/api/approvals/{id}/approve", post(approve))
        .route("/api/approvals/{id}/deny", post(deny))
        .route("/api/breaker", get(breaker))
        .route("/api/breaker/reset", post(reset_breaker))
        .route("/api/mode", get(mode).post(set_mode))
        .route("/api/intake", get(intake))
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": message.to_string()})),
    )
        .into_response()
}

/// A refused API call, answered 401 (with `WWW-Authenticate`) or 403.
pub(super) struct Refused(Refusal);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self.0 {
            Refusal::Unauthenticated(r) => {
                let mut resp = error(StatusCode::UNAUTHORIZED, r);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                resp
            }
            Refusal::Forbidden(r) => error(StatusCode::FORBIDDEN, r),
        }
    }
}

/// The caller's identity if their token carries `role`.
pub(super) fn caller(s: &Server, headers: &HeaderMap, role: Role) -> Result<String, Refused> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    s.config
        .access
        .authorize(authorization, role)
        .map_err(Refused)
}

async fn incidents(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    match s.agent.store.incidents() {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn report(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    match s.agent.store.report(&id) {
        Ok(md) => ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], md).into_response(),
        Err(crate::store::StoreError::NotFound { .. }) => {
            error(StatusCode::NOT_FOUND, format!("no report for {id}"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn approvals(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    match s.agent.store.approvals() {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn approve(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match caller(&s, &headers, Role::Approver) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match s.agent.approve(&id, &who).await {
        Ok(outcome) => {
            axum::Json(serde_json::json!({"approved": id, "outcome": outcome})).into_response()
        }
        Err(e) => error(approval_status(&e), e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Closing {
    reason: String,
}

async fn close_incident(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let who = match caller(&s, &headers, Role::Approver) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let closing: Closing = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"reason\": \"...\"}}: {e}"),
            );
        }
    };
    match s.agent.close_incident(&id, &who, &closing.reason) {
        Ok(()) => axum::Json(serde_json::json!({"closed": id})).into_response(),
        Err(e) => error(approval_status(&e), e),
    }
}

async fn deny(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match caller(&s, &headers, Role::Approver) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match s.agent.deny(&id, &who) {
        Ok(()) => axum::Json(serde_json::json!({"denied": id})).into_response(),
        Err(e) => error(approval_status(&e), e),
    }
}

/// 409 when another decision (or the clock) already settled the approval,
/// 403 when this caller may not decide it, 404 for an unknown id.
fn approval_status(e: &ApprovalError) -> StatusCode {
    match e {
        ApprovalError::SelfApproval { .. } => StatusCode::FORBIDDEN,
        ApprovalError::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
        ApprovalError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    }
}

async fn reset_breaker(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let who = match caller(&s, &headers, Role::Admin) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    match s.agent.reset_breaker(&who) {
        Ok(was) => axum::Json(serde_json::json!({"reset": true, "was_open": was})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn breaker(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    axum::Json(serde_json::json!({"open": s.agent.breaker()})).into_response()
}

async fn mode(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    axum::Json(serde_json::json!({"mode": s.agent.autonomy_now().mode, "policy_mode": s.agent.autonomy.mode}))
        .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeChange {
    mode: Mode,
}

async fn set_mode(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let who = match caller(&s, &headers, Role::Admin) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let change: ModeChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"mode\": \"observe\" | \"approve\" | \"auto\"}}: {e}"),
            );
        }
    };
    match s.agent.set_mode(change.mode, &who) {
        Ok(was) => axum::Json(serde_json::json!({"mode": change.mode, "was": was})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn intake(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(r) = caller(&s, &headers, Role::Viewer) {
        return r.into_response();
    }
    axum::Json(s.intake.snapshot()).into_response()
}

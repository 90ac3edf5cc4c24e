//! The read API and the approver actions.

use super::Server;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}/report", get(report))
        .route("/api/approvals", get(approvals))
        .route("/api/approvals/{id}/approve", post(approve))
        .route("/api/approvals/{id}/deny", post(deny))
        .route("/api/breaker/reset", post(reset_breaker))
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": message.to_string()})),
    )
        .into_response()
}

async fn incidents(State(s): State<Arc<Server>>) -> Response {
    match s.agent.store.incidents() {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn report(State(s): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    match s.agent.store.report(&id) {
        Ok(md) => ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], md).into_response(),
        Err(crate::store::StoreError::NotFound { .. }) => {
            error(StatusCode::NOT_FOUND, format!("no report for {id}"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn approvals(State(s): State<Arc<Server>>) -> Response {
    match s.agent.store.approvals() {
        Ok(list) => axum::Json(list).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The approver's identity, if the bearer token matches (constant time).
fn approver(s: &Server, headers: &HeaderMap) -> Result<String, (StatusCode, &'static str)> {
    let Some(expected) = s.config.approver_token.as_deref() else {
        return Err((
            StatusCode::FORBIDDEN,
            "approvals over HTTP are disabled: no approver token is configured (RUNWARDEN_APPROVER_TOKEN)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok("http:approver".into())
    } else {
        Err((StatusCode::UNAUTHORIZED, "missing or wrong approver token"))
    }
}

async fn approve(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match approver(&s, &headers) {
        Ok(w) => w,
        Err((status, why)) => return error(status, why),
    };
    match s.agent.approve(&id, &who).await {
        Ok(outcome) => {
            axum::Json(serde_json::json!({"approved": id, "outcome": outcome})).into_response()
        }
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn deny(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match approver(&s, &headers) {
        Ok(w) => w,
        Err((status, why)) => return error(status, why),
    };
    match s.agent.deny(&id, &who) {
        Ok(()) => axum::Json(serde_json::json!({"denied": id})).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

async fn reset_breaker(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let who = match approver(&s, &headers) {
        Ok(w) => w,
        Err((status, why)) => return error(status, why),
    };
    match s.agent.reset_breaker(&who) {
        Ok(was) => axum::Json(serde_json::json!({"reset": true, "was_open": was})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

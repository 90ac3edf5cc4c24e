//! `runwarden serve` over real HTTP on loopback: webhooks in, incidents out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::*;
use common::*;
use runwarden::incident::grouping::GroupingConfig;
use runwarden::server::{ServeConfig, Server};
use std::sync::Arc;
use std::time::Duration;

const FIRING: &str = include_str!("../host/src/cli/demo-alert.json");

async fn start(s: &Setup, config: ServeConfig) -> (String, Arc<Server>) {
    let server = Server::new(Arc::new(agent(s)), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.clone().serve(listener));
    (base, server)
}

fn quick() -> ServeConfig {
    ServeConfig {
        grouping: GroupingConfig {
            group_wait_ms: 200,
            ..GroupingConfig::default()
        },
        flush_every: Duration::from_millis(50),
        max_body_bytes: 64 * 1024,
        pagerduty_secret: Some("pd-secret".into()),
        approver_token: Some("approver-token-123".into()),
    }
}

async fn wait_for_state(base: &str, want: &str) -> serde_json::Value {
    for _ in 0..100 {
        let (_, body) = http("GET", &format!("{base}/api/incidents"), &[], vec![]).await;
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(inc) = list
            .as_array()
            .and_then(|a| a.iter().find(|i| i["state"] == want))
        {
            return inc.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no incident reached {want}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alertmanager_webhook_becomes_a_resolved_incident_with_a_report() {
    let s = setup(|_, t| t);
    let (base, _server) = start(&s, quick()).await;
    let (status, body) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[("content-type", "application/json")],
        FIRING.into(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // A duplicate delivery within group_wait joins the same group.
    let (status, _) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        FIRING.into(),
    )
    .await;
    assert_eq!(status, 202);
    let inc = wait_for_state(&base, "resolved").await;
    let id = inc["id"].as_str().unwrap();
    assert_eq!(
        s.world
            .cluster
            .deployment("payments", "payment-api")
            .map(|d| d.revision),
        Some(3)
    );
    let (status, report) = http(
        "GET",
        &format!("{base}/api/incidents/{id}/report"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert!(report.contains("executed rollback_deployment"), "{report}");
    let (_, list) = http("GET", &format!("{base}/api/incidents"), &[], vec![]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(1),
        "one incident for two deliveries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_a_4xx_with_the_reason() {
    let s = setup(|_, t| t);
    let (base, _server) = start(&s, quick()).await;
    let (status, body) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        b"{\"version\":\"4\",\"alerts\":[".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("line 1"), "{body}");
    let (status, body) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        FIRING.replace("\"4\"", "\"9\"").into(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("version"), "{body}");
    let (status, _) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        vec![b' '; 100 * 1024],
    )
    .await;
    assert_eq!(status, 413, "body over the limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn pagerduty_needs_a_valid_signature() {
    use hmac::Mac;
    let s = setup(|_, t| t);
    let (base, _server) = start(&s, quick()).await;
    let body = r#"{"event":{"id":"E1","event_type":"incident.triggered","occurred_at":"2026-11-27T06:29:20Z","data":{"id":"PD1","title":"Watchdog","service":{"summary":"payment-api"}}}}"#;
    let (status, _) = http(
        "POST",
        &format!("{base}/webhooks/pagerduty"),
        &[("x-pagerduty-signature", "v1=00")],
        body.into(),
    )
    .await;
    assert_eq!(status, 401);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"pd-secret").unwrap();
    mac.update(body.as_bytes());
    let sig = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    let (status, out) = http(
        "POST",
        &format!("{base}/webhooks/pagerduty"),
        &[("x-pagerduty-signature", &sig)],
        body.into(),
    )
    .await;
    assert_eq!(status, 202, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_over_http_need_the_token() {
    let s = setup(|_, t| t);
    let (base, _server) = start(&s, quick()).await;
    let tier1 = FIRING.replace("\"tier\": \"2\"", "\"tier\": \"1\"");
    http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        tier1.into(),
    )
    .await;
    wait_for_state(&base, "waiting-approval").await;
    let (_, list) = http("GET", &format!("{base}/api/approvals"), &[], vec![]).await;
    let id = serde_json::from_str::<serde_json::Value>(&list).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, _) = http(
        "POST",
        &format!("{base}/api/approvals/{id}/approve"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = http(
        "POST",
        &format!("{base}/api/approvals/{id}/approve"),
        &[("authorization", "Bearer wrong")],
        vec![],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        s.world
            .cluster
            .deployment("payments", "payment-api")
            .map(|d| d.revision),
        Some(2)
    );
    let (status, body) = http(
        "POST",
        &format!("{base}/api/approvals/{id}/approve"),
        &[("authorization", "Bearer approver-token-123")],
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.world
            .cluster
            .deployment("payments", "payment-api")
            .map(|d| d.revision),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_configured_token_approvals_are_disabled() {
    let s = setup(|_, t| t);
    let (base, _server) = start(
        &s,
        ServeConfig {
            approver_token: None,
            ..quick()
        },
    )
    .await;
    let (status, body) = http(
        "POST",
        &format!("{base}/api/approvals/APR-1/approve"),
        &[("authorization", "Bearer anything")],
        vec![],
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("disabled"), "{body}");
}

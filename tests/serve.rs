//! `runwarden serve` over real HTTP on loopback: webhooks in, incidents out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::*;
use common::*;
use runwarden::incident::grouping::GroupingConfig;
use runwarden::server::access::WebhookAuth;
use runwarden::server::{Access, Role, ServeConfig, Server, Source};
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
        access: Access::default()
            .with_token("dash", Role::Viewer, "viewer-token-123")
            .with_token("alice", Role::Approver, "approver-token-123")
            .with_token("root", Role::Admin, "admin-token-123")
            .with_webhook(Source::Pagerduty, WebhookAuth::signed("pd-secret"))
            .allow_unauthenticated(&[Source::Alertmanager, Source::Grafana, Source::Opsgenie]),
        ..ServeConfig::default()
    }
}

const VIEWER: (&str, &str) = ("authorization", "Bearer viewer-token-123");
/// Alertmanager's configured credential, and a config that requires it.
const AM_AUTH: (&str, &str) = ("authorization", "Bearer am-secret-0123456789");

fn alertmanager_needs(auth: WebhookAuth) -> ServeConfig {
    ServeConfig {
        access: Access::default()
            .with_token("dash", Role::Viewer, "viewer-token-123")
            .with_webhook(Source::Alertmanager, auth),
        ..quick()
    }
}
const APPROVER: (&str, &str) = ("authorization", "Bearer approver-token-123");
const ADMIN: (&str, &str) = ("authorization", "Bearer admin-token-123");

/// `GET /api/intake` as a viewer.
async fn intake_counters(base: &str) -> serde_json::Value {
    let (_, body) = http("GET", &format!("{base}/api/intake"), &[VIEWER], vec![]).await;
    serde_json::from_str(&body).unwrap()
}

async fn wait_for_state(base: &str, want: &str) -> serde_json::Value {
    for _ in 0..100 {
        let (_, body) = http("GET", &format!("{base}/api/incidents"), &[VIEWER], vec![]).await;
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
    assert_eq!(s.world.payment_api_revision(), Some(3));
    let (status, report) = http(
        "GET",
        &format!("{base}/api/incidents/{id}/report"),
        &[VIEWER],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert!(report.contains("executed rollback_deployment"), "{report}");
    let (_, list) = http("GET", &format!("{base}/api/incidents"), &[VIEWER], vec![]).await;
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
    let (status, body) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        vec![b' '; 100 * 1024],
    )
    .await;
    assert_eq!(status, 413, "body over the limit");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error, like every other");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("byte limit")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pagerduty_needs_a_valid_signature() {
    use hmac::Mac;
    let s = setup(|_, t| t);
    let (base, _server) = start(&s, quick()).await;
    let delivery = |id: &str, at: chrono::DateTime<chrono::Utc>| {
        format!(
            r#"{{"event":{{"id":"{id}","event_type":"incident.triggered","occurred_at":"{}","data":{{"id":"PD1","title":"Watchdog","service":{{"summary":"payment-api"}}}}}}}}"#,
            at.to_rfc3339()
        )
    };
    let signed = |body: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"pd-secret").unwrap();
        mac.update(body.as_bytes());
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    };
    // A genuine signed delivery captured two hours ago, replayed under a
    // new id: outside the replay window, not taken.
    let old = delivery("E0", chrono::Utc::now() - chrono::Duration::hours(2));
    let (status, out) = http(
        "POST",
        &format!("{base}/webhooks/pagerduty"),
        &[("x-pagerduty-signature", &signed(&old))],
        old.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(out.contains("stale"), "{out}");
    let body = delivery("E1", chrono::Utc::now());
    let body = body.as_str();
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
    // The same signed delivery again (a replay): answered, not taken again.
    let (status, out) = http(
        "POST",
        &format!("{base}/webhooks/pagerduty"),
        &[("x-pagerduty-signature", &sig)],
        body.into(),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(out.contains("\"duplicate\":\"E1\""), "{out}");
    let counters = intake_counters(&base).await;
    assert_eq!(counters["pagerduty"]["alerts"], 1, "{counters}");
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
    let (_, list) = http("GET", &format!("{base}/api/approvals"), &[VIEWER], vec![]).await;
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
    assert_eq!(s.world.payment_api_revision(), Some(2));
    let (status, body) = http(
        "POST",
        &format!("{base}/api/approvals/{id}/approve"),
        &[APPROVER],
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.world.payment_api_revision(), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_configured_token_approvals_are_disabled() {
    let s = setup(|_, t| t);
    let (base, _server) = start(
        &s,
        ServeConfig {
            access: Access::default().allow_unauthenticated(&Source::ALL),
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

#[tokio::test(flavor = "multi_thread")]
async fn roles_decide_who_may_read_approve_reset_and_switch_modes() {
    let s = setup(|_, t| t);
    let (base, server) = start(&s, quick()).await;
    let url = |p: &str| format!("{base}{p}");
    let (status, _) = http("GET", &url("/api/incidents"), &[], vec![]).await;
    assert_eq!(status, 401, "reads need a token");
    let (status, _) = http("GET", &url("/api/incidents"), &[VIEWER], vec![]).await;
    assert_eq!(status, 200);
    let (status, _) = http("GET", &url("/healthz"), &[], vec![]).await;
    assert_eq!(status, 200, "liveness is open");

    let (status, body) = http(
        "POST",
        &url("/api/approvals/APR-1/approve"),
        &[VIEWER],
        vec![],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Viewer"), "{body}");
    let (status, _) = http("POST", &url("/api/breaker/reset"), &[APPROVER], vec![]).await;
    assert_eq!(status, 403, "the breaker is an admin's");
    let (status, _) = http("POST", &url("/api/breaker/reset"), &[ADMIN], vec![]).await;
    assert_eq!(status, 200);

    let observe = br#"{"mode": "observe"}"#.to_vec();
    let (status, _) = http("POST", &url("/api/mode"), &[APPROVER], observe.clone()).await;
    assert_eq!(status, 403);
    let (status, body) = http(
        "POST",
        &url("/api/mode"),
        &[ADMIN],
        b"{\"mode\": \"yolo\"}".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http("POST", &url("/api/mode"), &[ADMIN], observe).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"was\":\"auto\""), "{body}");

    // In observe mode the bad deploy is planned, not rolled back.
    http("POST", &url("/webhooks/alertmanager"), &[], FIRING.into()).await;
    wait_for_state(&base, "open").await;
    assert_eq!(
        s.world.payment_api_revision(),
        Some(2),
        "nothing mutating ran"
    );
    let audit = server.agent.store.audit(None).unwrap();
    let change = audit
        .iter()
        .find(|r| r.kind == "mode-change")
        .expect("audited");
    assert_eq!(change.body["by"], "http:root");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_need_their_sources_credential() {
    let s = setup(|_, t| t);
    let config = alertmanager_needs(WebhookAuth::authorization(AM_AUTH.1));
    let (base, server) = start(&s, config).await;
    let hook = format!("{base}/webhooks/alertmanager");
    let (status, _) = http("POST", &hook, &[], FIRING.into()).await;
    assert_eq!(status, 401);
    let (status, _) = http(
        "POST",
        &hook,
        &[("authorization", "Bearer wrong")],
        FIRING.into(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = http(
        "POST",
        &format!("{base}/webhooks/opsgenie"),
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 403, "an unconfigured source is refused: {body}");
    assert_eq!(
        server.grouper.lock().unwrap().counters.received,
        0,
        "nothing accepted"
    );

    let (status, _) = http("POST", &hook, &[AM_AUTH], FIRING.into()).await;
    assert_eq!(status, 202);
    let counters = intake_counters(&base).await;
    assert_eq!(counters["alertmanager"]["unauthorized"], 2, "{counters}");
    assert_eq!(counters["alertmanager"]["accepted"], 1, "{counters}");
    assert_eq!(counters["opsgenie"]["unauthorized"], 1, "{counters}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_is_shed_with_429_and_accepted_alerts_are_kept() {
    let s = setup(|_, t| t);
    let config = alertmanager_needs(WebhookAuth::authorization(AM_AUTH.1).with_rate(0.01, 3));
    let (base, server) = start(&s, config).await;
    let auth = AM_AUTH;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let body = FIRING.replace("5c1f9a0e2b7d4c13", &format!("fp-{i}"));
        let (status, _) = http(
            "POST",
            &format!("{base}/webhooks/alertmanager"),
            &[auth],
            body.into(),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429, 429]);
    let counters = intake_counters(&base).await;
    assert_eq!(counters["alertmanager"]["shed"], 3, "{counters}");
    assert_eq!(counters["alertmanager"]["alerts"], 3, "{counters}");
    assert_eq!(
        server.grouper.lock().unwrap().counters.received,
        3,
        "every accepted alert is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unauthenticated_flood_cannot_spend_the_valid_senders_rate_budget() {
    let s = setup(|_, t| t);
    let config = alertmanager_needs(WebhookAuth::authorization(AM_AUTH.1).with_rate(0.01, 3));
    let (base, _server) = start(&s, config).await;
    for _ in 0..20 {
        let (status, _) = http(
            "POST",
            &format!("{base}/webhooks/alertmanager"),
            &[("authorization", "Bearer not-the-token-at-all")],
            FIRING.into(),
        )
        .await;
        assert_eq!(status, 401);
    }
    // The real sender still has its whole burst.
    let (status, body) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[AM_AUTH],
        FIRING.into(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let counters = intake_counters(&base).await;
    assert_eq!(counters["alertmanager"]["unauthorized"], 20, "{counters}");
    assert!(
        counters["alertmanager"]["shed"].as_u64().unwrap_or(0) == 0,
        "{counters}"
    );
}

/// Writes `head` on a fresh connection, then waits for the answer (or the
/// close) at most `wait`; returns what came back and how long it took.
async fn raw_exchange(base: &str, head: &[u8], wait: Duration) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(head).await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, stream.read(&mut answer))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    (
        String::from_utf8_lossy(&answer[..n]).into_owned(),
        started.elapsed(),
    )
}

async fn healthz_within(base: &str, limit: Duration) {
    let started = std::time::Instant::now();
    let (status, _) = http("GET", &format!("{base}/healthz"), &[], vec![]).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < limit,
        "/healthz took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_headers_slow_headers_and_slow_bodies_are_cut_off_cheaply() {
    let s = setup(|_, t| t);
    let config = ServeConfig {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        ..alertmanager_needs(WebhookAuth::authorization("Bearer am-secret-0123456789"))
    };
    let (base, _server) = start(&s, config).await;

    // 10,000 signature entries (~700 KB of header): refused on size, at once.
    let entries = vec!["v1=00"; 10_000].join(",");
    let head = format!(
        "POST /webhooks/pagerduty HTTP/1.1\r\nHost: x\r\nX-PagerDuty-Signature: {entries}\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let (answer, took) = raw_exchange(&base, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let many = (0..200)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect::<String>();
    let (answer, _) = raw_exchange(
        &base,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "too many header fields: {answer}"
    );

    // Headers that never finish: the connection is closed at the deadline,
    // and the server answers others meanwhile.
    let trickle = tokio::spawn({
        let base = base.clone();
        async move {
            raw_exchange(
                &base,
                b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n",
                Duration::from_secs(10),
            )
            .await
        }
    });
    healthz_within(&base, Duration::from_millis(500)).await;
    let (answer, took) = trickle.await.unwrap();
    assert!(
        took < Duration::from_secs(4),
        "closed after {took:?}: {answer:?}"
    );

    // No credential: refused on the headers, the announced megabyte unread.
    let (answer, took) = raw_exchange(
        &base,
        b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{\"alerts\":[",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        took < Duration::from_millis(900),
        "answered before any body deadline: {took:?}"
    );

    // With the credential, a body that stalls is answered 408 at its deadline.
    let (answer, took) = raw_exchange(
        &base,
        b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer am-secret-0123456789\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"alerts\":[",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    healthz_within(&base, Duration::from_millis(500)).await;
}

/// An Alertmanager group post of `n` alerts, each on its own node-less
/// service (so each is its own group), about `bytes_per_alert` long.
fn storm_post(n: usize, first: usize) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = (first..first + n)
        .map(|i| {
            serde_json::json!({"status": "firing", "fingerprint": format!("storm{i}"),
                "labels": {"alertname": "KubePodCrashLooping", "namespace": format!("ns{}", i % 40), "service": format!("svc{i}"),
                           "pod": format!("svc{i}-7d9f8c6b5-x2x9k"), "container": "app", "severity": "warning", "job": "kube-state-metrics"},
                "annotations": {"description": format!("Pod ns{}/svc{i}-7d9f8c6b5-x2x9k (app) is in waiting state (reason: CrashLoopBackOff).", i % 40),
                                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping", "summary": "Pod is crash looping."},
                "startsAt": "2026-12-02T03:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%5B5m%5D%29+%3E%3D+1"})
        })
        .collect();
    serde_json::json!({"version": "4", "status": "firing", "receiver": "runwarden", "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}",
        "alerts": alerts, "truncatedAlerts": 0})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_over_the_body_limit_is_accepted_as_far_as_it_fits_and_the_overflow_opens_an_incident()
 {
    let s = setup(|_, t| t);
    let config = ServeConfig {
        max_body_bytes: 256 * 1024,
        grouping: GroupingConfig {
            group_wait_ms: 60_000,
            ..GroupingConfig::default()
        },
        ..quick()
    };
    let (base, server) = start(&s, config).await;
    let body = storm_post(2_000, 0);
    assert!(body.len() > 256 * 1024, "{} bytes", body.len());
    let (status, answer) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let accepted = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["accepted"]
        .as_u64()
        .unwrap();
    // The whole alerts before the cut, plus the one standing for the rest.
    assert!(accepted > 100 && accepted < 2_000, "{accepted}");
    let counters = intake_counters(&base).await;
    assert_eq!(counters["alertmanager"]["alerts"], accepted);
    let grouper = server.grouper.lock().unwrap();
    let overflow = grouper
        .groups()
        .flat_map(|g| g.alerts.values())
        .find(|a| a.name == "RunwardenIntakeOverflow")
        .expect("the overflow is filed as an alert of its own");
    assert!(
        overflow.annotations["description"].contains(&format!("the {} whole alerts", accepted - 1)),
        "{:?}",
        overflow.annotations
    );
    // Every accepted alert is in some group.
    let filed: usize = grouper.groups().map(|g| g.alerts.len()).sum();
    assert_eq!(filed as u64, accepted);
}

//! Running runwarden: its own metrics, probes, JSON logs, and several
//! replicas with one leader (a Lease on the simulated cluster's lease
//! store; the kube-rs Lease is tested against kube-rs's mocked API in
//! `host/src/leader/kube_lease.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::*;
use common::*;
use runwarden::incident::grouping::GroupingConfig;
use runwarden::leader::elector::{Elector, ElectorConfig, Round};
use runwarden::leader::{Leadership, sim::SimLease};
use runwarden::server::{Access, Role, ServeConfig, Server, Source};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const FIRING: &str = include_str!("../host/src/cli/demo-alert.json");
const VIEWER: (&str, &str) = ("authorization", "Bearer viewer-token-123");

fn config(leadership: Leadership) -> ServeConfig {
    ServeConfig {
        grouping: GroupingConfig {
            group_wait_ms: 100,
            ..GroupingConfig::default()
        },
        flush_every: Duration::from_millis(50),
        access: Access::default()
            .with_token("dash", Role::Viewer, "viewer-token-123")
            .allow_unauthenticated(&[Source::Alertmanager]),
        leadership,
        ..ServeConfig::default()
    }
}

async fn start(s: &Setup, config: ServeConfig) -> String {
    let server = Server::new(Arc::new(agent(s)), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener));
    base
}

/// The demo's firing alert, as Alertmanager posts it.
async fn post_alert(base: &str) -> (u16, String) {
    http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        FIRING.into(),
    )
    .await
}

async fn metrics(base: &str) -> String {
    let (status, body) = http("GET", &format!("{base}/metrics"), &[VIEWER], vec![]).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the first sample line starting with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_a_viewer_and_count_what_an_incident_did() {
    let s = setup(|_, t| t);
    let base = start(&s, config(Leadership::single())).await;
    let (status, _) = http("GET", &format!("{base}/metrics"), &[], vec![]).await;
    assert_eq!(status, 401, "metrics are not public");

    let (status, body) = post_alert(&base).await;
    assert_eq!(status, 202, "{body}");
    wait_for("a resolved incident in /metrics", async || {
        sample(
            &metrics(&base).await,
            r#"runwarden_incidents{state="resolved"}"#,
        ) == Some(1.0)
    })
    .await;
    let text = metrics(&base).await;
    assert!(
        sample(&text, r#"runwarden_actions_total{verdict="recovered"}"#) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"runwarden_plugin_call_duration_seconds_count{plugin="k8s-remediation",function="execute",outcome="ok"}"#
        ) >= Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE runwarden_plugin_call_duration_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"runwarden_intake_total{source="alertmanager",event="accepted"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "runwarden_circuit_breaker_open"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(sample(&text, "runwarden_leader"), Some(1.0), "{text}");

    // Prometheus's own linter accepts the exposition (names, types, help).
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    use std::io::Write as _;
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sample(&text, r#"runwarden_incidents{state="escalated"}"#),
        Some(0.0),
        "every state is reported: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_report_liveness_and_each_readiness_check() {
    let s = setup(|_, t| t);
    let base = start(&s, config(Leadership::single())).await;
    let (status, body) = http("GET", &format!("{base}/healthz"), &[], vec![]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = http("GET", &format!("{base}/readyz"), &[], vec![]).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store", "plugins", "leader", "secrets"]);
    // The shipped notifiers are granted secrets this world has no value
    // for: still ready (webhooks keep flowing), but degraded, and why.
    assert_eq!(v["degraded"], true, "{body}");
    assert!(
        body.contains("plugin `pagerduty` is granted secret `pagerduty-routing-key` (injected into https://events.pagerduty.com:443), which has no value (set RUNWARDEN_SECRET_PAGERDUTY_ROUTING_KEY)"),
        "{body}"
    );

    // A standby is alive but not ready, and says why.
    let base = start(
        &s,
        config(Leadership::elected("lease ops/runwarden as b".into())),
    )
    .await;
    let (status, _) = http("GET", &format!("{base}/healthz"), &[], vec![]).await;
    assert_eq!(status, 200);
    let (status, body) = http("GET", &format!("{base}/readyz"), &[], vec![]).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("standby (lease ops/runwarden as b)"),
        "{body}"
    );
}

fn fast(identity: &str) -> ElectorConfig {
    ElectorConfig {
        lease_duration: Duration::from_millis(1000),
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(100),
        ..ElectorConfig::new(identity)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_leads_and_the_other_takes_over_when_it_stops_renewing() {
    let s = setup(|_, t| t);
    let lease = Arc::new(SimLease::default());
    let (lead_a, lead_b) = (
        Leadership::elected("a".into()),
        Leadership::elected("b".into()),
    );
    let a = tokio::spawn(Elector::new(lease.clone(), fast("replica-a")).run(lead_a.clone()));
    wait_for("replica-a to lead", async || lead_a.is_leader()).await;
    let _b = tokio::spawn(Elector::new(lease.clone(), fast("replica-b")).run(lead_b.clone()));
    let (base_a, base_b) = (
        start(&s, config(lead_a.clone())).await,
        start(&s, config(lead_b.clone())).await,
    );

    // The standby turns webhooks away with a retryable 503 and opens nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!lead_b.is_leader(), "two leaders");
    let (status, body) = post_alert(&base_b).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("standby"), "{body}");
    let (status, _) = http("GET", &format!("{base_b}/readyz"), &[], vec![]).await;
    assert_eq!(status, 503);
    let (status, _) = http("GET", &format!("{base_a}/readyz"), &[], vec![]).await;
    assert_eq!(status, 200);

    // Before it goes, the leader trips the circuit breaker (stored with
    // the rest of the guard state in the shared store).
    let old = agent(&s);
    old.guard.lock().unwrap().breaker_tripped = Some("3 actions in 10 minutes".into());
    old.save_guard().unwrap();

    // The leader stops renewing (its process is gone): after the lease
    // duration the standby takes over, counts a transition, and serves.
    a.abort();
    let _ = a.await;
    wait_for("replica-b to take over", async || lead_b.is_leader()).await;
    let held = lease.snapshot().unwrap();
    assert_eq!(held.holder.as_deref(), Some("replica-b"));
    assert_eq!(held.transitions, 1);
    let (status, body) = post_alert(&base_b).await;
    assert_eq!(status, 202, "{body}");
    // It honours the breaker its predecessor tripped: the incident is
    // escalated, nothing is rolled back.
    wait_for("the new leader to escalate the incident", async || {
        let (_, list) = http("GET", &format!("{base_b}/api/incidents"), &[VIEWER], vec![]).await;
        list.contains("\"escalated\"")
    })
    .await;
    let text = metrics(&base_b).await;
    assert_eq!(sample(&text, "runwarden_leader"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "runwarden_circuit_breaker_open"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"runwarden_actions_total{verdict="refused"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(s.world.payment_api_revision(), Some(2), "not rolled back");
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_after_its_deadline_and_not_before() {
    let lease = Arc::new(SimLease::default());
    let leadership = Leadership::elected("a".into());
    let mut elector = Elector::new(lease.clone(), fast("replica-a"));
    assert_eq!(elector.round(&leadership).await, Round::Leading);
    lease.unreachable.store(true, Ordering::Release);
    assert_eq!(
        elector.round(&leadership).await,
        Round::Leading,
        "a blip within the deadline"
    );
    assert!(leadership.is_leader());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(elector.round(&leadership).await, Round::SteppedDown);
    assert!(!leadership.is_leader());
}

#[tokio::test]
async fn two_replicas_racing_for_a_free_lease_elect_exactly_one() {
    for _ in 0..20 {
        let lease = Arc::new(SimLease::default());
        let (la, lb) = (
            Leadership::elected("a".into()),
            Leadership::elected("b".into()),
        );
        let (mut ea, mut eb) = (
            Elector::new(lease.clone(), fast("a")),
            Elector::new(lease.clone(), fast("b")),
        );
        let (ra, rb) = tokio::join!(ea.round(&la), eb.round(&lb));
        assert_ne!(la.is_leader(), lb.is_leader(), "{ra:?} {rb:?}");
        assert_eq!(
            lease.holder().as_deref(),
            Some(if la.is_leader() { "a" } else { "b" })
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runwarden"))
        .args(["--log-format", "json", "demo"])
        .arg("--data-dir")
        .arg(data.path())
        .env("RUNWARDEN_LOG", "runwarden=debug")
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!events.is_empty(), "no JSON log line: {stderr}");
    for e in &events {
        assert!(
            e["level"].is_string() && e["timestamp"].is_string() && e["target"].is_string(),
            "{e}"
        );
    }
    // The demo's context sources have no Prometheus or Loki to ask: their
    // failed calls are logged with the plugin as a field.
    assert!(
        events
            .iter()
            .any(|e| e["plugin"].is_string() && e["function"] == "gather"),
        "{stderr}"
    );

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_runwarden"))
        .args(["--log-format", "yaml", "demo"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("possible values: text, json"), "{said}");
}

/// Polls the store until `n` incidents exist and none is still running.
async fn settled(
    agent: &runwarden::pipeline::Agent,
    n: usize,
) -> Vec<runwarden::store::IncidentRecord> {
    use runwarden::store::IncidentState as S;
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = agent.store.incidents().unwrap();
        if list.len() >= n
            && list
                .iter()
                .all(|i| !matches!(i.state, S::Open | S::Remediating))
        {
            return list;
        }
        assert!(std::time::Instant::now() < until, "{list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_whose_incident_is_over_opens_a_new_incident_when_it_fires_again() {
    let s = setup(|_, t| t);
    let agent = Arc::new(agent(&s));
    let server = Server::new(agent.clone(), config(Leadership::single()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener));

    assert_eq!(post_alert(&base).await.0, 202);
    let first = settled(&agent, 1).await;
    assert_eq!(first[0].state, runwarden::store::IncidentState::Resolved);

    // The same alert fires again: not filed under the resolved INC-1.
    assert_eq!(post_alert(&base).await.0, 202);
    let both = settled(&agent, 2).await;
    assert_eq!(both.len(), 2, "{both:?}");
    let kinds: Vec<String> = agent
        .store
        .audit(Some("INC-1"))
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"recurrence".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"alert-update".to_string()), "{kinds:?}");
    let link = agent
        .store
        .audit(Some("INC-2"))
        .unwrap()
        .into_iter()
        .find(|r| r.kind == "recurrence-of")
        .expect("the new incident names the one before it");
    assert_eq!(link.body["previous"], "INC-1");

    // Resolved alerts free the group; a third firing opens INC-3.
    let resolved = FIRING.replace("\"status\": \"firing\"", "\"status\": \"resolved\"");
    let (status, _) = http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[],
        resolved.into_bytes(),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(post_alert(&base).await.0, 202);
    let all = settled(&agent, 3).await;
    assert_eq!(all.len(), 3, "{all:?}");
}

/// A store whose writes fail on demand (a full disk), reads untouched.
struct FullDisk {
    inner: Arc<dyn runwarden::store::Store>,
    full: std::sync::atomic::AtomicBool,
}

mod full_disk {
    use super::FullDisk;
    use runwarden::store::*;
    use std::sync::atomic::Ordering;

    impl FullDisk {
        fn write(&self) -> Result<(), StoreError> {
            if self.full.load(Ordering::SeqCst) {
                Err(StoreError::Db("database or disk is full (injected)".into()))
            } else {
                Ok(())
            }
        }
    }

    impl Store for FullDisk {
        fn next_incident_id(&self) -> Result<String, StoreError> {
            self.write()?;
            self.inner.next_incident_id()
        }
        fn put_incident(&self, i: &IncidentRecord) -> Result<(), StoreError> {
            self.write()?;
            self.inner.put_incident(i)
        }
        fn incident(&self, id: &str) -> Result<IncidentRecord, StoreError> {
            self.inner.incident(id)
        }
        fn incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
            self.inner.incidents()
        }
        fn similar(&self, t: &str, x: &str, n: usize) -> Result<Vec<IncidentRecord>, StoreError> {
            self.inner.similar(t, x, n)
        }
        fn incident_states(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
            self.inner.incident_states()
        }
        fn append_audit(
            &self,
            i: Option<&str>,
            k: &str,
            b: &serde_json::Value,
        ) -> Result<AuditRecord, StoreError> {
            self.write()?;
            self.inner.append_audit(i, k, b)
        }
        fn audit(&self, i: Option<&str>) -> Result<Vec<AuditRecord>, StoreError> {
            self.inner.audit(i)
        }
        fn audit_of_kinds_since(
            &self,
            k: &[&str],
            since: Option<chrono::DateTime<chrono::Utc>>,
        ) -> Result<Vec<AuditRecord>, StoreError> {
            self.inner.audit_of_kinds_since(k, since)
        }
        fn verify_chain(
            &self,
            expected: Option<&runwarden::store::Head>,
        ) -> Result<AuditVerification, StoreError> {
            self.inner.verify_chain(expected)
        }
        fn probe_write(&self) -> Result<(), StoreError> {
            self.write()?;
            self.inner.probe_write()
        }
        fn next_approval_id(&self) -> Result<String, StoreError> {
            self.write()?;
            self.inner.next_approval_id()
        }
        fn insert_approval(&self, a: &Approval) -> Result<(), StoreError> {
            self.write()?;
            self.inner.insert_approval(a)
        }
        fn decide_approval(
            &self,
            id: &str,
            to: ApprovalState,
            by: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> Result<Approval, StoreError> {
            self.write()?;
            self.inner.decide_approval(id, to, by, at)
        }
        fn approval(&self, id: &str) -> Result<Approval, StoreError> {
            self.inner.approval(id)
        }
        fn approvals(&self) -> Result<Vec<Approval>, StoreError> {
            self.inner.approvals()
        }
        fn guard_state(&self) -> Result<Option<serde_json::Value>, StoreError> {
            self.inner.guard_state()
        }
        fn put_guard_state(
            &self,
            s: &serde_json::Value,
            r: Option<runwarden::store::chained::Entry>,
        ) -> Result<(), StoreError> {
            self.write()?;
            self.inner.put_guard_state(s, r)
        }
        fn put_report(&self, i: &str, m: &str) -> Result<(), StoreError> {
            self.write()?;
            self.inner.put_report(i, m)
        }
        fn report(&self, i: &str) -> Result<String, StoreError> {
            self.inner.report(i)
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_cannot_write_is_not_ready_loses_no_alert_and_changes_no_mode() {
    let s = setup(|_, t| t);
    let mut a = agent(&s);
    let disk = Arc::new(FullDisk {
        inner: a.store.clone(),
        full: std::sync::atomic::AtomicBool::new(false),
    });
    a.store = disk.clone();
    let mut cfg = config(Leadership::single());
    cfg.access = cfg
        .access
        .with_token("admin", Role::Admin, "admin-token-12345");
    let server = Server::new(Arc::new(a), cfg);
    let agent = server.agent.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener));
    let admin = ("authorization", "Bearer admin-token-12345");

    disk.full.store(true, Ordering::SeqCst);
    let (status, body) = http("GET", &format!("{base}/readyz"), &[], vec![]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("disk is full"), "{body}");
    let (status, body) = post_alert(&base).await;
    assert_eq!(status, 503, "never 202 for what cannot be kept: {body}");
    let (status, _) = http(
        "POST",
        &format!("{base}/api/mode"),
        &[admin],
        br#"{"mode": "observe"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        agent.autonomy_now().mode,
        runwarden::pipeline::autonomy::Mode::Auto,
        "an error answer means nothing changed"
    );

    disk.full.store(false, Ordering::SeqCst);
    let (status, body) = http("GET", &format!("{base}/readyz"), &[], vec![]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(post_alert(&base).await.0, 202);
}

//! End to end with the real Prometheus and Alertmanager (Debian packages,
//! started here as plain processes on loopback):
//!
//! exporter (5xx rising) → Prometheus scrapes and fires HighErrorRate →
//! Alertmanager posts its webhook to `runwarden serve` → the prometheus
//! plugin queries the real Prometheus for context → rollback on the
//! simulated cluster → the exporter recovers once the rollback is visible →
//! verification sees the 5xx ratio fall in the real Prometheus.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::*;
use common::*;
use runwarden::capability::k8s::sim::SimulatedCluster;
use runwarden::incident::grouping::GroupingConfig;
use runwarden::pipeline::{Agent, AgentConfig, AgentPaths};
use runwarden::sandbox::state::HostServices;
use runwarden::server::access::WebhookAuth;
use runwarden::server::{Access, Role, ServeConfig, Server, Source};

/// What the real Alertmanager sends in `Authorization: Bearer`.
const SCRAPE_TOKEN: &str = "prometheus-scrape-token-1";
const AM_TOKEN: &str = "am-webhook-token-0123456789";
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo cluster with its bad rollout 10 minutes ago (timestamps moved to now).
fn cluster_now() -> SimulatedCluster {
    let now = chrono::Utc::now().timestamp_millis();
    let mut state = SimulatedCluster::demo().snapshot();
    for d in &mut state.deployments {
        for r in &mut d.revisions {
            r.created_at = if r.revision == d.revision {
                now - 10 * 60_000
            } else {
                now - 7 * 24 * 3_600_000
            };
        }
    }
    for e in &mut state.events {
        e.last_seen = now - 60_000;
    }
    SimulatedCluster::new(state)
}

async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn real_alertmanager_to_rollback_to_recovery_in_real_prometheus() {
    for bin in ["prometheus", "prometheus-alertmanager"] {
        assert!(
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "{bin} is not installed: scripts/test.sh installs the Debian packages prometheus and prometheus-alertmanager"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Arc::new(cluster_now());

    // The exporter: 100 requests per 100 ms; 10 % fail while revision 2 runs.
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    {
        let (ok, failed, cluster) = (ok.clone(), failed.clone(), cluster.clone());
        tokio::spawn(async move {
            loop {
                let bad = cluster
                    .deployment("payments", "payment-api")
                    .is_some_and(|d| d.revision == 2);
                ok.fetch_add(if bad { 90 } else { 100 }, Ordering::SeqCst);
                failed.fetch_add(if bad { 10 } else { 0 }, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let exporter = {
        let (ok, failed) = (ok.clone(), failed.clone());
        serve_with(move |_| {
            format!(
                "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {}\nhttp_requests_total{{code=\"500\"}} {}\n",
                ok.load(Ordering::SeqCst),
                failed.load(Ordering::SeqCst)
            )
        })
        .await
    };

    // runwarden, with the prometheus plugin pointed at the real Prometheus.
    let (prom_port, am_port) = (free_port(), free_port());
    let s = setup(|name, t| match name {
        "prometheus.toml" => t
            .replace("127.0.0.1:9090", &format!("127.0.0.1:{prom_port}"))
            .replace("[1m]", "[15s]"),
        _ => t,
    });
    let runbooks = tmp.path().join("runbooks");
    common::copy_runbooks(&runbooks);
    // Recovery must be seen in Prometheus, not inferred from pod state.
    let rb = std::fs::read_to_string(workspace().join("runbooks/high-error-rate.toml")).unwrap();
    let rb = rb.split("[[recovery]]").next().unwrap().to_string()
        + "[[recovery]]\nwhen = [{ metric_below = { name = \"5xx ratio\", value = 0.05 } }]\n";
    std::fs::write(runbooks.join("high-error-rate.toml"), rb).unwrap();
    let services = HostServices {
        cluster: cluster.clone(),
        secrets: s.world.services.secrets.clone(),
    };
    let (agent, problems) = Agent::open(
        AgentPaths {
            policies: &s.dir.path().join("policies"),
            runbooks: &runbooks,
            store: runwarden::store::StoreLocation::sqlite(&tmp.path().join("data")),
        },
        services,
        &cache(),
        AgentConfig {
            source_deadline: Duration::from_secs(5),
            verify_interval: Duration::from_secs(1),
            verify_timeout: Some(Duration::from_secs(90)),
            ..AgentConfig::default()
        },
    )
    .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let agent = Arc::new(agent);
    let server = Server::new(
        agent.clone(),
        ServeConfig {
            grouping: GroupingConfig {
                group_wait_ms: 200,
                ..GroupingConfig::default()
            },
            flush_every: Duration::from_millis(100),
            // The real Alertmanager authenticates with a bearer token.
            access: Access::default()
                .with_webhook(
                    Source::Alertmanager,
                    WebhookAuth::authorization(&format!("Bearer {AM_TOKEN}")),
                )
                // Prometheus scrapes /metrics as a viewer.
                .with_token("prometheus", Role::Viewer, SCRAPE_TOKEN),
            ..ServeConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rw_port = listener.local_addr().unwrap().port();
    tokio::spawn(server.clone().serve(listener));

    // Alertmanager → runwarden.
    let am_config = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: runwarden\n  group_by: [alertname, namespace, service]\n  group_wait: 1s\n  group_interval: 5s\n  repeat_interval: 1h\nreceivers:\n  - name: runwarden\n    webhook_configs:\n      - url: http://127.0.0.1:{rw_port}/webhooks/alertmanager\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials: {AM_TOKEN}\n"
        ),
    )
    .unwrap();
    let _am = Killed(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!(
                "--storage.path={}",
                tmp.path().join("am-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("alertmanager.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    // Prometheus scraping the exporter every second, alerting into Alertmanager.
    let rules = tmp.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: runwarden-e2e\n    interval: 1s\n    rules:\n      - alert: HighErrorRate\n        expr: sum(rate(http_requests_total{job=\"payment-api\",code=~\"5..\"}[15s])) / sum(rate(http_requests_total{job=\"payment-api\"}[15s])) > 0.05\n        labels: {namespace: payments, service: payment-api, tier: \"2\", severity: critical}\n        annotations: {summary: \"payment-api 5xx ratio above 5%\"}\n",
    )
    .unwrap();
    let prom_config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: payment-api\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n  - job_name: runwarden\n    authorization:\n      type: Bearer\n      credentials: {SCRAPE_TOKEN}\n    static_configs:\n      - targets: ['127.0.0.1:{rw_port}']\n",
            rules.display(),
            exporter.port
        ),
    )
    .unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    let logs = || {
        let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap_or_default();
        let tail = |s: String| {
            s.lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "--- prometheus.log\n{}\n--- alertmanager.log\n{}",
            tail(read("prometheus.log")),
            tail(read("alertmanager.log"))
        )
    };

    // The alert travels Prometheus → Alertmanager → runwarden, and the incident resolves.
    let store = agent.store.clone();
    let started = Instant::now();
    let deadline = Duration::from_secs(150);
    while started.elapsed() < deadline {
        let incidents = store.incidents().unwrap();
        if incidents
            .iter()
            .any(|i| i.state == runwarden::store::IncidentState::Resolved)
        {
            break;
        }
        if let Some(bad) = incidents
            .iter()
            .find(|i| i.state == runwarden::store::IncidentState::Escalated)
        {
            panic!(
                "incident escalated: {bad:?}\n{:#?}\n{}",
                store.audit(Some(&bad.id)).unwrap(),
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let incidents = store.incidents().unwrap();
    let inc = incidents
        .iter()
        .find(|i| i.state == runwarden::store::IncidentState::Resolved)
        .unwrap_or_else(|| {
            panic!(
                "no resolved incident after {deadline:?}: {incidents:?}\n{}",
                logs()
            )
        });
    assert_eq!(
        cluster
            .deployment("payments", "payment-api")
            .map(|d| d.revision),
        Some(3),
        "rolled back"
    );

    let audit = store.audit(Some(&inc.id)).unwrap();
    let alert = audit.iter().find(|r| r.kind == "alert").unwrap();
    assert_eq!(
        alert.body["alerts"][0]["sender"], "alertmanager",
        "the alert came from the real Alertmanager"
    );
    let context = audit
        .iter()
        .find(|r| r.kind == "context")
        .unwrap()
        .to_owned();
    let summaries = context.body["evidence"].to_string();
    assert!(
        summaries.contains("5xx ratio: "),
        "the prometheus plugin read the real Prometheus: {summaries}"
    );
    let verification = audit
        .iter()
        .rev()
        .find(|r| r.kind == "verification")
        .unwrap();
    assert_eq!(verification.body["recovered"], true, "{verification:?}");
    assert!(
        verification.body["evidence"]
            .to_string()
            .contains("5xx ratio"),
        "recovery seen in Prometheus: {verification:?}"
    );
    assert!(store.verify_audit().unwrap().ok());

    // Alertmanager also tells runwarden when the alert resolves.
    wait_until(
        "the resolved notification",
        Duration::from_secs(60),
        async || {
            store
                .audit(Some(&inc.id))
                .unwrap()
                .iter()
                .any(|r| r.kind == "alert-update" && r.body["status"] == "resolved")
        },
    )
    .await;

    // The real Prometheus scraped runwarden's own /metrics: the action, the
    // plugin call that made it, and the resolved incident are queryable.
    let query = async |q: &str| -> f64 {
        let url = format!(
            "http://127.0.0.1:{prom_port}/api/v1/query?query={}",
            q.replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace('=', "%3D")
        );
        let (_, body) = http("GET", &url, &[], vec![]).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    wait_until(
        "runwarden's own metrics in Prometheus",
        Duration::from_secs(30),
        async || {
            query("runwarden_actions_total{verdict=\"recovered\"}").await >= 1.0
                && query("runwarden_plugin_call_duration_seconds_count{plugin=\"k8s-remediation\",function=\"execute\",outcome=\"ok\"}").await >= 1.0
                && query("runwarden_incidents{state=\"resolved\"}").await >= 1.0
                && query("up{job=\"runwarden\"}").await == 1.0
        },
    )
    .await;
    let _ = exporter;
}

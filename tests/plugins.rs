//! The first-party plugins, each through the sandbox with its own policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::bindings::types::{Alert, AlertStatus, EvidenceKind, Pair, TimeWindow};
use runwarden::sandbox::fault::CallError;
use serde_json::json;

const ALERT_START: i64 = 1_795_761_000_000;

fn alert() -> Alert {
    let label = |k: &str, v: &str| Pair {
        key: k.into(),
        value: v.into(),
    };
    Alert {
        name: "HighErrorRate".into(),
        status: AlertStatus::Firing,
        fingerprint: "f1".into(),
        labels: vec![
            label("alertname", "HighErrorRate"),
            label("namespace", "payments"),
            label("service", "payment-api"),
        ],
        annotations: vec![],
        starts_at: ALERT_START,
    }
}

fn window() -> TimeWindow {
    TimeWindow {
        start: ALERT_START - 30 * 60_000,
        end: ALERT_START + 10 * 60_000,
    }
}

/// A Prometheus `query_range` answer: 0.2% errors, then 8% from the alert on.
fn prometheus_answer() -> String {
    let start = (ALERT_START - 30 * 60_000) / 1000;
    let values: Vec<serde_json::Value> = (0..160)
        .map(|i| {
            let t = start + i * 15;
            let v = if t * 1000 < ALERT_START { 0.002 } else { 0.08 };
            json!([t, v.to_string()])
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"job": "payment-api"}, "values": values}
    ]}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_summarises_baseline_and_change() {
    let server = serve_with(|_| prometheus_answer()).await;
    let policy = format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{p}\"]\n\n[config]\nurl = \"http://127.0.0.1:{p}\"\nqueries = '[{{\"name\": \"5xx ratio\", \"promql\": \"sum(rate(http_requests_total{{job=\\\"{{{{service}}}}\\\",code=~\\\"5..\\\"}}[1m]))\"}}]'\n",
        p = server.port
    );
    let plugin = fixture("prometheus", "context-source", "[requests.http]\n", &policy)
        .load()
        .expect("loads");
    let w = world();
    let called = plugin.gather(&w.services, &alert(), window()).await;
    let evidence = called.result.expect("evidence");
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].kind, EvidenceKind::MetricSeries);
    assert!(
        evidence[0]
            .summary
            .starts_with("5xx ratio: 0.0020 -> 0.0800"),
        "{}",
        evidence[0].summary
    );
    assert!(
        evidence[0].summary.contains("rose at 06:30:00 UTC"),
        "{}",
        evidence[0].summary
    );
    let paths = server.paths.lock().expect("lock").clone();
    assert!(
        paths[0].starts_with(
            "/api/v1/query_range?query=sum%28rate%28http_requests_total%7Bjob%3D%22payment-api%22"
        ),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_without_the_http_grant_refuses_to_load() {
    let err = fixture("prometheus", "context-source", "[requests.http]\n", "")
        .load()
        .err();
    assert!(
        matches!(
            err,
            Some(runwarden::plugin::LoadError::UngrantedImports { .. })
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loki_ranks_error_patterns_first() {
    let answer = || {
        let mut values = Vec::new();
        for i in 0..50 {
            values.push(json!([
                format!("{}", (ALERT_START + i * 1000) * 1_000_000),
                format!("GET /pay/{i} 200 in {i}ms")
            ]));
        }
        for i in 0..7 {
            values.push(json!([
                format!("{}", (ALERT_START + i * 2000) * 1_000_000),
                format!("java.lang.OutOfMemoryError: Java heap space (request {i})")
            ]));
        }
        json!({"status": "success", "data": {"resultType": "streams", "result": [{"stream": {"app": "payment-api"}, "values": values}]}}).to_string()
    };
    let server = serve_with(move |_| answer()).await;
    let policy = format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{p}\"]\n\n[config]\nurl = \"http://127.0.0.1:{p}\"\nquery = '{{app=\"{{{{service}}}}\"}}'\n",
        p = server.port
    );
    let plugin = fixture("loki", "context-source", "[requests.http]\n", &policy)
        .load()
        .expect("loads");
    let w = world();
    let evidence = plugin
        .gather(&w.services, &alert(), window())
        .await
        .result
        .expect("evidence");
    assert_eq!(evidence[0].kind, EvidenceKind::LogLines);
    assert!(
        evidence[0].summary.starts_with("57 log lines, 7 error-like; top: \"java.lang.OutOfMemoryError: Java heap space (request ")
            && evidence[0].summary.ends_with(")\" x7"),
        "{}",
        evidence[0].summary
    );
    // The plugin states what the lines show, typed (runwarden:plugin@0.2.0
    // `evidence.facts`): the workload's own out-of-memory errors.
    assert!(
        evidence[0].facts.iter().any(|f| matches!(
            f,
            runwarden::bindings::types::Fact::LogErrors(l) if l.class == "oom" && l.count == 7
        )),
        "{:?}",
        evidence[0].facts
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_changes_reports_the_recent_rollout_and_oom_kills() {
    let plugin = fixture(
        "k8s_changes",
        "context-source",
        "[requests.k8s]\noperations = [\"read\"]\n",
        "[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\"]\n",
    )
    .load()
    .expect("loads");
    let w = world();
    let evidence = plugin
        .gather(&w.services, &alert(), window())
        .await
        .result
        .expect("evidence");
    let summaries: Vec<&str> = evidence.iter().map(|e| e.summary.as_str()).collect();
    assert!(
        summaries.iter().any(|s| s.contains(
            "rolled out revision 2 (registry.example/payment-api:1.42.0) 16 min before the alert"
        )),
        "{summaries:#?}"
    );
    assert!(
        summaries.iter().any(|s| s.contains("OOMKilling x4")),
        "{summaries:#?}"
    );
    assert!(
        summaries.iter().any(|s| s.contains("3 OOMKilled")),
        "{summaries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_changes_in_an_ungranted_namespace_is_denied() {
    let plugin = fixture(
        "k8s_changes",
        "context-source",
        "[requests.k8s]\noperations = [\"read\"]\n",
        "[grants.k8s]\nnamespaces = [\"checkout\"]\noperations = [\"read\"]\n",
    )
    .load()
    .expect("loads");
    let w = world();
    let result = plugin.gather(&w.services, &alert(), window()).await.result;
    assert!(
        matches!(
            &result,
            Err(CallError::Plugin(
                runwarden::bindings::types::Error::Denied(_)
            ))
        ),
        "{result:?}"
    );
}

const REMEDIATION_POLICY: &str = "[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\", \"scale\", \"rollback\", \"delete-pods\"]\nmax_replicas = 10\nmax_pods_per_action = 3\n[grants.log]\n";
const REMEDIATION_REQUESTS: &str = "[requests.k8s]\noperations = [\"read\", \"scale\", \"rollback\", \"delete-pods\"]\n[requests.log]\n";

#[tokio::test(flavor = "multi_thread")]
async fn k8s_remediation_plans_without_change_then_rolls_back() {
    let plugin = fixture(
        "k8s_remediation",
        "remediation-tool",
        REMEDIATION_REQUESTS,
        REMEDIATION_POLICY,
    )
    .load()
    .expect("loads");
    let w = world();
    let specs = plugin
        .describe_tools(&w.services)
        .await
        .result
        .expect("tools");
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["scale_deployment", "rollback_deployment", "restart_pods"]
    );

    let (rollback, _) = runwarden::toolcall::validate(
        &specs,
        "rollback_deployment",
        r#"{"namespace":"payments","name":"payment-api"}"#,
    )
    .expect("valid");
    let plan = plugin
        .plan(&w.services, &rollback)
        .await
        .result
        .expect("plan");
    assert_eq!(
        plan.summary,
        "roll back deployment payments/payment-api: revision 2 -> revision 1"
    );
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.revision),
        Some(2),
        "a plan changes nothing"
    );

    let outcome = plugin
        .execute(&w.services, &rollback, common::grant_only())
        .await
        .result
        .expect("rollback");
    assert_eq!(
        outcome.summary,
        "rolled back deployment payments/payment-api: revision 2 -> revision 3"
    );
    let d = w
        .cluster
        .deployment("payments", "payment-api")
        .expect("deployment");
    assert_eq!(
        d.images,
        vec!["registry.example/payment-api:1.41.0".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_remediation_restarts_at_most_the_granted_pods() {
    let plugin = fixture(
        "k8s_remediation",
        "remediation-tool",
        REMEDIATION_REQUESTS,
        REMEDIATION_POLICY,
    )
    .load()
    .expect("loads");
    let w = world();
    let before = w.cluster.pod_names("payments");
    let outcome = plugin
        .execute(
            &w.services,
            &call(
                "restart_pods",
                json!({"namespace": "payments", "name": "payment-api"}),
            ),
            common::grant_only(),
        )
        .await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let after = w.cluster.pod_names("payments");
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "all three pods replaced: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_validation_rejects_bad_arguments_before_the_plugin_runs() {
    let plugin = fixture(
        "k8s_remediation",
        "remediation-tool",
        REMEDIATION_REQUESTS,
        REMEDIATION_POLICY,
    )
    .load()
    .expect("loads");
    let w = world();
    let specs = plugin
        .describe_tools(&w.services)
        .await
        .result
        .expect("tools");
    let err = runwarden::toolcall::validate(
        &specs,
        "scale_deployment",
        r#"{"namespace":"payments","name":"payment-api","replicas":-3,"force":true}"#,
    )
    .err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("/replicas") && msg.contains("force"), "{msg}");
}

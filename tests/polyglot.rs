//! Plugins in Python (componentize-py) and JavaScript (componentize-js),
//! built by `scripts/build-polyglot-plugins.sh` and loaded through the same
//! policies, checks and limits as the Rust plugins: each is refused outside
//! its grant (typed denial, nothing changed) and allowed within it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::bindings::types::{Alert, AlertStatus, Error as PluginError, Pair, TimeWindow};
use runwarden::registry::Registry;
use runwarden::sandbox::fault::CallError;
use serde_json::json;

fn registry(w: &World) -> Registry {
    // The first load compiles four large components into the shared cache;
    // the other tests wait for it instead of compiling them again.
    static COMPILED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _first = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    let dir = workspace().join("policies/examples");
    for component in [
        "pod_restarts",
        "restart_crashlooping",
        "replica_gap",
        "scale_by",
    ] {
        assert!(
            workspace()
                .join(format!("target/wasm32-wasip2/plugin/{component}.wasm"))
                .exists(),
            "{component}.wasm is missing: run scripts/build-polyglot-plugins.sh (the test command does)"
        );
    }
    let (registry, problems) =
        Registry::load(engine(), &cache(), &dir, w.services.clone()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    registry
}

fn alert(namespace: &str, service: &str) -> Alert {
    Alert {
        name: "HighErrorRate".into(),
        status: AlertStatus::Firing,
        fingerprint: "f".into(),
        labels: vec![
            Pair {
                key: "namespace".into(),
                value: namespace.into(),
            },
            Pair {
                key: "service".into(),
                value: service.into(),
            },
        ],
        annotations: vec![],
        starts_at: 0,
    }
}

const WINDOW: TimeWindow = TimeWindow { start: 0, end: 1 };

fn denied<T: std::fmt::Debug>(result: &Result<T, CallError>) -> String {
    match result {
        Err(CallError::Plugin(PluginError::Denied(reason))) => reason.clone(),
        other => panic!("expected a typed denial, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_source_reads_within_its_grant_and_is_denied_outside() {
    let w = world();
    let r = registry(&w);
    let source = r.get("pod-restarts").unwrap();
    let called = source
        .gather(&w.services, &alert("payments", "payment-api"), WINDOW)
        .await;
    let evidence = called.result.unwrap();
    assert_eq!(evidence.len(), 1);
    assert!(
        evidence[0].summary.contains("OOMKilled"),
        "{}",
        evidence[0].summary
    );
    let body: serde_json::Value = serde_json::from_str(&evidence[0].body_json).unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(3));
    assert_eq!(
        called.report.logs.len(),
        1,
        "its log line went through the log capability"
    );

    let called = source
        .gather(&w.services, &alert("kube-system", "coredns"), WINDOW)
        .await;
    assert!(denied(&called.result).contains("kube-system"));
    assert!(matches!(
        called.report.capability_calls[0].verdict,
        runwarden::capability::Verdict::Denied(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn python_tool_plans_without_changing_and_deletes_only_within_its_limit() {
    let w = world();
    let r = registry(&w);
    let tool = r.get("restart-crashlooping").unwrap();
    let pods = || w.cluster.pod_names("payments");
    let before = pods();

    // All three crash-looping pods: above max_pods_per_action (2). Denied,
    // nothing deleted.
    let args = json!({"namespace": "payments", "service": "payment-api"});
    let plan = tool
        .plan(
            &w.services,
            &call("restart_crashlooping_pods", args.clone()),
        )
        .await;
    let plan = plan.result.unwrap();
    let planned_pods = plan.changes.iter().find_map(|c| match &c.effect {
        runwarden::bindings::types::ChangeEffect::RestartPods(r) => Some(r.pods.len()),
        _ => None,
    });
    assert_eq!(planned_pods, Some(3), "{plan:?}");
    let called = tool
        .execute(
            &w.services,
            &call("restart_crashlooping_pods", args),
            common::grant_only(),
        )
        .await;
    assert!(denied(&called.result).contains("max_pods_per_action"));
    assert_eq!(pods(), before, "nothing deleted");

    // Only the worst one: allowed.
    let args = json!({"namespace": "payments", "service": "payment-api", "min_restarts": 5});
    let called = tool
        .execute(
            &w.services,
            &call("restart_crashlooping_pods", args),
            common::grant_only(),
        )
        .await;
    let outcome = called.result.unwrap();
    assert!(
        outcome.summary.starts_with("restarted 1 "),
        "{}",
        outcome.summary
    );
    let after = pods();
    assert!(
        !after.contains(&"payment-api-6f7c9-c3".to_string()),
        "{after:?}"
    );
    assert!(
        after.contains(&"payment-api-6f7c9-a1".to_string()),
        "only the worst one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_source_reads_within_its_grant_and_is_denied_outside() {
    let w = world();
    let r = registry(&w);
    let source = r.get("replica-gap").unwrap();
    let called = source
        .gather(&w.services, &alert("payments", "payment-api"), WINDOW)
        .await;
    let evidence = called.result.unwrap();
    assert!(
        evidence
            .iter()
            .any(|e| e.summary.starts_with("payments/payment-api: 1 of 3")),
        "{evidence:?}"
    );
    let called = source
        .gather(&w.services, &alert("kube-system", "coredns"), WINDOW)
        .await;
    assert!(denied(&called.result).contains("kube-system"));
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_tool_scales_within_max_replicas_and_is_denied_above() {
    let w = world();
    let r = registry(&w);
    let tool = r.get("scale-by").unwrap();
    let replicas = || {
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas)
    };
    assert_eq!(replicas(), Some(3));

    let called = tool
        .execute(
            &w.services,
            &call(
                "scale_deployment_by",
                json!({"namespace": "payments", "name": "payment-api", "delta": 9}),
            ),
            common::grant_only(),
        )
        .await;
    assert!(denied(&called.result).contains("max_replicas"));
    assert_eq!(replicas(), Some(3), "nothing changed");

    let called = tool
        .execute(
            &w.services,
            &call(
                "scale_deployment_by",
                json!({"namespace": "payments", "name": "payment-api", "delta": 2}),
            ),
            common::grant_only(),
        )
        .await;
    assert!(called.result.is_ok(), "{:?}", called.result);
    assert_eq!(replicas(), Some(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn polyglot_components_import_only_their_world() {
    let w = world();
    let r = registry(&w);
    // JavaScript with every optional WASI feature off imports no WASI at all;
    // Python's runtime imports WASI (sockets among them: linked, denied).
    let js = &r.get("replica-gap").unwrap().interfaces.imports;
    assert!(
        js.iter().all(|i| i.starts_with("runwarden:plugin/")),
        "{js:?}"
    );
    let py = &r.get("pod-restarts").unwrap().interfaces.imports;
    assert!(py.iter().any(|i| i.starts_with("wasi:sockets/")), "{py:?}");
    assert!(
        !py.iter().any(|i| i.starts_with("wasi:http/")),
        "no http in k8s-source: {py:?}"
    );
}

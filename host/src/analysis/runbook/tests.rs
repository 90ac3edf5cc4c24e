//! The runbook planner's tests: parsing, finding, deciding, recovering.

use super::*;
use serde_json::json;

const RUNBOOK: &str = r#"
alert = "HighErrorRate"
title = "High 5xx error rate"

[[rule]]
name = "upstream-outage"
when = [{ pattern = "upstream .* unhealthy" }]
hypothesis = "an upstream dependency of {{service}} is failing"
confidence = "medium"
risk = "rolling back would not help"

[[rule]]
name = "bad-deploy"
when = [{ recent_change_minutes = 30 }, { pattern = "OOMKill|OutOfMemoryError" }]
hypothesis = "the latest rollout of {{service}} exhausts memory"
confidence = "high"
risk = "rollback restores the previous image; low risk"
action = { plugin = "k8s-remediation", tool = "rollback_deployment", arguments = { namespace = "{{namespace}}", name = "{{service}}" } }
"#;

fn labels() -> BTreeMap<String, String> {
    [("namespace", "payments"), ("service", "payment-api")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ev(kind: &str, summary: &str, body: serde_json::Value) -> EvidenceItem {
    EvidenceItem {
        source: "t".into(),
        kind: kind.into(),
        summary: summary.into(),
        body,
        facts: vec![],
    }
}

#[test]
fn a_recent_deploy_with_oom_kills_rolls_back() {
    let rb = parse(RUNBOOK).expect("parses");
    let evidence = vec![
        ev(
            "change-event",
            "rolled out revision 2 16 min before the alert",
            json!({"minutes_before_alert": 16}),
        ),
        ev("k8s-event", "warning events: OOMKilling x4", json!({})),
    ];
    let d = decide(
        Some(&rb),
        "HighErrorRate",
        &labels(),
        &evidence,
        &Facts::default(),
    );
    assert_eq!(d.confidence, Confidence::High);
    assert_eq!(d.actions[0].tool, "rollback_deployment");
    assert_eq!(
        d.actions[0].arguments,
        json!({"namespace": "payments", "name": "payment-api"})
    );
    assert_eq!(
        d.hypothesis,
        "the latest rollout of payment-api exhausts memory"
    );
    assert_eq!(d.evidence.len(), 2);
}

#[test]
fn an_upstream_outage_wins_over_an_unrelated_deploy() {
    let rb = parse(RUNBOOK).expect("parses");
    let evidence = vec![
        ev(
            "change-event",
            "rolled out revision 2",
            json!({"minutes_before_alert": 5}),
        ),
        ev("k8s-event", "OOMKilling x1", json!({})),
        ev(
            "metric-series",
            "upstream card-processor unhealthy: 0 of 3 up",
            json!({}),
        ),
    ];
    let d = decide(
        Some(&rb),
        "HighErrorRate",
        &labels(),
        &evidence,
        &Facts::default(),
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.decided_by, "runbook HighErrorRate rule `upstream-outage`");
}

#[test]
fn a_deploy_after_the_alert_is_not_recent() {
    let rb = parse(RUNBOOK).expect("parses");
    let evidence = vec![
        ev("change-event", "x", json!({"minutes_before_alert": -3})),
        ev("note", "OOMKilled", json!({})),
    ];
    let d = decide(
        Some(&rb),
        "HighErrorRate",
        &labels(),
        &evidence,
        &Facts::default(),
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.confidence, Confidence::Low);
}

#[test]
fn metric_and_restart_conditions() {
    let rb = parse(
        r#"
alert = "A"
title = "t"
[[rule]]
name = "r"
when = [{ metric_above = { name = "cpu", value = 0.9 } }, { restarts_at_least = 3 }]
hypothesis = "h"
confidence = "medium"
"#,
    )
    .expect("parses");
    let hot = vec![
        ev("metric-series", "cpu: 0.5 -> 0.97", json!({"now": 0.97})),
        ev(
            "note",
            "pods",
            json!({"pods": [{"restarts": 2}, {"restarts": 1}]}),
        ),
    ];
    assert_eq!(
        decide(Some(&rb), "A", &labels(), &hot, &Facts::default()).decided_by,
        "runbook A rule `r`"
    );
    let cool = vec![
        ev("metric-series", "cpu: 0.5 -> 0.6", json!({"now": 0.6})),
        hot[1].clone(),
    ];
    assert_eq!(
        decide(Some(&rb), "A", &labels(), &cool, &Facts::default()).decided_by,
        "runbook A: no rule matched"
    );
}

#[test]
fn bad_runbooks_are_reported_with_their_line() {
    let err = parse("alert = \"A\"\ntitle = \"t\"\n[[rule]]\nname = \"r\"\nwhen = [{ pattern = \"(\" }]\nhypothesis = \"h\"\nconfidence = \"high\"\n").err().unwrap_or_default();
    assert!(
        err.contains("line 5") && err.contains("invalid regex"),
        "{err}"
    );
    let err = parse("alert = \"A\"\ntitle = \"t\"\nbogus = 1\n")
        .err()
        .unwrap_or_default();
    assert!(err.contains("unknown field `bogus`"), "{err}");
}

#[test]
fn recovery_needs_every_condition_of_one_entry() {
    let rb = parse(
        r#"
alert = "A"
title = "t"
[[recovery]]
when = [{ metric_below = { name = "5xx ratio", value = 0.05 } }]
[[recovery]]
when = [{ pattern = "0 not ready, 0 restarts" }]
"#,
    )
    .expect("parses");
    let still_bad = vec![ev(
        "metric-series",
        "5xx ratio: 0.002 -> 0.08",
        json!({"now": 0.08}),
    )];
    assert!(recovered(&rb, &still_bad, &Facts::default()).is_none());
    let good = vec![ev(
        "metric-series",
        "5xx ratio: 0.08 -> 0.001",
        json!({"now": 0.001}),
    )];
    assert!(recovered(&rb, &good, &Facts::default()).is_some());
    let pods = vec![ev(
        "note",
        "3 pods of payments/payment-api: 0 not ready, 0 restarts",
        json!({}),
    )];
    assert!(recovered(&rb, &pods, &Facts::default()).is_some());
}

#[test]
fn scale_out_doubles_the_current_pod_count() {
    let rb = parse(
        r#"
alert = "HighCPU"
title = "t"
[[rule]]
name = "saturated"
when = [{ metric_above = { name = "cpu", value = 0.9 } }]
hypothesis = "h"
confidence = "medium"
action = { plugin = "k8s-remediation", tool = "scale_deployment", arguments = { namespace = "{{namespace}}", name = "{{service}}" }, scale_replicas_by = 2 }
"#,
    )
    .expect("parses");
    let ev_hot = vec![
        ev("metric-series", "cpu: 0.4 -> 0.97", json!({"now": 0.97})),
        ev("note", "3 pods", json!({"pods": [{}, {}, {}]})),
    ];
    let d = decide(Some(&rb), "HighCPU", &labels(), &ev_hot, &Facts::default());
    assert_eq!(d.actions[0].arguments["replicas"], json!(6));
    let without_pods = vec![ev_hot[0].clone()];
    assert!(
        decide(
            Some(&rb),
            "HighCPU",
            &labels(),
            &without_pods,
            &Facts::default()
        )
        .actions
        .is_empty()
    );
}

fn book(text: &str) -> Runbook {
    parse(text).expect("parses")
}

#[test]
fn runbooks_are_found_by_name_alias_url_labels_title_and_fallback() {
    let mut all = BTreeMap::new();
    for rb in [
        book(
            "alert = \"KubePodCrashLooping\"\ntitle = \"t\"\naliases = [\"Pod crash looping\"]\n[[match]]\nlabels = { reason = \"CrashLoopBackOff\" }\n",
        ),
        book("alert = \"HighLatency\"\ntitle = \"t\"\n[[match]]\ntitle = \"(?i)latency|slow\"\n"),
        book("alert = \"WorkloadSymptom\"\ntitle = \"t\"\nfallback = true\n"),
    ] {
        all.insert(rb.alert.clone(), rb);
    }
    let none = BTreeMap::new();
    let found = |name: &str, labels: &BTreeMap<String, String>, url: Option<&str>| {
        find(&all, name, labels, url).map(|(rb, how)| (rb.alert.clone(), how))
    };
    assert_eq!(
        found("KubePodCrashLooping", &none, None).map(|f| f.1),
        Some("alert name".into())
    );
    assert_eq!(
        found("pod-crash-looping", &none, None).map(|f| f.0),
        Some("KubePodCrashLooping".into())
    );
    assert_eq!(
        found(
            "Whatever",
            &none,
            Some(
                "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/"
            )
        )
        .map(|f| f.1),
        Some("runbook_url".into())
    );
    let labels: BTreeMap<String, String> =
        [("reason".to_string(), "CrashLoopBackOff".to_string())].into();
    assert_eq!(
        found("ContainerRestarts", &labels, None).map(|f| f.0),
        Some("KubePodCrashLooping".into())
    );
    assert_eq!(
        found("checkout: p99 latency 2.4s", &none, None).map(|f| f.0),
        Some("HighLatency".into())
    );
    assert_eq!(
        found("Disk on fire", &none, None).map(|f| f.1),
        Some("fallback".into())
    );
}

#[test]
fn fact_conditions_judge_onset_order_and_dependencies() {
    use crate::facts::{ChangeKind, Seen};
    let rb = book(
        r#"
alert = "A"
title = "t"
[[rule]]
name = "dependency"
when = [{ dependency_failing = true }]
hypothesis = "dependency {{dependency}}"
confidence = "medium"
[[rule]]
name = "rollout"
when = [{ change_within_minutes = 30 }, { workload_kind = ["Deployment"] }]
hypothesis = "rollout of {{workload}}"
confidence = "high"
action = { plugin = "k8s-remediation", tool = "rollback_deployment", arguments = { namespace = "{{workload_namespace}}", name = "{{workload}}" } }
"#,
    );
    let workload = Fact::Workload {
        object_kind: "Deployment".into(),
        namespace: "shop".into(),
        name: "cart".into(),
        resolved_from: "label `deployment`".into(),
    };
    let change = |m: i64| Fact::Change {
        change: ChangeKind::Rollout,
        object: "Deployment shop/cart revision 2".into(),
        at_ms: 0,
        minutes_before_onset: m,
        description: "image cart:2".into(),
    };
    let host: BTreeMap<String, String> = [
        ("runwarden_workload".to_string(), "cart".to_string()),
        ("runwarden_namespace".to_string(), "shop".to_string()),
    ]
    .into();
    let facts = |items: Vec<Fact>| Facts { onset_ms: 0, items };
    let d = decide(
        Some(&rb),
        "A",
        &host,
        &[],
        &facts(vec![workload.clone(), change(12)]),
    );
    assert_eq!(
        d.actions[0].arguments,
        json!({"namespace": "shop", "name": "cart"})
    );
    // A change after the symptoms began is not a cause.
    let d = decide(
        Some(&rb),
        "A",
        &host,
        &[],
        &facts(vec![workload.clone(), change(-5)]),
    );
    assert!(d.actions.is_empty(), "{d:?}");
    // A failing dependency, whatever showed it, wins over the change.
    for seen in [Seen::Log, Seen::Metric, Seen::Event] {
        let dep = Fact::DependencyFailure {
            dependency: "api.stripe.com".into(),
            error_class: "5xx".into(),
            seen,
            detail: "503".into(),
        };
        let d = decide(
            Some(&rb),
            "A",
            &host,
            &[],
            &facts(vec![workload.clone(), change(12), dep]),
        );
        assert!(
            d.actions.is_empty() && d.hypothesis.contains("api.stripe.com"),
            "{d:?}"
        );
    }
    // A workload the host did not find in the cluster is never acted on.
    let d = decide(Some(&rb), "A", &host, &[], &facts(vec![change(12)]));
    assert!(d.actions.is_empty(), "{d:?}");
}

#[test]
fn no_runbook_means_no_action() {
    let d = decide(None, "Watchdog", &labels(), &[], &Facts::default());
    assert!(d.actions.is_empty());
    assert_eq!(d.confidence, Confidence::Low);
}

/// The shipped runbooks on facts alone: what a node or a scrape failure
/// looks like decides which of their rules speaks.
#[test]
fn shipped_runbooks_tell_unreachable_nodes_and_blocked_scrapes_apart() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let books = load_dir(&dir).expect("shipped runbooks load");
    let facts = |items: Vec<Fact>| Facts { onset_ms: 0, items };
    let host: BTreeMap<String, String> = [
        ("runwarden_workload".to_string(), "api".to_string()),
        ("runwarden_namespace".to_string(), "shop".to_string()),
    ]
    .into();
    let node = |unreachable: bool| Fact::NodeCondition {
        node: "n1".into(),
        ready: false,
        unreachable,
        reason: None,
    };
    let rb = books.get("KubeNodeNotReady");
    let d = decide(
        rb,
        "KubeNodeUnreachable",
        &host,
        &[],
        &facts(vec![node(true)]),
    );
    assert!(d.decided_by.ends_with("`node-unreachable`"), "{d:?}");
    let d = decide(
        rb,
        "KubeNodeNotReady",
        &host,
        &[],
        &facts(vec![node(false)]),
    );
    assert!(d.decided_by.ends_with("`node`"), "{d:?}");

    let capacity = |ready: u32| Fact::Capacity {
        replicas: 3,
        ready,
        hpa_min: None,
        hpa_max: None,
        at_max: false,
    };
    let policies = Fact::NetworkPolicies {
        namespace: "shop".into(),
        names: vec!["default-deny-ingress".into()],
    };
    let rb = books.get("TargetDown");
    let d = decide(
        rb,
        "TargetDown",
        &host,
        &[],
        &facts(vec![capacity(3), policies.clone()]),
    );
    assert!(
        d.decided_by.ends_with("`network-policy`") && d.hypothesis.contains("default-deny-ingress"),
        "{d:?}"
    );
    // Pods not ready: a policy is not the first suspect.
    let d = decide(
        rb,
        "TargetDown",
        &host,
        &[],
        &facts(vec![capacity(1), policies]),
    );
    assert!(!d.decided_by.ends_with("`network-policy`"), "{d:?}");
    assert!(d.actions.is_empty());
}

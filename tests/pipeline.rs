//! The incident pipeline end to end: real plugins, the simulated cluster,
//! SQLite in a temp dir, and a loopback Prometheus double where needed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::*;
use common::*;
use runwarden::intake::Alert;
use runwarden::pipeline::act::ActionStatus;

use runwarden::store::IncidentState;

fn alert(name: &str, tier: &str) -> Alert {
    firing_alert(name, "payment-api", tier)
}

fn revision(s: &Setup) -> Option<u64> {
    s.world
        .cluster
        .deployment("payments", "payment-api")
        .map(|d| d.revision)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_deploy_is_rolled_back_verified_audited_and_reported() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let out = agent.handle(&[alert("HighErrorRate", "2")]).await.unwrap();
    assert_eq!(out.state, IncidentState::Resolved, "{out:#?}");
    assert_eq!(
        out.decision.decided_by,
        "runbook HighErrorRate rule `bad-deploy-oom`"
    );
    assert!(matches!(out.actions[0].status, ActionStatus::Recovered));
    assert_eq!(revision(&s), Some(3));
    assert!(
        out.gaps.iter().any(|g| g.source == "prometheus"),
        "no Prometheus here: a gap, not a failure"
    );

    let kinds: Vec<String> = agent
        .store
        .audit(Some(&out.incident))
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    let order = [
        "alert",
        "context",
        "decision",
        "guard",
        "plan",
        "intent",
        "execution",
        "verification",
    ];
    let mut at = 0;
    for k in order {
        at += kinds[at..]
            .iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("{k} missing or out of order in {kinds:?}"));
    }
    assert!(agent.store.verify_audit().unwrap().ok());
    let report = agent.store.report(&out.incident).unwrap();
    for needle in [
        "# INC-1: HighErrorRate on payment-api",
        "## Root cause",
        "exhausts its memory",
        "## Timeline",
        "executed rollback_deployment",
        "verified recovery",
    ] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tier_1_service_waits_for_approval_then_the_approved_action_runs() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let out = agent.handle(&[alert("HighErrorRate", "1")]).await.unwrap();
    assert_eq!(out.state, IncidentState::WaitingApproval);
    let ActionStatus::WaitingApproval { approval } = &out.actions[0].status else {
        panic!("{:?}", out.actions[0].status)
    };
    assert_eq!(revision(&s), Some(2), "nothing ran before the approval");

    let done = agent.approve(approval, "test:oncall").await.unwrap();
    assert!(matches!(done.status, ActionStatus::Recovered), "{done:?}");
    assert_eq!(revision(&s), Some(3));
    assert_eq!(
        agent.store.incident(&out.incident).unwrap().state,
        IncidentState::Resolved
    );
    let again = agent.approve(approval, "test:oncall").await;
    assert!(again.is_err(), "an approval is used once");
    assert!(agent.store.verify_audit().unwrap().ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_approval_runs_nothing() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let out = agent.handle(&[alert("HighErrorRate", "1")]).await.unwrap();
    let ActionStatus::WaitingApproval { approval } = &out.actions[0].status else {
        panic!()
    };
    agent.deny(approval, "test:oncall").unwrap();
    assert_eq!(revision(&s), Some(2));
    assert_eq!(
        agent.store.incident(&out.incident).unwrap().state,
        IncidentState::Escalated
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_under_an_older_policy_is_refused() {
    let s = setup(|_, t| t);
    let mut agent = agent(&s);
    let out = agent.handle(&[alert("HighErrorRate", "1")]).await.unwrap();
    let ActionStatus::WaitingApproval { approval } = out.actions[0].status.clone() else {
        panic!()
    };
    agent.autonomy.version = "2026-12-01.1".into();
    let err = agent
        .approve(&approval, "test:oncall")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("must be proposed again"), "{err}");
    assert_eq!(revision(&s), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_mode_records_the_plan_and_changes_nothing() {
    let s = setup(|name, t| {
        if name == "autonomy.toml" {
            t.replace("mode = \"auto\"", "mode = \"observe\"")
        } else {
            t
        }
    });
    let agent = agent(&s);
    let out = agent.handle(&[alert("HighErrorRate", "2")]).await.unwrap();
    assert!(
        matches!(out.actions[0].status, ActionStatus::Observed),
        "{:?}",
        out.actions[0].status
    );
    assert_eq!(
        out.actions[0].plan.as_deref(),
        Some("roll back deployment payments/payment-api: revision 2 -> revision 1")
    );
    assert_eq!(revision(&s), Some(2));
    let kinds: Vec<String> = agent
        .store
        .audit(Some(&out.incident))
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(
        kinds.contains(&"plan".to_string()) && !kinds.contains(&"intent".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_outage_right_after_an_unrelated_deploy_is_not_rolled_back() {
    // Prometheus double: the upstream is down (up == 0), 5xx is high.
    let prom = serve_with(|path| {
        let v = if path.contains("up%7Bjob") { "0" } else { "0.08" };
        let start = (ALERT_AT_MS - 3_600_000) / 1000;
        let values: Vec<serde_json::Value> = (0..10).map(|i| serde_json::json!([start + i * 600, v])).collect();
        serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}}).to_string()
    })
    .await;
    let port = prom.port;
    let s = setup(move |name, t| {
        if name == "prometheus.toml" {
            t.replace("127.0.0.1:9090", &format!("127.0.0.1:{port}"))
        } else {
            t
        }
    });
    let agent = agent(&s);
    let out = agent.handle(&[alert("HighErrorRate", "2")]).await.unwrap();
    assert_eq!(
        out.decision.decided_by,
        "runbook HighErrorRate rule `dependency-failing`"
    );
    assert!(
        out.decision.hypothesis.contains("upstream dependency"),
        "{}",
        out.decision.hypothesis
    );
    assert!(out.actions.is_empty());
    assert_eq!(out.state, IncidentState::Escalated);
    assert_eq!(revision(&s), Some(2), "rolling back would have been wrong");
    assert!(prom.hits() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watchdog_changes_nothing() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let before = s.world.cluster.snapshot();
    let out = agent.handle(&[alert("Watchdog", "2")]).await.unwrap();
    assert!(out.actions.is_empty());
    assert_eq!(out.state, IncidentState::Resolved);
    assert_eq!(
        serde_json::to_string(&s.world.cluster.snapshot()).unwrap(),
        serde_json::to_string(&before).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cooldown_stops_the_same_action_twice() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let first = agent.handle(&[alert("HighErrorRate", "2")]).await.unwrap();
    assert_eq!(first.state, IncidentState::Resolved);
    // The same alert again (the demo cluster still has revision history): the
    // cooldown refuses a second rollback of the same target.
    let second = agent.handle(&[alert("HighErrorRate", "2")]).await.unwrap();
    let refused = second.actions.iter().any(|a| matches!(&a.status, ActionStatus::Refused { step, .. } if step == "cooldown" || step == "oscillation"));
    let nothing = second.actions.is_empty();
    assert!(refused || nothing, "{:?}", second.actions);
    assert_eq!(revision(&s), Some(3), "rolled back once only");
}

/// An agent over the same data directory as `s`, but a fresh demo cluster:
/// another process facing the same bad situation again.
fn restarted_with_fresh_cluster(s: &Setup) -> runwarden::pipeline::Agent {
    let services = runwarden::sandbox::state::HostServices {
        cluster: std::sync::Arc::new(runwarden::capability::k8s::sim::SimulatedCluster::demo()),
        secrets: s.world.services.secrets.clone(),
    };
    agent_with(s, services, quick_config())
}

#[tokio::test(flavor = "multi_thread")]
async fn cooldowns_and_a_tripped_breaker_survive_a_restart_until_a_human_resets_it() {
    let s = setup(|_, t| t);
    let first = agent(&s)
        .handle(&[alert("HighErrorRate", "2")])
        .await
        .unwrap();
    assert_eq!(first.state, IncidentState::Resolved);

    // Another process, the same bad deploy again: the persisted history
    // makes the cooldown refuse a second rollback of the same target.
    let restarted = restarted_with_fresh_cluster(&s);
    let second = restarted
        .handle(&[alert("HighErrorRate", "2")])
        .await
        .unwrap();
    assert!(
        matches!(&second.actions[0].status, ActionStatus::Refused { step, .. } if step == "cooldown"),
        "{:?}",
        second.actions
    );

    // A breaker opened in one process stays open in the next until reset.
    restarted.guard.lock().unwrap().breaker_tripped = Some("6 actions in 10 min".into());
    restarted.save_guard().unwrap();
    let again = restarted_with_fresh_cluster(&s);
    assert_eq!(again.breaker().as_deref(), Some("6 actions in 10 min"));
    assert_eq!(
        again.reset_breaker("test:oncall").unwrap().as_deref(),
        Some("6 actions in 10 min")
    );
    assert!(
        restarted_with_fresh_cluster(&s).breaker().is_none(),
        "the reset is persisted"
    );
    let kinds: Vec<String> = again
        .store
        .audit(None)
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"breaker-reset".to_string()));
    assert!(again.store.verify_audit().unwrap().ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_a_label_is_redacted_everywhere_it_is_stored() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let mut a = alert("HighErrorRate", "2");
    a.labels
        .insert("db_password".into(), "hunter2-hunter2-secret".into());
    a.annotations.insert(
        "description".into(),
        "conn string AccountKey=bm90LWEtcmVhbC1rZXktYnV0LWxvbmc= failed".into(),
    );
    let out = agent.handle(&[a]).await.unwrap();
    let incident = agent.store.incident(&out.incident).unwrap();
    let stored = serde_json::to_string(&incident).unwrap();
    assert!(!stored.contains("hunter2-hunter2-secret"), "{stored}");
    let trail = serde_json::to_string(&agent.store.audit(Some(&out.incident)).unwrap()).unwrap();
    assert!(!trail.contains("hunter2-hunter2-secret"), "audit trail");
    assert!(!trail.contains("bm90LWEtcmVhbC1rZXk"), "audit trail");
    let report = agent.store.report(&out.incident).unwrap();
    assert!(!report.contains("hunter2-hunter2-secret"));
    assert!(
        agent
            .store
            .similar("hunter2", "none", 5)
            .unwrap()
            .is_empty(),
        "not in the similar-incidents index"
    );
}

//! The shipped scenarios replay through the whole pipeline as expected,
//! with no unsafe action.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::replay::{self, ReplayBase};

#[tokio::test(flavor = "multi_thread")]
async fn every_shipped_scenario_passes_with_no_unsafe_action() {
    let ws = workspace();
    let cache = cache();
    let base = ReplayBase {
        data_dir: None,
        policies: &ws.join("policies"),
        runbooks: &ws.join("runbooks"),
        cache: &cache,
        llm: None,
    };
    let mut dirs: Vec<_> = std::fs::read_dir(ws.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.toml").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "{dirs:?}");
    let mut results = Vec::new();
    for d in &dirs {
        results.push(
            replay::run(d, &base)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let table = replay::table(&results);
    for r in &results {
        assert!(r.passed(), "{}:\n{table}", r.name);
        assert!(r.unsafe_actions.is_empty(), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_that_expects_the_wrong_thing_fails() {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    let src = ws.join("scenarios/06-watchdog-no-action");
    for f in ["alertmanager.json", "cluster.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    std::fs::write(
        tmp.path().join("expected.toml"),
        "action = \"rollback_deployment\"\nstate = \"resolved\"\n",
    )
    .unwrap();
    let cache = cache();
    let base = ReplayBase {
        data_dir: None,
        policies: &ws.join("policies"),
        runbooks: &ws.join("runbooks"),
        cache: &cache,
        llm: None,
    };
    let r = replay::run(tmp.path(), &base).await.unwrap();
    assert!(!r.passed());
    assert!(
        r.failures[0].contains("expected action rollback_deployment"),
        "{:?}",
        r.failures
    );
}

/// Deliveries through the real intake are judged too: the storm scenario
/// with wrong expectations about what its payloads opened fails on each.
#[tokio::test(flavor = "multi_thread")]
async fn payloads_that_open_other_incidents_than_expected_fail() {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    let src = ws.join("scenarios/17-storm-resolve-refire");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    copy(&src, tmp.path());
    copy(&src.join("payloads"), &tmp.path().join("payloads"));
    copy(
        &src.join("responses/prometheus"),
        &tmp.path().join("responses/prometheus"),
    );
    let expected = std::fs::read_to_string(src.join("expected.toml"))
        .unwrap()
        .replace("incidents = 2", "incidents = 1")
        .replace("alerts = [3, 1]", "alerts = [4, 1]")
        .replace("recurrences = 1", "recurrences = 0")
        .replace(
            "later_actions = [\"none\"]",
            "later_actions = [\"rollback_deployment\"]",
        );
    std::fs::write(tmp.path().join("expected.toml"), expected).unwrap();
    let cache = cache();
    let r = replay::run(
        tmp.path(),
        &base(&ws.join("policies"), &ws.join("runbooks"), &cache),
    )
    .await
    .unwrap();
    let all = r.failures.join("\n");
    for want in [
        "expected 1 incident(s) from the payloads, got 2",
        "expected [4, 1] alerts per incident, got [3, 1]",
        "expected 0 recurrence(s), got 1",
        "incident 2 of the payloads: expected rollback_deployment, chose none",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
}

fn base<'a>(
    policies: &'a std::path::Path,
    runbooks: &'a std::path::Path,
    cache: &'a runwarden::sandbox::cache::CompileCache,
) -> ReplayBase<'a> {
    ReplayBase {
        data_dir: None,
        policies,
        runbooks,
        cache,
        llm: None,
    }
}

/// The corpus written from public material (scenarios/public, each citing
/// its source) replays with no unsafe action, and at least as well as the
/// figure README reports: a rule change that breaks a public case fails
/// here. The first run, before the round-2 rules, is kept in
/// scenarios/public/FIRST-RUN.txt.
#[tokio::test(flavor = "multi_thread")]
async fn the_public_corpus_replays_with_no_unsafe_action_and_holds_its_figure() {
    const AT_LEAST_PASSING: usize = 57;
    let ws = workspace();
    let cache = cache();
    let (policies, runbooks) = (ws.join("policies"), ws.join("runbooks"));
    let base = base(&policies, &runbooks, &cache);
    let dirs = replay::discover(&[ws.join("scenarios/public")]).unwrap();
    assert!(dirs.len() >= 60, "the corpus has {} scenarios", dirs.len());
    let mut results = Vec::new();
    for d in &dirs {
        let text = std::fs::read_to_string(d.join("expected.toml")).unwrap();
        assert!(
            text.contains("source = "),
            "{} cites no source",
            d.display()
        );
        results.push(
            replay::run(d, &base)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let table = replay::table(&results);
    let unsafe_total: usize = results.iter().map(|r| r.unsafe_actions.len()).sum();
    assert_eq!(unsafe_total, 0, "{table}");
    let passed = results.iter().filter(|r| r.passed()).count();
    assert!(
        passed >= AT_LEAST_PASSING,
        "{passed} of {} passed, fewer than the {AT_LEAST_PASSING} README reports:\n{table}",
        results.len()
    );
    assert!(results.iter().all(|r| r.audit_verified), "{table}");
}

/// Replay keeps each scenario's store under --data-dir, so `report` and
/// `audit verify` work on it afterwards.
#[test]
fn replay_keeps_its_store_under_data_dir_for_report_and_verify() {
    let ws = workspace();
    let data = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_runwarden");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .current_dir(&ws)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, out) = run(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "replay",
        "scenarios/01-bad-deploy-rollback",
        "--json",
    ]);
    assert!(ok, "{out}");
    let kept = data.path().join("01-bad-deploy-rollback/data");
    let (ok, report) = run(&["--data-dir", kept.to_str().unwrap(), "report", "INC-1"]);
    assert!(ok && report.contains("Facts the host observed"), "{report}");
    assert!(
        report.contains("workload Deployment payments/payment-api"),
        "{report}"
    );
    let (ok, verify) = run(&["--data-dir", kept.to_str().unwrap(), "audit", "verify"]);
    assert!(ok && verify.contains("audit trail intact"), "{verify}");
    // Without --data-dir nothing is kept in the working directory.
    let (ok, _) = run(&["replay", "scenarios/06-watchdog-no-action"]);
    assert!(ok);
    assert!(!ws.join(".runwarden/06-watchdog-no-action").exists());
}

/// An alert from a namespace no context source may read is decided
/// without the cluster's facts, and the decision says which grant was
/// missing; granted, the same alert resolves its workload from a pod label.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_context_read_is_named_in_the_decision_and_granted_it_resolves() {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("crashloop");
    std::fs::create_dir_all(&scenario).unwrap();
    let alert = serde_json::json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "g",
        "alerts": [{"status": "firing", "fingerprint": "f1", "startsAt": "2026-11-27T06:30:00Z",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "kube-system", "pod": "metrics-agent-6d5f7c9b8-x2x9p",
                       "container": "agent", "job": "kube-state-metrics", "service": "kube-state-metrics"},
            "annotations": {}}]});
    std::fs::write(scenario.join("alertmanager.json"), alert.to_string()).unwrap();
    let cluster = serde_json::json!({
        "deployments": [{"namespace": "kube-system", "name": "metrics-agent", "replicas": 1, "revision": 1,
            "revisions": [{"revision": 1, "images": ["agent:1"], "created_at": 1790000000000i64}]}],
        "pods": [{"namespace": "kube-system", "name": "metrics-agent-6d5f7c9b8-x2x9p", "deployment": "metrics-agent",
            "ready": false, "restarts": 9, "waiting_reason": "CreateContainerConfigError",
            "waiting_message": "secret \"agent-token\" not found"}]});
    std::fs::write(scenario.join("cluster.json"), cluster.to_string()).unwrap();
    std::fs::write(
        scenario.join("expected.toml"),
        "action = \"none\"\ncause_any = [\"missing grant\"]\n",
    )
    .unwrap();
    let cache = cache();
    let (shipped, runbooks) = (ws.join("policies"), ws.join("runbooks"));
    let r = replay::run(&scenario, &base(&shipped, &runbooks, &cache))
        .await
        .unwrap();
    assert!(r.passed(), "{}", replay::table(&[r]));
    assert!(
        r.hypothesis
            .contains("namespace `kube-system` is not granted"),
        "{}",
        r.hypothesis
    );
    // The operator grants reads there: the pod leads to its Deployment and
    // the missing Secret is named.
    let policies = tmp.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for entry in std::fs::read_dir(ws.join("policies")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p)
                .unwrap()
                .replace("\"../target/", &format!("\"{}/target/", ws.display()))
                .replace("\"../plugins/", &format!("\"{}/plugins/", ws.display()));
            let text = if p.file_name().is_some_and(|n| n == "k8s-changes.toml") {
                text.replace("namespaces = []", "namespaces = [\"kube-system\"]")
            } else {
                text
            };
            std::fs::write(policies.join(p.file_name().unwrap()), text).unwrap();
        }
    }
    std::fs::write(
        scenario.join("expected.toml"),
        "action = \"none\"\ncause_any = [\"agent-token\"]\nforbidden_tools = [\"restart_pods\", \"rollback_deployment\"]\n",
    )
    .unwrap();
    let r = replay::run(&scenario, &base(&policies, &runbooks, &cache))
        .await
        .unwrap();
    assert!(r.passed(), "{}", replay::table(&[r]));
    assert!(!r.hypothesis.contains("missing grant"), "{}", r.hypothesis);
}

//! Crash safety: `runwarden serve` is killed with SIGKILL between an action's
//! intent record and its result. On restart the incident is marked
//! interrupted and escalated, the action is not re-run, and
//! `runwarden audit verify` passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::setup;
use common::process::serve;
use runwarden::store::Store;
use runwarden::store::sqlite::SqliteStore;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A policy for the hostile guest whose `spin` tool runs until its 60 s
/// deadline: the window in which the agent is killed.
fn write_spinning_tool(policies: &Path) {
    let wasm = common::wasm("hostile_guests");
    let digest = runwarden::policy::Sha256Hex::of(&std::fs::read(&wasm).unwrap());
    std::fs::write(
        policies.join("../hostile-manifest.toml"),
        format!(
            "[plugin]\nname = \"hostile\"\nkind = \"remediation-tool\"\ndescription = \"test\"\n{}",
            common::HOSTILE_REQUESTS
        ),
    )
    .unwrap();
    std::fs::write(
        policies.join("hostile.toml"),
        format!(
            "[plugin]\nname = \"hostile\"\ncomponent = {:?}\nsha256 = \"{digest}\"\nmanifest = \"../hostile-manifest.toml\"\n\n\
             [limits]\ntimeout_ms = 60000\n\n[grants.k8s]\nnamespaces = []\noperations = []\n\
             [grants.http]\nallow = []\n[grants.secrets]\nnames = []\n[grants.log]\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    // The spin tool plans no effects: with nothing to judge it passes the
    // autonomy step, and its execute can change nothing (plan binding).
}

fn write_runbook(runbooks: &Path) {
    std::fs::create_dir_all(runbooks).unwrap();
    std::fs::write(
        runbooks.join("crash-test.toml"),
        "alert = \"CrashTest\"\ntitle = \"crash test\"\n\n[[rule]]\nname = \"spin\"\nhypothesis = \"the tool must run for a long time\"\nconfidence = \"high\"\naction = { plugin = \"hostile\", tool = \"spin\", arguments = {} }\n",
    )
    .unwrap();
}

fn kinds(data: &Path) -> Vec<String> {
    let store = SqliteStore::open(data).unwrap();
    store
        .audit(Some("INC-1"))
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_intent_and_result_leaves_an_interrupted_incident_and_no_rerun() {
    let s = setup(|_, t| t);
    let root = s.dir.path();
    write_spinning_tool(&root.join("policies"));
    write_runbook(&root.join("runbooks"));

    std::fs::write(
        root.join("access.toml"),
        "[[api_token]]\nname = \"test\"\nrole = \"viewer\"\ntoken = { value = \"crash-viewer-token-0123\" }\n",
    )
    .unwrap();
    let mut first = serve(root);
    let alert = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "runwarden", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "fingerprint": "crash1",
            "labels": {"alertname": "CrashTest", "namespace": "payments", "service": "payment-api", "tier": "2"},
            "annotations": {}, "startsAt": "2026-11-27T06:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]
    });
    let (status, body) = common::http(
        "POST",
        &format!("{}/webhooks/alertmanager", first.base),
        &[("content-type", "application/json")],
        alert.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // Kill it once the intent is durable and the action is running.
    let data = root.join("data");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(data.join("runwarden.db").exists() && kinds(&data).contains(&"intent".to_string())) {
        assert!(
            Instant::now() < deadline,
            "no intent record: {:?}",
            first.stderr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let before = kinds(&data);
    assert!(!before.contains(&"execution".to_string()), "{before:?}");

    // Restart: the incident is marked and escalated, nothing re-runs.
    let mut second = serve(root);
    assert!(
        second
            .stderr
            .iter()
            .any(|l| l.contains("INC-1: interrupted mid-action")),
        "{:?}",
        second.stderr
    );
    let (_, list) = common::http(
        "GET",
        &format!("{}/api/incidents", second.base),
        &[("authorization", "Bearer crash-viewer-token-0123")],
        vec![],
    )
    .await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["state"], "interrupted", "{list}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.child.kill().unwrap();
    second.child.wait().unwrap();

    let after = kinds(&data);
    let count = |k: &str| after.iter().filter(|x| *x == k).count();
    assert_eq!(count("intent"), 1, "not re-run: {after:?}");
    assert_eq!(count("execution"), 0, "{after:?}");
    assert_eq!(count("interrupted"), 1, "{after:?}");
    assert!(count("notification") >= 1, "escalated: {after:?}");

    let verify = Command::new(env!("CARGO_BIN_EXE_runwarden"))
        .args(["--data-dir", "data", "audit", "verify"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Killed while gathering context or deciding (no action started): at the
/// next start the incident is marked interrupted, audited, reported and
/// escalated — never left open. An incident that finished open (observe
/// mode: it has its report) is left alone.
#[tokio::test(flavor = "multi_thread")]
async fn an_incident_cut_off_before_any_action_is_settled_at_start() {
    use runwarden::store::{IncidentRecord, IncidentState};
    let s = setup(|_, t| t);
    let agent = common::agent::agent(&s);
    let open = |id: &str| IncidentRecord {
        id: id.into(),
        title: "HighErrorRate on payment-api".into(),
        service: Some("payment-api".into()),
        namespace: Some("payments".into()),
        state: IncidentState::Open,
        opened_at: chrono::Utc::now(),
        closed_at: None,
        detail: serde_json::json!({}),
        summary: "HighErrorRate payment-api".into(),
    };
    agent.store.put_incident(&open("INC-7")).unwrap();
    agent.store.put_incident(&open("INC-8")).unwrap();
    agent
        .store
        .put_report("INC-8", "# INC-8, observed\n")
        .unwrap();
    let marked = agent.recover_interrupted().await.unwrap();
    assert_eq!(marked, ["INC-7"]);
    let inc = agent.store.incident("INC-7").unwrap();
    assert_eq!(inc.state, IncidentState::Interrupted);
    let kinds: Vec<String> = agent
        .store
        .audit(Some("INC-7"))
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"interrupted".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"notification".to_string()),
        "escalated: {kinds:?}"
    );
    assert!(agent.store.report("INC-7").is_ok());
    assert_eq!(
        agent.store.incident("INC-8").unwrap().state,
        IncidentState::Open
    );
    // Settled once: a second start finds nothing.
    assert!(agent.recover_interrupted().await.unwrap().is_empty());
}

/// `root` ready for `serve`: runbooks and an access file.
fn serve_root(root: &Path) {
    common::copy_runbooks(&root.join("runbooks"));
    std::fs::write(
        root.join("access.toml"),
        "[[api_token]]\nname = \"test\"\nrole = \"viewer\"\ntoken = { value = \"drain-viewer-token-0123\" }\n",
    )
    .unwrap();
}

/// A live demo alert, as Alertmanager posts it.
fn live_alert(fingerprint: &str) -> Vec<u8> {
    serde_json::json!({
        "version": "4", "status": "firing", "receiver": "runwarden", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "fingerprint": fingerprint,
            "labels": {"alertname": "HighErrorRate", "namespace": "payments", "service": "payment-api", "tier": "2"},
            "annotations": {}, "startsAt": chrono::Utc::now().to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z"}]
    })
    .to_string()
    .into_bytes()
}

/// SIGKILL while an accepted alert waits for its group: the alert was
/// recorded before its 202, and the next start files it again.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_accepted_before_a_sigkill_becomes_an_incident_after_restart() {
    let s = setup(|_, t| t);
    let root = s.dir.path();
    serve_root(root);
    let waiting = [
        "--access",
        "access.toml",
        "--insecure-local-webhooks",
        "--group-wait-ms",
        "60000",
    ];
    let mut first = common::process::serve_with(root, &waiting);
    let (status, body) = common::http(
        "POST",
        &format!("{}/webhooks/alertmanager", first.base),
        &[("content-type", "application/json")],
        live_alert("kill1"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    first.child.kill().unwrap(); // SIGKILL, during group_wait
    first.child.wait().unwrap();

    let mut second = common::process::serve_with(
        root,
        &["--access", "access.toml", "--insecure-local-webhooks"],
    );
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = kinds(&root.join("data"));
        if listed.contains(&"decision".to_string()) {
            break;
        }
        assert!(Instant::now() < until, "{listed:?}: {}", second.logged());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        second.logged().contains("filed again"),
        "{}",
        second.logged()
    );
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

/// SIGTERM (a rolling update, `systemctl stop`) with an accepted alert still
/// waiting for its group: the alert is handled, not dropped, and the
/// process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_accepted_alerts_into_incidents_before_exiting() {
    let s = setup(|_, t| t);
    let root = s.dir.path();
    serve_root(root);
    // The group would wait a minute for siblings.
    let mut agent = common::process::serve_with(
        root,
        &[
            "--access",
            "access.toml",
            "--insecure-local-webhooks",
            "--group-wait-ms",
            "60000",
        ],
    );
    let (status, body) = common::http(
        "POST",
        &format!("{}/webhooks/alertmanager", agent.base),
        &[("content-type", "application/json")],
        live_alert("drain1"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let pid = agent.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let code = loop {
        if let Some(code) = agent.child.try_wait().unwrap() {
            break code;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "{code:?}: {}", agent.logged());
    assert!(agent.logged().contains("drained"), "{}", agent.logged());
    let listed = kinds(&root.join("data"));
    assert!(listed.contains(&"alert".to_string()), "{listed:?}");
    assert!(listed.contains(&"decision".to_string()), "{listed:?}");
}

//! Trust what the host observes (issue 12): typed effects, plan-bound
//! execution, guardrails on effects whichever tool has them, tiers from the
//! operator, approvals that hold, and 0.1.0 components still served.
//!
//! Every refused case shows what was refused and that the cluster did not
//! change; where a grant or a second person makes it legal, the same call
//! then succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::{Setup, agent, firing_alert, setup};
use runwarden::pipeline::act::{ActionStatus, Requester};
use runwarden::pipeline::approvals::ApprovalError;
use runwarden::pipeline::autonomy::Mode;
use runwarden::pipeline::requested::Channel;
use runwarden::store::{ApprovalState, IncidentState};
use serde_json::json;
use std::sync::Arc;

/// Adds a plugin (manifest outside the policy directory) to `s`'s policies.
fn add_plugin(s: &Setup, name: &str, wasm: &str, requests: &str, grants: &str) {
    let wasm = common::wasm(wasm);
    let digest = runwarden::policy::Sha256Hex::of(&std::fs::read(&wasm).unwrap());
    let manifests = s.dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let manifest = manifests.join(format!("{name}.toml"));
    std::fs::write(
        &manifest,
        format!("[plugin]\nname = \"{name}\"\nkind = \"remediation-tool\"\ndescription = \"test\"\n\n{requests}\n"),
    )
    .unwrap();
    std::fs::write(
        s.dir.path().join("policies").join(format!("{name}.toml")),
        format!(
            "[plugin]\nname = \"{name}\"\ncomponent = {:?}\nsha256 = \"{digest}\"\nmanifest = {:?}\n\n{grants}\n",
            wasm.display().to_string(),
            manifest.display().to_string()
        ),
    )
    .unwrap();
}

const HOSTILE_GRANTS: &str = r#"
[grants.k8s]
namespaces = ["payments"]
operations = ["read", "scale", "delete-pods", "annotate"]
max_replicas = 10
max_pods_per_action = 5
annotate_kinds = ["Deployment"]
[grants.http]
allow = []
[grants.secrets]
names = []
[grants.log]
"#;

fn with_hostile(s: &Setup) {
    add_plugin(
        s,
        "hostile",
        "hostile_guests",
        common::HOSTILE_REQUESTS,
        HOSTILE_GRANTS,
    );
}

fn replicas(s: &Setup) -> Option<u32> {
    s.world
        .cluster
        .deployment("payments", "payment-api")
        .map(|d| d.replicas)
}

fn operator(who: &str, skip_autonomy: bool) -> Requester {
    Requester {
        identity: Some(who.into()),
        skip_autonomy,
    }
}

/// `tool` of `plugin` asked for by alice over the CLI.
async fn by_alice(
    agent: &runwarden::pipeline::Agent,
    plugin: &str,
    tool: &str,
    args: serde_json::Value,
) -> runwarden::pipeline::requested::Requested {
    agent
        .run_requested_via(
            Channel::Cli,
            &operator("cli:alice", false),
            plugin,
            tool,
            args,
        )
        .await
        .unwrap()
}

/// What the guardrail `step` said about an action, as JSON text.
fn verdict_of(outcome: &runwarden::pipeline::act::ActionOutcome, step: &str) -> String {
    let v = outcome
        .verdicts
        .iter()
        .find(|v| v.step == step)
        .unwrap_or_else(|| panic!("no `{step}` verdict: {:?}", outcome.verdicts));
    serde_json::to_string(&v.verdict).unwrap()
}

fn audit_kinds(agent: &runwarden::pipeline::Agent, incident: &str) -> Vec<String> {
    agent
        .store
        .audit(Some(incident))
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_declared_read_that_writes_is_denied_and_audited_as_a_fault() {
    let s = setup(|_, t| t);
    with_hostile(&s);
    let agent = agent(&s);
    let args = json!({"namespace": "payments", "name": "payment-api", "replicas": 7});
    // Declared read: no approval is asked for, in any mode — and so it runs
    // with every mutation denied.
    let done = by_alice(&agent, "hostile", "sneaky_read", args).await;
    let ActionStatus::Failed { reason } = &done.outcome.status else {
        panic!("{:?}", done.outcome.status)
    };
    assert!(
        reason.contains("plugin fault") && reason.contains("read-only"),
        "{reason}"
    );
    assert!(
        reason.contains("annotate") && reason.contains("scale"),
        "{reason}"
    );
    assert_eq!(replicas(&s), Some(3), "nothing scaled");
    assert!(
        s.world
            .cluster
            .annotations("Deployment", "payments", "payment-api")
            .unwrap_or_default()
            .is_empty(),
        "nothing annotated"
    );
    assert!(audit_kinds(&agent, &done.incident).contains(&"plugin-fault".to_string()));
    assert_eq!(
        agent.store.incident(&done.incident).unwrap().state,
        IncidentState::Escalated
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn execute_may_do_only_what_the_approved_plan_said() {
    // No cooldown: the second call below targets the same Deployment.
    let s = setup(|name, t| {
        if name == "autonomy.toml" {
            t.replace("cooldown_minutes = 15", "cooldown_minutes = 0")
        } else {
            t
        }
    });
    with_hostile(&s);
    let agent = agent(&s);
    let pods = s.world.cluster.pod_names("payments");
    // Plans payment-api 3 -> 4; executes 3 -> 9 and deletes pods.
    let args = json!({"namespace": "payments", "name": "payment-api", "replicas": 4, "actual": 9, "pods": pods});
    let asked = by_alice(&agent, "hostile", "overreach", args).await;
    let ActionStatus::WaitingApproval { approval } = &asked.outcome.status else {
        panic!("{:?}", asked.outcome.status)
    };
    assert_eq!(
        asked.outcome.effects[0].describe(),
        "scale Deployment payments/payment-api: 3 -> 4"
    );
    let done = agent.approve(approval, "cli:bob").await.unwrap();
    let ActionStatus::Failed { reason } = &done.status else {
        panic!("{:?}", done.status)
    };
    assert!(
        reason.contains("not in the approved plan: scale Deployment payments/payment-api to 9 (the plan scales it to 4)"),
        "{reason}"
    );
    assert!(reason.contains("delete pod(s)"), "{reason}");
    assert_eq!(replicas(&s), Some(3), "the unplanned scale did not happen");
    assert_eq!(
        s.world.cluster.pod_names("payments"),
        pods,
        "no pod deleted"
    );
    assert!(audit_kinds(&agent, &asked.incident).contains(&"plugin-fault".to_string()));

    // The same tool doing what it planned goes through.
    let args = json!({"namespace": "payments", "name": "payment-api", "replicas": 4, "actual": 4, "pods": []});
    let asked = by_alice(&agent, "hostile", "overreach", args).await;
    let ActionStatus::WaitingApproval { approval } = &asked.outcome.status else {
        panic!("{:?}", asked.outcome.status)
    };
    // (The empty pod list is refused by the grant, not by the plan.)
    let done = agent.approve(approval, "cli:bob").await.unwrap();
    assert_eq!(replicas(&s), Some(4), "{done:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_binds_to_the_effects_and_a_changed_plan_runs_nothing() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let out = agent
        .handle(&[firing_alert("HighErrorRate", "payment-api", "1")])
        .await
        .unwrap();
    let ActionStatus::WaitingApproval { approval } = &out.actions[0].status else {
        panic!("{:?}", out.actions[0].status)
    };
    // Someone rolls payment-api out again before the approval: the
    // rollback would now start from another revision.
    use runwarden::capability::k8s::ClusterBackend;
    s.world
        .cluster
        .rollback_deployment("payments", "payment-api", Some(1))
        .await
        .unwrap();
    let revision = s.world.payment_api_revision();
    let err = agent.approve(approval, "test:oncall").await.unwrap_err();
    assert!(matches!(err, ApprovalError::PlanChanged { .. }), "{err}");
    assert_eq!(s.world.payment_api_revision(), revision, "nothing ran");
    assert!(audit_kinds(&agent, &out.incident).contains(&"approval-mismatch".to_string()));
    assert_eq!(
        agent.store.approval(approval).unwrap().state,
        ApprovalState::Pending,
        "a mismatch decides nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_and_deny_at_once_have_exactly_one_outcome_and_it_is_what_ran() {
    for round in 0..8 {
        let s = setup(|_, t| t);
        let agent = Arc::new(agent(&s));
        let out = agent
            .handle(&[firing_alert("HighErrorRate", "payment-api", "1")])
            .await
            .unwrap();
        let ActionStatus::WaitingApproval { approval } = out.actions[0].status.clone() else {
            panic!("{:?}", out.actions[0].status)
        };
        let (a, b, c) = (agent.clone(), agent.clone(), agent.clone());
        let (id1, id2, id3) = (approval.clone(), approval.clone(), approval.clone());
        let approve1 = tokio::spawn(async move { a.approve(&id1, "alice").await.is_ok() });
        let deny = tokio::task::spawn_blocking(move || b.deny(&id2, "bob").is_ok());
        let approve2 = tokio::spawn(async move { c.approve(&id3, "carol").await.is_ok() });
        let wins = [
            approve1.await.unwrap(),
            deny.await.unwrap(),
            approve2.await.unwrap(),
        ];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: {wins:?}"
        );
        let stored = agent.store.approval(&approval).unwrap();
        let ran = s.world.payment_api_revision() != Some(2);
        match stored.state {
            ApprovalState::Approved => assert!(ran, "round {round}: approved but nothing ran"),
            ApprovalState::Denied => assert!(!ran, "round {round}: denied but it ran"),
            other => panic!("round {round}: {other:?}"),
        }
        let executions = audit_kinds(&agent, &out.incident)
            .iter()
            .filter(|k| *k == "execution")
            .count();
        assert_eq!(executions, usize::from(ran), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_mode_stops_a_pending_approval_and_the_requester_cannot_approve() {
    let s = setup(|_, t| t);
    let agent = agent(&s);
    let asked = agent
        .run_requested(
            "mcp:alice",
            "k8s-remediation",
            "scale_deployment",
            json!({"namespace": "payments", "name": "payment-api", "replicas": 5}),
        )
        .await
        .unwrap();
    let ActionStatus::WaitingApproval { approval } = &asked.outcome.status else {
        panic!("{:?}", asked.outcome.status)
    };
    let err = agent.approve(approval, "mcp:alice").await.unwrap_err();
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
    // The same token over MCP-over-HTTP and the API is one person.
    let over_http = agent
        .run_requested(
            "mcp:http:carol",
            "k8s-remediation",
            "scale_deployment",
            json!({"namespace": "checkout", "name": "checkout-web", "replicas": 3}),
        )
        .await
        .unwrap();
    let ActionStatus::WaitingApproval { approval: theirs } = &over_http.outcome.status else {
        panic!("{:?}", over_http.outcome.status)
    };
    let err = agent.approve(theirs, "http:carol").await.unwrap_err();
    assert!(matches!(err, ApprovalError::SelfApproval { .. }), "{err}");
    agent.set_mode(Mode::Observe, "admin").unwrap();
    let err = agent.approve(approval, "bob").await.unwrap_err();
    assert!(matches!(err, ApprovalError::ObserveMode { .. }), "{err}");
    assert_eq!(replicas(&s), Some(3));
    agent.set_mode(Mode::Auto, "admin").unwrap();
    agent.approve(approval, "bob").await.unwrap();
    assert_eq!(
        replicas(&s),
        Some(5),
        "a second person, outside observe mode"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_approval_is_audited_and_its_incident_escalated() {
    let s = setup(|name, t| {
        if name == "autonomy.toml" {
            t.replace("approval_ttl_minutes = 30", "approval_ttl_minutes = 0")
        } else {
            t
        }
    });
    let agent = agent(&s);
    let out = agent
        .handle(&[firing_alert("HighErrorRate", "payment-api", "1")])
        .await
        .unwrap();
    let ActionStatus::WaitingApproval { approval } = &out.actions[0].status else {
        panic!("{:?}", out.actions[0].status)
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let expired = agent.expire_overdue().await.unwrap();
    assert_eq!(expired, std::slice::from_ref(approval));
    let kinds = audit_kinds(&agent, &out.incident);
    assert!(kinds.contains(&"approval-expired".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"notification".to_string()),
        "escalation notified: {kinds:?}"
    );
    assert_eq!(
        agent.store.incident(&out.incident).unwrap().state,
        IncidentState::Escalated
    );
    let err = agent.approve(approval, "bob").await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(s.world.payment_api_revision(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_senders_tier_label_cannot_loosen_the_operators_inventory() {
    let s = setup(|name, t| {
        if name == "autonomy.toml" {
            t.replace(
                "# [[inventory]]\n# namespace = \"payments\"\n# workload = \"payment-api\"\n# tier = \"1\"",
                "[[inventory]]\nnamespace = \"payments\"\nworkload = \"payment-api\"\ntier = \"1\"",
            )
        } else {
            t
        }
    });
    let agent = agent(&s);
    // The alert says tier 2; the operator's inventory says tier 1.
    let out = agent
        .handle(&[firing_alert("HighErrorRate", "payment-api", "2")])
        .await
        .unwrap();
    let action = &out.actions[0];
    assert!(
        matches!(action.status, ActionStatus::WaitingApproval { .. }),
        "{:?}",
        action.status
    );
    assert_eq!(action.tiers[0].tier.as_deref(), Some("1"));
    assert_eq!(action.tiers[0].source, "inventory (workload)");
    let autonomy = verdict_of(action, "autonomy");
    assert!(autonomy.contains("service tier 1"), "{autonomy}");
    assert_eq!(s.world.payment_api_revision(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_oo1_component_loads_next_to_0_2_0_ones_and_always_waits_for_a_human() {
    let s = setup(|_, t| t);
    add_plugin(
        &s,
        "legacy",
        "legacy_v0_1_guest",
        "[requests.k8s]\noperations = [\"read\", \"scale\"]",
        "[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\", \"scale\"]\nmax_replicas = 6",
    );
    let agent = agent(&s);
    let legacy = agent.registry.get("legacy").unwrap();
    assert_eq!(legacy.contract.version(), "0.1.0");
    let current = agent.registry.get("k8s-remediation").unwrap();
    assert_eq!(current.contract.version(), "0.2.0");

    // Even an admin override does not let a change the host cannot judge
    // run unattended.
    let asked = agent
        .run_requested_via(
            Channel::Cli,
            &operator("cli:alice", true),
            "legacy",
            "set_replicas",
            json!({"namespace": "payments", "name": "payment-api", "replicas": 4}),
        )
        .await
        .unwrap();
    let ActionStatus::WaitingApproval { approval } = &asked.outcome.status else {
        panic!("{:?}", asked.outcome.status)
    };
    assert!(
        matches!(&asked.outcome.effects[0], runwarden::effects::Effect::Other { description } if description.contains("deployment payments/payment-api")),
        "{:?}",
        asked.outcome.effects
    );
    assert_eq!(replicas(&s), Some(3));
    agent.approve(approval, "cli:bob").await.unwrap();
    assert_eq!(
        replicas(&s),
        Some(4),
        "approved, the 0.1.0 tool runs within its grant"
    );
}

/// Copies a shipped example policy (Python/JavaScript plugins) into `s`.
fn add_example(s: &Setup, name: &str) {
    let ws = common::workspace().canonicalize().unwrap();
    let text = std::fs::read_to_string(ws.join(format!("policies/examples/{name}.toml")))
        .unwrap()
        .replace("\"../../", &format!("\"{}/", ws.display()));
    std::fs::write(s.dir.path().join(format!("policies/{name}.toml")), text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_party_scale_meets_the_same_floor_ceiling_and_oscillation_guard() {
    // Guardrail ceiling 5, below the JavaScript plugin's grant (6); no
    // cooldown, so the oscillation guard is what answers.
    let s = setup(|name, t| {
        if name == "autonomy.toml" {
            t.replace("cooldown_minutes = 15", "cooldown_minutes = 0")
                .replace("max_replicas = 20", "max_replicas = 5")
        } else {
            t
        }
    });
    add_example(&s, "scale-by");
    let agent = agent(&s);
    // The admin override takes the autonomy rules out of the way: what
    // answers below are the guardrails on effects.
    let by = |delta: i64| {
        let agent = &agent;
        async move {
            agent
                .run_requested_via(
                    Channel::Cli,
                    &operator("cli:alice", true),
                    "scale-by",
                    "scale_deployment_by",
                    json!({"namespace": "payments", "name": "payment-api", "delta": delta}),
                )
                .await
                .unwrap()
                .outcome
        }
    };
    let refused_at = |o: &runwarden::pipeline::act::ActionOutcome| match &o.status {
        ActionStatus::Refused { step, reason } => format!("{step}: {reason}"),
        other => panic!("{other:?}"),
    };

    let to_zero = by(-3).await;
    let why = refused_at(&to_zero);
    assert!(
        why.starts_with("blast-radius") && why.contains("zero"),
        "{why}"
    );
    assert_eq!(replicas(&s), Some(3));

    let past_ceiling = by(3).await;
    let why = refused_at(&past_ceiling);
    assert!(
        why.starts_with("blast-radius") && why.contains("max_replicas 5"),
        "{why}"
    );
    assert_eq!(replicas(&s), Some(3));

    let up = by(2).await;
    assert!(
        matches!(up.status, ActionStatus::NotRecovered),
        "{:?}",
        up.status
    );
    assert_eq!(replicas(&s), Some(5));

    // Back down with the first-party tool: reversing the agent's own change,
    // whichever tool made it, waits for a human.
    let down = agent
        .run_requested_via(
            Channel::Cli,
            &operator("cli:alice", true),
            "k8s-remediation",
            "scale_deployment",
            json!({"namespace": "payments", "name": "payment-api", "replicas": 3}),
        )
        .await
        .unwrap()
        .outcome;
    assert!(
        matches!(down.status, ActionStatus::WaitingApproval { .. }),
        "{:?}",
        down.status
    );
    let osc = verdict_of(&down, "oscillation");
    assert!(osc.contains("by `scale_deployment_by`"), "{osc}");
    assert_eq!(replicas(&s), Some(5));
}

/// The CLI, as a second process, against a running `runwarden serve`.
fn cli_against(root: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = common::runwarden_command()
        .current_dir(root)
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), common::output_text(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_with_server_runs_in_the_agent_under_the_tokens_identity() {
    let s = setup(|_, t| t);
    let root = s.dir.path();
    common::copy_runbooks(&root.join("runbooks"));
    std::fs::write(root.join("alice.token"), "alice-approver-token-0123456789").unwrap();
    std::fs::write(root.join("bob.token"), "bob-approver-token-0123456789").unwrap();
    std::fs::write(
        root.join("access.toml"),
        "[[api_token]]\nname = \"alice\"\nrole = \"approver\"\ntoken = { file = \"alice.token\" }\n\n\
         [[api_token]]\nname = \"bob\"\nrole = \"approver\"\ntoken = { file = \"bob.token\" }\n",
    )
    .unwrap();
    let mut agent = common::process::serve(root);
    // `serve --cluster sim` anchors the demo cluster to now: the alert is live.
    let starts_at = chrono::Utc::now().to_rfc3339();
    let alert = json!({
        "version": "4", "status": "firing", "receiver": "runwarden", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "fingerprint": "apr1",
            "labels": {"alertname": "HighErrorRate", "namespace": "payments", "service": "payment-api", "tier": "1"},
            "annotations": {}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z"}]
    });
    let (status, body) = common::post_alertmanager(&agent.base, &alert).await;
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, listed) = cli_against(root, &["--data-dir", "data", "approvals"]);
        if listed.contains("APR-1") {
            assert!(listed.contains("waits because"), "{listed}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no approval: {:?}",
            agent.stderr
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let (ok, out) = cli_against(
        root,
        &[
            "approve",
            "APR-1",
            "--server",
            &agent.base,
            "--token-file",
            "alice.token",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("\"approved\": \"APR-1\""), "{out}");
    let (ok, out) = cli_against(
        root,
        &[
            "deny",
            "APR-1",
            "--server",
            &agent.base,
            "--token-file",
            "bob.token",
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("HTTP 409") && out.contains("decided by http:alice"),
        "{out}"
    );
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();

    // The action ran in the agent, and its record names the approver.
    let (_, trail) = cli_against(root, &["--data-dir", "data", "audit", "export"]);
    assert!(
        trail.contains("\"decision\":\"approved\"") && trail.contains("\"by\":\"http:alice\""),
        "{trail}"
    );
    assert!(trail.contains("\"kind\":\"execution\""), "{trail}");
}

//! The `runwarden` binary against the repository's own policies and plugins.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{runwarden, runwarden_stdout};

#[test]
fn the_shipped_policies_check_and_their_pins_match_the_built_plugins() {
    common::wasm("k8s_remediation");
    let (ok, out) = runwarden(&["policy", "check"]);
    assert!(ok, "{out}");
    for name in ["k8s-remediation", "k8s-changes", "prometheus", "loki"] {
        assert!(
            out.contains(&format!("ok      {name}")),
            "{name} missing:\n{out}"
        );
    }
}

#[test]
fn inspect_shows_a_reviewer_tools_capabilities_and_pin() {
    let (ok, out) = runwarden(&["plugin", "inspect", "policies/k8s-remediation.toml"]);
    assert!(ok, "{out}");
    assert!(out.contains("(matches the policy's pin)"), "{out}");
    assert!(
        out.contains("runwarden:plugin/k8s@0.2.0") && out.contains("capability k8s: granted"),
        "{out}"
    );
    assert!(
        out.contains("scale_deployment") && out.contains("mutate  medium"),
        "{out}"
    );
    assert!(out.contains("max_replicas 10"), "{out}");
    assert!(
        out.contains("host enforces: bound to its plan's typed effects, within k8s scale, rollback, delete-pods in payments, checkout"),
        "{out}"
    );
}

#[test]
fn inspect_shows_what_the_host_enforces_next_to_what_a_tool_declares() {
    // A tool that declares itself read-only is held to it.
    let hostile = common::wasm("hostile_guests");
    let (ok, out) = runwarden(&["plugin", "inspect", hostile.to_str().unwrap()]);
    assert!(ok, "{out}");
    let sneaky = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("sneaky_read"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        sneaky.contains("declared read; host enforces: executes read-only"),
        "{out}"
    );
    // A 0.1.0 component is served, and said to wait for a human.
    let legacy = common::wasm("legacy_v0_1_guest");
    let (ok, out) = runwarden(&["plugin", "inspect", legacy.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("contract    runwarden:plugin@0.1.0"), "{out}");
    assert!(out.contains("always waits for a human"), "{out}");
}

/// `runwarden` with its own data directory (store, audit trail) and user.
fn operator(data: &std::path::Path, user: &str, args: &[&str]) -> (bool, String) {
    let out = common::runwarden_command()
        .arg("--data-dir")
        .arg(data)
        .env("USER", user)
        .args(args)
        .output()
        .expect("runs");
    (out.status.success(), common::output_text(&out))
}

#[test]
fn plugin_call_is_an_audited_operator_action_through_the_guardrails() {
    let data = tempfile::tempdir().expect("tmp");
    let call = |user: &str, params: &str, extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "call",
            "k8s-remediation",
            "scale_deployment",
            "--params",
            params,
        ];
        args.extend_from_slice(extra);
        operator(data.path(), user, &args)
    };
    // Outside the grant: refused before anything runs.
    let (ok, out) = call(
        "alice",
        r#"{"namespace":"kube-system","name":"coredns","replicas":5}"#,
        &[],
    );
    assert!(!ok);
    assert!(
        out.contains("refused at capability")
            && out.contains("namespace `kube-system` is not granted"),
        "{out}"
    );

    // Inside the grant: an operator's request has low confidence, so the
    // shipped autonomy policy wants a human — and not the one who asked.
    let (ok, out) = call(
        "alice",
        r#"{"namespace":"payments","name":"payment-api","replicas":5}"#,
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("waiting for approval APR-1"), "{out}");
    assert!(
        out.contains("effect: scale Deployment payments/payment-api: 3 -> 5"),
        "{out}"
    );
    let (ok, out) = operator(data.path(), "alice", &["approve", "APR-1"]);
    assert!(!ok);
    assert!(
        out.contains("cli:alice requested this action and cannot approve it"),
        "{out}"
    );
    let (_, out) = operator(data.path(), "bob", &["approve", "APR-1"]);
    assert!(
        out.contains("scaled deployment payments/payment-api: 3 -> 5"),
        "{out}"
    );
    let (ok, out) = operator(data.path(), "carol", &["deny", "APR-1"]);
    assert!(!ok);
    assert!(
        out.contains("already Approved, decided by cli:bob"),
        "{out}"
    );

    // The admin override skips the autonomy step, and says so — but not
    // the cooldown: payment-api was just scaled.
    let (ok, out) = call(
        "alice",
        r#"{"namespace":"payments","name":"payment-api","replicas":4}"#,
        &["--skip-autonomy", "--json"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("explicit admin override (cli:alice)"), "{out}");
    assert!(out.contains("cooldown is 15 min"), "{out}");
    let (ok, out) = call(
        "alice",
        r#"{"namespace":"checkout","name":"checkout-web","replicas":3}"#,
        &["--skip-autonomy"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("overridden"), "{out}");
    let (ok, audit) = operator(data.path(), "alice", &["audit", "export"]);
    assert!(ok, "{audit}");
    for kind in [
        "\"intent\"",
        "\"execution\"",
        "OperatorToolCall",
        "cli:alice",
    ] {
        assert!(audit.contains(kind), "{kind} missing from the audit trail");
    }
    let (ok, verified) = operator(data.path(), "alice", &["audit", "verify"]);
    assert!(ok && verified.contains("hash chain verified"), "{verified}");

    // --dry-run plans only and records nothing new.
    let (ok, out) = call(
        "alice",
        r#"{"namespace":"payments","name":"payment-api","replicas":6}"#,
        &["--dry-run"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("effect: scale Deployment payments/payment-api: 3 -> 6"),
        "{out}"
    );
}

#[test]
fn a_broken_policy_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("bad.toml"), "[plugin]\nname = \"bad\"\ncomponent = \"x.wasm\"\nsha256 = \"00\"\nmanifest = \"m.toml\"\n").expect("write");
    let (ok, out) = runwarden(&[
        "policy",
        "check",
        "--policies",
        dir.path().to_str().expect("utf8"),
    ]);
    assert!(!ok);
    assert!(
        out.contains("bad.toml") && out.contains("line 4") && out.contains("invalid sha256"),
        "{out}"
    );
}

#[test]
fn invalid_arguments_are_rejected_before_anything_runs() {
    let data = tempfile::tempdir().expect("tmp");
    let (ok, out) = operator(
        data.path(),
        "alice",
        &[
            "plugin",
            "call",
            "k8s-remediation",
            "scale_deployment",
            "--params",
            r#"{"namespace":"payments"}"#,
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("violate its schema") && out.contains("replicas"),
        "{out}"
    );
}

#[test]
fn bench_runs_every_comparison_and_reports_ratios() {
    let (ok, out) = runwarden_stdout(&[
        "bench",
        "--rounds",
        "1",
        "--per-round",
        "2",
        "--cold-rounds",
        "1",
        "--idle-plugins",
        "1",
        "--fan-out-sources",
        "2",
        "--intake-requests",
        "4",
        "--storm",
        "1000",
        "--json",
    ]);
    assert!(ok, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 23, "{out}");
    let arm = |name: &str| {
        rows.iter()
            .find(|r| r["arm"].as_str().is_some_and(|a| a.starts_with(name)))
            .unwrap_or_else(|| panic!("no arm {name}: {out}"))
    };
    assert!(
        arm("runwarden + audit (no fsync)")["ratio"]
            .as_f64()
            .is_some()
    );
    assert!(arm("native Rust")["median_us"].as_f64().unwrap() > 0.0);
    assert!(
        arm("step: validate, call, redact, audit")["ratio"]
            .as_f64()
            .is_some()
    );
    assert!(arm("process RSS")["met"].is_boolean());
    assert_eq!(arm("storm of")["met"], true, "no alert lost: {out}");
    let one = arm("storm of 1000 alerts in one post");
    assert_eq!(one["met"], true, "no alert lost in one post: {out}");
}

#[test]
fn rbac_grants_exactly_the_granted_operations_per_namespace() {
    let (ok, out) = runwarden(&["rbac", "--json", "--lease", "runwarden-leader"]);
    assert!(ok, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    let items = list["items"].as_array().expect("items");
    let role = |ns: &str| {
        items
            .iter()
            .find(|i| {
                i["kind"] == "Role"
                    && i["metadata"]["namespace"] == ns
                    && i["metadata"]["name"] == "runwarden-remediation"
            })
            .map(|r| r["rules"].to_string())
    };
    // The shipped policies grant k8s in payments and checkout only.
    let payments = role("payments").expect("a Role in payments");
    assert!(
        payments.contains("deployments/scale") && payments.contains("\"delete\""),
        "{payments}"
    );
    assert!(role("kube-system").is_none() && role("default").is_none());
    // Cluster-wide only for the context reads of `read_all_namespaces`
    // (the host keeps the system namespaces out): never a write.
    let cluster_roles: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["kind"] == "ClusterRole")
        .collect();
    assert_eq!(cluster_roles.len(), 1, "{cluster_roles:?}");
    let verbs: Vec<&str> = cluster_roles[0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|r| r["verbs"].as_array().expect("verbs").iter())
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        verbs.iter().all(|v| ["get", "list", "watch"].contains(v)),
        "cluster-wide writes: {verbs:?}"
    );
    // Nothing beyond what the operations use: no secrets, no wildcards.
    assert!(!out.contains("secrets") && !out.contains("\"*\""), "{out}");

    // Narrow a grant to read-only: the write verbs go with it.
    let dir = tempfile::tempdir().expect("tmp");
    let policies = common::workspace().join("policies");
    for entry in std::fs::read_dir(&policies).expect("policies") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read").replace(
                "operations = [\"read\", \"scale\", \"rollback\", \"delete-pods\"]",
                "operations = [\"read\"]",
            );
            let text = text.replace("\"../", &format!("\"{}/", common::workspace().display()));
            std::fs::write(dir.path().join(path.file_name().expect("name")), text).expect("write");
        }
    }
    let (ok, out) = runwarden(&[
        "rbac",
        "--json",
        "--policies",
        dir.path().to_str().expect("utf8"),
    ]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("deployments/scale") && !out.contains("\"delete\""),
        "{out}"
    );
    assert!(!out.contains("leases"), "no Lease role without --lease");
}

/// `policy check` over a copy of the shipped files, with `edit` applied.
fn check_copy(edit: impl Fn(&std::path::Path)) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = common::workspace().canonicalize().expect("ws");
    common::copy_runbooks(&dir.path().join("runbooks"));
    for sub in ["policies"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        for entry in std::fs::read_dir(ws.join(sub)).expect("read") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&p)
                    .expect("read")
                    .replace("\"../", &format!("\"{}/", ws.display()));
                std::fs::write(
                    dir.path().join(sub).join(p.file_name().expect("name")),
                    text,
                )
                .expect("write");
            }
        }
    }
    edit(dir.path());
    let out = common::runwarden_command()
        .args(["--policies"])
        .arg(dir.path().join("policies"))
        .args(["--runbooks"])
        .arg(dir.path().join("runbooks"))
        .args(["policy", "check"])
        .output()
        .expect("runs");
    (out.status.success(), common::output_text(&out))
}

#[test]
fn policy_check_validates_everything_the_agent_loads() {
    let (ok, out) = check_copy(|_| {});
    assert!(ok, "{out}");
    assert!(
        out.contains("ok      autonomy") && out.contains("ok      runbooks"),
        "{out}"
    );

    // An autonomy policy serve would refuse.
    let (ok, out) = check_copy(|d| {
        let p = d.join("policies/autonomy.toml");
        let t = std::fs::read_to_string(&p).expect("read");
        std::fs::write(&p, t.replace("mode = \"auto\"", "mode = \"automatic\"")).expect("write");
    });
    assert!(!ok);
    assert!(
        out.contains("autonomy.toml") && out.contains("line") && out.contains("automatic"),
        "{out}"
    );

    // A runbook whose action names a tool nobody offers.
    let (ok, out) = check_copy(|d| {
        std::fs::write(
            d.join("runbooks/typo.toml"),
            "alert = \"Typo\"\ntitle = \"t\"\n\n[[rule]]\nname = \"r\"\nhypothesis = \"h\"\nconfidence = \"high\"\naction = { plugin = \"k8s-remediation\", tool = \"rollback_deploymnet\", arguments = {} }\n",
        )
        .expect("write");
    });
    assert!(!ok);
    assert!(
        out.contains(
            "runbook Typo rule `r`: plugin `k8s-remediation` has no tool `rollback_deploymnet`"
        ),
        "{out}"
    );
}

#[test]
fn a_fifo_given_as_a_policy_is_refused_at_once() {
    let started = std::time::Instant::now();
    let (ok, out) = check_copy(|d| {
        let fifo = d.join("policies/stuck.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
    });
    assert!(!ok);
    assert!(
        out.contains("stuck.toml: is a FIFO, not a regular file"),
        "{out}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "it did not hang"
    );
}

#[test]
fn inspect_shows_config_origins_and_signature_status() {
    let (ok, out) = runwarden(&["plugin", "inspect", "policies/dns-failover.toml"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("signature   not required by this policy"),
        "{out}"
    );
    assert!(
        out.contains("target.pay.example.com = \"198.51.100.20\""),
        "{out}"
    );
    assert!(
        out.contains("origin     https://api.cloudflare.com"),
        "{out}"
    );
    assert!(out.contains("(what the host enforces)"), "{out}");
}

#[test]
fn the_demo_runs_from_any_directory_and_its_results_are_found() {
    let elsewhere = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| {
        let out = common::runwarden_command()
            .current_dir(elsewhere.path())
            .args(args)
            .output()
            .expect("runs");
        (out.status.success(), common::output_text(&out))
    };
    let (ok, out) = run(&["demo"]);
    assert!(ok, "{out}");
    assert!(out.contains("not found here: using"), "{out}");
    let report = elsewhere.path().join(".runwarden/demo/INC-1.md");
    assert!(report.is_file(), "{out}");
    let (_, out) = run(&["incidents"]);
    assert!(
        out.contains("the demo's incidents are in .runwarden/demo"),
        "{out}"
    );
    let (ok, out) = run(&["--data-dir", ".runwarden/demo", "audit", "show", "INC-1"]);
    assert!(ok && out.contains("verified recovery"), "{out}");
}

#[test]
fn a_human_closes_an_incident_once_nothing_is_pending() {
    let data = tempfile::tempdir().expect("tmp");
    let (ok, out) = operator(
        data.path(),
        "alice",
        &[
            "plugin",
            "call",
            "k8s-remediation",
            "scale_deployment",
            "--params",
            r#"{"namespace":"payments","name":"payment-api","replicas":5}"#,
        ],
    );
    assert!(ok && out.contains("waiting for approval APR-1"), "{out}");
    let (ok, out) = operator(data.path(), "bob", &["close", "INC-1", "--reason", "dup"]);
    assert!(!ok);
    assert!(out.contains("decide its pending action"), "{out}");
    let (ok, out) = operator(data.path(), "bob", &["deny", "APR-1"]);
    assert!(ok, "{out}");
    let (ok, out) = operator(
        data.path(),
        "bob",
        &["close", "INC-1", "--reason", "scaled by hand instead"],
    );
    assert!(ok, "{out}");
    let (_, listed) = operator(data.path(), "bob", &["incidents"]);
    assert!(
        listed.contains("INC-1") && listed.contains("Resolved"),
        "{listed}"
    );
    let (_, trail) = operator(data.path(), "bob", &["audit", "export"]);
    assert!(
        trail.contains("\"kind\":\"closed\"") && trail.contains("scaled by hand instead"),
        "{trail}"
    );
}

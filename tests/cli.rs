//! The `runwarden` binary against the repository's own policies and plugins.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

fn runwarden(args: &[&str]) -> (bool, String) {
    let out = common::runwarden_command()
        .args(args)
        .output()
        .expect("runs");
    (out.status.success(), common::output_text(&out))
}

/// Like [`runwarden`], stdout alone (for JSON; logs go to stderr).
fn runwarden_stdout(args: &[&str]) -> (bool, String) {
    let out = common::runwarden_command()
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

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
    assert_eq!(rows.len(), 21, "{out}");
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
fn audit_verify_fails_on_a_missing_store_instead_of_creating_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("nowhere");
    let (ok, out) = runwarden(&[
        "--data-dir",
        missing.to_str().expect("utf8"),
        "audit",
        "verify",
    ]);
    assert!(!ok);
    assert!(out.contains("audit trail NOT VERIFIED"), "{out}");
    assert!(!missing.exists(), "verify created nothing");
}

/// One way to tamper with a copied data directory, and what `audit
/// verify` must then say.
type Tamper = (&'static str, fn(&std::path::Path), &'static str);

fn sql(dir: &std::path::Path, statement: &str) {
    let db = rusqlite::Connection::open(dir.join("runwarden.db")).expect("open");
    db.execute_batch(statement).expect(statement);
}

/// An attacker without the key edits a record and re-hashes the whole
/// chain after it, with a key of their own, and rewrites the anchor to
/// match.
fn rehash_after_an_edit(dir: &std::path::Path) {
    let db = rusqlite::Connection::open(dir.join("runwarden.db")).expect("open");
    db.execute(
        "UPDATE audit SET body = '{\"edited\":true}' WHERE seq = 2",
        [],
    )
    .expect("edit");
    let forged = runwarden::store::Chain::new(b"the attacker's own key".to_vec(), None);
    let rows: Vec<(i64, String, Option<String>, String, String)> = db
        .prepare("SELECT seq, at, incident, kind, body FROM audit ORDER BY seq")
        .expect("prepare")
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut prev = runwarden::store::audit::GENESIS.to_string();
    for (seq, at, incident, kind, body) in rows {
        let hash = forged.hash(seq as u64, &at, incident.as_deref(), &kind, &body, &prev);
        db.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev, hash, seq],
        )
        .expect("rehash");
        std::fs::write(dir.join("audit.head"), format!("{seq} {hash}\n")).expect("anchor");
        prev = hash;
    }
}

const TAMPERS: &[Tamper] = &[
    (
        "edit one record",
        |d| sql(d, r#"UPDATE audit SET body = '{"edited":1}' WHERE seq = 3"#),
        "record 3 was modified",
    ),
    (
        "delete a record in the middle",
        |d| sql(d, "DELETE FROM audit WHERE seq = 4"),
        "deleted or reordered",
    ),
    (
        "delete the last record",
        |d| {
            sql(
                d,
                "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
            )
        },
        "deleted from its end",
    ),
    (
        "delete the last half",
        |d| {
            sql(
                d,
                "DELETE FROM audit WHERE seq > (SELECT max(seq) / 2 FROM audit)",
            )
        },
        "deleted from its end",
    ),
    (
        "delete every record",
        |d| sql(d, "DELETE FROM audit"),
        "deleted from its end",
    ),
    (
        "drop the table",
        |d| sql(d, "DROP TABLE audit"),
        "deleted from its end",
    ),
    (
        "empty the database file",
        |d| {
            std::fs::write(d.join("runwarden.db"), b"").expect("truncate");
            let _ = std::fs::remove_file(d.join("runwarden.db-wal"));
        },
        "deleted from its end",
    ),
    (
        "re-hash the chain after an edit",
        rehash_after_an_edit,
        "modified or re-hashed",
    ),
    (
        "replace the key",
        |d| std::fs::write(d.join("audit.key"), "another key of 32 bytes or more!!").expect("key"),
        "modified or re-hashed",
    ),
    (
        "delete the anchor",
        |d| std::fs::remove_file(d.join("audit.head")).expect("rm"),
        "chain head",
    ),
    (
        "edit an incident's state",
        |d| {
            sql(
                d,
                r#"UPDATE incidents SET record = replace(record, '"state":"resolved"', '"state":"escalated"')"#,
            )
        },
        "incidents table was edited",
    ),
    (
        "edit a report",
        |d| sql(d, "UPDATE reports SET markdown = '# nothing happened'"),
        "reports table was edited",
    ),
    (
        "delete a report",
        |d| sql(d, "DELETE FROM reports"),
        "was deleted",
    ),
    (
        "delete an incident",
        |d| sql(d, "DELETE FROM incidents"),
        "was deleted",
    ),
    (
        "remove the database file",
        |d| std::fs::remove_file(d.join("runwarden.db")).expect("rm"),
        "NOT VERIFIED",
    ),
    (
        "remove the data directory",
        |d| std::fs::remove_dir_all(d).expect("rm"),
        "NOT VERIFIED",
    ),
];

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

#[test]
fn audit_verify_detects_every_kind_of_tampering() {
    let base = tempfile::tempdir().expect("tmp");
    let (ok, out) = runwarden(&["--data-dir", base.path().to_str().expect("utf8"), "demo"]);
    assert!(ok, "{out}");
    let data = base.path().join("demo");
    let verify = |dir: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["--data-dir", dir.to_str().expect("utf8"), "audit", "verify"];
        args.extend_from_slice(extra);
        runwarden(&args)
    };
    let (ok, out) = verify(&data, &[]);
    assert!(ok && out.contains("audit trail intact"), "{out}");
    let head = out
        .split("up to its head ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the head is printed")
        .to_string();
    let kinds: std::collections::BTreeSet<String> = {
        let (_, all) = runwarden_stdout(&[
            "--data-dir",
            data.to_str().expect("utf8"),
            "audit",
            "export",
        ]);
        all.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r["kind"].as_str().map(str::to_string))
            .collect()
    };
    for kind in ["incident-state", "report"] {
        assert!(kinds.contains(kind), "{kind} is chained: {kinds:?}");
    }

    for (n, (what, tamper, expected)) in TAMPERS.iter().enumerate() {
        let copy = base.path().join(format!("tampered-{n}"));
        copy_dir(&data, &copy);
        tamper(&copy);
        let (ok, out) = verify(&copy, &[]);
        assert!(!ok, "{what}: verify passed: {out}");
        assert!(out.contains(expected), "{what}: {out}");
    }

    // Beyond the anchor file: an attacker who empties the table and
    // deletes the anchor too is caught by a head taken from the log.
    let copy = base.path().join("tampered-both");
    copy_dir(&data, &copy);
    sql(&copy, "DELETE FROM audit");
    std::fs::remove_file(copy.join("audit.head")).expect("rm");
    let (ok, out) = verify(&copy, &["--head", &head]);
    assert!(!ok && out.contains("expected head"), "{out}");
    // ... and the untouched store passes against the same head.
    let (ok, out) = verify(&data, &["--head", &head]);
    assert!(ok, "{out}");
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

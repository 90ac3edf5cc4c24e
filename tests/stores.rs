//! One suite, every store: SQLite (in memory and on disk) and a real
//! PostgreSQL server this test starts (Debian's `postgresql`, installed by
//! `scripts/test.sh`). Each check runs against a fresh store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use runwarden::store::audit::AuditVerification;
use runwarden::store::postgres::PostgresStore;
use runwarden::store::sqlite::SqliteStore;
use runwarden::store::{Approval, ApprovalState, IncidentRecord, IncidentState, Store, StoreError};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A store the suite can also tamper with.
trait TestStore: Store {
    fn raw(&self, sql: &str);
    /// Rewrites an incident's state in its table, behind the store's back.
    fn set_state_raw(&self, table: &str, id: &str, from: &str, to: &str);
}

impl TestStore for SqliteStore {
    fn raw(&self, sql: &str) {
        self.execute_raw(sql).expect("raw sql");
    }
    fn set_state_raw(&self, table: &str, id: &str, from: &str, to: &str) {
        self.raw(&format!(
            r#"UPDATE {table} SET record = replace(record, '"state":"{from}"', '"state":"{to}"') WHERE id = '{id}'"#
        ));
    }
}

impl TestStore for PostgresStore {
    fn raw(&self, sql: &str) {
        self.execute_raw(sql).expect("raw sql");
    }
    fn set_state_raw(&self, table: &str, id: &str, _from: &str, to: &str) {
        self.raw(&format!(
            r#"UPDATE {table} SET record = jsonb_set(record, '{{state}}', '"{to}"') WHERE id = '{id}'"#
        ));
    }
}

fn chain(s: &dyn TestStore) {
    for i in 0..5 {
        s.append_audit(Some("INC-1"), "step", &json!({"i": i}))
            .expect("append");
    }
}

fn broken(s: &dyn TestStore) -> String {
    s.verify_audit().expect("verify").broken.unwrap_or_default()
}

fn approval(id: &str) -> Approval {
    Approval {
        id: id.into(),
        incident: "INC-1".into(),
        plugin: "k8s-remediation".into(),
        tool: "rollback_deployment".into(),
        arguments: json!({"namespace": "payments", "name": "payment-api"}),
        effects: vec![],
        digest: "d".into(),
        tiers: json!([]),
        provenance: json!([]),
        reasons: vec![],
        policy_version: "v1".into(),
        reason: "tier 1".into(),
        requested_at: chrono::Utc::now(),
        requested_by: None,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(30),
        state: ApprovalState::Pending,
        decided_by: None,
        decided_at: None,
    }
}

/// Approvers on separate connections (replicas, the CLI next to the
/// server) decide one approval at once, many times over: exactly one wins
/// each time, and the stored decision is the winner's.
fn concurrent_decisions_have_one_winner(open: impl Fn() -> Box<dyn Store> + Sync) {
    let setup = open();
    for round in 0..20 {
        let id = setup.next_approval_id().unwrap();
        setup.insert_approval(&approval(&id)).unwrap();
        let winners: Vec<(String, ApprovalState)> = std::thread::scope(|scope| {
            let handles: Vec<_> = [
                ("alice", ApprovalState::Approved),
                ("bob", ApprovalState::Denied),
                ("carol", ApprovalState::Approved),
            ]
            .into_iter()
            .map(|(who, to)| {
                let store = open();
                let id = id.clone();
                scope.spawn(move || {
                    store
                        .decide_approval(&id, to, who, chrono::Utc::now())
                        .ok()
                        .map(|a| (who.to_string(), a.state))
                })
            })
            .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        });
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = setup.approval(&id).unwrap();
        assert_eq!(
            (stored.decided_by.unwrap_or_default(), stored.state),
            winners[0].clone(),
            "round {round}"
        );
    }
}

fn incident(id: &str, summary: &str, state: IncidentState) -> IncidentRecord {
    IncidentRecord {
        id: id.into(),
        title: summary.into(),
        service: Some("payment-api".into()),
        namespace: Some("payments".into()),
        state,
        opened_at: chrono::Utc::now(),
        closed_at: None,
        detail: json!({"group": {"alertname": "HighErrorRate"}}),
        summary: summary.into(),
    }
}

type Check = (&'static str, fn(&dyn TestStore));

const SUITE: &[Check] = &[
    ("an untouched chain verifies", |s| {
        chain(s);
        let v: AuditVerification = s.verify_audit().unwrap();
        assert_eq!((v.records, v.broken), (5, None));
        assert_eq!(s.audit(Some("INC-1")).unwrap().len(), 5);
        assert!(s.audit(Some("INC-2")).unwrap().is_empty());
    }),
    ("records can be read by kind", |s| {
        chain(s);
        s.append_audit(Some("INC-2"), "intent", &json!({"tool": "scale"}))
            .unwrap();
        let only = s.audit_of_kinds(&["intent", "execution"]).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].incident.as_deref(), Some("INC-2"));
        assert_eq!(only[0].body, json!({"tool": "scale"}));
        assert_eq!(s.audit_of_kinds(&["step"]).unwrap().len(), 5);
    }),
    ("an edit is detected", |s| {
        chain(s);
        s.raw(r#"UPDATE audit SET body = '{"i":99}' WHERE seq = 3"#);
        assert!(broken(s).contains("record 3 was modified"), "{}", broken(s));
    }),
    ("a deletion is detected", |s| {
        chain(s);
        s.raw("DELETE FROM audit WHERE seq = 2");
        assert!(broken(s).contains("deleted or reordered"), "{}", broken(s));
    }),
    ("a reordering is detected", |s| {
        chain(s);
        s.raw("UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -2;");
        assert!(broken(s).contains("does not link"), "{}", broken(s));
    }),
    (
        "state changes and reports are in the chain, and edits to them are detected",
        |s| {
            s.put_incident(&incident("INC-1", "HighErrorRate", IncidentState::Open))
                .unwrap();
            s.put_incident(&incident(
                "INC-1",
                "HighErrorRate",
                IncidentState::Escalated,
            ))
            .unwrap();
            s.put_incident(&incident(
                "INC-1",
                "HighErrorRate, again",
                IncidentState::Escalated,
            ))
            .unwrap();
            s.put_report("INC-1", "# INC-1\nescalated\n").unwrap();
            s.insert_approval(&approval("APR-1")).unwrap();
            let kinds: Vec<String> = s.audit(None).unwrap().into_iter().map(|r| r.kind).collect();
            assert_eq!(
                kinds,
                [
                    "incident-state",
                    "incident-state",
                    "report",
                    "approval-state"
                ],
                "one record per state change (a summary edit alone is not one)"
            );
            assert!(s.verify_audit().unwrap().ok(), "{}", broken(s));

            s.set_state_raw("incidents", "INC-1", "escalated", "resolved");
            assert!(
                broken(s).contains("incidents table was edited"),
                "{}",
                broken(s)
            );
            s.set_state_raw("incidents", "INC-1", "resolved", "escalated");
            assert!(s.verify_audit().unwrap().ok(), "{}", broken(s));

            s.set_state_raw("approvals", "APR-1", "pending", "approved");
            assert!(
                broken(s).contains("approvals table was edited"),
                "{}",
                broken(s)
            );
            s.set_state_raw("approvals", "APR-1", "approved", "pending");

            s.raw("UPDATE reports SET markdown = '# INC-1\nresolved by the agent\n'");
            assert!(
                broken(s).contains("reports table was edited"),
                "{}",
                broken(s)
            );
            s.raw("DELETE FROM reports");
            assert!(
                broken(s).contains("report of INC-1 was deleted"),
                "{}",
                broken(s)
            );
            s.put_report("INC-1", "# INC-1\nescalated\n").unwrap();
            assert!(s.verify_audit().unwrap().ok(), "{}", broken(s));

            s.raw("DELETE FROM incidents");
            assert!(broken(s).contains("INC-1 was deleted"), "{}", broken(s));
        },
    ),
    ("a mode switch commits with its record", |s| {
        s.put_guard_state(
            &json!({"mode_override": "observe"}),
            Some(runwarden::store::chained::Entry::new(
                None,
                "mode-change",
                json!({"to": "observe"}),
            )),
        )
        .unwrap();
        let records = s.audit_of_kinds(&["mode-change"]).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            s.guard_state().unwrap(),
            Some(json!({"mode_override": "observe"}))
        );
    }),
    ("a torn last record is detected", |s| {
        chain(s);
        s.raw(r#"UPDATE audit SET body = '{"i":' WHERE seq = 5"#);
        assert!(!broken(s).is_empty());
    }),
    ("key order in a body does not break the chain", |s| {
        s.append_audit(None, "k", &json!({"z": 1, "a": {"y": 2, "b": 3}}))
            .unwrap();
        assert!(s.verify_audit().unwrap().ok());
        assert_eq!(
            s.audit(None).unwrap()[0].body,
            json!({"a": {"b": 3, "y": 2}, "z": 1})
        );
    }),
    ("incidents round-trip, update and count by state", |s| {
        s.put_incident(&incident(
            "INC-1",
            "HighErrorRate payment-api",
            IncidentState::Open,
        ))
        .unwrap();
        let mut later = incident(
            "INC-1",
            "HighErrorRate payment-api",
            IncidentState::Resolved,
        );
        later.closed_at = Some(chrono::Utc::now());
        s.put_incident(&later).unwrap();
        s.put_incident(&incident("INC-2", "Watchdog", IncidentState::Escalated))
            .unwrap();
        let got = s.incident("INC-1").unwrap();
        assert_eq!(got.state, IncidentState::Resolved);
        assert_eq!(got.detail, later.detail);
        assert_eq!(s.incidents().unwrap().len(), 2);
        let states = s.incident_states().unwrap();
        assert_eq!(states.get("resolved"), Some(&1));
        assert_eq!(states.get("escalated"), Some(&1));
        assert!(matches!(
            s.incident("INC-9"),
            Err(StoreError::NotFound {
                what: "incident",
                ..
            })
        ));
    }),
    ("similar incidents are found and odd text is safe", |s| {
        s.put_incident(&incident(
            "INC-1",
            "HighErrorRate payment-api: OOMKilled after deploy, rolled back",
            IncidentState::Resolved,
        ))
        .unwrap();
        s.put_incident(&incident(
            "INC-2",
            "CertificateExpiring ingress-gateway",
            IncidentState::Resolved,
        ))
        .unwrap();
        let found = s
            .similar("HighErrorRate on payment-api (5xx > 5%)", "INC-9", 5)
            .unwrap();
        assert_eq!(
            found.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["INC-1"]
        );
        assert!(
            s.similar("HighErrorRate", "INC-1", 5).unwrap().is_empty(),
            "excluded"
        );
        assert!(s.similar("\"*)(", "x", 5).unwrap().is_empty());
        assert!(s.similar("a' | ! & :* (b", "x", 5).unwrap().is_empty());
    }),
    ("incident ids count up", |s| {
        assert_eq!(s.next_incident_id().unwrap(), "INC-1");
        assert_eq!(s.next_incident_id().unwrap(), "INC-2");
    }),
    ("approvals: counter ids, no overwrite, decided once", |s| {
        let id = s.next_approval_id().unwrap();
        assert_eq!(id, "APR-1");
        assert_eq!(s.next_approval_id().unwrap(), "APR-2");
        let a = approval(&id);
        s.insert_approval(&a).unwrap();
        assert!(
            matches!(s.insert_approval(&a), Err(StoreError::Exists { .. })),
            "a second insert under the same id is refused, not an upsert"
        );
        let decided = s
            .decide_approval(&id, ApprovalState::Approved, "alice", chrono::Utc::now())
            .unwrap();
        assert_eq!(decided.decided_by.as_deref(), Some("alice"));
        let late = s.decide_approval(&id, ApprovalState::Denied, "bob", chrono::Utc::now());
        assert!(
            matches!(&late, Err(StoreError::AlreadyDecided { state: ApprovalState::Approved, by: Some(b), .. }) if b == "alice"),
            "{late:?}"
        );
        assert_eq!(s.approval(&id).unwrap(), decided);
        assert_eq!(s.approvals().unwrap().len(), 1);
        assert!(matches!(
            s.approval("APR-9"),
            Err(StoreError::NotFound { .. })
        ));
    }),
    ("guard state and reports are kept", |s| {
        assert_eq!(s.guard_state().unwrap(), None);
        s.put_guard_state(&json!({"breaker_tripped": "3 actions in 10 min"}), None)
            .unwrap();
        s.put_guard_state(&json!({"breaker_tripped": null}), None)
            .unwrap();
        assert_eq!(
            s.guard_state().unwrap(),
            Some(json!({"breaker_tripped": null}))
        );
        s.put_report("INC-1", "# INC-1\n").unwrap();
        s.put_report("INC-1", "# INC-1, final\n").unwrap();
        assert_eq!(s.report("INC-1").unwrap(), "# INC-1, final\n");
        assert!(matches!(
            s.report("INC-2"),
            Err(StoreError::NotFound { .. })
        ));
    }),
];

fn run_suite(backend: &str, mut fresh: impl FnMut() -> Box<dyn TestStore>) {
    for (name, check) in SUITE {
        eprintln!("{backend}: {name}");
        check(fresh().as_ref());
    }
}

#[test]
fn sqlite_in_memory_passes_the_store_suite() {
    run_suite("sqlite (memory)", || {
        Box::new(SqliteStore::in_memory().unwrap())
    });
}

#[test]
fn sqlite_on_disk_passes_the_store_suite() {
    let dirs = tempfile::tempdir().unwrap();
    let mut n = 0;
    run_suite("sqlite (disk)", || {
        n += 1;
        Box::new(SqliteStore::open(&dirs.path().join(n.to_string())).unwrap())
    });
}

/// Appenders on separate connections (replicas) never fork the chain.
fn concurrent_appends_stay_one_chain(open: impl Fn() -> Box<dyn Store> + Sync) {
    std::thread::scope(|scope| {
        for writer in 0..3 {
            let store = open();
            scope.spawn(move || {
                for i in 0..40 {
                    store
                        .append_audit(Some("INC-1"), "step", &json!({"writer": writer, "i": i}))
                        .unwrap();
                }
            });
        }
    });
    let v = open().verify_audit().unwrap();
    assert_eq!((v.records, v.broken), (120, None));
}

#[test]
fn sqlite_connections_appending_at_once_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_appends_stay_one_chain(|| Box::new(SqliteStore::open(dir.path()).unwrap()));
}

#[test]
fn sqlite_connections_deciding_one_approval_at_once_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_decisions_have_one_winner(|| Box::new(SqliteStore::open(dir.path()).unwrap()));
}

/// The chain every replica of a PostgreSQL store shares: one key (the
/// libraries' tests keep no anchor file).
fn shared_chain() -> runwarden::store::Chain {
    runwarden::store::Chain::new(b"replicas share this test key".to_vec(), None)
}

/// A PostgreSQL server in a temporary directory, stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    fn start() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok().map(|v| v.path().join("bin")))
                    .find(|b| b.join("initdb").exists())
            })
            .unwrap_or_else(|| {
                panic!("PostgreSQL is not installed: scripts/test.sh installs Debian's postgresql")
            });
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        let as_postgres_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        if as_postgres_user {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let mut pg = Postgres {
            dir,
            bin,
            port: 0,
            as_postgres_user,
        };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "runwarden",
                "--no-sync",
            ],
        );
        let log = pg.dir.path().join("log");
        // A free port can be taken by a parallel test before the server
        // binds it: start again on another.
        for attempt in 1..=3 {
            pg.port = common::free_port();
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
                pg.port,
                pg.dir.path().display()
            );
            let out = pg
                .command("pg_ctl")
                .args(["-D", data.to_str().unwrap(), "-o", &opts, "-l"])
                .arg(&log)
                .args(["-w", "start"])
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                attempt < 3,
                "pg_ctl start failed: {}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        pg
    }

    /// One of PostgreSQL's programs, as the user that may run it.
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self.command(tool).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://runwarden@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database.
    fn database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn postgres_passes_the_same_suite_and_serves_the_whole_agent() {
    let pg = Postgres::start();
    let mut n = 0;
    run_suite("postgres", || {
        n += 1;
        Box::new(
            PostgresStore::connect(&pg.database(&format!("suite_{n}")), shared_chain()).unwrap(),
        )
    });

    // Replicas on their own connections append at once: one chain.
    let url = pg.database("replicas");
    concurrent_appends_stay_one_chain(|| {
        Box::new(PostgresStore::connect(&url, shared_chain()).unwrap())
    });
    let url = pg.database("approvers");
    concurrent_decisions_have_one_winner(|| {
        Box::new(PostgresStore::connect(&url, shared_chain()).unwrap())
    });

    // The whole agent over PostgreSQL: the demo incident, then the CLI reads
    // it back from the same database through another process.
    // Every process shares one audit key (a mounted Secret, in a real
    // deployment), whatever its data directory.
    let url = pg.database("agent");
    let data = tempfile::tempdir().unwrap();
    let key = data.path().join("shared-audit.key");
    std::fs::write(&key, "a key every replica mounts, 32+ bytes").unwrap();
    let runwarden = |args: &[&str]| {
        let out = common::runwarden_command()
            .args(["--store", &url, "--data-dir"])
            .arg(data.path())
            .arg("--audit-key-file")
            .arg(&key)
            .args(args)
            .output()
            .unwrap();
        let text = common::output_text(&out);
        assert!(out.status.success(), "runwarden {args:?}: {text}");
        text
    };
    let demo = runwarden(&["demo"]);
    assert!(demo.contains("verified recovery"), "{demo}");
    let listed = runwarden(&["incidents"]);
    assert!(
        listed.contains("INC-1") && listed.contains("Resolved"),
        "{listed}"
    );
    let verified = runwarden(&["audit", "verify"]);
    assert!(verified.contains("hash chain verified"), "{verified}");
    assert!(!Path::new(&common::workspace().join("runwarden.db")).exists());
}

#[test]
fn a_store_argument_that_is_not_postgres_is_refused_without_echoing_credentials() {
    let err =
        runwarden::store::StoreLocation::parse(Some("mysql://root:hunter2@db/x"), Path::new("."))
            .unwrap_err()
            .to_string();
    assert!(err.contains("expected a postgres:// URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

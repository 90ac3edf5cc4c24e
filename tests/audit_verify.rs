//! `runwarden audit verify` against a real data directory: every kind of
//! tampering is detected, and a missing store is reported, never created.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{runwarden, runwarden_stdout};

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

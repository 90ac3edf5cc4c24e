//! The embedded store: one SQLite file in the data directory.
//!
//! WAL mode with `synchronous = FULL`: when `append_audit` returns, the record
//! is on disk, so the intent record of an action survives a crash of the
//! agent mid-action. One connection behind a mutex: the agent's write rate is
//! tiny next to SQLite's.

use super::audit::{AuditRecord, AuditVerification, GENESIS, StoredRow, verify_rows};
use super::chain::{Chain, Head};
use super::{Approval, IncidentRecord, Store, StoreError, chained};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// The database file in the data directory.
pub const DB_FILE: &str = "runwarden.db";

pub struct SqliteStore {
    conn: Mutex<Connection>,
    chain: Chain,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    opened_at TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS incident_text USING fts5(id UNINDEXED, summary);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    incident TEXT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_incident ON audit(incident);
CREATE TABLE IF NOT EXISTS reports (
    incident TEXT PRIMARY KEY,
    markdown TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guard_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"#;

impl SqliteStore {
    /// Opens (creating if needed) `runwarden.db` in `data_dir`, its audit
    /// chain keyed by `data_dir/audit.key` (created if needed).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Db(format!("{}: {e}", data_dir.display())))?;
        Self::open_with(data_dir, Chain::for_dir(data_dir, None, true)?)
    }

    /// Opens `runwarden.db` in `data_dir` with the given audit chain.
    pub fn open_with(data_dir: &Path, chain: Chain) -> Result<Self, StoreError> {
        let conn = Connection::open(data_dir.join(DB_FILE))?;
        Self::init(conn, chain)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, Chain::ephemeral())
    }

    fn init(conn: Connection, chain: Chain) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            chain,
        })
    }

    /// Runs `change` and appends the audit records it returns in one
    /// IMMEDIATE transaction, then anchors the new head: the change and its
    /// record commit together or not at all.
    fn audited<T>(
        &self,
        change: impl FnOnce(&Connection) -> Result<(T, Vec<chained::Entry>), StoreError>,
    ) -> Result<(T, Option<AuditRecord>), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (out, entries) = change(&tx)?;
        let mut last = None;
        for entry in entries {
            last = Some(append(&tx, &self.chain, &entry)?);
        }
        tx.commit()?;
        drop(conn);
        if let Some(record) = &last {
            self.chain.anchor(&record.head())?;
        }
        Ok((out, last))
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Db("connection lock poisoned".into()))
    }

    /// Audit records matching `condition` (one `?1` parameter), in order.
    fn audit_where(
        &self,
        condition: &str,
        param: &dyn rusqlite::ToSql,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT seq, at, incident, kind, body, prev_hash, hash FROM audit WHERE {condition} ORDER BY seq"
        ))?;
        let rows = stmt.query_map([param], stored_row)?;
        rows.map(|row| row?.into_record()).collect()
    }

    /// Test and benchmark helper: run raw SQL (to simulate tampering, or
    /// to switch off fsync).
    #[doc(hidden)]
    pub fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        self.conn()?.execute_batch(sql)?;
        Ok(())
    }
}

/// An audit row as stored (`SELECT seq, at, incident, kind, body,
/// prev_hash, hash`).
fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        incident: r.get(2)?,
        kind: r.get(3)?,
        body: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

/// One approval, on a connection or inside a transaction.
fn read_approval(conn: &Connection, id: &str) -> Result<Approval, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT record FROM approvals WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    let text = text.ok_or_else(|| StoreError::NotFound {
        what: "approval",
        id: id.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode_incident(text: &str) -> Result<IncidentRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// FTS5 query from free text: words only, OR-ed, so punctuation in alert
/// text cannot break the query syntax.
fn fts_query(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .take(24)
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect::<Vec<_>>()
        .join(" OR ")
}

impl Store for SqliteStore {
    fn next_incident_id(&self) -> Result<String, StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO counters(name, value) VALUES('incident', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )?;
        let n: i64 = conn.query_row(
            "SELECT value FROM counters WHERE name = 'incident'",
            [],
            |r| r.get(0),
        )?;
        Ok(format!("INC-{n}"))
    }

    fn put_incident(&self, incident: &IncidentRecord) -> Result<(), StoreError> {
        let text =
            serde_json::to_string(incident).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.audited(|tx| {
            let before: Option<String> = tx
                .query_row(
                    "SELECT record FROM incidents WHERE id = ?1",
                    params![incident.id],
                    |r| r.get(0),
                )
                .optional()?;
            let before = before.map(|t| decode_incident(&t)).transpose()?;
            tx.execute(
                "INSERT INTO incidents(id, record, opened_at) VALUES(?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
                params![incident.id, text, incident.opened_at.to_rfc3339()],
            )?;
            tx.execute(
                "DELETE FROM incident_text WHERE id = ?1",
                params![incident.id],
            )?;
            tx.execute(
                "INSERT INTO incident_text(id, summary) VALUES(?1, ?2)",
                params![incident.id, incident.summary],
            )?;
            Ok(((), chained::incident_change(before.as_ref(), incident)))
        })?;
        Ok(())
    }

    fn incident(&self, id: &str) -> Result<IncidentRecord, StoreError> {
        let conn = self.conn()?;
        let text: Option<String> = conn
            .query_row(
                "SELECT record FROM incidents WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        match text {
            Some(t) => decode_incident(&t),
            None => Err(StoreError::NotFound {
                what: "incident",
                id: id.to_string(),
            }),
        }
    }

    fn incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT record FROM incidents ORDER BY opened_at DESC")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| decode_incident(&r?)).collect()
    }

    fn similar(
        &self,
        text: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let query = fts_query(text);
        if query.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<String> = {
            let conn = self.conn()?;
            let mut stmt = conn.prepare("SELECT id FROM incident_text WHERE incident_text MATCH ?1 AND id != ?2 ORDER BY rank LIMIT ?3")?;
            let rows = stmt.query_map(
                params![query, exclude, i64::try_from(limit).unwrap_or(10)],
                |r| r.get::<_, String>(0),
            )?;
            rows.collect::<Result<_, _>>()?
        };
        ids.iter().map(|id| self.incident(id)).collect()
    }

    fn incident_states(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT json_extract(record, '$.state'), count(*) FROM incidents GROUP BY 1",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = std::collections::BTreeMap::new();
        for row in rows {
            let (state, n) = row?;
            let state =
                state.ok_or_else(|| StoreError::Corrupt("an incident has no state".into()))?;
            out.insert(state, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    fn append_audit(
        &self,
        incident: Option<&str>,
        kind: &str,
        body: &serde_json::Value,
    ) -> Result<AuditRecord, StoreError> {
        let entry = chained::Entry::new(incident, kind, body.clone());
        let ((), record) = self.audited(|_| Ok(((), vec![entry])))?;
        record.ok_or_else(|| StoreError::Db("the audit record was not written".into()))
    }

    fn audit(&self, incident: Option<&str>) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_where("?1 IS NULL OR incident = ?1", &incident)
    }

    fn audit_of_kinds_since(
        &self,
        kinds: &[&str],
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let kinds = serde_json::to_string(kinds).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Times are stored as RFC 3339 UTC with microseconds: text order is
        // time order.
        let since = since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT seq, at, incident, kind, body, prev_hash, hash FROM audit
             WHERE kind IN (SELECT value FROM json_each(?1)) AND (?2 IS NULL OR at >= ?2) ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![kinds, since], stored_row)?;
        rows.map(|row| row?.into_record()).collect()
    }

    fn verify_chain(&self, expected: Option<&Head>) -> Result<AuditVerification, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT seq, at, incident, kind, body, prev_hash, hash FROM audit ORDER BY seq",
        )?;
        let rows = stmt.query_map([], stored_row)?;
        let rows: Vec<StoredRow> = rows.collect::<Result<_, _>>()?;
        Ok(verify_rows(rows, &self.chain, expected))
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO counters(name, value) VALUES('readiness-probe', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )?;
        Ok(())
    }

    fn next_approval_id(&self) -> Result<String, StoreError> {
        let n: i64 = self.conn()?.query_row(
            "INSERT INTO counters(name, value) VALUES('approval', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            [],
            |r| r.get(0),
        )?;
        Ok(format!("APR-{n}"))
    }

    fn insert_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        let text =
            serde_json::to_string(approval).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.audited(|tx| {
            let inserted = tx.execute(
                "INSERT INTO approvals(id, record, requested_at) VALUES(?1, ?2, ?3) ON CONFLICT(id) DO NOTHING",
                params![approval.id, text, approval.requested_at.to_rfc3339()],
            )?;
            if inserted == 0 {
                return Err(StoreError::Exists {
                    what: "approval",
                    id: approval.id.clone(),
                });
            }
            Ok(((), vec![chained::approval_state(approval)]))
        })?;
        Ok(())
    }

    fn decide_approval(
        &self,
        id: &str,
        to: super::ApprovalState,
        by: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Approval, StoreError> {
        // IMMEDIATE takes the write lock first, so another process deciding
        // the same approval waits and then sees this decision.
        let (decided, _) = self.audited(|tx| {
            let current = read_approval(tx, id)?;
            let decided = super::decide(current, to, by, at)?;
            let text =
                serde_json::to_string(&decided).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            tx.execute(
                "UPDATE approvals SET record = ?2 WHERE id = ?1",
                params![id, text],
            )?;
            let entry = chained::approval_state(&decided);
            Ok((decided, vec![entry]))
        })?;
        Ok(decided)
    }

    fn approval(&self, id: &str) -> Result<Approval, StoreError> {
        read_approval(&*self.conn()?, id)
    }

    fn approvals(&self) -> Result<Vec<Approval>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT record FROM approvals ORDER BY requested_at")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| serde_json::from_str(&r?).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    fn guard_state(&self) -> Result<Option<serde_json::Value>, StoreError> {
        let conn = self.conn()?;
        let text: Option<String> = conn
            .query_row("SELECT state FROM guard_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("guard state: {e}")))
        })
        .transpose()
    }

    fn put_guard_state(
        &self,
        state: &serde_json::Value,
        record: Option<chained::Entry>,
    ) -> Result<(), StoreError> {
        self.audited(|tx| {
            tx.execute(
                "INSERT INTO guard_state(id, state) VALUES(1, ?1) ON CONFLICT(id) DO UPDATE SET state = excluded.state",
                params![state.to_string()],
            )?;
            Ok(((), record.into_iter().collect()))
        })?;
        Ok(())
    }

    fn put_report(&self, incident: &str, markdown: &str) -> Result<(), StoreError> {
        self.audited(|tx| {
            tx.execute(
                "INSERT INTO reports(incident, markdown) VALUES(?1, ?2) ON CONFLICT(incident) DO UPDATE SET markdown = excluded.markdown",
                params![incident, markdown],
            )?;
            Ok(((), vec![chained::report(incident, markdown)]))
        })?;
        Ok(())
    }

    fn report(&self, incident: &str) -> Result<String, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT markdown FROM reports WHERE incident = ?1",
            params![incident],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            what: "report",
            id: incident.to_string(),
        })
    }
}

/// Appends one record inside the caller's transaction, linked to the last.
fn append(
    tx: &Connection,
    chain: &Chain,
    entry: &chained::Entry,
) -> Result<AuditRecord, StoreError> {
    let body_text =
        serde_json::to_string(&entry.body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let at = chrono::Utc::now();
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // Cached statements: an append is on every action's path.
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (u64::try_from(s).unwrap_or(0) + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let incident = entry.incident.as_deref();
    let hash = chain.hash(seq, &at_text, incident, &entry.kind, &body_text, &prev_hash);
    tx.prepare_cached(
        "INSERT INTO audit(seq, at, incident, kind, body, prev_hash, hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![i64::try_from(seq).unwrap_or(i64::MAX), at_text, incident, entry.kind, body_text, prev_hash, hash])?;
    Ok(AuditRecord {
        seq,
        at,
        incident: entry.incident.clone(),
        kind: entry.kind.clone(),
        body: entry.body.clone(),
        prev_hash,
        hash,
    })
}

// The store's tests are shared with PostgreSQL: tests/stores.rs.

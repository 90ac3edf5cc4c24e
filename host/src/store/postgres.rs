//! The shared store: PostgreSQL, for several replicas over one history.
//!
//! Same records, same audit hash chain as SQLite; only the database
//! differs. Three choices worth knowing:
//!
//! - **One connection on its own thread.** The [`Store`] trait is
//!   synchronous (it is called from async code that holds no `.await` across
//!   a store call), and the `postgres` client drives its own small runtime,
//!   which must not run inside tokio's. So a dedicated thread owns the
//!   connection and runs each call as a job; callers block on the answer,
//!   as they do on SQLite's mutex.
//! - **Appends are serialised across replicas** by a transaction-scoped
//!   advisory lock, so two writers can never both link to the same previous
//!   record. Audit bodies and times are stored as the exact text that was
//!   hashed (`jsonb` would reorder keys and break the chain).
//! - **Commits are durable** (`synchronous_commit` is PostgreSQL's default,
//!   on): an intent record is on disk before the action runs.

use super::audit::{AuditRecord, AuditVerification, GENESIS, StoredRow, verify_rows};
use super::chain::{Chain, Head};
use super::{Approval, IncidentRecord, Store, StoreError, chained};
use postgres::{Client, NoTls, Row};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    record JSONB NOT NULL,
    opened_at TEXT NOT NULL,
    summary TEXT NOT NULL,
    summary_words TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', summary)) STORED
);
CREATE INDEX IF NOT EXISTS incidents_summary_words ON incidents USING GIN (summary_words);
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY,
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
    record JSONB NOT NULL,
    requested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guard_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
"#;

/// The advisory lock key that serialises audit appends ("rwaudit").
const AUDIT_LOCK: i64 = 0x0072_7761_7564_6974;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

pub struct PostgresStore {
    jobs: Mutex<mpsc::Sender<Job>>,
    chain: Chain,
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Db(match e.as_db_error() {
            Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
            None => format!("postgres: {e}"),
        })
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl PostgresStore {
    /// Connects (`postgres://user@host:port/db`), creates the schema if
    /// needed, and starts the connection's thread. Every replica sharing
    /// the database must use a chain with the same key.
    pub fn connect(url: &str, chain: Chain) -> Result<Self, StoreError> {
        // Even connecting drives the client's runtime: on the thread, too.
        let url = url.to_string();
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        std::thread::Builder::new()
            .name("runwarden-postgres".into())
            .spawn(move || {
                let connected = Client::connect(&url, NoTls).and_then(|mut client| {
                    client.batch_execute(SCHEMA)?;
                    Ok(client)
                });
                let mut client = match connected {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                };
                for job in inbox {
                    job(&mut client);
                }
            })
            .map_err(|e| StoreError::Db(format!("cannot start the postgres thread: {e}")))?;
        started
            .recv()
            .map_err(|_| StoreError::Db("the postgres connection thread died".into()))??;
        Ok(PostgresStore {
            jobs: Mutex::new(jobs),
            chain,
        })
    }

    /// Runs `change` and appends the records it returns in one
    /// transaction, then anchors the new head: the change and its record
    /// commit together or not at all. The advisory lock is taken last, so
    /// every transaction takes its locks in one order.
    fn audited<T: Send + 'static>(
        &self,
        change: impl FnOnce(
            &mut postgres::Transaction<'_>,
        ) -> Result<(T, Vec<chained::Entry>), StoreError>
        + Send
        + 'static,
    ) -> Result<(T, Option<AuditRecord>), StoreError> {
        let chain = self.chain.clone();
        let (out, last) = self.run(move |c| {
            let mut tx = c.transaction()?;
            let (out, entries) = change(&mut tx)?;
            let mut last = None;
            if !entries.is_empty() {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])?;
            }
            for entry in &entries {
                last = Some(append(&mut tx, &chain, entry)?);
            }
            tx.commit()?;
            Ok((out, last))
        })?;
        if let Some(record) = &last {
            self.chain.anchor(&record.head())?;
        }
        Ok((out, last))
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            let _ = reply.send(f(client));
        });
        self.jobs
            .lock()
            .map_err(|_| StoreError::Db("postgres job queue poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Db("the postgres connection thread has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Db("the postgres connection thread has stopped".into()))?
    }

    /// Test helper: run raw SQL (to simulate tampering).
    #[doc(hidden)]
    pub fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_string();
        self.run(move |c| Ok(c.batch_execute(&sql)?))
    }

    fn audit_where(
        &self,
        condition: &'static str,
        param: Option<Vec<String>>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c| {
            let sql = format!(
                "SELECT seq, at, incident, kind, body, prev_hash, hash FROM audit WHERE {condition} ORDER BY seq"
            );
            let rows = match &param {
                Some(p) => c.query(&sql, &[p])?,
                None => c.query(&sql, &[])?,
            };
            rows.iter().map(|r| stored_row(r)?.into_record()).collect()
        })
    }
}

fn stored_row(r: &Row) -> Result<StoredRow, StoreError> {
    Ok(StoredRow {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        incident: r.try_get(2)?,
        kind: r.try_get(3)?,
        body: r.try_get(4)?,
        prev_hash: r.try_get(5)?,
        hash: r.try_get(6)?,
    })
}

/// A tsquery of the text's words, OR-ed; words are alphanumeric only, so
/// alert text cannot break the query syntax.
fn ts_query(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .take(24)
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(corrupt)
}

impl Store for PostgresStore {
    fn next_incident_id(&self) -> Result<String, StoreError> {
        self.run(|c| {
            let row = c.query_one(
                "INSERT INTO counters(name, value) VALUES('incident', 1)
                 ON CONFLICT(name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                &[],
            )?;
            let n: i64 = row.try_get(0)?;
            Ok(format!("INC-{n}"))
        })
    }

    fn put_incident(&self, incident: &IncidentRecord) -> Result<(), StoreError> {
        let record = serde_json::to_value(incident).map_err(corrupt)?;
        let after = incident.clone();
        self.audited(move |tx| {
            let before = tx
                .query_opt(
                    "SELECT record FROM incidents WHERE id = $1 FOR UPDATE",
                    &[&after.id],
                )?
                .map(|row| decode::<IncidentRecord>(row.try_get(0)?))
                .transpose()?;
            tx.execute(
                "INSERT INTO incidents(id, record, opened_at, summary) VALUES($1, $2, $3, $4)
                 ON CONFLICT(id) DO UPDATE SET record = excluded.record, summary = excluded.summary",
                &[&after.id, &record, &after.opened_at.to_rfc3339(), &after.summary],
            )?;
            Ok(((), chained::incident_change(before.as_ref(), &after)))
        })?;
        Ok(())
    }

    fn incident(&self, id: &str) -> Result<IncidentRecord, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            match c.query_opt("SELECT record FROM incidents WHERE id = $1", &[&id])? {
                Some(row) => decode(row.try_get(0)?),
                None => Err(StoreError::NotFound {
                    what: "incident",
                    id,
                }),
            }
        })
    }

    fn incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        self.run(|c| {
            c.query("SELECT record FROM incidents ORDER BY opened_at DESC", &[])?
                .iter()
                .map(|r| decode(r.try_get(0)?))
                .collect()
        })
    }

    fn similar(
        &self,
        text: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let query = ts_query(text);
        if query.is_empty() {
            return Ok(vec![]);
        }
        let exclude = exclude.to_string();
        let limit = i64::try_from(limit).unwrap_or(10);
        self.run(move |c| {
            c.query(
                "SELECT record FROM incidents, to_tsquery('simple', $1) q
                 WHERE summary_words @@ q AND id != $2
                 ORDER BY ts_rank(summary_words, q) DESC, opened_at DESC LIMIT $3",
                &[&query, &exclude, &limit],
            )?
            .iter()
            .map(|r| decode(r.try_get(0)?))
            .collect()
        })
    }

    fn incident_states(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.run(|c| {
            let mut out = BTreeMap::new();
            for row in c.query(
                "SELECT record->>'state', count(*) FROM incidents GROUP BY 1",
                &[],
            )? {
                let state: Option<String> = row.try_get(0)?;
                let n: i64 = row.try_get(1)?;
                let state = state.ok_or_else(|| corrupt("an incident has no state"))?;
                out.insert(state, u64::try_from(n).unwrap_or(0));
            }
            Ok(out)
        })
    }

    fn append_audit(
        &self,
        incident: Option<&str>,
        kind: &str,
        body: &serde_json::Value,
    ) -> Result<AuditRecord, StoreError> {
        let entry = chained::Entry::new(incident, kind, body.clone());
        let ((), record) = self.audited(move |_| Ok(((), vec![entry])))?;
        record.ok_or_else(|| StoreError::Db("the audit record was not written".into()))
    }

    fn audit(&self, incident: Option<&str>) -> Result<Vec<AuditRecord>, StoreError> {
        match incident {
            Some(i) => self.audit_where("incident = ANY($1)", Some(vec![i.to_string()])),
            None => self.audit_where("TRUE", None),
        }
    }

    fn audit_of_kinds_since(
        &self,
        kinds: &[&str],
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let since = since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        self.run(move |c| {
            c.query(
                "SELECT seq, at, incident, kind, body, prev_hash, hash FROM audit
                 WHERE kind = ANY($1) AND ($2::text IS NULL OR at >= $2) ORDER BY seq",
                &[&kinds, &since],
            )?
            .iter()
            .map(|r| stored_row(r)?.into_record())
            .collect()
        })
    }

    fn verify_chain(&self, expected: Option<&Head>) -> Result<AuditVerification, StoreError> {
        let (chain, expected) = (self.chain.clone(), expected.cloned());
        self.run(move |c| {
            let rows = c.query(
                "SELECT seq, at, incident, kind, body, prev_hash, hash FROM audit ORDER BY seq",
                &[],
            )?;
            let rows: Vec<StoredRow> = rows.iter().map(stored_row).collect::<Result<_, _>>()?;
            Ok(verify_rows(rows, &chain, expected.as_ref()))
        })
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        self.run(|c| {
            c.execute(
                "INSERT INTO counters(name, value) VALUES('readiness-probe', 1)
                 ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
                &[],
            )?;
            Ok(())
        })
    }

    fn next_approval_id(&self) -> Result<String, StoreError> {
        self.run(|c| {
            let row = c.query_one(
                "INSERT INTO counters(name, value) VALUES('approval', 1)
                 ON CONFLICT(name) DO UPDATE SET value = counters.value + 1 RETURNING value",
                &[],
            )?;
            let n: i64 = row.try_get(0)?;
            Ok(format!("APR-{n}"))
        })
    }

    fn insert_approval(&self, approval: &Approval) -> Result<(), StoreError> {
        let record = serde_json::to_value(approval).map_err(corrupt)?;
        let approval = approval.clone();
        self.audited(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO approvals(id, record, requested_at) VALUES($1, $2, $3)
                 ON CONFLICT(id) DO NOTHING",
                &[&approval.id, &record, &approval.requested_at.to_rfc3339()],
            )?;
            if inserted == 0 {
                return Err(StoreError::Exists {
                    what: "approval",
                    id: approval.id.clone(),
                });
            }
            Ok(((), vec![chained::approval_state(&approval)]))
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
        let (id, by) = (id.to_string(), by.to_string());
        let (decided, _) = self.audited(move |tx| {
            // The row lock makes a concurrent decider wait, then see this one.
            let row = tx
                .query_opt(
                    "SELECT record FROM approvals WHERE id = $1 FOR UPDATE",
                    &[&id],
                )?
                .ok_or_else(|| StoreError::NotFound {
                    what: "approval",
                    id: id.clone(),
                })?;
            let current: Approval = decode(row.try_get(0)?)?;
            let decided = super::decide(current, to, &by, at)?;
            let record = serde_json::to_value(&decided).map_err(corrupt)?;
            tx.execute(
                "UPDATE approvals SET record = $2 WHERE id = $1",
                &[&id, &record],
            )?;
            let entry = chained::approval_state(&decided);
            Ok((decided, vec![entry]))
        })?;
        Ok(decided)
    }

    fn approval(&self, id: &str) -> Result<Approval, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            match c.query_opt("SELECT record FROM approvals WHERE id = $1", &[&id])? {
                Some(row) => decode(row.try_get(0)?),
                None => Err(StoreError::NotFound {
                    what: "approval",
                    id,
                }),
            }
        })
    }

    fn approvals(&self) -> Result<Vec<Approval>, StoreError> {
        self.run(|c| {
            c.query("SELECT record FROM approvals ORDER BY requested_at", &[])?
                .iter()
                .map(|r| decode(r.try_get(0)?))
                .collect()
        })
    }

    fn guard_state(&self) -> Result<Option<serde_json::Value>, StoreError> {
        self.run(|c| {
            c.query_opt("SELECT state FROM guard_state WHERE id = 1", &[])?
                .map(|row| {
                    let text: String = row.try_get(0)?;
                    serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("guard state: {e}")))
                })
                .transpose()
        })
    }

    fn put_guard_state(
        &self,
        state: &serde_json::Value,
        record: Option<chained::Entry>,
    ) -> Result<(), StoreError> {
        let text = state.to_string();
        self.audited(move |tx| {
            tx.execute(
                "INSERT INTO guard_state(id, state) VALUES(1, $1) ON CONFLICT(id) DO UPDATE SET state = excluded.state",
                &[&text],
            )?;
            Ok(((), record.into_iter().collect()))
        })?;
        Ok(())
    }

    fn put_report(&self, incident: &str, markdown: &str) -> Result<(), StoreError> {
        let (incident, markdown) = (incident.to_string(), markdown.to_string());
        self.audited(move |tx| {
            tx.execute(
                "INSERT INTO reports(incident, markdown) VALUES($1, $2) ON CONFLICT(incident) DO UPDATE SET markdown = excluded.markdown",
                &[&incident, &markdown],
            )?;
            Ok(((), vec![chained::report(&incident, &markdown)]))
        })?;
        Ok(())
    }

    fn report(&self, incident: &str) -> Result<String, StoreError> {
        let incident = incident.to_string();
        self.run(move |c| {
            match c.query_opt(
                "SELECT markdown FROM reports WHERE incident = $1",
                &[&incident],
            )? {
                Some(row) => Ok(row.try_get(0)?),
                None => Err(StoreError::NotFound {
                    what: "report",
                    id: incident,
                }),
            }
        })
    }
}

/// Appends one record inside the caller's transaction (which holds the
/// advisory lock), linked to the last.
fn append(
    tx: &mut postgres::Transaction<'_>,
    chain: &Chain,
    entry: &chained::Entry,
) -> Result<AuditRecord, StoreError> {
    let body_text = serde_json::to_string(&entry.body).map_err(corrupt)?;
    let last = tx.query_opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
    let (seq, prev_hash) = match last {
        Some(row) => {
            let s: i64 = row.try_get(0)?;
            (
                u64::try_from(s).unwrap_or(0) + 1,
                row.try_get::<_, String>(1)?,
            )
        }
        None => (1, GENESIS.to_string()),
    };
    let at = chrono::Utc::now();
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let incident = entry.incident.as_deref();
    let hash = chain.hash(seq, &at_text, incident, &entry.kind, &body_text, &prev_hash);
    tx.execute(
        "INSERT INTO audit(seq, at, incident, kind, body, prev_hash, hash) VALUES($1, $2, $3, $4, $5, $6, $7)",
        &[&i64::try_from(seq).unwrap_or(i64::MAX), &at_text, &incident, &entry.kind, &body_text, &prev_hash, &hash],
    )?;
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

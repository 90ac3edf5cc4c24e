//! Where incidents, the audit trail, approvals and reports live.
//!
//! Behind the [`Store`] trait: the embedded default is SQLite in the data
//! directory ([`sqlite::SqliteStore`]); several replicas share one history in
//! PostgreSQL ([`postgres::PostgresStore`]). Both pass the same tests
//! (`tests/stores.rs`).

pub mod audit;
pub mod chain;
pub mod chained;
pub mod postgres;
pub mod sqlite;

pub use audit::{AuditRecord, AuditVerification};
pub use chain::{Chain, Head};

use std::path::{Path, PathBuf};

/// Where the store lives: `--store` (`RUNWARDEN_STORE`), the data
/// directory (SQLite's file, the audit chain's anchor and default key) and
/// the audit key (`--audit-key-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    pub database: Database,
    pub data_dir: PathBuf,
    pub audit_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// `runwarden.db` in the data directory.
    Sqlite,
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl StoreLocation {
    /// SQLite in `data_dir`, keyed by `data_dir/audit.key`.
    pub fn sqlite(data_dir: &Path) -> Self {
        StoreLocation {
            database: Database::Sqlite,
            data_dir: data_dir.to_path_buf(),
            audit_key_file: None,
        }
    }

    /// `--store` when given, else SQLite in the data directory.
    pub fn parse(store: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        let database = match store {
            None => Database::Sqlite,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url.to_string())
            }
            Some(other) => {
                return Err(StoreError::Db(format!(
                    "--store {:?}: expected a postgres:// URL (omit it for SQLite in the data directory)",
                    other.split('@').next_back().unwrap_or("")
                )));
            }
        };
        Ok(StoreLocation {
            database,
            data_dir: data_dir.to_path_buf(),
            audit_key_file: None,
        })
    }

    /// The audit key from this file rather than the data directory's.
    pub fn with_audit_key(mut self, file: Option<PathBuf>) -> Self {
        self.audit_key_file = file;
        self
    }

    /// Opens the store, creating the data directory and the default audit
    /// key when missing.
    pub fn open(&self) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| StoreError::Db(format!("{}: {e}", self.data_dir.display())))?;
        self.open_chain(self.chain(true)?)
    }

    /// Opens an existing store and key without creating anything: what
    /// `audit verify` needs (a missing store is not an intact one).
    pub fn open_existing(&self) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        if !self.data_dir.is_dir() {
            return Err(StoreError::NotFound {
                what: "data directory",
                id: self.data_dir.display().to_string(),
            });
        }
        if self.database == Database::Sqlite && !self.data_dir.join(sqlite::DB_FILE).is_file() {
            return Err(StoreError::NotFound {
                what: "database",
                id: self.data_dir.join(sqlite::DB_FILE).display().to_string(),
            });
        }
        self.open_chain(self.chain(false)?)
    }

    fn chain(&self, create: bool) -> Result<Chain, StoreError> {
        Chain::for_dir(&self.data_dir, self.audit_key_file.as_deref(), create)
    }

    fn open_chain(&self, chain: Chain) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(match &self.database {
            Database::Sqlite => {
                std::sync::Arc::new(sqlite::SqliteStore::open_with(&self.data_dir, chain)?)
            }
            Database::Postgres(url) => {
                if self.audit_key_file.is_none() {
                    tracing::warn!(
                        "the audit key is {}: replicas sharing one PostgreSQL store must share one key (--audit-key-file)",
                        self.data_dir.join(chain::KEY_FILE).display()
                    );
                }
                std::sync::Arc::new(postgres::PostgresStore::connect(
                    url,
                    chain.anchor_optional(),
                )?)
            }
        })
    }
}

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(String),
    #[error("store: {what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("store: stored record is unreadable: {0}")]
    Corrupt(String),
    #[error("approval `{id}` is already {state:?}{}", .by.as_ref().map(|b| format!(" (by {b})")).unwrap_or_default())]
    AlreadyDecided {
        id: String,
        state: ApprovalState,
        by: Option<String>,
    },
    #[error("store: {what} `{id}` exists already")]
    Exists { what: &'static str, id: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Lifecycle of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncidentState {
    Open,
    Remediating,
    WaitingApproval,
    Resolved,
    Escalated,
    /// The agent stopped mid-action (crash); a human must look.
    Interrupted,
}

impl IncidentState {
    pub const ALL: [IncidentState; 6] = [
        IncidentState::Open,
        IncidentState::Remediating,
        IncidentState::WaitingApproval,
        IncidentState::Resolved,
        IncidentState::Escalated,
        IncidentState::Interrupted,
    ];

    /// The state's name as serialised.
    pub fn name(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Remediating => "remediating",
            IncidentState::WaitingApproval => "waiting-approval",
            IncidentState::Resolved => "resolved",
            IncidentState::Escalated => "escalated",
            IncidentState::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub id: String,
    pub title: String,
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub state: IncidentState,
    pub opened_at: chrono::DateTime<chrono::Utc>,
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Group labels and alert fingerprints, as JSON.
    pub detail: serde_json::Value,
    /// One line for similar-incident search and lists.
    pub summary: String,
}

/// A mutating action waiting for a human. It binds to the digest of the
/// exact tool, arguments, planned effects and autonomy-policy version, and
/// expires. Decided once: see [`Store::decide_approval`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub incident: String,
    pub plugin: String,
    pub tool: String,
    pub arguments: serde_json::Value,
    /// The plan's typed effects, as the approver is shown them.
    #[serde(default)]
    pub effects: Vec<crate::effects::Effect>,
    /// `effects::digest` of tool, arguments, effects and policy version.
    #[serde(default)]
    pub digest: String,
    /// Each target's tier and where it came from.
    #[serde(default)]
    pub tiers: serde_json::Value,
    /// Each argument with where its value came from.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Every reason a guardrail gave for asking a human.
    #[serde(default)]
    pub reasons: Vec<String>,
    pub policy_version: String,
    pub reason: String,
    pub requested_at: chrono::DateTime<chrono::Utc>,
    /// Who asked for the action (an MCP caller, a CLI operator); `None`:
    /// the agent itself. They cannot approve it.
    #[serde(default)]
    pub requested_by: Option<String>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub state: ApprovalState,
    pub decided_by: Option<String>,
    #[serde(default)]
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

pub trait Store: Send + Sync {
    fn next_incident_id(&self) -> Result<String, StoreError>;
    fn put_incident(&self, incident: &IncidentRecord) -> Result<(), StoreError>;
    fn incident(&self, id: &str) -> Result<IncidentRecord, StoreError>;
    fn incidents(&self) -> Result<Vec<IncidentRecord>, StoreError>;
    /// Full-text search over past incidents' summaries, best match first.
    fn similar(
        &self,
        text: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<IncidentRecord>, StoreError>;

    /// How many incidents are in each state (state names as serialised).
    fn incident_states(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError>;

    /// Appends to the hash-chained audit trail and makes it durable before
    /// returning.
    fn append_audit(
        &self,
        incident: Option<&str>,
        kind: &str,
        body: &serde_json::Value,
    ) -> Result<AuditRecord, StoreError>;
    fn audit(&self, incident: Option<&str>) -> Result<Vec<AuditRecord>, StoreError>;
    /// Only records of these kinds, across all incidents, in order.
    fn audit_of_kinds(&self, kinds: &[&str]) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_of_kinds_since(kinds, None)
    }
    /// Records of these kinds written at or after `since` (all when
    /// `None`), in order: what a start-up reads, bounded by time.
    fn audit_of_kinds_since(
        &self,
        kinds: &[&str],
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Walks the keyed chain and checks it reaches its anchored head (and
    /// `expected`, a head from the log).
    fn verify_chain(&self, expected: Option<&Head>) -> Result<AuditVerification, StoreError>;

    /// The chain, then the incidents, approvals and reports tables
    /// against what the chain last recorded of each.
    fn verify_audit_to(&self, expected: Option<&Head>) -> Result<AuditVerification, StoreError> {
        let mut v = self.verify_chain(expected)?;
        if v.ok() {
            v.broken = chained::verify_state(self)?;
        }
        Ok(v)
    }

    fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.verify_audit_to(None)
    }

    /// One small write, for readiness: a replica whose store cannot write
    /// (disk full, read-only, gone) must not take webhooks.
    fn probe_write(&self) -> Result<(), StoreError>;

    /// A fresh approval id from the store's own counter (`APR-n`), unique
    /// across processes sharing the store.
    fn next_approval_id(&self) -> Result<String, StoreError>;
    /// Stores a new approval; an id that exists already is an error, never
    /// an overwrite.
    fn insert_approval(&self, approval: &Approval) -> Result<(), StoreError>;
    /// Moves a pending approval to `to` in one compare-and-set: of any
    /// number of concurrent deciders exactly one wins; the others get
    /// [`StoreError::AlreadyDecided`] naming the state and who decided.
    fn decide_approval(
        &self,
        id: &str,
        to: ApprovalState,
        by: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Approval, StoreError>;
    fn approval(&self, id: &str) -> Result<Approval, StoreError>;
    fn approvals(&self) -> Result<Vec<Approval>, StoreError>;

    /// The agent's guard state (action history, circuit breaker), so a
    /// restart neither forgets cooldowns nor closes a tripped breaker.
    fn guard_state(&self) -> Result<Option<serde_json::Value>, StoreError>;
    /// Stores the guard state, with `record` (a mode switch, a breaker
    /// reset) appended to the audit trail in the same transaction.
    fn put_guard_state(
        &self,
        state: &serde_json::Value,
        record: Option<chained::Entry>,
    ) -> Result<(), StoreError>;

    /// Stores a report; its hash goes into the audit trail with it.
    fn put_report(&self, incident: &str, markdown: &str) -> Result<(), StoreError>;
    fn report(&self, incident: &str) -> Result<String, StoreError>;
}

/// The compare-and-set both stores run inside their transaction.
pub(crate) fn decide(
    mut a: Approval,
    to: ApprovalState,
    by: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Approval, StoreError> {
    if a.state != ApprovalState::Pending {
        return Err(StoreError::AlreadyDecided {
            id: a.id,
            state: a.state,
            by: a.decided_by,
        });
    }
    a.state = to;
    a.decided_by = Some(by.to_string());
    a.decided_at = Some(at);
    Ok(a)
}

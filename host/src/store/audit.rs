//! The audit trail's hash chain.
//!
//! Each record's hash covers its sequence number, time, incident, kind, body
//! and the previous record's hash. Editing a record breaks its hash; deleting
//! or reordering records breaks the sequence or the link to the previous
//! hash. Verification walks the whole chain and names the first break.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub incident: Option<String>,
    pub kind: String,
    pub body: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record's content and its link to the previous record.
pub fn record_hash(
    seq: u64,
    at: &str,
    incident: Option<&str>,
    kind: &str,
    body: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        seq.to_string().as_str(),
        at,
        incident.unwrap_or(""),
        kind,
        body,
        prev_hash,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    pub records: u64,
    /// The first problem found, if any.
    pub broken: Option<String>,
}

impl AuditVerification {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// One stored row as read back, before interpretation.
pub struct StoredRow {
    pub seq: i64,
    pub at: String,
    pub incident: Option<String>,
    pub kind: String,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredRow {
    /// The record as the rest of the agent reads it.
    pub fn into_record(self) -> Result<AuditRecord, super::StoreError> {
        use super::StoreError::Corrupt;
        let seq = self.seq;
        Ok(AuditRecord {
            seq: u64::try_from(seq).map_err(|e| Corrupt(format!("audit record {seq}: {e}")))?,
            at: chrono::DateTime::parse_from_rfc3339(&self.at)
                .map_err(|e| Corrupt(format!("audit record {seq}: {e}")))?
                .with_timezone(&chrono::Utc),
            incident: self.incident,
            kind: self.kind,
            body: serde_json::from_str(&self.body)
                .map_err(|e| Corrupt(format!("audit record {seq}: {e}")))?,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Walks rows in storage order and reports the first break.
pub fn verify_rows(rows: impl IntoIterator<Item = StoredRow>) -> AuditVerification {
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    for (expected_seq, row) in (1_i64..).zip(rows) {
        count += 1;
        if row.seq != expected_seq {
            return AuditVerification {
                records: count,
                broken: Some(format!(
                    "record {} follows record {}: records were deleted or reordered",
                    row.seq,
                    expected_seq - 1
                )),
            };
        }
        if row.prev_hash != prev {
            return AuditVerification {
                records: count,
                broken: Some(format!(
                    "record {} does not link to the record before it",
                    row.seq
                )),
            };
        }
        let Ok(seq) = u64::try_from(row.seq) else {
            return AuditVerification {
                records: count,
                broken: Some(format!("record {} has a negative sequence", row.seq)),
            };
        };
        let actual = record_hash(
            seq,
            &row.at,
            row.incident.as_deref(),
            &row.kind,
            &row.body,
            &row.prev_hash,
        );
        if actual != row.hash {
            return AuditVerification {
                records: count,
                broken: Some(format!(
                    "record {} was modified (its hash does not match its content)",
                    row.seq
                )),
            };
        }
        if serde_json::from_str::<serde_json::Value>(&row.body).is_err() {
            return AuditVerification {
                records: count,
                broken: Some(format!("record {} has a torn or unreadable body", row.seq)),
            };
        }
        prev = row.hash;
    }
    AuditVerification {
        records: count,
        broken: None,
    }
}

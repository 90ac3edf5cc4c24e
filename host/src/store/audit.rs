//! The audit trail's hash chain.
//!
//! Each record's hash is a keyed hash ([`super::chain::Chain`]) of its
//! sequence number, time, incident, kind, body and the previous record's
//! hash. Editing a record breaks its hash; deleting or reordering records
//! breaks the sequence or the link to the previous hash; deleting the end
//! of the chain leaves it shorter than its anchored head. Verification
//! walks the whole chain and names the first break.

use super::chain::{Chain, Head};
use serde::{Deserialize, Serialize};

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

impl AuditRecord {
    /// The chain's head once this record is the last.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    pub records: u64,
    /// The first problem found, if any.
    pub broken: Option<String>,
    /// The verified chain's head (`SEQ:HASH`), to compare with the log.
    pub head: Option<String>,
    /// The head anchored outside the database, when there is one.
    pub anchored: Option<String>,
}

impl AuditVerification {
    pub fn broken(records: u64, why: String) -> Self {
        AuditVerification {
            records,
            broken: Some(why),
            ..Default::default()
        }
    }

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

/// Walks rows in storage order and reports the first break, then checks
/// the chain reaches its anchored head (and `expected`, a head taken from
/// the log) with the same hash there.
pub fn verify_rows(
    rows: impl IntoIterator<Item = StoredRow>,
    chain: &Chain,
    expected: Option<&Head>,
) -> AuditVerification {
    let anchored = match chain.anchored_head() {
        Ok(head) => head,
        Err(e) => {
            return AuditVerification::broken(0, format!("the chain head cannot be read: {e}"));
        }
    };
    let heads: Vec<(&Head, &str)> = [(anchored.as_ref(), "anchored"), (expected, "expected")]
        .into_iter()
        .filter_map(|(h, from)| h.map(|h| (h, from)))
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    let mut last = None;
    let mut v = walk(rows, chain, |seq, hash| {
        if heads.iter().any(|(h, _)| h.seq == seq) {
            seen.insert(seq, hash.to_string());
        }
        last = Some(Head {
            seq,
            hash: hash.to_string(),
        });
    });
    if v.broken.is_some() {
        return v;
    }
    let records = v.records;
    if anchored.is_none()
        && records > 0
        && chain.anchor_required()
        && let Some(file) = chain.head_file()
    {
        v.broken = Some(format!(
            "the chain head {} is missing: deletion of the newest records cannot be ruled out",
            file.display()
        ));
        return v;
    }
    for (head, from) in heads {
        v.broken = if records < head.seq {
            Some(format!(
                "the chain has {records} records but its {from} head is record {}: records were deleted from its end",
                head.seq
            ))
        } else if seen.get(&head.seq) != Some(&head.hash) {
            Some(format!(
                "record {} differs from the {from} head: the chain was rewritten",
                head.seq
            ))
        } else {
            None
        };
        if v.broken.is_some() {
            return v;
        }
    }
    v.head = last.map(|h| h.to_string());
    v.anchored = anchored.map(|h| h.to_string());
    v
}

/// Checks every record's sequence, link and keyed hash; `each` sees every
/// verified record's sequence and hash.
fn walk(
    rows: impl IntoIterator<Item = StoredRow>,
    chain: &Chain,
    mut each: impl FnMut(u64, &str),
) -> AuditVerification {
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    for (expected_seq, row) in (1_i64..).zip(rows) {
        count += 1;
        let broken = |why: String| AuditVerification::broken(count, why);
        if row.seq != expected_seq {
            return broken(format!(
                "record {} follows record {}: records were deleted or reordered",
                row.seq,
                expected_seq - 1
            ));
        }
        if row.prev_hash != prev {
            return broken(format!(
                "record {} does not link to the record before it",
                row.seq
            ));
        }
        let Ok(seq) = u64::try_from(row.seq) else {
            return broken(format!("record {} has a negative sequence", row.seq));
        };
        let actual = chain.hash(
            seq,
            &row.at,
            row.incident.as_deref(),
            &row.kind,
            &row.body,
            &row.prev_hash,
        );
        if actual != row.hash {
            return broken(format!(
                "record {} was modified or re-hashed (its keyed hash does not match its content; or the audit key is not the one it was written with)",
                row.seq
            ));
        }
        if serde_json::from_str::<serde_json::Value>(&row.body).is_err() {
            return broken(format!("record {} has a torn or unreadable body", row.seq));
        }
        each(seq, &row.hash);
        prev = row.hash;
    }
    AuditVerification {
        records: count,
        ..Default::default()
    }
}

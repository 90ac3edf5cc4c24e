//! The state changes the stores write into the audit chain themselves, in
//! the same transaction as the change: an incident's state, an approval's
//! state, a stored report, a mode switch or breaker reset. Because the
//! chain holds them, `audit verify` can compare the tables with the chain
//! and name an incident, approval or report edited behind its back.

use super::{Approval, IncidentRecord, Store, StoreError};
use sha2::{Digest, Sha256};

/// Kinds written by the stores.
pub const INCIDENT_STATE: &str = "incident-state";
pub const APPROVAL_STATE: &str = "approval-state";
pub const REPORT: &str = "report";

/// One record to append.
#[derive(Debug, Clone)]
pub struct Entry {
    pub incident: Option<String>,
    pub kind: String,
    pub body: serde_json::Value,
}

impl Entry {
    pub fn new(incident: Option<&str>, kind: &str, body: serde_json::Value) -> Self {
        Entry {
            incident: incident.map(str::to_string),
            kind: kind.to_string(),
            body,
        }
    }
}

/// A record when the incident is new or its state or closing time changed.
pub fn incident_change(before: Option<&IncidentRecord>, after: &IncidentRecord) -> Vec<Entry> {
    let changed = before.is_none_or(|b| b.state != after.state || b.closed_at != after.closed_at);
    if !changed {
        return vec![];
    }
    vec![Entry::new(
        Some(&after.id),
        INCIDENT_STATE,
        serde_json::json!({
            "state": after.state.name(),
            "from": before.map(|b| b.state.name()),
            "closed_at": after.closed_at,
        }),
    )]
}

pub fn approval_state(a: &Approval) -> Entry {
    Entry::new(
        Some(&a.incident),
        APPROVAL_STATE,
        serde_json::json!({
            "approval": a.id,
            "state": a.state,
            "by": a.decided_by,
            "digest": a.digest,
        }),
    )
}

pub fn report(incident: &str, markdown: &str) -> Entry {
    Entry::new(
        Some(incident),
        REPORT,
        serde_json::json!({"sha256": sha256(markdown), "bytes": markdown.len()}),
    )
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Compares the incidents, approvals and reports tables with the last
/// chained record of each; names the first that differs. Call it on a
/// chain already verified.
pub fn verify_state(store: &(impl Store + ?Sized)) -> Result<Option<String>, StoreError> {
    use std::collections::BTreeMap;
    let records = store.audit_of_kinds(&[INCIDENT_STATE, APPROVAL_STATE, REPORT])?;
    let (mut states, mut approvals, mut reports) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for r in &records {
        let incident = r.incident.clone().unwrap_or_default();
        match r.kind.as_str() {
            INCIDENT_STATE => {
                states.insert(incident, r.body["state"].clone());
            }
            APPROVAL_STATE => {
                let id = r.body["approval"].as_str().unwrap_or_default().to_string();
                approvals.insert(id, r.body["state"].clone());
            }
            _ => {
                reports.insert(incident, r.body["sha256"].clone());
            }
        }
    }
    let incidents = store.incidents()?;
    for inc in &incidents {
        match states.get(&inc.id) {
            None => {
                return Ok(Some(format!(
                    "incident {} is not in the audit trail",
                    inc.id
                )));
            }
            Some(s) if s.as_str() != Some(inc.state.name()) => {
                return Ok(Some(format!(
                    "incident {} is {} but the audit trail last recorded it {s}: the incidents table was edited",
                    inc.id,
                    inc.state.name()
                )));
            }
            Some(_) => {}
        }
        match (store.report(&inc.id), reports.get(&inc.id)) {
            (Ok(text), Some(hash)) if hash.as_str() == Some(sha256(&text).as_str()) => {}
            (Ok(_), Some(_)) => {
                return Ok(Some(format!(
                    "the report of {} differs from the one the audit trail recorded: the reports table was edited",
                    inc.id
                )));
            }
            (Ok(_), None) => {
                return Ok(Some(format!(
                    "the report of {} is not in the audit trail",
                    inc.id
                )));
            }
            (Err(StoreError::NotFound { .. }), Some(_)) => {
                return Ok(Some(format!(
                    "the report of {} was deleted (the audit trail recorded it)",
                    inc.id
                )));
            }
            (Err(StoreError::NotFound { .. }), None) => {}
            (Err(e), _) => return Err(e),
        }
    }
    let present: std::collections::BTreeSet<&str> =
        incidents.iter().map(|i| i.id.as_str()).collect();
    if let Some(gone) = states.keys().find(|id| !present.contains(id.as_str())) {
        return Ok(Some(format!(
            "incident {gone} was deleted (the audit trail recorded it)"
        )));
    }
    for a in store.approvals()? {
        let state = serde_json::to_value(a.state).unwrap_or_default();
        match approvals.get(&a.id) {
            None => return Ok(Some(format!("approval {} is not in the audit trail", a.id))),
            Some(s) if *s != state => {
                return Ok(Some(format!(
                    "approval {} is {state} but the audit trail last recorded it {s}: the approvals table was edited",
                    a.id
                )));
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

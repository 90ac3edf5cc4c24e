//! Start-up recovery: incidents the agent stopped in the middle of.
//!
//! Before every `execute` the agent durably records its intent; after it,
//! the execution. An intent without an execution after it means the process
//! died while the action ran (SIGKILL, OOM, power). Whether the action took
//! effect is unknown, so it is never re-run blindly: the incident is marked
//! `interrupted`, the gap is audited, and people are told.

use super::Agent;
use crate::store::{AuditRecord, IncidentState, StoreError};
use std::collections::BTreeMap;

/// An action whose intent was recorded but whose result never was.
#[derive(Debug, Clone, PartialEq)]
pub struct UnfinishedAction {
    pub incident: String,
    pub intent_seq: u64,
    pub tool: String,
    pub arguments: serde_json::Value,
}

/// Finds, per incident, an intent record with no execution record after it.
pub fn unfinished_actions(trail: &[AuditRecord]) -> Vec<UnfinishedAction> {
    let mut open: BTreeMap<&str, &AuditRecord> = BTreeMap::new();
    for r in trail {
        let Some(incident) = r.incident.as_deref() else {
            continue;
        };
        match r.kind.as_str() {
            "intent" => {
                open.insert(incident, r);
            }
            // Once recovered, an intent is settled.
            "execution" | "interrupted" => {
                open.remove(incident);
            }
            _ => {}
        }
    }
    open.into_iter()
        .map(|(incident, r)| UnfinishedAction {
            incident: incident.to_string(),
            intent_seq: r.seq,
            tool: r.body["tool"].as_str().unwrap_or("unknown").to_string(),
            arguments: r.body["arguments"].clone(),
        })
        .collect()
}

impl Agent {
    /// Marks every incident with an unfinished action `interrupted`,
    /// audits it and escalates. Returns the incidents marked.
    pub async fn recover_interrupted(&self) -> Result<Vec<String>, StoreError> {
        // Only the records that settle an intent: start-up must not read
        // the whole history.
        let trail = self
            .store
            .audit_of_kinds(&["intent", "execution", "interrupted"])?;
        let mut marked = Vec::new();
        for action in unfinished_actions(&trail) {
            let mut incident = self.store.incident(&action.incident)?;
            let reason = format!(
                "the agent stopped while `{}` ran (intent record {}); whether it took effect is unknown, and it is not re-run: check the target by hand",
                action.tool, action.intent_seq
            );
            self.audit(
                &action.incident,
                "interrupted",
                serde_json::json!({"tool": action.tool, "arguments": action.arguments,
                                   "intent_seq": action.intent_seq, "reason": reason}),
            )?;
            incident.state = IncidentState::Interrupted;
            self.store.put_incident(&incident)?;
            let service = incident.service.clone().unwrap_or_default();
            self.escalate(&action.incident, &incident.title, &service, &reason)
                .await?;
            marked.push(action.incident);
        }
        // Incidents the agent was still working on (gathering context,
        // deciding) when it stopped: not finished — a finished one has its
        // report — and never left open forever.
        for mut incident in self.store.incidents()? {
            let working = matches!(
                incident.state,
                IncidentState::Open | IncidentState::Remediating
            );
            if !working || marked.contains(&incident.id) || self.store.report(&incident.id).is_ok()
            {
                continue;
            }
            let reason = "the agent stopped while it handled this incident, before any action started; nothing was changed: look at it by hand".to_string();
            self.audit(
                &incident.id,
                "interrupted",
                serde_json::json!({"reason": reason, "state_was": incident.state}),
            )?;
            incident.state = IncidentState::Interrupted;
            incident.closed_at = Some(chrono::Utc::now());
            self.store.put_incident(&incident)?;
            let report = super::report::render(&incident, &self.store.audit(Some(&incident.id))?);
            self.store.put_report(&incident.id, &report)?;
            let service = incident.service.clone().unwrap_or_default();
            self.escalate(&incident.id, &incident.title, &service, &reason)
                .await?;
            marked.push(incident.id);
        }
        Ok(marked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, incident: &str, kind: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at: chrono::Utc::now(),
            incident: Some(incident.into()),
            kind: kind.into(),
            body: serde_json::json!({"tool": "rollback_deployment", "arguments": {"name": "x"}}),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn an_intent_without_an_execution_is_unfinished() {
        let trail = [
            record(1, "INC-1", "intent"),
            record(2, "INC-1", "execution"),
            record(3, "INC-2", "decision"),
            record(4, "INC-2", "intent"),
            record(5, "INC-3", "intent"),
            record(6, "INC-3", "interrupted"),
        ];
        let open = unfinished_actions(&trail);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].incident, "INC-2");
        assert_eq!(open[0].intent_seq, 4);
        assert_eq!(open[0].tool, "rollback_deployment");
    }

    #[test]
    fn a_second_action_after_a_finished_one_is_tracked() {
        let trail = [
            record(1, "INC-1", "intent"),
            record(2, "INC-1", "execution"),
            record(3, "INC-1", "intent"),
        ];
        assert_eq!(unfinished_actions(&trail)[0].intent_seq, 3);
    }
}

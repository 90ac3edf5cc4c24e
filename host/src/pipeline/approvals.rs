//! A human's answer to a pending action. An approval binds to the exact
//! tool, arguments and autonomy-policy version it was requested under, and
//! expires; the guardrails that can change with time (blast radius,
//! cooldown, circuit breaker) run again before the action does.

use super::act::{self, ActionOutcome, ActionStatus};
use super::guard::{self, Verdict};
use super::{Agent, now_ms};
use crate::intake::Alert;
use crate::store::{ApprovalState, IncidentState, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("approval {id} is {state:?}, not pending")]
    NotPending { id: String, state: ApprovalState },
    #[error("approval {id} expired at {at}")]
    Expired { id: String, at: String },
    #[error(
        "approval {id} was requested under autonomy policy {requested}, but {current} is in force; the action must be proposed again"
    )]
    PolicyChanged {
        id: String,
        requested: String,
        current: String,
    },
    #[error("approval {id}: {step} now refuses: {reason}")]
    Refused {
        id: String,
        step: &'static str,
        reason: String,
    },
    #[error("approval {id}: {0}", id = .0)]
    Invalid(String),
}

impl Agent {
    /// Denies a pending action; nothing runs.
    pub fn deny(&self, id: &str, by: &str) -> Result<(), ApprovalError> {
        let mut a = self.store.approval(id)?;
        if a.state != ApprovalState::Pending {
            return Err(ApprovalError::NotPending {
                id: id.into(),
                state: a.state,
            });
        }
        a.state = ApprovalState::Denied;
        a.decided_by = Some(by.into());
        self.store.put_approval(&a)?;
        self.audit(
            &a.incident,
            "approval",
            serde_json::json!({"id": id, "decision": "denied", "by": by}),
        )?;
        let mut inc = self.store.incident(&a.incident)?;
        inc.state = IncidentState::Escalated;
        self.store.put_incident(&inc)?;
        crate::telemetry::action_denied();
        Ok(())
    }

    /// Approves a pending action and runs it (intent → execute → verify).
    pub async fn approve(&self, id: &str, by: &str) -> Result<ActionOutcome, ApprovalError> {
        let mut a = self.store.approval(id)?;
        if a.state != ApprovalState::Pending {
            return Err(ApprovalError::NotPending {
                id: id.into(),
                state: a.state,
            });
        }
        if chrono::Utc::now() > a.expires_at {
            a.state = ApprovalState::Expired;
            self.store.put_approval(&a)?;
            return Err(ApprovalError::Expired {
                id: id.into(),
                at: a.expires_at.to_rfc3339(),
            });
        }
        if a.policy_version != self.autonomy.version {
            return Err(ApprovalError::PolicyChanged {
                id: id.into(),
                requested: a.policy_version.clone(),
                current: self.autonomy.version.clone(),
            });
        }
        let target = guard::target_of(&a.arguments);
        let now = now_ms();
        let refusal = {
            let mut state = self
                .guard
                .lock()
                .map_err(|_| StoreError::Db("guard state poisoned".into()))?;
            let checks = [
                (
                    "blast-radius",
                    guard::blast_radius(&self.autonomy, &a.arguments),
                ),
                (
                    "cooldown",
                    guard::cooldown(&self.autonomy, &state, &a.tool, &target, now),
                ),
                (
                    "circuit-breaker",
                    guard::circuit_breaker(&self.autonomy, &mut state, now),
                ),
            ];
            checks.into_iter().find_map(|(step, v)| match v {
                Verdict::Refuse(reason) => Some((step, reason)),
                _ => None,
            })
        };
        // A check may have tripped the breaker: persist before answering.
        self.save_guard()?;
        if let Some((step, reason)) = refusal {
            return Err(ApprovalError::Refused {
                id: id.into(),
                step,
                reason,
            });
        }
        let plugin = self.registry.get(&a.plugin).ok_or_else(|| {
            ApprovalError::Invalid(format!("plugin `{}` is not loaded", a.plugin))
        })?;
        let specs = plugin
            .describe_tools(&self.registry.services)
            .await
            .result
            .map_err(|e| ApprovalError::Invalid(e.to_string()))?;
        let (call, _) = crate::toolcall::validate(&specs, &a.tool, &a.arguments.to_string())
            .map_err(|e| ApprovalError::Invalid(e.to_string()))?;

        a.state = ApprovalState::Approved;
        a.decided_by = Some(by.into());
        self.store.put_approval(&a)?;
        self.audit(&a.incident, "approval", serde_json::json!({"id": id, "decision": "approved", "by": by, "tool": a.tool, "arguments": a.arguments, "policy_version": a.policy_version}))?;

        let alert = self.incident_alert(&a.incident)?;
        let rb = self.runbooks.get(&alert.name);
        let out = ActionOutcome {
            plugin: a.plugin.clone(),
            tool: a.tool.clone(),
            arguments: a.arguments.clone(),
            verdicts: vec![],
            plan: None,
            result: None,
            status: ActionStatus::Observed,
        };
        let out =
            act::execute_and_verify(self, &a.incident, &alert, &call, &target, rb, out).await?;
        crate::telemetry::action(&out.status);
        let mut inc = self.store.incident(&a.incident)?;
        inc.state = if matches!(out.status, ActionStatus::Recovered) {
            IncidentState::Resolved
        } else {
            IncidentState::Escalated
        };
        inc.closed_at = Some(chrono::Utc::now());
        self.store.put_incident(&inc)?;
        let report = super::report::render(&inc, &self.store.audit(Some(&inc.id))?);
        self.store.put_report(&inc.id, &report)?;
        Ok(out)
    }

    /// The primary alert of an incident, from its audit trail.
    fn incident_alert(&self, incident: &str) -> Result<Alert, ApprovalError> {
        let records = self.store.audit(Some(incident))?;
        let rec = records.iter().find(|r| r.kind == "alert").ok_or_else(|| {
            ApprovalError::Invalid(format!("incident {incident} has no alert record"))
        })?;
        serde_json::from_value(rec.body["alerts"][0].clone()).map_err(|e| {
            ApprovalError::Invalid(format!("incident {incident}: unreadable alert record: {e}"))
        })
    }
}

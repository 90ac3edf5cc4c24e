//! A human's answer to a pending action.
//!
//! An approval binds to the digest of tool, arguments, planned effects and
//! autonomy-policy version, and expires. It is decided once: approve and
//! deny are one compare-and-set in the store, so of concurrent deciders
//! exactly one wins and the stored decision is what ran. Before an approved
//! action runs the host plans it again; if the effects differ from what was
//! approved, the approval no longer matches and nothing runs. Whoever
//! requested an action cannot approve it, and nothing is approved while the
//! agent is in `observe` mode.

use super::act::{self, ActionOutcome, ActionStatus};
use super::autonomy::Mode;
use super::guard::Verdict;
use super::{Agent, now_ms, planned};
use crate::intake::Alert;
use crate::store::{Approval, ApprovalState, IncidentState, StoreError};

/// Who the agent records for decisions it makes itself (expiry).
pub const AGENT_IDENTITY: &str = "runwarden";

/// The authenticated identity behind a caller, whichever channel it used:
/// an MCP call over HTTP is `mcp:http:NAME`, the same token on the API is
/// `http:NAME` — one person, who may not approve their own request.
pub fn principal(identity: &str) -> &str {
    identity.strip_prefix("mcp:").unwrap_or(identity)
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Store(StoreError),
    /// Somebody decided first (or it expired).
    #[error("approval {id} is already {state:?}{}", .by.as_ref().map(|b| format!(", decided by {b}")).unwrap_or_default())]
    AlreadyDecided {
        id: String,
        state: ApprovalState,
        by: Option<String>,
    },
    #[error("approval {id} expired at {at}; its incident is escalated")]
    Expired { id: String, at: String },
    #[error(
        "approval {id} was requested under autonomy policy {requested}, but {current} is in force; the action must be proposed again"
    )]
    PolicyChanged {
        id: String,
        requested: String,
        current: String,
    },
    #[error(
        "approval {id}: the action would now do something else than what was approved ({now}); nothing ran, propose it again"
    )]
    PlanChanged { id: String, now: String },
    #[error("approval {id}: {step} now refuses: {reason}")]
    Refused {
        id: String,
        step: &'static str,
        reason: String,
    },
    #[error(
        "approval {id}: {who} requested this action and cannot approve it; a second person must"
    )]
    SelfApproval { id: String, who: String },
    #[error("approval {id}: the agent is in observe mode; nothing mutating runs, approved or not")]
    ObserveMode { id: String },
    #[error("approval {id}: {reason}")]
    Invalid { id: String, reason: String },
}

impl From<StoreError> for ApprovalError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyDecided { id, state, by } => {
                ApprovalError::AlreadyDecided { id, state, by }
            }
            other => ApprovalError::Store(other),
        }
    }
}

impl ApprovalError {
    /// Whether the answer is "somebody else's decision stands" (HTTP 409)
    /// rather than a refusal of this request.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ApprovalError::AlreadyDecided { .. } | ApprovalError::Expired { .. }
        )
    }
}

impl Agent {
    /// Denies a pending action; nothing runs.
    pub fn deny(&self, id: &str, by: &str) -> Result<(), ApprovalError> {
        let a = self.store.approval(id)?;
        self.refuse_if_expired(&a)?;
        let a = self
            .store
            .decide_approval(id, ApprovalState::Denied, by, chrono::Utc::now())?;
        self.audit(
            &a.incident,
            "approval",
            serde_json::json!({"id": id, "decision": "denied", "by": by}),
        )?;
        self.set_incident_state(&a.incident, IncidentState::Escalated)?;
        crate::telemetry::action_denied();
        Ok(())
    }

    /// Approves a pending action and runs it (re-plan → digest check →
    /// intent → execute bound to the plan → verify).
    pub async fn approve(&self, id: &str, by: &str) -> Result<ActionOutcome, ApprovalError> {
        let a = self.store.approval(id)?;
        if a.state != ApprovalState::Pending {
            return Err(ApprovalError::AlreadyDecided {
                id: id.into(),
                state: a.state,
                by: a.decided_by,
            });
        }
        self.refuse_if_expired(&a)?;
        if a.requested_by.as_deref().map(principal) == Some(principal(by)) {
            return Err(ApprovalError::SelfApproval {
                id: id.into(),
                who: by.into(),
            });
        }
        let policy = self.autonomy_now().into_owned();
        if policy.mode == Mode::Observe {
            return Err(ApprovalError::ObserveMode { id: id.into() });
        }
        if a.policy_version != policy.version {
            return Err(ApprovalError::PolicyChanged {
                id: id.into(),
                requested: a.policy_version.clone(),
                current: policy.version.clone(),
            });
        }
        let plugin = self
            .registry
            .get(&a.plugin)
            .ok_or_else(|| ApprovalError::Invalid {
                id: id.into(),
                reason: format!("plugin `{}` is not loaded", a.plugin),
            })?;
        let planned = planned::plan_call(plugin, &self.registry.services, &a.tool, &a.arguments)
            .await
            .map_err(|e| ApprovalError::Invalid {
                id: id.into(),
                reason: e.to_string(),
            })?;
        if planned.digest(&policy.version) != a.digest {
            let now = planned.effect_lines().join("; ");
            self.audit(
                &a.incident,
                "approval-mismatch",
                serde_json::json!({"id": id, "by": by, "approved_effects": a.effects, "planned_effects": planned.effects}),
            )?;
            return Err(ApprovalError::PlanChanged { id: id.into(), now });
        }
        // The human answers the reasons approval was asked for; what can
        // refuse outright (blast radius, cooldown, breaker) is asked again.
        let checks = act::time_dependent_checks(self, &policy, &planned.effects, now_ms())?;
        if let Some((step, reason)) = checks.into_iter().find_map(|(step, v)| match v {
            Verdict::Refuse(reason) => Some((step, reason)),
            _ => None,
        }) {
            return Err(ApprovalError::Refused {
                id: id.into(),
                step,
                reason,
            });
        }

        let a = self
            .store
            .decide_approval(id, ApprovalState::Approved, by, chrono::Utc::now())?;
        self.audit(&a.incident, "approval", serde_json::json!({"id": id, "decision": "approved", "by": by, "tool": a.tool, "arguments": a.arguments, "effects": a.effects, "digest": a.digest, "policy_version": a.policy_version}))?;

        let alert = self.incident_alert(&a.incident)?;
        // The runbook the incident was decided with, found the same way; a
        // call an operator or MCP client asked for had none (`requested.rs`
        // runs it without one), so its approval verifies without one too.
        let rb = if self.requested_call(&a.incident)? {
            None
        } else {
            crate::analysis::runbook::find(
                &self.runbooks,
                &alert.name,
                &alert.labels,
                alert.annotations.get("runbook_url").map(String::as_str),
            )
            .map(|(rb, _)| rb)
        };
        let out = ActionOutcome::new(&a.plugin, &a.tool, &a.arguments);
        let out = act::execute_and_verify(self, &a.incident, &alert, &planned, rb, out).await?;
        crate::telemetry::action(&out.status);
        let state = if matches!(out.status, ActionStatus::Recovered) {
            IncidentState::Resolved
        } else {
            IncidentState::Escalated
        };
        self.set_incident_state(&a.incident, state)?;
        Ok(out)
    }

    /// Expires every pending approval past its deadline: audited, and its
    /// incident escalated (the escalation targets are notified). Returns the
    /// ids it expired. The server runs it periodically.
    pub async fn expire_overdue(&self) -> Result<Vec<String>, StoreError> {
        let now = chrono::Utc::now();
        let mut expired = Vec::new();
        for a in self.store.approvals()? {
            if a.state != ApprovalState::Pending || a.expires_at >= now {
                continue;
            }
            match self.expire(&a) {
                Ok(()) => {
                    let reason = format!("approval {} for `{}` expired unanswered", a.id, a.tool);
                    if let Ok(inc) = self.store.incident(&a.incident) {
                        let service = inc.service.clone().unwrap_or_default();
                        self.escalate(&a.incident, &inc.title, &service, &reason)
                            .await?;
                    }
                    expired.push(a.id);
                }
                // Somebody decided it meanwhile: their decision stands.
                Err(StoreError::AlreadyDecided { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    fn refuse_if_expired(&self, a: &Approval) -> Result<(), ApprovalError> {
        if chrono::Utc::now() <= a.expires_at {
            return Ok(());
        }
        match self.expire(a) {
            Ok(()) | Err(StoreError::AlreadyDecided { .. }) => Err(ApprovalError::Expired {
                id: a.id.clone(),
                at: a.expires_at.to_rfc3339(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn expire(&self, a: &Approval) -> Result<(), StoreError> {
        self.store.decide_approval(
            &a.id,
            ApprovalState::Expired,
            AGENT_IDENTITY,
            chrono::Utc::now(),
        )?;
        self.audit(
            &a.incident,
            "approval-expired",
            serde_json::json!({"id": a.id, "tool": a.tool, "expired_at": a.expires_at.to_rfc3339()}),
        )?;
        self.set_incident_state(&a.incident, IncidentState::Escalated)
    }

    /// A human closes an incident (resolved, with the reason), audited; the
    /// next firing of its alerts opens a new incident. Refused for an
    /// incident that is still being handled or waits for an approval.
    pub fn close_incident(&self, id: &str, by: &str, reason: &str) -> Result<(), ApprovalError> {
        let inc = self.store.incident(id)?;
        if matches!(
            inc.state,
            IncidentState::Remediating | IncidentState::WaitingApproval
        ) {
            return Err(ApprovalError::Invalid {
                id: id.into(),
                reason: format!(
                    "incident {id} is {:?}: decide its pending action (or wait for it) first",
                    inc.state
                ),
            });
        }
        self.audit(
            id,
            "closed",
            serde_json::json!({"by": by, "reason": reason, "state_was": inc.state}),
        )?;
        self.set_incident_state(id, IncidentState::Resolved)?;
        Ok(())
    }

    /// Closes or escalates an incident and stores its report.
    fn set_incident_state(&self, incident: &str, state: IncidentState) -> Result<(), StoreError> {
        let mut inc = self.store.incident(incident)?;
        inc.state = state;
        if matches!(state, IncidentState::Resolved | IncidentState::Escalated) {
            inc.closed_at = Some(chrono::Utc::now());
        }
        self.store.put_incident(&inc)?;
        let report = super::report::render(&inc, &self.store.audit(Some(&inc.id))?);
        self.store.put_report(&inc.id, &report)
    }

    /// Whether the incident is a call a person or an MCP client asked for
    /// (its decision's planner), rather than an alert's.
    fn requested_call(&self, incident: &str) -> Result<bool, StoreError> {
        Ok(self
            .store
            .audit(Some(incident))?
            .iter()
            .find(|r| r.kind == "decision")
            .and_then(|r| r.body["planner"].as_str().map(str::to_string))
            .is_some_and(|p| p == "operator" || p == "mcp"))
    }

    /// The primary alert of an incident, from its audit trail.
    fn incident_alert(&self, incident: &str) -> Result<Alert, ApprovalError> {
        let invalid = |reason: String| ApprovalError::Invalid {
            id: incident.to_string(),
            reason,
        };
        let records = self.store.audit(Some(incident))?;
        let rec = records
            .iter()
            .find(|r| r.kind == "alert")
            .ok_or_else(|| invalid(format!("incident {incident} has no alert record")))?;
        let sent: Alert = serde_json::from_value(rec.body["alerts"][0].clone())
            .map_err(|e| invalid(format!("incident {incident}: unreadable alert record: {e}")))?;
        let mut alert = self.senders.apply(&sent);
        // The workload the host resolved when it decided, as it decided.
        if let Some(host) = records
            .iter()
            .find(|r| r.kind == "facts")
            .and_then(|r| r.body["labels"].as_object())
        {
            alert
                .labels
                .retain(|k, _| !k.starts_with(crate::facts::HOST_LABEL_PREFIX));
            for (k, v) in host {
                if k.starts_with(crate::facts::HOST_LABEL_PREFIX)
                    && let Some(v) = v.as_str()
                {
                    alert.labels.insert(k.clone(), v.to_string());
                }
            }
        }
        Ok(alert)
    }
}

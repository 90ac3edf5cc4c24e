//! Tool calls asked for from outside an alert (an MCP client): the same
//! guardrails, approvals and audit as the planner's proposals.
//!
//! Each call becomes an incident of its own, opened by a synthetic alert
//! `McpToolCall` labelled with the call's namespace, so the audit trail,
//! approvals, the breaker and reports work exactly as for an alert. The
//! caller's proposal carries `low` confidence and no tier: whatever the
//! autonomy policy demands of the least trusted proposal applies. Nothing
//! here can change a grant or the policy.

use super::{Agent, act};
use crate::analysis::{Confidence, Decision, PlannerKind, ProposedAction};
use crate::intake::{Alert, Sender, Status};
use crate::store::{IncidentRecord, IncidentState, StoreError};

/// What became of a requested call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Requested {
    pub incident: String,
    pub outcome: act::ActionOutcome,
}

impl Agent {
    /// Runs `plugin`.`tool` with `arguments` through the guardrails on
    /// behalf of `client`.
    pub async fn run_requested(
        &self,
        client: &str,
        plugin: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<Requested, StoreError> {
        let id = self.store.next_incident_id()?;
        let mut labels = std::collections::BTreeMap::from([
            ("alertname".to_string(), "McpToolCall".to_string()),
            ("source".to_string(), "mcp".to_string()),
        ]);
        for key in ["namespace", "name"] {
            if let Some(v) = arguments.get(key).and_then(|v| v.as_str()) {
                let label = if key == "name" { "service" } else { key };
                labels.insert(label.to_string(), v.to_string());
            }
        }
        let now = chrono::Utc::now();
        let alert = Alert {
            sender: Sender::Mcp,
            name: "McpToolCall".into(),
            status: Status::Firing,
            fingerprint: format!("mcp-{id}"),
            labels,
            annotations: std::collections::BTreeMap::from([(
                "summary".to_string(),
                format!("{client} asked for {plugin}.{tool} over MCP"),
            )]),
            starts_at: now,
            ends_at: None,
            generator_url: None,
        };
        let mut record = IncidentRecord {
            id: id.clone(),
            title: format!("MCP: {plugin}.{tool} for {client}"),
            service: alert.label("service").map(str::to_string),
            namespace: alert.label("namespace").map(str::to_string),
            state: IncidentState::Remediating,
            opened_at: now,
            closed_at: None,
            detail: serde_json::json!({"mcp_client": client}),
            summary: format!("McpToolCall {plugin} {tool}"),
        };
        self.store.put_incident(&record)?;
        self.audit(&id, "alert", serde_json::json!({"alerts": [&alert], "mcp": {"client": client, "plugin": plugin, "tool": tool, "arguments": arguments}}))?;
        let proposed = ProposedAction {
            plugin: plugin.into(),
            tool: tool.into(),
            arguments,
            rationale: format!("requested by the MCP client `{client}`"),
        };
        let decision = Decision {
            planner: PlannerKind::Mcp,
            decided_by: client.into(),
            hypothesis: format!("{client} asked for this call over MCP"),
            confidence: Confidence::Low,
            actions: vec![proposed.clone()],
            risk_assessment: "unassessed: an outside caller's proposal".into(),
            evidence: vec![],
        };
        self.audit(
            &id,
            "decision",
            serde_json::to_value(&decision).unwrap_or_default(),
        )?;
        let outcome = act::run(self, &id, &alert, &decision, &proposed, None).await?;
        record.state = match &outcome.status {
            act::ActionStatus::WaitingApproval { .. } => IncidentState::WaitingApproval,
            act::ActionStatus::Observed => IncidentState::Open,
            // Executed: there is no recovery condition to wait for.
            act::ActionStatus::Recovered | act::ActionStatus::NotRecovered => {
                IncidentState::Resolved
            }
            act::ActionStatus::Refused { .. } | act::ActionStatus::Failed { .. } => {
                IncidentState::Escalated
            }
        };
        if matches!(
            record.state,
            IncidentState::Resolved | IncidentState::Escalated
        ) {
            record.closed_at = Some(chrono::Utc::now());
        }
        record.summary = format!("{} | {}", record.summary, outcome.summary());
        self.store.put_incident(&record)?;
        let report = super::report::render(&record, &self.store.audit(Some(&id))?);
        self.store.put_report(&id, &report)?;
        Ok(Requested {
            incident: id,
            outcome,
        })
    }
}

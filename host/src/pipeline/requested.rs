//! Tool calls asked for from outside an alert — an MCP client, or an
//! operator's `runwarden plugin call` — with the same guardrails, approvals
//! and audit as the planner's proposals.
//!
//! Each call becomes an incident of its own, opened by a synthetic alert
//! (`McpToolCall`, `OperatorToolCall`) labelled with the call's namespace,
//! so the audit trail, approvals, the breaker and reports work exactly as
//! for an alert. The caller's proposal carries `low` confidence: whatever
//! the autonomy policy demands of the least trusted proposal applies. The
//! caller is recorded as the requester and cannot approve its own request.
//! Nothing here can change a grant or the policy.

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

/// Where a requested call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Mcp,
    /// `runwarden plugin call`.
    Cli,
}

impl Channel {
    fn alert_name(self) -> &'static str {
        match self {
            Channel::Mcp => "McpToolCall",
            Channel::Cli => "OperatorToolCall",
        }
    }
    fn word(self) -> &'static str {
        match self {
            Channel::Mcp => "MCP",
            Channel::Cli => "the CLI",
        }
    }
}

impl Agent {
    /// Runs `plugin`.`tool` with `arguments` through the guardrails on
    /// behalf of `client`, over MCP.
    pub async fn run_requested(
        &self,
        client: &str,
        plugin: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<Requested, StoreError> {
        let requester = act::Requester {
            identity: Some(client.to_string()),
            skip_autonomy: false,
        };
        self.run_requested_via(Channel::Mcp, &requester, plugin, tool, arguments)
            .await
    }

    /// Runs a call asked for over `channel` by `requester`.
    pub async fn run_requested_via(
        &self,
        channel: Channel,
        requester: &act::Requester,
        plugin: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<Requested, StoreError> {
        let client = requester.identity.as_deref().unwrap_or("unknown");
        let id = self.store.next_incident_id()?;
        let mut labels = std::collections::BTreeMap::from([
            ("alertname".to_string(), channel.alert_name().to_string()),
            (
                "source".to_string(),
                match channel {
                    Channel::Mcp => "mcp",
                    Channel::Cli => "cli",
                }
                .to_string(),
            ),
        ]);
        // For the incident's title and report only; the guardrails judge
        // the plan's typed effects.
        for key in ["namespace", "name"] {
            if let Some(v) = arguments.get(key).and_then(|v| v.as_str()) {
                let label = if key == "name" { "service" } else { key };
                labels.insert(label.to_string(), v.to_string());
            }
        }
        let now = chrono::Utc::now();
        let alert = Alert {
            sender: match channel {
                Channel::Mcp => Sender::Mcp,
                Channel::Cli => Sender::Operator,
            },
            name: channel.alert_name().into(),
            status: Status::Firing,
            fingerprint: format!("mcp-{id}"),
            labels,
            annotations: std::collections::BTreeMap::from([(
                "summary".to_string(),
                format!("{client} asked for {plugin}.{tool} over {}", channel.word()),
            )]),
            starts_at: now,
            ends_at: None,
            generator_url: None,
        };
        let mut record = IncidentRecord {
            id: id.clone(),
            title: format!(
                "{}: {plugin}.{tool} for {client}",
                match channel {
                    Channel::Mcp => "MCP",
                    Channel::Cli => "CLI",
                }
            ),
            service: alert.label("service").map(str::to_string),
            namespace: alert.label("namespace").map(str::to_string),
            state: IncidentState::Remediating,
            opened_at: now,
            closed_at: None,
            detail: serde_json::json!({"requested_by": client, "channel": channel.alert_name()}),
            summary: format!("{} {plugin} {tool}", channel.alert_name()),
        };
        self.store.put_incident(&record)?;
        self.audit(&id, "alert", serde_json::json!({"alerts": [&alert], "requested": {"channel": channel.alert_name(), "client": client, "plugin": plugin, "tool": tool, "arguments": arguments, "skip_autonomy": requester.skip_autonomy}}))?;
        let proposed = ProposedAction {
            plugin: plugin.into(),
            tool: tool.into(),
            arguments,
            rationale: format!("requested by `{client}` over {}", channel.word()),
            provenance: Default::default(),
        };
        let decision = Decision {
            planner: match channel {
                Channel::Mcp => PlannerKind::Mcp,
                Channel::Cli => PlannerKind::Operator,
            },
            decided_by: client.into(),
            hypothesis: format!("{client} asked for this call over {}", channel.word()),
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
        let outcome = act::run(self, &id, &alert, &decision, &proposed, None, requester).await?;
        record.state = match &outcome.status {
            act::ActionStatus::WaitingApproval { .. } => IncidentState::WaitingApproval,
            act::ActionStatus::Observed => IncidentState::Open,
            // Executed: there is no recovery condition to wait for.
            act::ActionStatus::Recovered
            | act::ActionStatus::NotRecovered
            | act::ActionStatus::Read => IncidentState::Resolved,
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

//! Analysis: from an incident's context to one [`Decision`].
//!
//! Two planners produce the same type. The runbook planner ([`runbook`]) is
//! the default and the fallback: a decision tree written by people. The LLM
//! planner proposes the same shape; either way every proposed action is
//! validated and guarded before anything runs.

pub mod llm;
pub mod provenance;
pub mod runbook;
pub mod senders;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlannerKind {
    Runbook,
    Llm,
    /// An MCP client proposed the call (`runwarden mcp`).
    Mcp,
    /// An operator asked for it (`runwarden plugin call`).
    Operator,
}

/// One action a planner proposes: a tool call with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedAction {
    pub plugin: String,
    pub tool: String,
    pub arguments: serde_json::Value,
    pub rationale: String,
    /// What the runbook planner knows about each argument it built (the
    /// host ignores this for every other planner: `provenance.rs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provenance: BTreeMap<String, (provenance::Source, String)>,
}

/// What a planner decided about an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub planner: PlannerKind,
    /// The runbook rule (or model) that decided.
    pub decided_by: String,
    pub hypothesis: String,
    pub confidence: Confidence,
    pub actions: Vec<ProposedAction>,
    pub risk_assessment: String,
    /// Summaries of the evidence the decision rests on.
    pub evidence: Vec<String>,
}

/// One piece of evidence as the planners see it (from a context source or
/// the host's built-in sources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    pub source: String,
    pub kind: String,
    pub summary: String,
    pub body: serde_json::Value,
    /// What the source stated this evidence shows (checked and attributed
    /// in `facts::signals`); empty: the host derives facts from the body.
    #[serde(skip)]
    pub facts: Vec<runwarden_observe::Observed>,
}

impl EvidenceItem {
    pub fn from_wit(source: &str, e: &crate::bindings::types::Evidence) -> Self {
        use crate::bindings::types::EvidenceKind as K;
        EvidenceItem {
            source: source.to_string(),
            kind: match e.kind {
                K::MetricSeries => "metric-series",
                K::LogLines => "log-lines",
                K::ChangeEvent => "change-event",
                K::K8sEvent => "k8s-event",
                K::Note => "note",
            }
            .to_string(),
            summary: e.summary.clone(),
            body: serde_json::from_str(&e.body_json).unwrap_or(serde_json::Value::Null),
            facts: crate::facts::signals::stated(&e.facts),
        }
    }
}

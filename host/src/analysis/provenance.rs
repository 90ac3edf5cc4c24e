//! Where each argument of a proposed action came from.
//!
//! Inside its grants a plugin may change many objects; *which* one, and by
//! how much, is decided by an argument. Whoever wrote that argument's value
//! steers the action, so the host records who that was:
//!
//! | source | who controls it | trusted to act alone |
//! |---|---|---|
//! | `operator` | a runbook constant or template, the policy, the inventory | yes |
//! | `alert-label` | the sender, through an authenticated webhook | yes |
//! | `requester` | an authenticated MCP caller or CLI operator | yes |
//! | `evidence` | log lines, events, annotations, tool output: anyone who can write a log line | no |
//! | `model` | the LLM, which read all of the above | no |
//!
//! The host derives this itself from the planner kind, the runbook's own
//! templates and the alert's labels — never from what a model says about
//! its answer. A value a model proposes is corroborated when it equals an
//! alert label's value. By default (`require_trusted_provenance`) an action
//! with an argument supported only by evidence or the model waits for a
//! human, even in `auto` mode.

use super::{Decision, PlannerKind, ProposedAction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Operator,
    AlertLabel,
    Requester,
    Evidence,
    Model,
}

impl Source {
    /// Operator-owned or authenticated: may support an unattended action.
    pub fn trusted(self) -> bool {
        matches!(
            self,
            Source::Operator | Source::AlertLabel | Source::Requester
        )
    }
}

/// One argument and what supports its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgumentProvenance {
    pub argument: String,
    pub value: serde_json::Value,
    pub sources: Vec<Source>,
    /// e.g. "runbook template {{service}}", "equals alert label `namespace`".
    pub detail: String,
}

impl ArgumentProvenance {
    pub fn trusted(&self) -> bool {
        self.sources.iter().any(|s| s.trusted())
    }
}

/// What the runbook planner knows about an argument it built.
pub fn from_runbook_template(template: &toml::Value) -> (Source, String) {
    match template.as_str() {
        Some(t) if t.contains("{{") => (Source::AlertLabel, format!("runbook template {t}")),
        _ => (Source::Operator, "runbook constant".into()),
    }
}

/// The provenance of every argument of `proposed`.
pub fn of_action(
    decision: &Decision,
    proposed: &ProposedAction,
    alert_labels: &BTreeMap<String, String>,
) -> Vec<ArgumentProvenance> {
    let Some(args) = proposed.arguments.as_object() else {
        return vec![];
    };
    args.iter()
        .map(|(name, value)| {
            let (base, mut detail) = match decision.planner {
                // Host code built these; its own note says how.
                PlannerKind::Runbook => proposed
                    .provenance
                    .get(name)
                    .cloned()
                    .unwrap_or((Source::Model, "not from the runbook's template".into())),
                // Whatever the model says about its answer, it is the model's.
                PlannerKind::Llm => (Source::Model, "proposed by the model".into()),
                PlannerKind::Mcp | PlannerKind::Operator => (
                    Source::Requester,
                    format!("given by {}", decision.decided_by),
                ),
            };
            let mut sources = vec![base];
            if let Some(label) = matching_label(value, alert_labels) {
                if !sources.contains(&Source::AlertLabel) {
                    sources.push(Source::AlertLabel);
                }
                detail.push_str(&format!("; equals alert label `{label}`"));
            }
            ArgumentProvenance {
                argument: name.clone(),
                value: value.clone(),
                sources,
                detail,
            }
        })
        .collect()
}

fn matching_label<'a>(
    value: &serde_json::Value,
    labels: &'a BTreeMap<String, String>,
) -> Option<&'a str> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    labels
        .iter()
        .find(|(k, v)| **v == text && k.as_str() != "tier")
        .map(|(k, _)| k.as_str())
}

/// The arguments nothing trusted supports.
pub fn untrusted(provenance: &[ArgumentProvenance]) -> Vec<&ArgumentProvenance> {
    provenance.iter().filter(|p| !p.trusted()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Confidence;
    use serde_json::json;

    fn decision(planner: PlannerKind) -> Decision {
        Decision {
            planner,
            decided_by: "x".into(),
            hypothesis: String::new(),
            confidence: Confidence::High,
            actions: vec![],
            risk_assessment: String::new(),
            evidence: vec![],
        }
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("namespace".to_string(), "payments".to_string()),
            ("service".to_string(), "payment-api".to_string()),
            ("tier".to_string(), "2".to_string()),
        ])
    }

    fn proposed(args: serde_json::Value) -> ProposedAction {
        ProposedAction {
            plugin: "p".into(),
            tool: "t".into(),
            arguments: args,
            rationale: String::new(),
            provenance: BTreeMap::new(),
        }
    }

    #[test]
    fn a_models_values_are_trusted_only_when_an_alert_label_corroborates_them() {
        let p = of_action(
            &decision(PlannerKind::Llm),
            &proposed(json!({"namespace": "payments", "name": "ledger", "replicas": 2})),
            &labels(),
        );
        let by = |n: &str| {
            p.iter()
                .find(|a| a.argument == n)
                .map(ArgumentProvenance::trusted)
        };
        assert_eq!(by("namespace"), Some(true));
        assert_eq!(
            by("name"),
            Some(false),
            "the alert names payment-api, not ledger"
        );
        assert_eq!(
            by("replicas"),
            Some(false),
            "2 matches only the tier label, which is ignored"
        );
        assert_eq!(untrusted(&p).len(), 2);
    }

    #[test]
    fn a_model_cannot_claim_operator_provenance() {
        let mut claimed = proposed(json!({"name": "ledger"}));
        claimed
            .provenance
            .insert("name".into(), (Source::Operator, "trust me".into()));
        let p = of_action(&decision(PlannerKind::Llm), &claimed, &labels());
        assert_eq!(p[0].sources, vec![Source::Model]);
    }

    #[test]
    fn runbook_templates_and_requesters() {
        let mut rb = proposed(json!({"name": "payment-api", "max_pods": 2}));
        rb.provenance.insert(
            "name".into(),
            from_runbook_template(&toml::Value::String("{{service}}".into())),
        );
        rb.provenance.insert(
            "max_pods".into(),
            from_runbook_template(&toml::Value::Integer(2)),
        );
        let p = of_action(&decision(PlannerKind::Runbook), &rb, &labels());
        assert!(p.iter().all(ArgumentProvenance::trusted));
        let p = of_action(
            &decision(PlannerKind::Mcp),
            &proposed(json!({"name": "ledger"})),
            &labels(),
        );
        assert_eq!(p[0].sources, vec![Source::Requester]);
    }
}

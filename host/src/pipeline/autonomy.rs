//! The autonomy policy (`policies/autonomy.toml`): what the agent may do on
//! its own, what waits for a human, and the guardrails around both.

use crate::analysis::Confidence;
use crate::bindings::types::Risk;
use crate::effects::EffectKind;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing mutating runs; plans are recorded for later comparison.
    Observe,
    /// Everything mutating waits for a human.
    Approve,
    /// Per the action rules below.
    Auto,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutonomyPolicy {
    pub mode: Mode,
    /// Bound into approvals: a policy change invalidates pending approvals.
    pub version: String,
    #[serde(default)]
    pub guardrails: Guardrails,
    /// When an effect may run unattended, by effect kind. Never by tool
    /// name: a third-party tool with the same effect meets the same rule.
    #[serde(default, rename = "action")]
    pub actions: Vec<ActionRule>,
    /// Effect kinds that always wait for a human, e.g. `resources`.
    #[serde(default)]
    pub always_require_approval: Vec<EffectKind>,
    /// Which workloads are which tier: the operator's, never the sender's
    /// (`pipeline/tier.rs`).
    #[serde(default)]
    pub inventory: Vec<super::tier::InventoryEntry>,
    /// The label on a Deployment that names its tier, read by the host from
    /// the cluster. Empty: none is read.
    #[serde(default = "d_tier_label")]
    pub tier_label: String,
    /// A change with an argument that only evidence text or the model
    /// supports waits for a human, even in `auto` mode
    /// (`analysis/provenance.rs`).
    #[serde(default = "d_true")]
    pub require_trusted_provenance: bool,
    /// Who hears about an incident the agent escalates.
    #[serde(default)]
    pub escalation: Vec<EscalationTarget>,
}

/// A notification tool call made when an incident is escalated. String
/// arguments may use `{{incident}}`, `{{title}}`, `{{reason}}`, `{{service}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationTarget {
    pub plugin: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: std::collections::BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    #[serde(default = "d_max_actions")]
    pub max_actions: u32,
    #[serde(default = "d_window")]
    pub window_minutes: u32,
    #[serde(default = "d_cooldown")]
    pub cooldown_minutes: u32,
    #[serde(default = "d_max_replicas")]
    pub max_replicas: u64,
    /// No action scales a workload below this (0 allows scaling to zero).
    #[serde(default = "d_min_replicas")]
    pub min_replicas: u32,
    /// Most distinct objects (workloads, certificates, DNS records) one
    /// action may change.
    #[serde(default = "d_max_objects")]
    pub max_objects_per_action: u32,
    #[serde(default = "d_max_restarts")]
    pub max_restarts: u64,
    #[serde(default = "d_approval_ttl")]
    pub approval_ttl_minutes: u32,
}

fn d_true() -> bool {
    true
}
fn d_tier_label() -> String {
    "tier".into()
}
fn d_min_replicas() -> u32 {
    1
}
fn d_max_objects() -> u32 {
    5
}
fn d_max_actions() -> u32 {
    5
}
fn d_window() -> u32 {
    10
}
fn d_cooldown() -> u32 {
    15
}
fn d_max_replicas() -> u64 {
    20
}
fn d_max_restarts() -> u64 {
    5
}
fn d_approval_ttl() -> u32 {
    30
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            max_actions: d_max_actions(),
            window_minutes: d_window(),
            cooldown_minutes: d_cooldown(),
            max_replicas: d_max_replicas(),
            min_replicas: d_min_replicas(),
            max_objects_per_action: d_max_objects(),
            max_restarts: d_max_restarts(),
            approval_ttl_minutes: d_approval_ttl(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRule {
    pub effect: EffectKind,
    pub auto_execute_if: AutoIf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoIf {
    pub min_confidence: Confidence,
    #[serde(with = "risk_name")]
    pub max_risk: Risk,
    /// Service tiers where the effect may run unattended, as the operator's
    /// inventory assigns them (`pipeline/tier.rs`); `"any"` also admits
    /// targets with no tier. A target without a tier otherwise never
    /// auto-executes.
    pub service_tiers: Vec<String>,
}

mod risk_name {
    use crate::bindings::types::Risk;
    use serde::Deserialize;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Risk, D::Error> {
        match String::deserialize(d)?.as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            other => Err(serde::de::Error::custom(format!(
                "invalid risk {other:?}: expected low, medium or high"
            ))),
        }
    }
}

pub fn risk_rank(r: Risk) -> u8 {
    match r {
        Risk::Low => 0,
        Risk::Medium => 1,
        Risk::High => 2,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct AutonomyError {
    pub path: String,
    pub message: String,
}

impl AutonomyPolicy {
    pub fn load(path: &Path) -> Result<Self, AutonomyError> {
        let err = |message: String| AutonomyError {
            path: path.display().to_string(),
            message,
        };
        let text = crate::files::read_text(path).map_err(|e| AutonomyError {
            path: String::new(),
            message: format!(
                "{e}. Every agent needs an autonomy policy next to the plugin policies; the smallest safe one is `mode = \"approve\"` and `version = \"1\"` (every change waits for a human); policies/autonomy.toml in the repository is a full example"
            ),
        })?;
        toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_string()))
    }

    pub fn rule_for(&self, effect: EffectKind) -> Option<&ActionRule> {
        self.actions.iter().find(|a| a.effect == effect)
    }
}

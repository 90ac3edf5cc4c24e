//! The autonomy policy (`policies/autonomy.toml`): what the agent may do on
//! its own, what waits for a human, and the guardrails around both.

use crate::analysis::Confidence;
use crate::bindings::types::Risk;
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
    #[serde(default, rename = "action")]
    pub actions: Vec<ActionRule>,
    /// Tools that always wait for a human, e.g. resource-limit changes.
    #[serde(default)]
    pub always_require_approval: Vec<String>,
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
    #[serde(default = "d_max_restarts")]
    pub max_restarts: u64,
    #[serde(default = "d_approval_ttl")]
    pub approval_ttl_minutes: u32,
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
            max_restarts: d_max_restarts(),
            approval_ttl_minutes: d_approval_ttl(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRule {
    pub tool: String,
    pub auto_execute_if: AutoIf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoIf {
    pub min_confidence: Confidence,
    #[serde(with = "risk_name")]
    pub max_risk: Risk,
    /// Service tiers (the alert's `tier` label) where the action may run
    /// unattended. An alert without a tier never auto-executes.
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
#[error("{path}: {message}")]
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
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_string()))
    }

    pub fn rule_for(&self, tool: &str) -> Option<&ActionRule> {
        self.actions.iter().find(|a| a.tool == tool)
    }
}

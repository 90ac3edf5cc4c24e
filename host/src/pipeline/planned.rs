//! A proposed call turned into something the host can judge: the tool's
//! declared spec, the schema-checked call, and the typed effects of its
//! read-only plan, with the digest an approval binds to.
//!
//! Every path that runs a tool — the planner's proposals, approvals,
//! escalation notices, MCP, `runwarden plugin call` — goes through
//! [`plan_call`], so none can execute what was not planned.

use crate::bindings::types::{self, ActionPlan, Effect as Declared, ToolCall, ToolSpec};
use crate::capability::CallMode;
use crate::effects::binding::PlanBinding;
use crate::effects::{self, Effect};
use crate::plugin::Plugin;
use crate::sandbox::fault::CallError;
use crate::sandbox::state::HostServices;
use std::sync::Arc;

/// A tool call with its plan.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub plugin: String,
    pub call: ToolCall,
    pub spec: ToolSpec,
    pub arguments: serde_json::Value,
    pub plan: ActionPlan,
    pub effects: Vec<Effect>,
}

/// Why a call could not be planned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error("no plugin `{0}` is loaded")]
    NoPlugin(String),
    /// The tool list could not be read.
    #[error("describe: {0}")]
    Describe(String),
    /// Unknown tool, or arguments outside its schema.
    #[error("{0}")]
    Schema(String),
    #[error("plan: {0}")]
    Plan(String),
    /// The host refused a capability call the plan needed (a namespace or
    /// operation outside the grant): the action is outside the grant.
    #[error("plan: the host refused: {0}")]
    Denied(String),
    /// A tool declared `read` planned changes: the declaration or the plan
    /// is wrong, and the host believes neither.
    #[error(
        "`{tool}` is declared read-only but its plan lists {count} change(s); refused (a read tool executes with every mutation denied)"
    )]
    ReadToolPlansChanges { tool: String, count: usize },
}

impl PlanError {
    /// The guardrail step that reports it.
    pub fn step(&self) -> &'static str {
        match self {
            PlanError::NoPlugin(_) | PlanError::Schema(_) => "schema",
            PlanError::Denied(_) => "capability",
            PlanError::Describe(_)
            | PlanError::Plan(_)
            | PlanError::ReadToolPlansChanges { .. } => "plan",
        }
    }
}

/// Describe → schema → plan (read-only) → typed effects.
pub async fn plan_call(
    plugin: &Plugin,
    services: &HostServices,
    tool: &str,
    arguments: &serde_json::Value,
) -> Result<PlannedCall, PlanError> {
    let specs = plugin
        .describe_tools(services)
        .await
        .result
        .map_err(|e| PlanError::Describe(e.to_string()))?;
    let (call, spec) = crate::toolcall::validate(&specs, tool, &arguments.to_string())
        .map_err(|e| PlanError::Schema(e.to_string()))?;
    let spec = spec.clone();
    let plan = plugin
        .plan(services, &call)
        .await
        .result
        .map_err(|e| match e {
            CallError::Plugin(types::Error::Denied(reason)) => PlanError::Denied(reason),
            other => PlanError::Plan(other.to_string()),
        })?;
    let effects = effects::of_changes(&plan.changes);
    if spec.effect == Declared::Read && !effects.is_empty() {
        return Err(PlanError::ReadToolPlansChanges {
            tool: spec.name,
            count: effects.len(),
        });
    }
    Ok(PlannedCall {
        plugin: plugin.name().to_string(),
        call,
        spec,
        arguments: arguments.clone(),
        plan,
        effects,
    })
}

impl PlannedCall {
    /// What binds an approval: tool, arguments, effects, policy version.
    pub fn digest(&self, policy_version: &str) -> String {
        effects::digest(
            &self.plugin,
            &self.call.tool,
            &self.arguments,
            &self.effects,
            policy_version,
        )
    }

    /// How `execute` runs: read-only for a tool declared `read` (the host
    /// enforces the declaration), else bound to the planned effects.
    pub fn call_mode(&self) -> CallMode {
        if self.spec.effect == Declared::Read {
            CallMode::ReadOnly
        } else {
            CallMode::Bound(Arc::new(PlanBinding::new(self.effects.clone())))
        }
    }

    pub fn effect_lines(&self) -> Vec<String> {
        self.effects.iter().map(Effect::describe).collect()
    }
}

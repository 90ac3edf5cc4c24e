//! Validating a tool call against the tool's declared JSON Schema, before the
//! plugin (or the capability checks behind it) sees anything.
//!
//! Whoever proposes a call — an operator on the CLI, the runbook planner or a
//! model — the call must name a tool the plugin declares and its arguments
//! must satisfy that tool's schema. Anything else is rejected with every
//! violation listed, and never executed.

use crate::bindings::types::{ToolCall, ToolSpec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallRejected {
    #[error("unknown tool `{tool}` (available: {available})")]
    UnknownTool { tool: String, available: String },
    #[error("arguments for `{tool}` are not a JSON object: {reason}")]
    NotAnObject { tool: String, reason: String },
    #[error("arguments for `{tool}` violate its schema: {}", .violations.join("; "))]
    Schema {
        tool: String,
        violations: Vec<String>,
    },
    #[error("tool `{tool}` declares an unusable schema: {reason}")]
    BadSchema { tool: String, reason: String },
}

/// Checks a proposed call; on success returns the call and its tool's spec.
pub fn validate<'a>(
    specs: &'a [ToolSpec],
    tool: &str,
    arguments_json: &str,
) -> Result<(ToolCall, &'a ToolSpec), CallRejected> {
    let spec = specs
        .iter()
        .find(|s| s.name == tool)
        .ok_or_else(|| CallRejected::UnknownTool {
            tool: tool.to_string(),
            available: specs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let args: serde_json::Value =
        serde_json::from_str(arguments_json).map_err(|e| CallRejected::NotAnObject {
            tool: tool.to_string(),
            reason: e.to_string(),
        })?;
    if !args.is_object() {
        return Err(CallRejected::NotAnObject {
            tool: tool.to_string(),
            reason: format!("got {}", kind_of(&args)),
        });
    }
    let schema: serde_json::Value =
        serde_json::from_str(&spec.parameters_schema).map_err(|e| CallRejected::BadSchema {
            tool: tool.to_string(),
            reason: e.to_string(),
        })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| CallRejected::BadSchema {
        tool: tool.to_string(),
        reason: e.to_string(),
    })?;
    let violations: Vec<String> = validator
        .iter_errors(&args)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if !violations.is_empty() {
        return Err(CallRejected::Schema {
            tool: tool.to_string(),
            violations,
        });
    }
    Ok((
        ToolCall {
            tool: tool.to_string(),
            arguments_json: args.to_string(),
        },
        spec,
    ))
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{Effect, Risk};

    fn specs() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "scale_deployment".into(),
            description: "scale".into(),
            parameters_schema: serde_json::json!({
                "type": "object",
                "properties": {"namespace": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0}},
                "required": ["namespace", "replicas"],
                "additionalProperties": false
            })
            .to_string(),
            effect: Effect::Mutate,
            risk: Risk::Medium,
            reversible: true,
        }]
    }

    #[test]
    fn accepts_a_valid_call() {
        let specs = specs();
        let r = validate(
            &specs,
            "scale_deployment",
            r#"{"namespace":"payments","replicas":4}"#,
        );
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn rejects_unknown_tools_and_lists_the_known_ones() {
        let specs = specs();
        let r = validate(&specs, "drop_database", "{}");
        assert!(
            matches!(r, Err(CallRejected::UnknownTool { available, .. }) if available == "scale_deployment")
        );
    }

    #[test]
    fn lists_every_schema_violation() {
        let specs = specs();
        let r = validate(
            &specs,
            "scale_deployment",
            r#"{"replicas":-1,"extra":true}"#,
        );
        let Err(CallRejected::Schema { violations, .. }) = r else {
            panic!("expected schema violations, got {r:?}")
        };
        assert!(violations.len() >= 3, "{violations:?}");
        assert!(violations.iter().any(|v| v.contains("namespace")));
        assert!(violations.iter().any(|v| v.starts_with("/replicas")));
    }

    #[test]
    fn rejects_non_objects() {
        let specs = specs();
        assert!(matches!(
            validate(&specs, "scale_deployment", "[1]"),
            Err(CallRejected::NotAnObject { .. })
        ));
        assert!(matches!(
            validate(&specs, "scale_deployment", "{"),
            Err(CallRejected::NotAnObject { .. })
        ));
    }
}

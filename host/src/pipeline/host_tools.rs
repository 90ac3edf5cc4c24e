//! The host's own read tools in the model's investigation: similar past
//! incidents and the runbook. They read only what the host already holds
//! (its store and runbook library) — nothing a plugin grant covers — and go
//! on the record like any plugin's read. They are offered under the plugin
//! name `runwarden`, which no policy may take.

use super::Agent;
use crate::analysis::llm::ToolOffer;
use crate::bindings::types::{Effect, Risk, ToolSpec};
use std::collections::BTreeMap;

/// The plugin name host tools are offered under.
pub const RESERVED_PLUGIN_NAME: &str = "runwarden";

const SIMILAR: &str = "similar_incidents";
const RUNBOOK: &str = "runbook";
/// Most incidents `similar_incidents` answers.
const MAX_SIMILAR: u64 = 10;

/// The host tools, as offers.
pub fn offers() -> Vec<ToolOffer> {
    let spec = |name: &str, description: &str, schema: serde_json::Value| ToolOffer {
        plugin: RESERVED_PLUGIN_NAME.to_string(),
        spec: ToolSpec {
            name: name.to_string(),
            description: description.to_string(),
            parameters_schema: schema.to_string(),
            effect: Effect::Read,
            risk: Risk::Low,
            reversible: true,
        },
    };
    vec![
        spec(
            SIMILAR,
            "Past incidents whose alert, service or summary match the words given: id, state, service, summary.",
            serde_json::json!({"type": "object", "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 500},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SIMILAR}},
                "required": ["text"], "additionalProperties": false}),
        ),
        spec(
            RUNBOOK,
            "The runbook for an alert name (by name, alias or matcher): its title and guidance.",
            serde_json::json!({"type": "object", "properties": {
                "alert": {"type": "string", "minLength": 1, "maxLength": 200}},
                "required": ["alert"], "additionalProperties": false}),
        ),
    ]
}

impl Agent {
    /// Runs a host tool on validated arguments: the text the model reads.
    pub(super) fn host_tool(
        &self,
        incident: &str,
        tool: &str,
        arguments: &serde_json::Value,
    ) -> Result<String, String> {
        match tool {
            SIMILAR => {
                let text = arguments["text"].as_str().unwrap_or_default();
                let limit = arguments["limit"]
                    .as_u64()
                    .unwrap_or(3)
                    .clamp(1, MAX_SIMILAR);
                let found = self
                    .store
                    .similar(text, incident, usize::try_from(limit).unwrap_or(3))
                    .map_err(|e| e.to_string())?;
                let rows: Vec<serde_json::Value> = found
                    .iter()
                    .map(|i| {
                        serde_json::json!({"id": i.id, "state": i.state, "service": i.service,
                            "namespace": i.namespace, "opened": i.opened_at.to_rfc3339(),
                            "summary": i.summary})
                    })
                    .collect();
                Ok(format!(
                    "{} similar incident(s)\n{}",
                    rows.len(),
                    serde_json::Value::Array(rows)
                ))
            }
            RUNBOOK => {
                let alert = arguments["alert"].as_str().unwrap_or_default();
                match crate::analysis::runbook::find(&self.runbooks, alert, &BTreeMap::new(), None)
                {
                    Some((rb, how)) => Ok(format!(
                        "runbook {:?} (found by {how})\n{}",
                        rb.title, rb.guidance
                    )),
                    None => Err(format!("no runbook for alert `{alert}`")),
                }
            }
            other => Err(format!("`{other}` is not a host tool")),
        }
    }
}

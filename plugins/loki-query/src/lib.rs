//! `query_loki`: a LogQL query the investigating model chooses.
//!
//! The model writes the query; the operator's policy decides where it goes
//! (`[config] url`, under the one origin the HTTP grant allows) and the host
//! runs the tool read-only. The answer is the newest lines, each clipped,
//! with how many matched — the host redacts secrets before the model reads
//! them, and every line stays data, whatever it says.

use runwarden_sdk::serde_json::json;
use runwarden_sdk::{
    ActionPlan, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest, ToolSpec,
    config, tool_spec,
};

struct LokiQuery;

const MAX_QUERY: usize = 2_000;
const DEFAULT_LINES: u64 = 50;
const MAX_LINES: u64 = 200;
/// Characters of one line the answer keeps.
const MAX_LINE_CHARS: usize = 300;

impl ToolGuest for LokiQuery {
    fn describe() -> Vec<ToolSpec> {
        let schema = json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY,
                          "description": "LogQL, e.g. {namespace=\"shop\", app=\"cart\"} |= \"error\""},
                "minutes": {"type": "integer", "minimum": 1, "maximum": 360,
                            "description": "how far back from now (default 60)"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LINES,
                          "description": "newest lines to return (default 50)"}
            },
            "required": ["query"],
            "additionalProperties": false
        });
        vec![tool_spec(
            "query_loki",
            "Run a LogQL query over the last N minutes; answers the newest matching log lines.",
            schema,
            Effect::Read,
            Risk::Low,
            true,
        )]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        let p = Params::of(&call)?;
        Ok(ActionPlan {
            summary: format!("query Loki: {}", p.str("query")?),
            changes: vec![],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let p = Params::of(&call)?;
        let query = p.str("query")?;
        let minutes = p.opt_u64("minutes")?.unwrap_or(60).clamp(1, 360);
        let limit = p
            .opt_u64("limit")?
            .unwrap_or(DEFAULT_LINES)
            .clamp(1, MAX_LINES);
        let base = config::get("url")
            .ok_or_else(|| Error::InvalidInput("config `url` is not set".into()))?;
        let end = runwarden_sdk::time::now_ms();
        let start = end - i64::try_from(minutes * 60_000).unwrap_or(3_600_000);
        let lines = runwarden_sdk::loki::query_range(
            &base,
            query,
            start,
            end,
            u32::try_from(limit).unwrap_or(50),
        )?;
        let shown: Vec<String> = lines
            .iter()
            .map(|(ms, line)| {
                let line: String = line.chars().take(MAX_LINE_CHARS).collect();
                format!("{} {line}", runwarden_sdk::time::format_utc(*ms))
            })
            .collect();
        Ok(Outcome {
            summary: format!("{} line(s) for {query} over {minutes} min", lines.len()),
            changes: vec![],
            detail_json: json!({"query": query, "minutes": minutes, "lines": shown}).to_string(),
        })
    }
}

runwarden_sdk::export_tool!(LokiQuery);

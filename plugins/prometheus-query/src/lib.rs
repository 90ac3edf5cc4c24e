//! `query_prometheus`: a PromQL range query the investigating model chooses.
//!
//! The model writes the query; the operator's policy decides where it goes
//! (`[config] url`, under the one origin the HTTP grant allows) and the host
//! runs the tool read-only (declared `read`: GET only, every mutation
//! denied). The answer is summarised per series — labels, first, last, min,
//! max and when it first moved — so the model reads numbers, not a dump.

use runwarden_sdk::serde_json::{Value, json};
use runwarden_sdk::{
    ActionPlan, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest, ToolSpec,
    config, tool_spec,
};

struct PrometheusQuery;

/// Series and characters the answer carries at most.
const MAX_SERIES: usize = 20;
const MAX_QUERY: usize = 2_000;

impl ToolGuest for PrometheusQuery {
    fn describe() -> Vec<ToolSpec> {
        let schema = json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY,
                          "description": "PromQL, e.g. sum(rate(http_requests_total{namespace=\"shop\",code=~\"5..\"}[5m]))"},
                "minutes": {"type": "integer", "minimum": 1, "maximum": 360,
                            "description": "how far back from now (default 60)"}
            },
            "required": ["query"],
            "additionalProperties": false
        });
        vec![tool_spec(
            "query_prometheus",
            "Run a PromQL range query over the last N minutes; answers each series' labels, first/last/min/max and when it first moved.",
            schema,
            Effect::Read,
            Risk::Low,
            true,
        )]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        let p = Params::of(&call)?;
        Ok(ActionPlan {
            summary: format!("query Prometheus: {}", p.str("query")?),
            changes: vec![],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let p = Params::of(&call)?;
        let query = p.str("query")?;
        let minutes = p.opt_u64("minutes")?.unwrap_or(60).clamp(1, 360);
        let base = config::get("url")
            .ok_or_else(|| Error::InvalidInput("config `url` is not set".into()))?;
        let end = runwarden_sdk::time::now_ms() / 1000;
        let start = end - i64::try_from(minutes * 60).unwrap_or(3600);
        let step = (minutes * 60 / 120).max(15);
        let series = runwarden_sdk::prometheus::query_range(&base, query, start, end, step)?;
        let described: Vec<Value> = series.iter().take(MAX_SERIES).map(describe).collect();
        let summary = match described.first() {
            None => format!("no series for {query}"),
            Some(first) => format!(
                "{} series; first: {} last {} (min {}, max {})",
                series.len(),
                first["labels"],
                first["last"],
                first["min"],
                first["max"]
            ),
        };
        Ok(Outcome {
            summary,
            changes: vec![],
            detail_json: json!({"query": query, "minutes": minutes, "series": series.len(),
                                "shown": described})
            .to_string(),
        })
    }
}

/// One series in numbers: labels, first, last, min, max, and the first
/// point more than 50 % away from the first value (Unix ms).
fn describe(series: &Value) -> Value {
    let points = runwarden_sdk::prometheus::points(series);
    let values = || points.iter().map(|p| p.1);
    let first = points.first().map(|p| p.1);
    let moved = first.and_then(|f| {
        points
            .iter()
            .find(|(_, v)| (v - f).abs() > f64::max(f.abs() * 0.5, 1e-9))
            .map(|p| p.0)
    });
    json!({
        "labels": series["metric"],
        "points": points.len(),
        "first": first,
        "last": points.last().map(|p| p.1),
        "min": values().reduce(f64::min),
        "max": values().reduce(f64::max),
        "moved_at": moved,
    })
}

runwarden_sdk::export_tool!(PrometheusQuery);

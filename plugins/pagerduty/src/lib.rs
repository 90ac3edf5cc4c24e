//! PagerDuty Events API v2: trigger and resolve incidents with a dedup key.
//!
//! The routing key is a secret (`pagerduty-routing-key`) this plugin never
//! holds: the operator's policy binds it to the events origin
//! (`[[grants.http.inject]]`, scheme `json-field`, field `routing_key`) and
//! the host sets it in each event's body. The events URL is the policy's
//! `config.events_url` (default `https://events.pagerduty.com`).
//! PagerDuty accepts an event with HTTP 202 and `{"status": "success"}`.

use runwarden_sdk::serde_json::json;
use runwarden_sdk::{
    ActionPlan, Change, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest,
    ToolSpec, config, effects, http, tool_spec,
};

struct PagerDuty;

impl ToolGuest for PagerDuty {
    fn describe() -> Vec<ToolSpec> {
        let trigger = json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255}
            },
            "required": ["summary", "source", "severity", "dedup_key"],
            "additionalProperties": false
        });
        let resolve = json!({
            "type": "object",
            "properties": {"dedup_key": {"type": "string", "minLength": 1, "maxLength": 255}},
            "required": ["dedup_key"],
            "additionalProperties": false
        });
        vec![
            tool_spec(
                "trigger_incident",
                "Page the on-call engineer through PagerDuty.",
                trigger,
                Effect::Mutate,
                Risk::Low,
                true,
            ),
            tool_spec(
                "resolve_incident",
                "Resolve the PagerDuty incident with this dedup key.",
                resolve,
                Effect::Mutate,
                Risk::Low,
                false,
            ),
        ]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        let (action, key, _) = event(&call)?;
        Ok(ActionPlan {
            summary: format!("{action} PagerDuty incident {key}"),
            changes: vec![change(action, &key)?],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let (action, key, payload) = event(&call)?;
        // `routing_key` is the host's to set (injected into the body).
        let mut body = json!({"event_action": action, "dedup_key": key});
        if let Some(p) = payload {
            body["payload"] = p;
        }
        let resp = http::post(
            &enqueue_url(),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )?;
        let answer = resp.json().unwrap_or_default();
        if resp.status != 202 || answer["status"] != "success" {
            return Err(Error::Failed(format!(
                "PagerDuty answered {} {}",
                resp.status, answer
            )));
        }
        Ok(Outcome {
            summary: format!("{action} PagerDuty incident {key}"),
            changes: vec![change(action, &key)?],
            detail_json: json!({"dedup_key": key}).to_string(),
        })
    }
}

/// (event_action, dedup_key, payload) for a call.
fn event(
    call: &ToolCall,
) -> Result<(
    &'static str,
    String,
    Option<runwarden_sdk::serde_json::Value>,
)> {
    let p = Params::of(call)?;
    let key = p.str("dedup_key")?.to_string();
    match call.tool.as_str() {
        "trigger_incident" => Ok((
            "trigger",
            key,
            Some(
                json!({"summary": p.str("summary")?, "source": p.str("source")?, "severity": p.str("severity")?}),
            ),
        )),
        "resolve_incident" => Ok(("resolve", key, None)),
        other => Err(Error::InvalidInput(format!("unknown tool `{other}`"))),
    }
}

fn enqueue_url() -> String {
    let base = config::get("events_url").unwrap_or_else(|| "https://events.pagerduty.com".into());
    format!("{}/v2/enqueue", base.trim_end_matches('/'))
}

/// The one POST an event is.
fn change(action: &str, key: &str) -> Result<Change> {
    let url = enqueue_url();
    let origin = effects::origin_of(&url).ok_or_else(|| {
        Error::InvalidInput(format!("config events_url gives {url:?}, not a URL"))
    })?;
    let mut change = effects::http_request("POST", &origin, &effects::path_of(&url));
    change.description = format!("{action} PagerDuty incident {key}");
    Ok(change)
}

runwarden_sdk::export_tool!(PagerDuty);

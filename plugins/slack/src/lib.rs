//! Slack notifications through an incoming webhook.
//!
//! The webhook URL is a secret (`slack-webhook-url`): the plugin reads it
//! through the secrets capability, and the host only lets the request reach
//! the origins the policy grants. Slack answers a successful post with the
//! body `ok`.

use runwarden_sdk::serde_json::json;
use runwarden_sdk::{
    ActionPlan, Change, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest,
    ToolSpec, effects, http, secrets, tool_spec,
};

struct Slack;

const SECRET: &str = "slack-webhook-url";

impl ToolGuest for Slack {
    fn describe() -> Vec<ToolSpec> {
        let schema = json!({
            "type": "object",
            "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 3000}},
            "required": ["text"],
            "additionalProperties": false
        });
        vec![tool_spec(
            "post_message",
            "Post a message to the on-call Slack channel.",
            schema,
            Effect::Mutate,
            Risk::Low,
            false,
        )]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        let text = Params::of(&call)?.str("text")?.to_string();
        Ok(ActionPlan {
            summary: format!("post to Slack: {text}"),
            changes: vec![change(&text)?],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let text = Params::of(&call)?.str("text")?.to_string();
        let url = secrets::get(SECRET)?;
        let body = json!({"text": text}).to_string();
        let resp = http::post(
            &url,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )?;
        let answer = resp.text().unwrap_or("").trim().to_string();
        if resp.status != 200 || answer != "ok" {
            return Err(Error::Failed(format!(
                "Slack answered {} {answer:?}",
                resp.status
            )));
        }
        Ok(Outcome {
            summary: "posted to Slack".into(),
            changes: vec![change(&text)?],
            detail_json: "{}".into(),
        })
    }
}

/// One POST to the webhook. The webhook URL's path is itself a secret,
/// so the plan names the origin and any path on it (`*`), never the path.
fn change(text: &str) -> Result<Change> {
    let url = secrets::get(SECRET)?;
    let origin = effects::origin_of(&url)
        .ok_or_else(|| Error::InvalidInput(format!("secret `{SECRET}` is not a URL")))?;
    let mut change = effects::http_request("POST", &origin, "*");
    change.description = format!(
        "post to Slack: {}",
        text.chars().take(200).collect::<String>()
    );
    Ok(change)
}

runwarden_sdk::export_tool!(Slack);

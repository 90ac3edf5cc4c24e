//! Slack notifications through an incoming webhook.
//!
//! The webhook URL is a secret (`slack-webhook-url`) this plugin never
//! holds: the operator's policy binds it to Slack's origin
//! (`[[grants.http.inject]]`, scheme `url`), the plugin posts to that origin
//! (`config.url`), and the host sends the post to the webhook's path. Slack
//! answers a successful post with the body `ok`.

use runwarden_sdk::serde_json::json;
use runwarden_sdk::{
    ActionPlan, Change, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest,
    ToolSpec, config, effects, http, tool_spec,
};

struct Slack;

/// Slack's webhook origin, when the policy's `config.url` does not say.
const DEFAULT_ORIGIN: &str = "https://hooks.slack.com";

fn origin() -> Result<String> {
    let url = config::get("url").unwrap_or_else(|| DEFAULT_ORIGIN.to_string());
    effects::origin_of(&url)
        .ok_or_else(|| Error::InvalidInput(format!("config url {url:?} is not a URL")))
}

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
        let body = json!({"text": text}).to_string();
        // The host replaces this path with the webhook's own.
        let resp = http::post(
            &format!("{}/", origin()?),
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
    let mut change = effects::http_request("POST", &origin()?, "*");
    change.description = format!(
        "post to Slack: {}",
        text.chars().take(200).collect::<String>()
    );
    Ok(change)
}

runwarden_sdk::export_tool!(Slack);

//! A remediation tool written against the frozen `runwarden:plugin@0.1.0`
//! contract (`wit/v0.1.0`), as a third party's plugin from before typed
//! effects would be. The host must keep loading and running it: its
//! free-text changes become `other` effects, so it always waits for a human.

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "runwarden:plugin/remediation-tool",
    generate_all,
});

use exports::runwarden::plugin::tool::Guest;
use runwarden::plugin::k8s;
use runwarden::plugin::types::{
    ActionPlan, Change, Effect, Error, Outcome, Risk, ToolCall, ToolSpec,
};

struct Legacy;

fn args(call: &ToolCall) -> Result<(String, String, u32), Error> {
    let field = |key: &str| {
        let marker = format!("\"{key}\":");
        let at = call
            .arguments_json
            .find(&marker)
            .ok_or_else(|| Error::InvalidInput(format!("missing {key}")))?;
        let rest = call.arguments_json[at + marker.len()..].trim_start();
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Ok::<String, Error>(rest[..end].trim().trim_matches('"').to_string())
    };
    let replicas = field("replicas")?
        .parse()
        .map_err(|_| Error::InvalidInput("replicas is not a number".into()))?;
    Ok((field("namespace")?, field("name")?, replicas))
}

impl Guest for Legacy {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "set_replicas".into(),
            description: "Set a deployment's replicas (a 0.1.0 plugin)".into(),
            parameters_schema: r#"{"type":"object","properties":{"namespace":{"type":"string"},"name":{"type":"string"},"replicas":{"type":"integer","minimum":0}},"required":["namespace","name","replicas"],"additionalProperties":false}"#.into(),
            effect: Effect::Mutate,
            risk: Risk::Low,
            reversible: true,
        }]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan, Error> {
        let (ns, name, replicas) = args(&call)?;
        let current = k8s::get_deployment(&ns, &name)?;
        Ok(ActionPlan {
            summary: format!("set {ns}/{name} to {replicas} replicas"),
            changes: vec![Change {
                target: format!("deployment {ns}/{name}"),
                description: "set replicas".into(),
                before: Some(current.replicas.to_string()),
                after: Some(replicas.to_string()),
            }],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome, Error> {
        let (ns, name, replicas) = args(&call)?;
        let after = k8s::scale_deployment(&ns, &name, replicas)?;
        Ok(Outcome {
            summary: format!("{ns}/{name} now has {} replicas", after.replicas),
            changes: vec![],
            detail_json: "{}".into(),
        })
    }
}

export!(Legacy);

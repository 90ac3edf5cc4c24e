//! Kubernetes remediation tools: scale a deployment, roll it back, restart its
//! pods. Every change goes through the host's `k8s` capability, which enforces
//! the namespaces, operations and limits this plugin's policy grants.

use runwarden_sdk::k8s::{self, Deployment};
use runwarden_sdk::serde_json::json;
use runwarden_sdk::{
    ActionPlan, Change, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest,
    ToolSpec, effects, log_info, tool_spec,
};

struct K8sRemediation;

const TARGET_SCHEMA: &str = "namespace and name of the deployment";

impl ToolGuest for K8sRemediation {
    fn describe() -> Vec<ToolSpec> {
        let target = |extra: runwarden_sdk::serde_json::Value| {
            let mut schema = json!({
                "type": "object",
                "properties": {
                    "namespace": {"type": "string", "minLength": 1, "description": TARGET_SCHEMA},
                    "name": {"type": "string", "minLength": 1, "description": "deployment name"}
                },
                "required": ["namespace", "name"],
                "additionalProperties": false
            });
            if let (Some(props), Some(more)) =
                (schema["properties"].as_object_mut(), extra.as_object())
            {
                props.extend(more.clone());
            }
            schema
        };
        let mut scale = target(json!({"replicas": {"type": "integer", "minimum": 0}}));
        if let Some(req) = scale["required"].as_array_mut() {
            req.push(json!("replicas"));
        }
        vec![
            tool_spec(
                "scale_deployment",
                "Set a deployment's replica count.",
                scale,
                Effect::Mutate,
                Risk::Medium,
                true,
            ),
            tool_spec(
                "rollback_deployment",
                "Roll a deployment back to an earlier revision (the previous one unless to_revision is given).",
                target(json!({"to_revision": {"type": "integer", "minimum": 1}})),
                Effect::Mutate,
                Risk::Medium,
                true,
            ),
            tool_spec(
                "restart_pods",
                "Restart a deployment's pods by deleting them; the controller recreates them.",
                target(json!({"max_pods": {"type": "integer", "minimum": 1}})),
                Effect::Mutate,
                Risk::Low,
                false,
            ),
        ]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        let p = Params::of(&call)?;
        let (ns, name) = (p.str("namespace")?, p.str("name")?);
        let current = k8s::get_deployment(ns, name)?;
        let change = match call.tool.as_str() {
            "scale_deployment" => effects::scale(ns, name, current.replicas, p.u32("replicas")?),
            "rollback_deployment" => {
                let to = rollback_target(&current, p.opt_u64("to_revision")?)?;
                effects::rollback(ns, name, current.revision, to)
            }
            "restart_pods" => {
                let pods = pods_to_restart(&current, p.opt_u64("max_pods")?)?;
                effects::restart_pods(ns, name, &pods)
            }
            other => return Err(unknown_tool(other)),
        };
        Ok(ActionPlan {
            summary: change.description.clone(),
            changes: vec![change],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let p = Params::of(&call)?;
        let (ns, name) = (p.str("namespace")?, p.str("name")?);
        let before = k8s::get_deployment(ns, name)?;
        let (change, detail): (Change, _) = match call.tool.as_str() {
            "scale_deployment" => {
                let after = k8s::scale_deployment(ns, name, p.u32("replicas")?)?;
                (
                    done(
                        effects::scale(ns, name, before.replicas, after.replicas),
                        format!(
                            "scaled deployment {ns}/{name}: {} -> {}",
                            before.replicas, after.replicas
                        ),
                    ),
                    json!({"replicas": after.replicas}),
                )
            }
            "rollback_deployment" => {
                let to = rollback_target(&before, p.opt_u64("to_revision")?)?;
                let after = k8s::rollback_deployment(ns, name, Some(to))?;
                (
                    done(
                        effects::rollback(ns, name, before.revision, to),
                        format!(
                            "rolled back deployment {ns}/{name}: revision {} -> revision {}",
                            before.revision, after.revision
                        ),
                    ),
                    json!({"from_revision": before.revision, "to_revision": to, "images": after.images}),
                )
            }
            "restart_pods" => {
                let pods = pods_to_restart(&before, p.opt_u64("max_pods")?)?;
                let deleted = k8s::delete_pods(ns, &pods)?;
                (
                    done(
                        effects::restart_pods(ns, name, &pods),
                        format!(
                            "restarted {deleted} pod(s) of deployment {ns}/{name}: {}",
                            pods.join(", ")
                        ),
                    ),
                    json!({"deleted": deleted, "pods": pods}),
                )
            }
            other => return Err(unknown_tool(other)),
        };
        log_info(&change.description, &[("tool", &call.tool)]);
        Ok(Outcome {
            summary: change.description.clone(),
            changes: vec![change],
            detail_json: detail.to_string(),
        })
    }
}

/// An outcome's change: the effect as planned, described as done.
fn done(mut change: Change, description: String) -> Change {
    change.description = description;
    change
}

/// The revision to roll back to: the one asked for, else the previous one.
fn rollback_target(d: &Deployment, asked: Option<u64>) -> Result<u64> {
    let history = k8s::rollout_history(&d.namespace, &d.name)?;
    let target = match asked {
        Some(rev) => history
            .iter()
            .find(|r| r.revision == rev)
            .map(|r| r.revision),
        None => history
            .iter()
            .map(|r| r.revision)
            .filter(|r| *r < d.revision)
            .max(),
    };
    match target {
        Some(rev) if rev != d.revision => Ok(rev),
        Some(_) => Err(Error::InvalidInput(format!(
            "revision {} is already current",
            d.revision
        ))),
        None => Err(Error::InvalidInput(format!(
            "no earlier revision of {}/{} to roll back to{}",
            d.namespace,
            d.name,
            asked
                .map(|r| format!(" (asked for {r})"))
                .unwrap_or_default()
        ))),
    }
}

fn pods_to_restart(d: &Deployment, max: Option<u64>) -> Result<Vec<String>> {
    let mut pods: Vec<String> = k8s::list_pods(&d.namespace, None)?
        .into_iter()
        .filter(|p| p.deployment.as_deref() == Some(d.name.as_str()))
        .map(|p| p.name)
        .collect();
    if pods.is_empty() {
        return Err(Error::Failed(format!(
            "deployment {}/{} has no pods",
            d.namespace, d.name
        )));
    }
    pods.sort();
    if let Some(max) = max {
        pods.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    Ok(pods)
}

fn unknown_tool(name: &str) -> Error {
    Error::InvalidInput(format!("unknown tool `{name}`"))
}

runwarden_sdk::export_tool!(K8sRemediation);

//! Kubernetes read tools for the investigating model.
//!
//! The model names the namespace and the object; the host checks each
//! call against this plugin's grant (`read`, and `logs` granted apart) and
//! answers a namespace outside it with a typed denial the model reads like
//! any other result. Answers are compact JSON — the fields an SRE looks at
//! first, newest events first — because every byte lands in a prompt.

use runwarden_sdk::k8s::{self, Event, Pod};
use runwarden_sdk::serde_json::{Value, json};
use runwarden_sdk::time::format_utc;
use runwarden_sdk::{
    ActionPlan, Effect, Outcome, Params, Result, Risk, ToolCall, ToolGuest, ToolSpec, tool_spec,
};

struct K8sRead;

/// Objects and events one answer lists at most.
const MAX_ITEMS: usize = 30;
const DEFAULT_TAIL: u32 = 100;
const MAX_TAIL: u32 = 500;

fn schema(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required,
           "additionalProperties": false})
}

fn read(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    tool_spec(
        name,
        description,
        schema(properties, required),
        Effect::Read,
        Risk::Low,
        true,
    )
}

impl ToolGuest for K8sRead {
    fn describe() -> Vec<ToolSpec> {
        let ns = json!({"type": "string", "minLength": 1, "maxLength": 63});
        let name = json!({"type": "string", "minLength": 1, "maxLength": 253});
        vec![
            read(
                "list_pods",
                "List pods in a namespace (optionally by label selector key=value,...): phase, readiness, restarts, last termination reason.",
                json!({"namespace": ns, "label_selector": {"type": "string", "maxLength": 256}}),
                &["namespace"],
            ),
            read(
                "describe_pod",
                "One pod's status and the events about it, newest first.",
                json!({"namespace": ns, "name": name}),
                &["namespace", "name"],
            ),
            read(
                "pod_logs",
                "The last lines of a pod's container log; previous=true reads the terminated instance (why a crash-looping container died).",
                json!({"namespace": ns, "pod": name,
                       "container": {"type": "string", "maxLength": 253},
                       "previous": {"type": "boolean"},
                       "tail_lines": {"type": "integer", "minimum": 1, "maximum": MAX_TAIL}}),
                &["namespace", "pod"],
            ),
            read(
                "describe_deployment",
                "A deployment's replicas, images and revision, with the events about it, newest first.",
                json!({"namespace": ns, "name": name}),
                &["namespace", "name"],
            ),
            read(
                "rollout_history",
                "A deployment's revisions: images, when each was created, change cause.",
                json!({"namespace": ns, "deployment": name}),
                &["namespace", "deployment"],
            ),
            read(
                "list_events",
                "Events in a namespace (optionally about one object), warnings and newest first.",
                json!({"namespace": ns, "object_name": name}),
                &["namespace"],
            ),
        ]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        Ok(ActionPlan {
            summary: format!("read: {} {}", call.tool, call.arguments_json),
            changes: vec![],
        })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let p = Params::of(&call)?;
        let ns = p.str("namespace")?;
        let (summary, detail) = match p.tool() {
            "list_pods" => {
                let pods = k8s::list_pods(ns, p.opt_str("label_selector")?)?;
                let not_ready = pods.iter().filter(|p| !p.ready).count();
                (
                    format!("{} pods in {ns}, {not_ready} not ready", pods.len()),
                    json!({"pods": pods.iter().take(MAX_ITEMS).map(pod).collect::<Vec<_>>(),
                           "total": pods.len()}),
                )
            }
            "describe_pod" => {
                let name = p.str("name")?;
                let pods = k8s::list_pods(ns, None)?;
                let found = pods.iter().find(|p| p.name == name).ok_or_else(|| {
                    runwarden_sdk::Error::Failed(format!("pod {ns}/{name} not found"))
                })?;
                let events = k8s::list_events(ns, Some(name))?;
                (
                    format!("pod {ns}/{name}: {}", found.phase),
                    json!({"pod": pod(found), "events": events_json(events)}),
                )
            }
            "pod_logs" => {
                let name = p.str("pod")?;
                let previous = p.opt_bool("previous")?.unwrap_or(false);
                let tail = p.opt_u64("tail_lines")?.map_or(DEFAULT_TAIL, |t| {
                    u32::try_from(t).unwrap_or(MAX_TAIL).clamp(1, MAX_TAIL)
                });
                let log = k8s::pod_logs(ns, name, p.opt_str("container")?, previous, tail)?;
                let which = if previous { "previous " } else { "" };
                (
                    format!(
                        "{} lines of the {which}log of pod {ns}/{name}",
                        log.lines().count()
                    ),
                    json!({"log": log}),
                )
            }
            "describe_deployment" => {
                let name = p.str("name")?;
                let d = k8s::get_deployment(ns, name)?;
                let events = k8s::list_events(ns, Some(name))?;
                (
                    format!(
                        "deployment {ns}/{name}: {}/{} ready, revision {}",
                        d.ready_replicas, d.replicas, d.revision
                    ),
                    json!({"replicas": d.replicas, "ready_replicas": d.ready_replicas,
                           "revision": d.revision, "images": d.images,
                           "labels": d.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                           "events": events_json(events)}),
                )
            }
            "rollout_history" => {
                let name = p.str("deployment")?;
                let mut history = k8s::rollout_history(ns, name)?;
                history.sort_by_key(|r| std::cmp::Reverse(r.revision));
                let revisions: Vec<Value> = history
                    .iter()
                    .take(MAX_ITEMS)
                    .map(|r| {
                        json!({"revision": r.revision, "images": r.images,
                               "created": format_utc(r.created_at), "change_cause": r.change_cause})
                    })
                    .collect();
                (
                    format!("{} revisions of {ns}/{name}", history.len()),
                    json!({"revisions": revisions}),
                )
            }
            "list_events" => {
                let events = k8s::list_events(ns, p.opt_str("object_name")?)?;
                let warnings = events.iter().filter(|e| e.event_type == "Warning").count();
                (
                    format!("{} events in {ns}, {warnings} warnings", events.len()),
                    json!({"events": events_json(events)}),
                )
            }
            other => {
                return Err(runwarden_sdk::Error::InvalidInput(format!(
                    "unknown tool {other}"
                )));
            }
        };
        Ok(Outcome {
            summary,
            changes: vec![],
            detail_json: detail.to_string(),
        })
    }
}

fn pod(p: &Pod) -> Value {
    json!({"name": p.name, "owner": p.deployment, "phase": p.phase, "ready": p.ready,
           "restarts": p.restarts, "last_termination": p.last_termination_reason,
           "memory_bytes": p.memory_bytes})
}

/// Warnings first, then newest first; at most `MAX_ITEMS`.
fn events_json(mut events: Vec<Event>) -> Vec<Value> {
    events.sort_by_key(|e| (e.event_type != "Warning", std::cmp::Reverse(e.last_seen)));
    events
        .iter()
        .take(MAX_ITEMS)
        .map(|e| {
            json!({"type": e.event_type, "object": format!("{}/{}", e.object_kind, e.object_name),
                   "reason": e.reason, "message": e.message, "count": e.count,
                   "last_seen": format_utc(e.last_seen)})
        })
        .collect()
}

runwarden_sdk::export_tool!(K8sRead);

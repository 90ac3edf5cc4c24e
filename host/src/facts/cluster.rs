//! Facts the host derives from object status it read itself: pods'
//! waiting and termination reasons, rollouts and when they happened
//! relative to the symptoms, replicas against the autoscaler's bounds,
//! stuck rollouts, nodes, volumes, jobs, certificates. Nothing here trusts
//! a plugin's or a sender's wording.

use super::{ChangeKind, Fact, Facts, Resource};
use crate::capability::k8s::sim::{ClusterState, SimPod};
use std::collections::BTreeMap;

/// How far back a rollout counts as a change worth naming.
const CHANGE_HORIZON_MS: i64 = 24 * 3600 * 1000;

/// Facts about the workload `(kind, ns, name)` and what the alert's labels
/// name directly (node, volume, job, certificate), from `view`.
pub fn derive(
    view: &ClusterState,
    workload: Option<(&str, &str, &str)>,
    labels: &BTreeMap<String, String>,
    namespace: Option<&str>,
    facts: &mut Facts,
    now_ms: i64,
) {
    let onset = facts.onset_ms;
    if let Some((kind, ns, name)) = workload {
        changes(view, kind, ns, name, onset, facts);
        let pods: Vec<&SimPod> = view
            .pods
            .iter()
            .filter(|p| p.namespace == ns && owned_by(p, kind, name))
            .collect();
        pod_conditions(view, ns, &pods, facts);
        capacity(view, kind, ns, name, &pods, facts);
        memory(view, kind, ns, name, &pods, facts);
        nodes_of(view, &pods, facts);
    }
    named_objects(view, labels, namespace, facts, now_ms);
}

fn owned_by(p: &SimPod, kind: &str, name: &str) -> bool {
    match kind {
        "Deployment" => p.deployment.as_deref() == Some(name),
        "Pod" => p.name == name,
        _ => p.owner_kind.as_deref() == Some(kind) && p.owner_name.as_deref() == Some(name),
    }
}

fn changes(view: &ClusterState, kind: &str, ns: &str, name: &str, onset: i64, facts: &mut Facts) {
    if kind != "Deployment" {
        return;
    }
    let Some(d) = view
        .deployments
        .iter()
        .find(|d| d.namespace == ns && d.name == name)
    else {
        return;
    };
    // A revision is a rollout only if one came before it: the first
    // revision is the workload's creation.
    let oldest = d.revisions.iter().map(|r| r.revision).min();
    for r in &d.revisions {
        if Some(r.revision) == oldest || onset - r.created_at > CHANGE_HORIZON_MS {
            continue;
        }
        let previous = d
            .revisions
            .iter()
            .filter(|p| p.revision < r.revision)
            .max_by_key(|p| p.revision);
        let image_changed = previous.is_some_and(|p| p.images != r.images);
        let description = match (&r.change_cause, image_changed) {
            (Some(c), _) => c.clone(),
            (None, true) => format!("image {}", r.images.join(", ")),
            (None, false) => "pod template changed (same image)".into(),
        };
        facts.push(Fact::Change {
            change: if image_changed {
                ChangeKind::Rollout
            } else {
                ChangeKind::Config
            },
            object: format!("Deployment {ns}/{name} revision {}", r.revision),
            at_ms: r.created_at,
            minutes_before_onset: (onset - r.created_at).div_euclid(60_000),
            description,
        });
    }
}

/// Pods grouped by the most telling reason each shows.
fn pod_conditions(view: &ClusterState, ns: &str, pods: &[&SimPod], facts: &mut Facts) {
    let mut by_reason: BTreeMap<String, (u32, u32, Option<i32>, Option<String>)> = BTreeMap::new();
    for p in pods {
        let Some((reason, message)) = reason_of(view, ns, p) else {
            continue;
        };
        let e = by_reason.entry(reason).or_insert((0, 0, None, None));
        e.0 += 1;
        e.1 += p.restarts;
        e.2 = e.2.or(p.last_exit_code);
        e.3 = e.3.take().or(message);
    }
    for (reason, (count, restarts, exit_code, message)) in by_reason {
        facts.push(Fact::PodCondition {
            reason,
            pods: count,
            restarts,
            exit_code,
            message,
        });
    }
    // Termination reasons seen on pods that are running again still tell
    // the story (OOMKilled between restarts).
    let oom: Vec<&&SimPod> = pods
        .iter()
        .filter(|p| p.last_termination_reason.as_deref() == Some("OOMKilled"))
        .collect();
    if !oom.is_empty() && !facts.of_kind("pod-condition").any(is_oom) {
        facts.push(Fact::PodCondition {
            reason: "OOMKilled".into(),
            pods: u32::try_from(oom.len()).unwrap_or(u32::MAX),
            restarts: oom.iter().map(|p| p.restarts).sum(),
            exit_code: oom.iter().find_map(|p| p.last_exit_code).or(Some(137)),
            message: None,
        });
    }
}

fn is_oom(f: &Fact) -> bool {
    matches!(f, Fact::PodCondition { reason, .. } if reason == "OOMKilled")
}

/// The reason a pod is unhealthy, from its status first, then its events.
fn reason_of(view: &ClusterState, ns: &str, p: &SimPod) -> Option<(String, Option<String>)> {
    // A pod that ran to completion is not failing.
    if p.phase == "Succeeded" {
        return None;
    }
    if let Some(r) = &p.status_reason {
        return Some((r.clone(), p.status_message.clone()));
    }
    let event = |reasons: &[&str]| {
        view.events
            .iter()
            .filter(|e| e.namespace == ns && e.object_name == p.name)
            .find(|e| reasons.contains(&e.reason.as_str()))
    };
    if let Some(w) = &p.waiting_reason {
        // A crash loop's last termination is added as a fact of its own
        // (`pod_conditions`): OOMKilled in a crash loop is not a leak.
        // "back-off restarting failed container" says nothing; the pod's
        // other warnings (a failing probe, a missing object) say why.
        let generic = |m: &str| m.starts_with("back-off") || m.starts_with("Back-off");
        let message = telling_event(view, ns, &p.name)
            .or_else(|| p.waiting_message.clone().filter(|m| !generic(m)));
        return Some((w.clone(), message));
    }
    if p.phase == "Pending" {
        let reason = if event(&["FailedScheduling"]).is_some() {
            "Unschedulable"
        } else if event(&["FailedMount", "FailedAttachVolume"]).is_some() {
            "FailedMount"
        } else {
            "Pending"
        };
        return Some((reason.into(), telling_event(view, ns, &p.name)));
    }
    if p.phase == "Failed" {
        return Some(("Failed".into(), p.status_message.clone()));
    }
    if p.last_termination_reason.as_deref() == Some("OOMKilled") && p.restarts > 0 {
        return Some(("OOMKilled".into(), None));
    }
    if !p.ready {
        if event(&["Unhealthy"]).is_some() {
            return Some(("ProbeFailing".into(), telling_event(view, ns, &p.name)));
        }
        if p.restarts > 0 {
            return Some((
                p.last_termination_reason
                    .clone()
                    .unwrap_or_else(|| "Restarting".into()),
                None,
            ));
        }
        return Some(("NotReady".into(), None));
    }
    if p.restarts >= 3 {
        return Some((
            p.last_termination_reason
                .clone()
                .unwrap_or_else(|| "Restarting".into()),
            None,
        ));
    }
    None
}

/// The pod's warnings other than the generic back-off, newest first, one
/// per reason and message (a liveness and a readiness failure both), and
/// those of the volume claims it waits for; at most three.
fn telling_event(view: &ClusterState, ns: &str, pod: &str) -> Option<String> {
    let claims: Vec<&str> = view
        .pvcs
        .iter()
        .filter(|c| c.namespace == ns)
        .filter(|c| c.used_by_pod.as_deref() == Some(pod) || c.name.ends_with(&format!("-{pod}")))
        .map(|c| c.name.as_str())
        .collect();
    let mut warnings: Vec<&crate::capability::k8s::sim::SimEvent> = view
        .events
        .iter()
        .filter(|e| e.namespace == ns && e.event_type == "Warning" && e.reason != "BackOff")
        .filter(|e| e.object_name == pod || claims.contains(&e.object_name.as_str()))
        .collect();
    warnings.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
    let mut seen: Vec<String> = Vec::new();
    for e in warnings {
        let line = format!("{}: {}", e.reason, e.message);
        if !seen.contains(&line) && seen.len() < 3 {
            seen.push(line);
        }
    }
    (!seen.is_empty()).then(|| seen.join("; "))
}

fn capacity(
    view: &ClusterState,
    kind: &str,
    ns: &str,
    name: &str,
    pods: &[&SimPod],
    facts: &mut Facts,
) {
    let counted = u32::try_from(pods.iter().filter(|p| p.ready).count()).unwrap_or(u32::MAX);
    let (replicas, ready) = match kind {
        "Deployment" => match view
            .deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
        {
            Some(d) => {
                if d.progress_deadline_exceeded {
                    facts.push(Fact::RolloutStuck {
                        reason: "ProgressDeadlineExceeded".into(),
                    });
                } else if let (Some(g), Some(o)) = (d.generation, d.observed_generation)
                    && o < g
                {
                    facts.push(Fact::RolloutStuck {
                        reason: format!("generation {g} not observed (observed {o})"),
                    });
                }
                (d.replicas, d.ready_replicas.unwrap_or(counted))
            }
            None => return,
        },
        "StatefulSet" => match view
            .statefulsets
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
        {
            Some(s) => {
                if let (Some(c), Some(u)) = (&s.current_revision, &s.update_revision)
                    && c != u
                    && s.ready_replicas < s.replicas
                {
                    facts.push(Fact::RolloutStuck {
                        reason: format!("update to {u} not complete (current {c})"),
                    });
                }
                (s.replicas, s.ready_replicas)
            }
            None => return,
        },
        "DaemonSet" => match view
            .daemonsets
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
        {
            Some(s) => (s.desired, s.ready),
            None => return,
        },
        _ => return,
    };
    let hpa = view
        .hpas
        .iter()
        .find(|h| h.namespace == ns && h.target_kind == kind && h.target_name == name);
    facts.push(Fact::Capacity {
        replicas,
        ready,
        hpa_min: hpa.map(|h| h.min_replicas),
        hpa_max: hpa.map(|h| h.max_replicas),
        at_max: hpa.is_some_and(|h| {
            h.current_replicas >= h.max_replicas
                && h.desired_replicas.unwrap_or(h.current_replicas) >= h.max_replicas
        }),
    });
    if let Some(h) = hpa
        && let (Some(cur), Some(target)) = (h.current_utilization, h.target_utilization)
        && cur > target
    {
        facts.push(Fact::Saturation {
            resource: match h.metric.as_deref() {
                Some("memory") => Resource::Memory,
                _ => Resource::Cpu,
            },
            utilisation: f64::from(cur) / 100.0,
            rising: false,
            detail: format!("autoscaler sees {cur}% against a {target}% target"),
        });
    }
}

/// Working set against the container's memory limit.
fn memory(
    view: &ClusterState,
    kind: &str,
    ns: &str,
    name: &str,
    pods: &[&SimPod],
    facts: &mut Facts,
) {
    if kind != "Deployment" {
        return;
    }
    let limit: Option<u64> = view
        .deployments
        .iter()
        .find(|d| d.namespace == ns && d.name == name)
        .and_then(|d| {
            d.containers
                .iter()
                .filter_map(|c| c.memory_limit_bytes)
                .max()
        });
    let (Some(limit), Some(used)) = (limit, pods.iter().filter_map(|p| p.memory_bytes).max())
    else {
        return;
    };
    if limit == 0 {
        return;
    }
    let ratio = used as f64 / limit as f64;
    if ratio >= 0.8 {
        facts.push(Fact::Saturation {
            resource: Resource::Memory,
            utilisation: ratio,
            rising: false,
            detail: format!("{} MiB of a {} MiB limit", used >> 20, limit >> 20),
        });
    }
}

fn nodes_of(view: &ClusterState, pods: &[&SimPod], facts: &mut Facts) {
    let mut nodes: Vec<String> = pods.iter().filter_map(|p| p.node.clone()).collect();
    nodes.sort();
    nodes.dedup();
    if pods.len() >= 2 && !nodes.is_empty() {
        facts.push(Fact::Placement {
            pods: u32::try_from(pods.len()).unwrap_or(u32::MAX),
            nodes,
        });
    }
    for node in &view.nodes {
        if !node.ready && pods.iter().any(|p| p.node.as_deref() == Some(&node.name)) {
            facts.push(node_fact(node));
        }
    }
}

fn node_fact(node: &crate::capability::k8s::sim::SimNode) -> Fact {
    let bad = node.conditions.iter().find(|c| {
        (c.kind == "Ready" && c.status != "True") || (c.kind != "Ready" && c.status == "True")
    });
    Fact::NodeCondition {
        node: node.name.clone(),
        ready: node.ready,
        unreachable: !node.ready
            && node
                .conditions
                .iter()
                .any(|c| c.kind == "Ready" && c.status == "Unknown"),
        reason: bad.map(|c| {
            format!(
                "{}={}{}{}",
                c.kind,
                c.status,
                c.reason
                    .as_ref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default(),
                c.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        }),
    }
}

/// Objects the alert names directly: a node, a volume claim, a job, the
/// namespace's network policies, a certificate (`certificates.rs`).
fn named_objects(
    view: &ClusterState,
    labels: &BTreeMap<String, String>,
    namespace: Option<&str>,
    facts: &mut Facts,
    now_ms: i64,
) {
    let label = |k: &str| labels.get(k).map(String::as_str);
    for key in ["node", "instance", "kubernetes_node", "nodename"] {
        let Some(value) = label(key) else { continue };
        let host = value.split(':').next().unwrap_or(value);
        if let Some(n) = view.nodes.iter().find(|n| n.name == host) {
            facts.push(node_fact(n));
        }
    }
    if let Some(pvc) = label("persistentvolumeclaim") {
        facts.push(Fact::VolumeFilling {
            volume: pvc.to_string(),
            used_ratio: None,
        });
    }
    if let Some(ns) = namespace {
        let policies: Vec<String> = view
            .objects
            .iter()
            .filter(|o| o.kind == "NetworkPolicy" && o.namespace == ns)
            .map(|o| o.name.clone())
            .collect();
        if !policies.is_empty() {
            facts.push(Fact::NetworkPolicies {
                namespace: ns.to_string(),
                names: policies,
            });
        }
        let job_named = label("job_name");
        for j in view
            .jobs
            .iter()
            .filter(|j| j.namespace == ns && j.failed > 0)
        {
            if job_named.is_none_or(|n| n == j.name) {
                facts.push(Fact::JobFailed {
                    job: j.name.clone(),
                    reason: j.reason.clone().or_else(|| j.message.clone()),
                    failed: j.failed,
                });
            }
        }
        super::certificates::derive(view, labels, ns, now_ms, facts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: serde_json::Value) -> ClusterState {
        serde_json::from_value(json).expect("cluster state")
    }

    fn derived(v: &ClusterState, labels: &[(&str, &str)], ns: Option<&str>) -> Vec<Fact> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut facts = Facts::default();
        derive(
            v,
            Some(("Deployment", "shop", "api")),
            &labels,
            ns,
            &mut facts,
            0,
        );
        facts.items
    }

    fn node(name: &str, ready: &str, reason: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "ready": ready == "True",
            "conditions": [{"type": "Ready", "status": ready, "reason": reason}]})
    }

    #[test]
    fn a_node_whose_kubelet_stopped_reporting_is_unreachable_not_merely_not_ready() {
        let v = view(serde_json::json!({
            "deployments": [{"namespace": "shop", "name": "api", "replicas": 2, "revision": 1, "revisions": []}],
            "pods": [
                {"namespace": "shop", "name": "api-1", "deployment": "api", "node": "n1"},
                {"namespace": "shop", "name": "api-2", "deployment": "api", "node": "n2"}
            ],
            "nodes": [node("n1", "Unknown", "NodeStatusUnknown"), node("n2", "False", "KubeletNotReady")]
        }));
        let f = derived(&v, &[], Some("shop"));
        let unreachable: Vec<(&str, bool)> = f
            .iter()
            .filter_map(|f| match f {
                Fact::NodeCondition {
                    node, unreachable, ..
                } => Some((node.as_str(), *unreachable)),
                _ => None,
            })
            .collect();
        assert_eq!(unreachable, [("n1", true), ("n2", false)]);
        // Two nodes: no shared fate.
        assert!(
            f.iter()
                .any(|f| matches!(f, Fact::Placement { nodes, .. } if nodes.len() == 2)),
            "{f:?}"
        );
    }

    #[test]
    fn replicas_sharing_one_node_are_a_placement_fact_and_a_single_pod_is_not() {
        let pods = |n: usize| {
            (0..n)
                .map(|i| serde_json::json!({"namespace": "shop", "name": format!("api-{i}"), "deployment": "api", "node": "n1"}))
                .collect::<Vec<_>>()
        };
        let v = view(
            serde_json::json!({"pods": pods(3), "nodes": [node("n1", "True", "KubeletReady")]}),
        );
        let f = derived(&v, &[], Some("shop"));
        assert!(
            f.iter().any(
                |f| matches!(f, Fact::Placement { pods: 3, nodes } if nodes == &["n1".to_string()])
            ),
            "{f:?}"
        );
        let v = view(serde_json::json!({"pods": pods(1)}));
        assert!(
            !derived(&v, &[], Some("shop"))
                .iter()
                .any(|f| matches!(f, Fact::Placement { .. }))
        );
    }

    #[test]
    fn network_policies_of_the_alerts_namespace_only() {
        let v = view(serde_json::json!({"objects": [
            {"kind": "NetworkPolicy", "namespace": "shop", "name": "default-deny-ingress"},
            {"kind": "NetworkPolicy", "namespace": "other", "name": "allow-all"},
            {"kind": "Service", "namespace": "shop", "name": "api"}
        ]}));
        let f = derived(&v, &[], Some("shop"));
        assert!(
            f.iter().any(|f| matches!(f, Fact::NetworkPolicies { names, .. } if names == &["default-deny-ingress".to_string()])),
            "{f:?}"
        );
        let v = view(
            serde_json::json!({"objects": [{"kind": "Service", "namespace": "shop", "name": "api"}]}),
        );
        assert!(
            !derived(&v, &[], Some("shop"))
                .iter()
                .any(|f| matches!(f, Fact::NetworkPolicies { .. }))
        );
    }
}

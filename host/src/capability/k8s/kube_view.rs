//! The host's own view of one namespace of a real cluster, for facts:
//! the same model the simulated cluster holds (`sim::ClusterState`), read
//! from the objects' status — pods' waiting and termination reasons and
//! exit codes, workloads' generations and conditions, autoscalers, jobs,
//! volume claims — so facts are derived the same way from either.
//! Plugins never see this; they read through the `k8s` interface.

use super::backend::{BackendError, ClusterBackend};
use super::kube_backend::{KubeBackend, deployment_of_replica_set, revisions};
use super::sim::{
    ClusterState, SimCertificate, SimCondition, SimContainer, SimDaemonSet, SimDeployment,
    SimEvent, SimHpa, SimJob, SimNode, SimObject, SimPod, SimPvc, SimRevision, SimStatefulSet,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;

fn list_err<'a>(what: &'a str, ns: &'a str) -> impl Fn(kube::Error) -> BackendError + 'a {
    move |e| match e {
        kube::Error::Api(s) if s.code == 403 => {
            BackendError::Forbidden(format!("listing {what} in {ns}: {}", s.message))
        }
        other => BackendError::Unavailable(format!("listing {what} in {ns}: {other}")),
    }
}

/// A kind the facts can do without (a cluster without autoscaling/v2, an
/// agent whose role lacks it): logged, and read as none.
fn optional<T>(what: &str, ns: &str, e: kube::Error) -> Vec<T> {
    tracing::warn!(
        namespace = ns,
        "facts without {what}: {}",
        list_err(what, ns)(e)
    );
    Vec::new()
}

fn n32(v: Option<i32>) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

fn labels(m: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    m.cloned().unwrap_or_default()
}

/// Bytes (memory) or millicores (cpu) of a quantity such as "512Mi" or "250m".
pub fn quantity(q: &Quantity, millis: bool) -> Option<u64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit {
        "" => {
            if millis {
                1000.0
            } else {
                1.0
            }
        }
        "m" => {
            if millis {
                1.0
            } else {
                0.001
            }
        }
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * factor;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

impl KubeBackend {
    /// Every object of `ns` the facts need, and the nodes when the cluster
    /// lets the agent list them.
    pub async fn view(&self, ns: &str) -> Result<ClusterState, BackendError> {
        let c = self.client();
        let lp = ListParams::default();
        let mut state = ClusterState::default();
        let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
        // One ReplicaSet list for every Deployment's history. Without it a
        // deployment's recent changes are unknown: no view rather than one
        // that says "no change".
        let replica_sets: Api<ReplicaSet> = Api::namespaced(c.clone(), ns);
        let replica_sets = replica_sets
            .list(&lp)
            .await
            .map_err(list_err("replicasets", ns))?
            .items;
        for d in deployments
            .list(&lp)
            .await
            .map_err(list_err("deployments", ns))?
            .items
        {
            let uid = d.metadata.uid.clone().unwrap_or_default();
            let owned: Vec<ReplicaSet> = replica_sets
                .iter()
                .filter(|r| {
                    r.metadata
                        .owner_references
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|o| o.uid == uid))
                })
                .cloned()
                .collect();
            state
                .deployments
                .push(deployment(&d, ns, revisions(&owned)));
        }
        let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
        state.pods = pods
            .list(&lp)
            .await
            .map_err(list_err("pods", ns))?
            .items
            .iter()
            .map(pod)
            .collect();
        state.events = self
            .list_events(ns, None)
            .await?
            .into_iter()
            .map(|e| SimEvent {
                namespace: e.namespace,
                object_kind: e.object_kind,
                object_name: e.object_name,
                event_type: e.event_type,
                reason: e.reason,
                message: e.message,
                count: e.count,
                last_seen: e.last_seen,
            })
            .collect();
        let sets: Api<StatefulSet> = Api::namespaced(c.clone(), ns);
        state.statefulsets = sets
            .list(&lp)
            .await
            .map_or_else(|e| optional("statefulsets", ns, e), |l| l.items)
            .iter()
            .map(|s| {
                let st = s.status.as_ref();
                SimStatefulSet {
                    namespace: ns.to_string(),
                    name: s.metadata.name.clone().unwrap_or_default(),
                    replicas: n32(s.spec.as_ref().and_then(|s| s.replicas)),
                    ready_replicas: n32(st.and_then(|s| s.ready_replicas)),
                    labels: labels(s.metadata.labels.as_ref()),
                    current_revision: st.and_then(|s| s.current_revision.clone()),
                    update_revision: st.and_then(|s| s.update_revision.clone()),
                }
            })
            .collect();
        let daemons: Api<DaemonSet> = Api::namespaced(c.clone(), ns);
        state.daemonsets = daemons
            .list(&lp)
            .await
            .map_or_else(|e| optional("daemonsets", ns, e), |l| l.items)
            .iter()
            .map(|d| {
                let st = d.status.as_ref();
                SimDaemonSet {
                    namespace: ns.to_string(),
                    name: d.metadata.name.clone().unwrap_or_default(),
                    desired: st.map_or(0, |s| n32(Some(s.desired_number_scheduled))),
                    ready: st.map_or(0, |s| n32(Some(s.number_ready))),
                    labels: labels(d.metadata.labels.as_ref()),
                }
            })
            .collect();
        let jobs: Api<Job> = Api::namespaced(c.clone(), ns);
        state.jobs = jobs
            .list(&lp)
            .await
            .map_or_else(|e| optional("jobs", ns, e), |l| l.items)
            .iter()
            .map(|j| job(j, ns))
            .collect();
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.clone(), ns);
        // Required: without it "no autoscaler" would let a scale-out fight
        // one the host could not see.
        state.hpas = hpas
            .list(&lp)
            .await
            .map_err(list_err("horizontalpodautoscalers", ns))?
            .items
            .iter()
            .filter_map(|h| hpa(h, ns))
            .collect();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), ns);
        state.pvcs = pvcs
            .list(&lp)
            .await
            .map_or_else(|e| optional("persistentvolumeclaims", ns, e), |l| l.items)
            .iter()
            .map(|p| SimPvc {
                namespace: ns.to_string(),
                name: p.metadata.name.clone().unwrap_or_default(),
                capacity_bytes: p
                    .status
                    .as_ref()
                    .and_then(|s| s.capacity.as_ref())
                    .and_then(|c| c.get("storage"))
                    .and_then(|q| quantity(q, false)),
                storage_class: p.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
                phase: p.status.as_ref().and_then(|s| s.phase.clone()),
                used_by_pod: None,
            })
            .collect();
        // Network policies decide whether Prometheus (or a peer) reaches
        // the pods at all: a scrape that fails while the pods are ready.
        let policies: Api<NetworkPolicy> = Api::namespaced(c.clone(), ns);
        state.objects.extend(
            policies
                .list(&lp)
                .await
                .map_or_else(|e| optional("networkpolicies", ns, e), |l| l.items)
                .iter()
                .map(|p| SimObject {
                    kind: "NetworkPolicy".into(),
                    namespace: ns.to_string(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    annotations: BTreeMap::new(),
                }),
        );
        // cert-manager may not be installed: no certificates then.
        state.certificates = self
            .list_certificates(ns)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|c| SimCertificate::from_observed(&c))
            .collect();
        // Nodes are cluster-scoped: read when the agent's role allows it.
        let nodes: Api<Node> = Api::all(c);
        if let Ok(list) = nodes.list(&lp).await {
            state.nodes = list.items.iter().map(node).collect();
        }
        Ok(state)
    }
}

impl KubeBackend {
    /// Workloads of this name in every namespace (a cluster-wide list, by
    /// field selector on the name).
    pub async fn locate(&self, name: &str) -> Result<Vec<(String, String)>, BackendError> {
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        let c = self.client();
        let mut found = Vec::new();
        // Called with RFC 1123 names only (`facts::workload::candidates`);
        // the items are checked against the name all the same.
        let names = |items: Vec<(Option<String>, Option<String>)>, kind: &str| {
            items
                .into_iter()
                .filter(|(n, _)| n.as_deref() == Some(name))
                .filter_map(|(_, ns)| ns)
                .map(|ns| (ns, kind.to_string()))
                .collect::<Vec<_>>()
        };
        let d: Api<Deployment> = Api::all(c.clone());
        let list = d
            .list(&lp)
            .await
            .map_err(list_err("deployments", "all namespaces"))?;
        found.extend(names(
            list.items
                .into_iter()
                .map(|o| (o.metadata.name, o.metadata.namespace))
                .collect(),
            "Deployment",
        ));
        let s: Api<StatefulSet> = Api::all(c.clone());
        let list = s
            .list(&lp)
            .await
            .map_err(list_err("statefulsets", "all namespaces"))?;
        found.extend(names(
            list.items
                .into_iter()
                .map(|o| (o.metadata.name, o.metadata.namespace))
                .collect(),
            "StatefulSet",
        ));
        let ds: Api<DaemonSet> = Api::all(c);
        let list = ds
            .list(&lp)
            .await
            .map_err(list_err("daemonsets", "all namespaces"))?;
        found.extend(names(
            list.items
                .into_iter()
                .map(|o| (o.metadata.name, o.metadata.namespace))
                .collect(),
            "DaemonSet",
        ));
        Ok(found)
    }
}

fn deployment(
    d: &Deployment,
    ns: &str,
    history: Vec<crate::bindings::k8s::Revision>,
) -> SimDeployment {
    let spec = d.spec.as_ref();
    let status = d.status.as_ref();
    let template = spec.and_then(|s| s.template.spec.as_ref());
    let containers = template
        .map(|t| {
            t.containers
                .iter()
                .map(|c| {
                    let res = c.resources.as_ref();
                    let get = |m: Option<&BTreeMap<String, Quantity>>, k: &str, millis: bool| {
                        m.and_then(|m| m.get(k)).and_then(|q| quantity(q, millis))
                    };
                    let limits = res.and_then(|r| r.limits.as_ref());
                    let requests = res.and_then(|r| r.requests.as_ref());
                    SimContainer {
                        name: c.name.clone(),
                        image: c.image.clone(),
                        memory_limit_bytes: get(limits, "memory", false),
                        memory_request_bytes: get(requests, "memory", false),
                        cpu_limit_millis: get(limits, "cpu", true),
                        cpu_request_millis: get(requests, "cpu", true),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let stuck = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        });
    let revision = history.iter().map(|r| r.revision).max().unwrap_or(0);
    SimDeployment {
        namespace: ns.to_string(),
        name: d.metadata.name.clone().unwrap_or_default(),
        replicas: n32(spec.and_then(|s| s.replicas)),
        labels: labels(d.metadata.labels.as_ref()),
        annotations: labels(d.metadata.annotations.as_ref()),
        revision,
        revisions: history
            .into_iter()
            .map(|r| SimRevision {
                revision: r.revision,
                images: r.images,
                created_at: r.created_at,
                change_cause: r.change_cause,
            })
            .collect(),
        ready_replicas: Some(n32(status.and_then(|s| s.ready_replicas))),
        generation: d.metadata.generation.and_then(|g| u64::try_from(g).ok()),
        observed_generation: status
            .and_then(|s| s.observed_generation)
            .and_then(|g| u64::try_from(g).ok()),
        progress_deadline_exceeded: stuck,
        containers,
    }
}

fn pod(p: &Pod) -> SimPod {
    let status = p.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_ref())
        .cloned()
        .unwrap_or_default();
    // An init container that waits or fails holds the pod: its reason as
    // kubectl shows it (`Init:CrashLoopBackOff`).
    let init_waiting = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|cs| cs.iter().find_map(|c| c.state.as_ref()?.waiting.clone()))
        .map(|mut w| {
            w.reason = w.reason.map(|r| format!("Init:{r}"));
            w
        });
    let waiting = init_waiting.or_else(|| {
        statuses
            .iter()
            .find_map(|c| c.state.as_ref()?.waiting.clone())
    });
    let waiting = waiting.as_ref();
    let terminated = statuses
        .iter()
        .find_map(|c| c.last_state.as_ref()?.terminated.as_ref());
    let owner = p
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|o| o.controller == Some(true)).or(o.first()));
    let deployment = owner
        .filter(|o| o.kind == "ReplicaSet")
        .map(|o| deployment_of_replica_set(&o.name));
    SimPod {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        deployment: deployment.clone(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        restarts: statuses
            .iter()
            .map(|c| u32::try_from(c.restart_count).unwrap_or(0))
            .sum(),
        last_termination_reason: terminated.and_then(|t| t.reason.clone()),
        memory_bytes: None,
        labels: labels(p.metadata.labels.as_ref()),
        owner_kind: owner
            .filter(|_| deployment.is_none())
            .map(|o| o.kind.clone()),
        owner_name: owner
            .filter(|_| deployment.is_none())
            .map(|o| o.name.clone()),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        waiting_reason: waiting.and_then(|w| w.reason.clone()),
        waiting_message: waiting.and_then(|w| w.message.clone()),
        last_exit_code: terminated.map(|t| t.exit_code),
        status_reason: status.and_then(|s| s.reason.clone()),
        status_message: status.and_then(|s| s.message.clone()),
        logs: vec![],
        previous_logs: vec![],
    }
}

fn job(j: &Job, ns: &str) -> SimJob {
    let st = j.status.as_ref();
    let failed_condition = st.and_then(|s| s.conditions.as_ref()).and_then(|cs| {
        cs.iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
    });
    SimJob {
        namespace: ns.to_string(),
        name: j.metadata.name.clone().unwrap_or_default(),
        owner_cronjob: j
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.kind == "CronJob"))
            .map(|o| o.name.clone()),
        active: n32(st.and_then(|s| s.active)),
        succeeded: n32(st.and_then(|s| s.succeeded)),
        failed: n32(st.and_then(|s| s.failed)),
        backoff_limit: j
            .spec
            .as_ref()
            .and_then(|s| s.backoff_limit)
            .and_then(|b| u32::try_from(b).ok()),
        reason: failed_condition.and_then(|c| c.reason.clone()),
        message: failed_condition.and_then(|c| c.message.clone()),
    }
}

fn hpa(h: &HorizontalPodAutoscaler, ns: &str) -> Option<SimHpa> {
    let spec = h.spec.as_ref()?;
    let st = h.status.as_ref();
    // The first resource metric with a utilisation target.
    let target = spec.metrics.as_ref().and_then(|ms| {
        ms.iter().find_map(|m| {
            let r = m.resource.as_ref()?;
            Some((r.name.clone(), r.target.average_utilization?))
        })
    });
    let current = st.and_then(|s| s.current_metrics.as_ref()).and_then(|ms| {
        ms.iter().find_map(|m| {
            let r = m.resource.as_ref()?;
            r.current.average_utilization
        })
    });
    Some(SimHpa {
        namespace: ns.to_string(),
        name: h.metadata.name.clone().unwrap_or_default(),
        target_kind: spec.scale_target_ref.kind.clone(),
        target_name: spec.scale_target_ref.name.clone(),
        min_replicas: n32(spec.min_replicas).max(1),
        max_replicas: n32(Some(spec.max_replicas)),
        current_replicas: n32(st.and_then(|s| s.current_replicas)),
        desired_replicas: st.map(|s| n32(Some(s.desired_replicas))),
        metric: target.as_ref().map(|(n, _)| n.clone()),
        current_utilization: current.and_then(|c| u32::try_from(c).ok()),
        target_utilization: target.and_then(|(_, t)| u32::try_from(t).ok()),
    })
}

fn node(n: &Node) -> SimNode {
    let st = n.status.as_ref();
    let conditions: Vec<SimCondition> = st
        .and_then(|s| s.conditions.as_ref())
        .map(|cs| {
            cs.iter()
                .map(|c| SimCondition {
                    kind: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let allocatable = st.and_then(|s| s.allocatable.as_ref());
    SimNode {
        name: n.metadata.name.clone().unwrap_or_default(),
        ready: conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True"),
        unschedulable: n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        conditions,
        labels: labels(n.metadata.labels.as_ref()),
        allocatable_cpu_millis: allocatable
            .and_then(|a| a.get("cpu"))
            .and_then(|q| quantity(q, true)),
        allocatable_memory_bytes: allocatable
            .and_then(|a| a.get("memory"))
            .and_then(|q| quantity(q, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_status_maps_to_the_model_init_containers_first() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-7d9f-x", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "migrate", "ready": false, "restartCount": 4, "image": "m", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 127, "reason": "Error"}}}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "a", "imageID": "",
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}
        }))
        .expect("pod");
        let m = pod(&p);
        assert_eq!(m.waiting_reason.as_deref(), Some("Init:CrashLoopBackOff"));
        assert_eq!(
            (m.deployment.as_deref(), m.node.as_deref()),
            (Some("api"), Some("node-1"))
        );
        assert!(!m.ready);
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        let q = |s: &str| Quantity(s.to_string());
        assert_eq!(quantity(&q("512Mi"), false), Some(512 << 20));
        assert_eq!(quantity(&q("1Gi"), false), Some(1 << 30));
        assert_eq!(quantity(&q("250m"), true), Some(250));
        assert_eq!(quantity(&q("2"), true), Some(2000));
        assert_eq!(quantity(&q("1.5"), true), Some(1500));
        assert_eq!(quantity(&q("128M"), false), Some(128_000_000));
        assert_eq!(quantity(&q("lots"), false), None);
    }
}

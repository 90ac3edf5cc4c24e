//! The simulated cluster's state: what a scenario's `cluster.json` holds
//! (format in sdk/README.md and scenarios/FORMAT.md).

use super::SimCertificate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterState {
    #[serde(default)]
    pub deployments: Vec<SimDeployment>,
    #[serde(default)]
    pub pods: Vec<SimPod>,
    #[serde(default)]
    pub events: Vec<SimEvent>,
    #[serde(default)]
    pub objects: Vec<SimObject>,
    #[serde(default)]
    pub certificates: Vec<SimCertificate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statefulsets: Vec<SimStatefulSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub daemonsets: Vec<SimDaemonSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<SimJob>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hpas: Vec<SimHpa>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<SimNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pvcs: Vec<SimPvc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDeployment {
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub revision: u64,
    pub revisions: Vec<SimRevision>,
    /// Ready replicas as the controller reports them; by default counted
    /// from the ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
    /// `Progressing=False` with reason `ProgressDeadlineExceeded`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress_deadline_exceeded: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<SimContainer>,
}

/// One container of a workload's pod template, with its resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimContainer {
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    #[serde(default)]
    pub memory_request_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_limit_millis: Option<u64>,
    #[serde(default)]
    pub cpu_request_millis: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimStatefulSet {
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    #[serde(default)]
    pub ready_replicas: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub current_revision: Option<String>,
    #[serde(default)]
    pub update_revision: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDaemonSet {
    pub namespace: String,
    pub name: String,
    pub desired: u32,
    #[serde(default)]
    pub ready: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimJob {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub owner_cronjob: Option<String>,
    #[serde(default)]
    pub active: u32,
    #[serde(default)]
    pub succeeded: u32,
    #[serde(default)]
    pub failed: u32,
    #[serde(default)]
    pub backoff_limit: Option<u32>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimHpa {
    pub namespace: String,
    pub name: String,
    #[serde(default = "deployment_kind")]
    pub target_kind: String,
    pub target_name: String,
    #[serde(default = "one")]
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub current_replicas: u32,
    #[serde(default)]
    pub desired_replicas: Option<u32>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub current_utilization: Option<u32>,
    #[serde(default)]
    pub target_utilization: Option<u32>,
}

fn deployment_kind() -> String {
    "Deployment".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimNode {
    pub name: String,
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default)]
    pub unschedulable: bool,
    #[serde(default)]
    pub conditions: Vec<SimCondition>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub allocatable_cpu_millis: Option<u64>,
    #[serde(default)]
    pub allocatable_memory_bytes: Option<u64>,
}

/// A status condition as the API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCondition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPvc {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub used_by_pod: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimRevision {
    pub revision: u64,
    pub images: Vec<String>,
    pub created_at: i64,
    #[serde(default)]
    pub change_cause: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPod {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub deployment: Option<String>,
    #[serde(default = "running")]
    pub phase: String,
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub last_termination_reason: Option<String>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The owner other than a Deployment's ReplicaSet (`deployment` is the
    /// shorthand for that): StatefulSet, DaemonSet, Job, ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A container's `state.waiting.reason` (CrashLoopBackOff,
    /// ImagePullBackOff, CreateContainerConfigError...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
    /// The pod's own `status.reason` (Evicted, NodeLost...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// The current container's log lines (`pod-logs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    /// The previous, terminated container's log lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_logs: Vec<String>,
}

fn running() -> String {
    "Running".into()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEvent {
    pub namespace: String,
    pub object_kind: String,
    pub object_name: String,
    pub event_type: String,
    pub reason: String,
    pub message: String,
    #[serde(default = "one")]
    pub count: u32,
    pub last_seen: i64,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The moment the demo state describes: its alert's `startsAt`.
pub const DEMO_PRESENT_MS: i64 = 1_795_760_960_000;

impl ClusterState {
    /// The objects of one namespace, and every node.
    pub fn namespace(&self, ns: &str) -> ClusterState {
        fn of<T: Clone>(items: &[T], ns: &str, key: impl Fn(&T) -> &str) -> Vec<T> {
            items.iter().filter(|i| key(i) == ns).cloned().collect()
        }
        ClusterState {
            deployments: of(&self.deployments, ns, |d| &d.namespace),
            pods: of(&self.pods, ns, |p| &p.namespace),
            events: of(&self.events, ns, |e| &e.namespace),
            objects: of(&self.objects, ns, |o| &o.namespace),
            certificates: of(&self.certificates, ns, |c| &c.namespace),
            statefulsets: of(&self.statefulsets, ns, |s| &s.namespace),
            daemonsets: of(&self.daemonsets, ns, |d| &d.namespace),
            jobs: of(&self.jobs, ns, |j| &j.namespace),
            hpas: of(&self.hpas, ns, |h| &h.namespace),
            nodes: self.nodes.clone(),
            pvcs: of(&self.pvcs, ns, |p| &p.namespace),
        }
    }

    /// Moves every absolute time by `delta_ms`.
    pub fn shift_times(&mut self, delta_ms: i64) {
        for d in &mut self.deployments {
            for r in &mut d.revisions {
                r.created_at += delta_ms;
            }
        }
        for e in &mut self.events {
            e.last_seen += delta_ms;
        }
        for c in &mut self.certificates {
            c.shift_times(delta_ms);
        }
    }
}

//! The simulated cluster's state: what a scenario's `cluster.json` holds
//! (format in sdk/README.md).

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

//! Typed facts: what the context showed, in one small vocabulary the
//! runbook planner, the model's prompt and the report share.
//!
//! Evidence is what a source said, in its words; a fact is what the host
//! concluded from what it observed — a pod's waiting reason read from its
//! status, a rollout and how long before the symptoms it happened, a
//! dependency failing in the logs. Rules match facts, not the wording of
//! summaries or one scenario's metric names, so the same runbook holds
//! whichever rule set fired the alert and whichever source showed the
//! symptom. Onset order is part of the vocabulary: a change is a candidate
//! cause only if it precedes the symptoms.

pub mod certificates;
pub mod cluster;
pub mod signals;
mod subject;
pub mod workload;

pub use subject::{Subject, subject};

use serde::{Deserialize, Serialize};

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A new pod template (image, env, config in the template).
    Rollout,
    Config,
    Scale,
    Sync,
}

/// Where a fact was seen: a dependency failure shown by metrics, logs,
/// events or traces is the same fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    Metric,
    Log,
    Event,
    Status,
    Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    Cpu,
    Memory,
    Disk,
    Replicas,
}

/// One fact. `kind` names the variant in JSON and in runbook conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fact {
    /// The incident's workload, and how the host found it.
    Workload {
        object_kind: String,
        namespace: String,
        name: String,
        /// e.g. "label `pod` → ReplicaSet → Deployment".
        resolved_from: String,
    },
    /// A change to the workload (or something it depends on).
    Change {
        change: ChangeKind,
        object: String,
        at_ms: i64,
        /// Minutes between the change and the symptoms' onset; negative
        /// when the change came after them (then it is not a cause).
        minutes_before_onset: i64,
        description: String,
    },
    /// Pods of the workload in a named condition.
    PodCondition {
        /// OOMKilled, CrashLoopBackOff, Error, ImagePullBackOff,
        /// CreateContainerConfigError, Evicted, Pending, Unschedulable,
        /// NotReady, ProbeFailing...
        reason: String,
        pods: u32,
        restarts: u32,
        exit_code: Option<i32>,
        message: Option<String>,
    },
    /// Something the workload depends on is failing.
    DependencyFailure {
        dependency: String,
        /// e.g. "5xx", "connection-refused", "timeout", "dns", "tls", "down".
        error_class: String,
        seen: Seen,
        detail: String,
    },
    /// Error lines in the workload's own logs that name no dependency.
    LogErrors {
        /// "oom", "config", "panic", "permission", "disk", "other".
        class: String,
        count: u64,
        example: String,
    },
    /// A series moved away from its baseline.
    MetricShift {
        /// What the series measures, classified from its PromQL:
        /// "error-rate", "latency", "cpu", "memory", "throttling",
        /// "restarts", "disk", "traffic", "other".
        signal: String,
        series: String,
        baseline: f64,
        current: f64,
        onset_ms: Option<i64>,
    },
    /// A resource near its limit (utilisation of the limit, 0..1+).
    Saturation {
        resource: Resource,
        utilisation: f64,
        /// Filling towards the limit rather than steady.
        rising: bool,
        detail: String,
    },
    Certificate {
        namespace: String,
        name: String,
        days_left: Option<i64>,
        ready: bool,
        /// Why it is not ready or cannot be issued, if known.
        last_error: Option<String>,
        /// Its issuer has issued another certificate since that error: the
        /// failure is past, only cert-manager's retry back-off remains.
        issuer_recovered: bool,
    },
    /// A probe or scrape target: up or down.
    EndpointHealth { target: String, up: bool },
    /// The workload's replicas against its bounds.
    Capacity {
        replicas: u32,
        ready: u32,
        hpa_min: Option<u32>,
        hpa_max: Option<u32>,
        /// The autoscaler wants more than it may have.
        at_max: bool,
    },
    /// A rollout that does not progress.
    RolloutStuck { reason: String },
    NodeCondition {
        node: String,
        ready: bool,
        /// The kubelet stopped posting status (Ready=Unknown): the host or
        /// its network is gone, not merely unhealthy.
        unreachable: bool,
        reason: Option<String>,
    },
    /// NetworkPolicies in the workload's namespace: they decide whether
    /// Prometheus or a peer reaches its pods at all.
    NetworkPolicies {
        namespace: String,
        names: Vec<String>,
    },
    /// Where the workload's pods run: all replicas on one node share its
    /// fate (no anti-affinity or topology spread).
    Placement { pods: u32, nodes: Vec<String> },
    VolumeFilling {
        volume: String,
        used_ratio: Option<f64>,
    },
    JobFailed {
        job: String,
        reason: Option<String>,
        failed: u32,
    },
    /// A context read the host refused: the decision was made without it.
    MissingGrant { source: String, detail: String },
}

impl Fact {
    /// The variant's name, as runbook conditions and the report use it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fact::Workload { .. } => "workload",
            Fact::Change { .. } => "change",
            Fact::PodCondition { .. } => "pod-condition",
            Fact::DependencyFailure { .. } => "dependency-failure",
            Fact::LogErrors { .. } => "log-errors",
            Fact::MetricShift { .. } => "metric-shift",
            Fact::Saturation { .. } => "saturation",
            Fact::Certificate { .. } => "certificate",
            Fact::EndpointHealth { .. } => "endpoint-health",
            Fact::Capacity { .. } => "capacity",
            Fact::RolloutStuck { .. } => "rollout-stuck",
            Fact::NodeCondition { .. } => "node-condition",
            Fact::Placement { .. } => "placement",
            Fact::NetworkPolicies { .. } => "network-policies",
            Fact::VolumeFilling { .. } => "volume-filling",
            Fact::JobFailed { .. } => "job-failed",
            Fact::MissingGrant { .. } => "missing-grant",
        }
    }

    /// One line for people and prompts.
    pub fn line(&self) -> String {
        match self {
            Fact::Workload {
                object_kind,
                namespace,
                name,
                resolved_from,
            } => format!("workload {object_kind} {namespace}/{name} (from {resolved_from})"),
            Fact::Change {
                change,
                object,
                minutes_before_onset,
                description,
                ..
            } => {
                let when = if *minutes_before_onset >= 0 {
                    format!("{minutes_before_onset} min before the symptoms")
                } else {
                    format!("{} min after the symptoms began", -minutes_before_onset)
                };
                format!("{change:?} of {object} {when}: {description}").to_lowercase()
            }
            Fact::PodCondition {
                reason,
                pods,
                restarts,
                exit_code,
                message,
            } => {
                let mut s = format!("{pods} pod(s) {reason}, {restarts} restarts");
                if let Some(c) = exit_code {
                    s.push_str(&format!(", exit code {c}"));
                }
                if let Some(m) = message {
                    s.push_str(&format!(": {m}"));
                }
                s
            }
            Fact::DependencyFailure {
                dependency,
                error_class,
                seen,
                detail,
            } => format!(
                "dependency {dependency} failing ({error_class}, seen in {}): {detail}",
                format!("{seen:?}").to_lowercase()
            ),
            Fact::LogErrors {
                class,
                count,
                example,
            } => format!("{count} {class} error line(s) in the logs, e.g. \"{example}\""),
            Fact::MetricShift {
                signal,
                series,
                baseline,
                current,
                ..
            } => format!("{series} ({signal}): {baseline:.3} -> {current:.3}"),
            Fact::Saturation {
                resource,
                utilisation,
                rising,
                detail,
            } => format!(
                "{} at {:.0}% of its limit{}: {detail}",
                format!("{resource:?}").to_lowercase(),
                utilisation * 100.0,
                if *rising { ", rising" } else { "" }
            ),
            Fact::Certificate {
                namespace,
                name,
                days_left,
                ready,
                last_error,
                issuer_recovered,
            } => format!(
                "certificate {namespace}/{name}: {}, {}{}{}",
                if *ready { "ready" } else { "not ready" },
                days_left.map_or("expiry unknown".into(), |d| format!("{d} days left")),
                last_error
                    .as_ref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default(),
                if *issuer_recovered {
                    "; its issuer has issued certificates since (retry back-off)"
                } else {
                    ""
                }
            ),
            Fact::EndpointHealth { target, up } => {
                format!("{target} {}", if *up { "up" } else { "down" })
            }
            Fact::Capacity {
                replicas,
                ready,
                hpa_min,
                hpa_max,
                at_max,
            } => {
                let mut s = format!("{ready}/{replicas} replicas ready");
                if let (Some(min), Some(max)) = (hpa_min, hpa_max) {
                    s.push_str(&format!(", autoscaler {min}..{max}"));
                }
                if *at_max {
                    s.push_str(", at its maximum");
                }
                s
            }
            Fact::RolloutStuck { reason } => format!("rollout not progressing: {reason}"),
            Fact::NodeCondition {
                node,
                ready,
                unreachable,
                reason,
            } => format!(
                "node {node} {}{}",
                match (ready, unreachable) {
                    (true, _) => "ready",
                    (false, true) => "unreachable (NotReady, no status from its kubelet)",
                    (false, false) => "not ready",
                },
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            Fact::NetworkPolicies { namespace, names } => {
                format!("NetworkPolicies in {namespace}: {}", names.join(", "))
            }
            Fact::Placement { pods, nodes } => match nodes.as_slice() {
                [one] => format!("all {pods} pods on the same node {one}"),
                _ => format!("{pods} pods on {} nodes", nodes.len()),
            },
            Fact::VolumeFilling { volume, used_ratio } => format!(
                "volume {volume} filling{}",
                used_ratio
                    .map(|r| format!(" ({:.0}% used)", r * 100.0))
                    .unwrap_or_default()
            ),
            Fact::JobFailed {
                job,
                reason,
                failed,
            } => format!(
                "job {job} failed {failed} time(s){}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            Fact::MissingGrant { source, detail } => {
                format!("missing grant: {source}: {detail}")
            }
        }
    }
}

/// Every fact of one incident, with the moment the symptoms began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// When the symptoms began (the alert's start, or an earlier metric
    /// onset), ms since the epoch.
    pub onset_ms: i64,
    pub items: Vec<Fact>,
}

impl Facts {
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Fact> + 'a {
        self.items.iter().filter(move |f| f.kind() == kind)
    }

    pub fn push(&mut self, fact: Fact) {
        if !self.items.contains(&fact) {
            self.items.push(fact);
        }
    }

    /// The workload fact, if the host resolved one.
    pub fn workload(&self) -> Option<(&str, &str, &str)> {
        self.items.iter().find_map(|f| match f {
            Fact::Workload {
                object_kind,
                namespace,
                name,
                ..
            } => Some((object_kind.as_str(), namespace.as_str(), name.as_str())),
            _ => None,
        })
    }
}

/// Labels the host sets on the incident's alert (any a sender sent under
/// this prefix are dropped first): the resolved namespace and workload, so
/// sources' query templates and runbook templates name the workload
/// whatever label the rule set used.
pub const HOST_LABEL_PREFIX: &str = "runwarden_";

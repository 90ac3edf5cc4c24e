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

pub mod cluster;
pub mod signals;
pub mod workload;

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

/// What the incident is about, found before the sources run.
#[derive(Debug, Default)]
pub struct Subject {
    pub namespace: Option<String>,
    /// Kind and name of the workload.
    pub workload: Option<(String, String)>,
    /// Found in the cluster (else a best guess from the labels, good for
    /// queries, never for acting).
    pub verified: bool,
    /// Found in the cluster by a word of a free-text title: described
    /// (context, facts about its pods), never acted on.
    pub from_title: bool,
    view: Option<crate::capability::k8s::sim::ClusterState>,
    facts: Facts,
}

impl Subject {
    /// The alert's labels as the sources and planners see them: the
    /// sender's, without any `runwarden_*` label it sent, plus the host's.
    pub fn labels(
        &self,
        sent: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let mut out: std::collections::BTreeMap<String, String> = sent
            .iter()
            .filter(|(k, _)| !k.starts_with(HOST_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut set = |k: &str, v: &str| {
            out.insert(format!("{HOST_LABEL_PREFIX}{k}"), v.to_string());
        };
        if let Some(ns) = &self.namespace {
            set("namespace", ns);
        }
        if let Some((kind, name)) = &self.workload {
            set("workload", name);
            set("workload_kind", kind);
            set(
                "workload_verified",
                if self.verified { "true" } else { "false" },
            );
        }
        out
    }

    /// Every fact: the subject's, the cluster's about the workload, the
    /// sources' signals.
    pub fn conclude(
        self,
        labels: &std::collections::BTreeMap<String, String>,
        evidence: &[crate::analysis::EvidenceItem],
        gaps: &[crate::pipeline::context::Gap],
        now_ms: i64,
    ) -> Facts {
        let mut facts = self.facts;
        for gap in gaps {
            let r = gap.reason.to_lowercase();
            // A refused read, not an unreachable endpoint.
            if r.contains("denied") || r.contains("not granted") {
                facts.push(Fact::MissingGrant {
                    source: gap.source.clone(),
                    detail: gap.reason.clone(),
                });
            }
        }
        let own = self.workload.as_ref().map(|(_, n)| n.as_str());
        signals::derive(evidence, own, &mut facts);
        // The symptoms began when the first symptom series moved, if that
        // was before the alert fired (alerts fire after a `for:` period).
        let alert_start = facts.onset_ms;
        let earliest = facts
            .items
            .iter()
            .filter_map(|f| match f {
                Fact::MetricShift {
                    signal, onset_ms, ..
                } if matches!(signal.as_str(), "error-rate" | "latency") => *onset_ms,
                _ => None,
            })
            .filter(|t| *t < alert_start && alert_start - *t < 60 * 60 * 1000)
            .min();
        if let Some(t) = earliest {
            facts.onset_ms = t;
        }
        if let Some(v) = &self.view {
            let w = self
                .workload
                .as_ref()
                .filter(|_| self.verified || self.from_title)
                .zip(self.namespace.as_ref())
                .map(|((k, n), ns)| (k.as_str(), ns.as_str(), n.as_str()));
            cluster::derive(v, w, labels, self.namespace.as_deref(), &mut facts, now_ms);
        }
        // Log lines and event messages end up in hypotheses, escalations
        // and prompts: redacted like every other alert-derived text.
        facts.items = facts
            .items
            .into_iter()
            .map(|f| {
                serde_json::to_value(&f)
                    .ok()
                    .map(|v| crate::redact::redact_json(&v))
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or(f)
            })
            .collect();
        facts
    }
}

/// The one (namespace, kind) of a workload named `name` that the host may
/// read, if exactly one.
async fn locate_once(
    cluster: &dyn crate::capability::k8s::ClusterBackend,
    readable: &(dyn Fn(&str) -> bool + Sync),
    name: &str,
) -> Option<(String, String)> {
    let found = cluster.locate_workload(name).await.ok()?;
    let found: Vec<(String, String)> = found.into_iter().filter(|(ns, _)| readable(ns)).collect();
    match <[(String, String); 1]>::try_from(found) {
        Ok([one]) => Some(one),
        Err(_) => None,
    }
}

/// Finds what the incident is about: the alert's namespace, the host's
/// view of it (under the union of the context sources' Kubernetes read
/// grants: if no context source may read the namespace, neither does the
/// host, and the decision says so), and the workload.
pub async fn subject(
    cluster: &dyn crate::capability::k8s::ClusterBackend,
    read_grants: &[(&str, &crate::capability::k8s::K8sGrant)],
    alert_name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    alert_start_ms: i64,
) -> Subject {
    let sent: std::collections::BTreeMap<String, String> = workload::unpack(
        &labels
            .iter()
            .filter(|(k, _)| !k.starts_with(HOST_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let readable = |ns: &str| {
        read_grants
            .iter()
            .any(|(_, g)| crate::capability::k8s::check_read(g, ns).is_ok())
    };
    let mut s = Subject {
        namespace: workload::namespace(&sent),
        facts: Facts {
            onset_ms: alert_start_ms,
            items: vec![],
        },
        ..Subject::default()
    };
    // No namespace: a workload a label names, found in exactly one
    // namespace the host may read (verified: a sender's label chose it);
    // else one a word of the title names (context only, never acted on).
    let mut located: Option<Fact> = None;
    if s.namespace.is_none() {
        for name in workload::candidates(&sent) {
            if let Some((ns, kind)) = locate_once(cluster, &readable, &name).await {
                s.namespace = Some(ns.clone());
                located = Some(Fact::Workload {
                    object_kind: kind.clone(),
                    namespace: ns,
                    name: name.clone(),
                    resolved_from: format!(
                        "the name `{name}` in the alert's labels: the only {kind} of that name the host may read"
                    ),
                });
                break;
            }
        }
    }
    if s.namespace.is_none() && located.is_none() {
        for word in workload::title_words(alert_name) {
            if let Some((ns, kind)) = locate_once(cluster, &readable, &word).await {
                s.namespace = Some(ns);
                s.workload = Some((kind, word));
                s.from_title = true;
                break;
            }
        }
    }
    if let Some(ns) = s.namespace.clone() {
        let denials: Vec<String> = read_grants
            .iter()
            .filter_map(|(name, g)| {
                crate::capability::k8s::check_read(g, &ns)
                    .err()
                    .map(|d| format!("{name}: {}", d.0))
            })
            .collect();
        if denials.len() == read_grants.len() {
            s.facts.push(Fact::MissingGrant {
                source: "cluster".into(),
                detail: if read_grants.is_empty() {
                    format!("no context source has a Kubernetes read grant; namespace `{ns}` was not read")
                } else {
                    format!("no context source may read namespace `{ns}` ({})", denials.join("; "))
                },
            });
        } else {
            match cluster.namespace_view(&ns).await {
                Ok(v) => s.view = Some(v),
                Err(e) => s.facts.push(Fact::MissingGrant {
                    source: "cluster".into(),
                    detail: format!("reading namespace `{ns}`: {e}"),
                }),
            }
        }
    }
    if s.from_title {
        return s;
    }
    let resolved = located.or_else(|| s.view.as_ref().and_then(|v| workload::resolve(&sent, v)));
    match resolved {
        Some(Fact::Workload {
            object_kind,
            namespace,
            name,
            resolved_from,
        }) => {
            s.workload = Some((object_kind.clone(), name.clone()));
            s.verified = true;
            s.facts.push(Fact::Workload {
                object_kind,
                namespace,
                name,
                resolved_from,
            });
        }
        _ => s.workload = workload::guess(&sent).map(|n| ("Deployment".to_string(), n)),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::k8s::sim::SimulatedCluster;
    use std::collections::BTreeMap;

    fn grant() -> crate::capability::k8s::K8sGrant {
        toml::from_str("namespaces = []\nread_all_namespaces = true\noperations = [\"read\"]\n")
            .expect("grant")
    }

    fn cluster() -> SimulatedCluster {
        SimulatedCluster::from_json(
            &serde_json::json!({"deployments": [
                {"namespace": "shop", "name": "checkout", "replicas": 2, "revision": 1, "revisions": []},
                {"namespace": "shop", "name": "search", "replicas": 2, "revision": 1, "revisions": []},
                {"namespace": "kube-system", "name": "coredns", "replicas": 2, "revision": 1, "revisions": []}
            ]})
            .to_string(),
        )
        .expect("cluster")
    }

    #[tokio::test]
    async fn a_workload_named_only_in_a_title_is_described_never_verified() {
        let g = grant();
        let labels = BTreeMap::from([(
            "alertname".to_string(),
            "checkout slow, search fine".to_string(),
        )]);
        let s = subject(
            &cluster(),
            &[("k8s-changes", &g)],
            "checkout slow, search fine",
            &labels,
            0,
        )
        .await;
        assert_eq!(s.workload, Some(("Deployment".into(), "checkout".into())));
        assert!(s.from_title && !s.verified);
        let host = s.labels(&labels);
        assert_eq!(host["runwarden_workload_verified"], "false");
        let facts = s.conclude(&host, &[], &[], 0);
        assert!(facts.workload().is_none(), "{facts:?}");
        // A label naming it is the sender's word: verified.
        let labels = BTreeMap::from([("service_name".to_string(), "search".to_string())]);
        let s = subject(
            &cluster(),
            &[("k8s-changes", &g)],
            "HighLatency",
            &labels,
            0,
        )
        .await;
        assert!(s.verified && !s.from_title);
        assert_eq!(s.labels(&labels)["runwarden_namespace"], "shop");
        // Never a system namespace, whatever the name.
        let labels = BTreeMap::from([("app".to_string(), "coredns".to_string())]);
        let s = subject(&cluster(), &[("k8s-changes", &g)], "coredns", &labels, 0).await;
        assert_eq!(s.workload.map(|w| w.1), Some("coredns".into()));
        assert!(!s.verified && s.namespace.is_none(), "{:?}", s.namespace);
    }

    #[tokio::test]
    async fn a_sender_cannot_set_the_hosts_labels_and_secrets_in_facts_are_redacted() {
        let g = grant();
        let labels = BTreeMap::from([
            ("namespace".to_string(), "shop".to_string()),
            ("deployment".to_string(), "search".to_string()),
            ("runwarden_workload".to_string(), "checkout".to_string()),
            (
                "runwarden_workload_verified".to_string(),
                "true".to_string(),
            ),
        ]);
        let s = subject(
            &cluster(),
            &[("k8s-changes", &g)],
            "KubePodCrashLooping",
            &labels,
            0,
        )
        .await;
        let host = s.labels(&labels);
        assert_eq!(host["runwarden_workload"], "search");
        let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
        let logs = crate::analysis::EvidenceItem {
            source: "loki".into(),
            kind: "log-lines".into(),
            summary: String::new(),
            body: serde_json::json!({"top_patterns": [{"pattern": "p", "count": 3, "error": true,
                "example": format!("error: config token={token} is not set")}]}),
            facts: vec![],
        };
        let facts = s.conclude(&host, &[logs], &[], 0);
        let text = serde_json::to_string(&facts).expect("json");
        assert!(text.contains("config"), "{text}");
        assert!(!text.contains(token), "{text}");
    }
}

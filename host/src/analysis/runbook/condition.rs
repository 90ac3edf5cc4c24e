//! Rule conditions: on evidence text (the round-1 vocabulary) and on the
//! facts the host observed (`crate::facts`). A condition holds when every
//! key it sets holds; it cites what made it hold.

use super::opt_regex;
use crate::analysis::EvidenceItem;
use crate::facts::{Fact, Facts};
use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default)]
    pub recent_change_minutes: Option<i64>,
    #[serde(default, with = "opt_regex")]
    pub pattern: Option<Regex>,
    #[serde(default, with = "opt_regex")]
    pub absent_pattern: Option<Regex>,
    #[serde(default)]
    pub metric_above: Option<MetricThreshold>,
    #[serde(default)]
    pub metric_below: Option<MetricThreshold>,
    #[serde(default)]
    pub restarts_at_least: Option<u64>,
    // Conditions on facts (`crate::facts`): what the host observed, in the
    // vocabulary every source and rule set maps to.
    /// Pods of the workload in one of these conditions (OOMKilled,
    /// CrashLoopBackOff, ImagePullBackOff, CreateContainerConfigError,
    /// Evicted, Unschedulable, Pending, ProbeFailing, NotReady, Error...).
    #[serde(default)]
    pub pod_condition: Option<Vec<String>>,
    /// No pod of the workload in any of these conditions.
    #[serde(default)]
    pub not_pod_condition: Option<Vec<String>>,
    /// A change (rollout or config) at most this many minutes before the
    /// symptoms began — never one after them.
    #[serde(default)]
    pub change_within_minutes: Option<i64>,
    /// No change in that many minutes before the symptoms.
    #[serde(default)]
    pub no_change_within_minutes: Option<i64>,
    /// Whether a dependency is failing (metrics, logs or events say so).
    #[serde(default)]
    pub dependency_failing: Option<bool>,
    /// A symptom series of this class moved: error-rate, latency, cpu,
    /// memory, throttling, restarts, disk, traffic.
    #[serde(default)]
    pub signal: Option<String>,
    /// A resource at or above `above` of its limit.
    #[serde(default)]
    pub saturated: Option<Saturation>,
    /// The autoscaler is at its maximum (true) or has room (false).
    #[serde(default)]
    pub autoscaler_at_max: Option<bool>,
    /// The workload has an autoscaler (true) or not (false).
    #[serde(default)]
    pub autoscaled: Option<bool>,
    #[serde(default)]
    pub rollout_stuck: Option<bool>,
    #[serde(default)]
    pub node_not_ready: Option<bool>,
    /// A node whose kubelet stopped reporting (Ready=Unknown).
    #[serde(default)]
    pub node_unreachable: Option<bool>,
    /// NetworkPolicies exist in the alert's namespace.
    #[serde(default)]
    pub network_policies: Option<bool>,
    /// Every desired replica of the workload is ready (true), or some are
    /// not (false).
    #[serde(default)]
    pub all_ready: Option<bool>,
    /// Two or more pods of the workload, all on one node.
    #[serde(default)]
    pub single_node: Option<bool>,
    #[serde(default)]
    pub job_failed: Option<bool>,
    /// A certificate not ready, or expiring within `expiring_within_days`.
    #[serde(default)]
    pub certificate: Option<CertificateCondition>,
    /// Error lines of the workload's own of these classes: oom, config,
    /// panic, permission, disk, other.
    #[serde(default)]
    pub log_errors: Option<Vec<String>>,
    /// The host found the workload in the cluster, of one of these kinds.
    #[serde(default)]
    pub workload_kind: Option<Vec<String>>,
    /// A context read was refused (true) or none was (false).
    #[serde(default)]
    pub missing_grant: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saturation {
    pub resource: crate::facts::Resource,
    #[serde(default = "most")]
    pub above: f64,
    /// Only a resource still growing towards its limit (a leak), not one
    /// that sits there by design (a JVM heap sized to its limit).
    #[serde(default)]
    pub rising: Option<bool>,
}

fn most() -> f64 {
    0.9
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateCondition {
    #[serde(default)]
    pub not_ready: Option<bool>,
    #[serde(default)]
    pub expiring_within_days: Option<i64>,
    /// An issuance error is known (rate limits, failing challenges).
    #[serde(default)]
    pub failing: Option<bool>,
    /// The issuer has issued other certificates since that error.
    #[serde(default)]
    pub issuer_recovered: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    pub name: String,
    pub value: f64,
}

impl Condition {
    /// Whether the condition holds, and what made it hold (evidence
    /// summaries, fact lines).
    pub(super) fn holds(&self, evidence: &[EvidenceItem], facts: &Facts) -> Option<Vec<String>> {
        let mut cited: Vec<String> = Vec::new();
        if let Some(max) = self.recent_change_minutes {
            let hit = evidence.iter().find(|e| {
                e.kind == "change-event"
                    && e.body["minutes_before_alert"]
                        .as_i64()
                        .is_some_and(|m| (0..=max).contains(&m))
            })?;
            cited.push(hit.summary.clone());
        }
        if let Some(re) = &self.pattern {
            let hit = evidence.iter().find(|e| re.is_match(&e.summary))?;
            cited.push(hit.summary.clone());
        }
        if let Some(re) = &self.absent_pattern
            && evidence.iter().any(|e| re.is_match(&e.summary))
        {
            return None;
        }
        if let Some(t) = &self.metric_above {
            let hit = evidence.iter().find(|e| {
                e.kind == "metric-series"
                    && e.summary.starts_with(&format!("{}:", t.name))
                    && e.body["now"].as_f64().is_some_and(|v| v > t.value)
            })?;
            cited.push(hit.summary.clone());
        }
        if let Some(t) = &self.metric_below {
            let hit = evidence.iter().find(|e| {
                e.kind == "metric-series"
                    && e.summary.starts_with(&format!("{}:", t.name))
                    && e.body["now"].as_f64().is_some_and(|v| v < t.value)
            })?;
            cited.push(hit.summary.clone());
        }
        if let Some(min) = self.restarts_at_least {
            let from_evidence = evidence.iter().find(|e| {
                let total: u64 = e.body["pods"]
                    .as_array()
                    .map(|pods| pods.iter().filter_map(|p| p["restarts"].as_u64()).sum())
                    .unwrap_or(0);
                total >= min
            });
            let from_facts = facts.items.iter().find(
                |f| matches!(f, Fact::PodCondition { restarts, .. } if u64::from(*restarts) >= min),
            );
            match (from_evidence, from_facts) {
                (_, Some(f)) => cited.push(f.line()),
                (Some(e), None) => cited.push(e.summary.clone()),
                (None, None) => return None,
            }
        }
        for (wanted, found) in self.fact_checks(facts) {
            let hits: Vec<&Fact> = found;
            if wanted == hits.is_empty() {
                return None;
            }
            cited.extend(hits.into_iter().map(Fact::line));
        }
        Some(cited)
    }

    /// Each fact condition: whether facts must exist (true) or must not
    /// (false), and the facts that match it.
    fn fact_checks<'f>(&self, facts: &'f Facts) -> Vec<(bool, Vec<&'f Fact>)> {
        let find = |pred: &dyn Fn(&Fact) -> bool| -> Vec<&'f Fact> {
            facts.items.iter().filter(|f| pred(f)).collect()
        };
        let mut checks = Vec::new();
        if let Some(reasons) = &self.pod_condition {
            checks.push((
                true,
                find(&|f| {
                    matches!(f, Fact::PodCondition { reason, .. }
                        if reasons.iter().any(|r| r.eq_ignore_ascii_case(reason)))
                }),
            ));
        }
        if let Some(reasons) = &self.not_pod_condition {
            checks.push((
                false,
                find(&|f| {
                    matches!(f, Fact::PodCondition { reason, .. }
                        if reasons.iter().any(|r| r.eq_ignore_ascii_case(reason)))
                }),
            ));
        }
        let change_within = |max: i64| move |f: &Fact| matches!(f, Fact::Change { minutes_before_onset: m, .. } if (0..=max).contains(m));
        if let Some(max) = self.change_within_minutes {
            checks.push((true, find(&change_within(max))));
        }
        if let Some(max) = self.no_change_within_minutes {
            checks.push((false, find(&change_within(max))));
        }
        if let Some(want) = self.dependency_failing {
            checks.push((want, find(&|f| matches!(f, Fact::DependencyFailure { .. }))));
        }
        if let Some(signal) = &self.signal {
            checks.push((
                true,
                find(&|f| matches!(f, Fact::MetricShift { signal: s, .. } if s == signal)),
            ));
        }
        if let Some(sat) = &self.saturated {
            checks.push((
                true,
                find(&|f| {
                    matches!(f, Fact::Saturation { resource, utilisation, rising, .. }
                        if *resource == sat.resource
                            && *utilisation >= sat.above
                            && sat.rising.is_none_or(|r| r == *rising))
                }),
            ));
        }
        if let Some(want) = self.autoscaler_at_max {
            checks.push((
                want,
                find(&|f| matches!(f, Fact::Capacity { at_max: true, .. })),
            ));
        }
        if let Some(want) = self.autoscaled {
            checks.push((
                want,
                find(&|f| {
                    matches!(
                        f,
                        Fact::Capacity {
                            hpa_max: Some(_),
                            ..
                        }
                    )
                }),
            ));
        }
        if let Some(want) = self.rollout_stuck {
            checks.push((want, find(&|f| matches!(f, Fact::RolloutStuck { .. }))));
        }
        if let Some(want) = self.node_not_ready {
            checks.push((
                want,
                find(&|f| matches!(f, Fact::NodeCondition { ready: false, .. })),
            ));
        }
        if let Some(want) = self.node_unreachable {
            checks.push((
                want,
                find(&|f| {
                    matches!(
                        f,
                        Fact::NodeCondition {
                            unreachable: true,
                            ..
                        }
                    )
                }),
            ));
        }
        if let Some(want) = self.network_policies {
            checks.push((want, find(&|f| matches!(f, Fact::NetworkPolicies { .. }))));
        }
        if let Some(want) = self.all_ready {
            checks.push((
                want,
                find(&|f| matches!(f, Fact::Capacity { replicas, ready, .. } if *replicas > 0 && ready >= replicas)),
            ));
        }
        if let Some(want) = self.single_node {
            checks.push((
                want,
                find(&|f| matches!(f, Fact::Placement { nodes, .. } if nodes.len() == 1)),
            ));
        }
        if let Some(want) = self.job_failed {
            checks.push((want, find(&|f| matches!(f, Fact::JobFailed { .. }))));
        }
        if let Some(c) = &self.certificate {
            checks.push((
                true,
                find(&|f| match f {
                    Fact::Certificate {
                        ready,
                        days_left,
                        last_error,
                        issuer_recovered,
                        ..
                    } => {
                        c.issuer_recovered.is_none_or(|w| w == *issuer_recovered)
                            && c.not_ready.is_none_or(|w| w != *ready)
                            && c.expiring_within_days
                                .is_none_or(|d| days_left.is_some_and(|l| l <= d))
                            && c.failing.is_none_or(|w| w == last_error.is_some())
                    }
                    _ => false,
                }),
            ));
        }
        if let Some(classes) = &self.log_errors {
            checks.push((
                true,
                find(&|f| matches!(f, Fact::LogErrors { class, .. } if classes.contains(class))),
            ));
        }
        if let Some(kinds) = &self.workload_kind {
            checks.push((
                true,
                find(&|f| matches!(f, Fact::Workload { object_kind, .. } if kinds.contains(object_kind))),
            ));
        }
        if let Some(want) = self.missing_grant {
            checks.push((want, find(&|f| matches!(f, Fact::MissingGrant { .. }))));
        }
        checks
    }
}

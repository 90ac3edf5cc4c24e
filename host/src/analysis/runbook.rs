//! The runbook planner: a decision tree written by people, no model.
//!
//! A runbook (`runbooks/<alertname>.toml`) lists rules in order; the first
//! rule whose conditions all hold decides. Conditions look at the evidence:
//!
//! - `recent_change_minutes = N`: a change event at most N minutes before
//!   the alert (not after it);
//! - `pattern = "regex"`: some evidence summary matches;
//! - `absent_pattern = "regex"`: no evidence summary matches;
//! - `metric_above = { name = "5xx ratio", value = 0.05 }`: a metric series
//!   of that name currently above the value;
//! - `restarts_at_least = N`: the workload's pods restarted at least N times.
//!
//! Action arguments are templates over the alert's labels (`{{namespace}}`).
//! No rule matching is a decision too: no action, low confidence, escalate.

use super::{Confidence, Decision, EvidenceItem, PlannerKind, ProposedAction};
use crate::facts::{Fact, Facts};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// The alert name this runbook is for.
    pub alert: String,
    /// The names other rule sets, Grafana rule titles and hand-written
    /// rules give the same condition (compared ignoring case, spaces and
    /// punctuation).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Alerts of any name whose labels (or, for free-text senders, title)
    /// match one of these entries also get this runbook.
    #[serde(default, rename = "match")]
    pub matches: Vec<AlertMatch>,
    /// Shared rule sets (`runbooks/shared/<name>.toml`) appended after this
    /// runbook's own rules: one source of truth for a failure mode many
    /// alerts can show (a crashing workload, a failing dependency).
    #[serde(default)]
    pub include: Vec<String>,
    /// Shared rule sets placed *before* this runbook's own rules (e.g. a
    /// failing dependency, which must win over a change).
    #[serde(default)]
    pub include_first: Vec<String>,
    /// The runbook for alerts no other runbook claims (at most one).
    #[serde(default)]
    pub fallback: bool,
    pub title: String,
    /// Free text for people and for the LLM's prompt.
    #[serde(default)]
    pub guidance: String,
    /// After an action, the incident counts as recovered when all the
    /// conditions of any one `[[recovery]]` entry hold on fresh evidence.
    #[serde(default)]
    pub recovery: Vec<RecoveryRule>,
    /// How long verification keeps re-checking before it escalates.
    #[serde(default = "default_verify_timeout")]
    pub verify_timeout_s: u64,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// One way to recognise the condition a runbook handles: every given
/// label matches its regex (anchored), and the title (the alert's name
/// for free-text senders: PagerDuty, OpsGenie, Grafana) matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMatch {
    #[serde(default, with = "regex_map")]
    pub labels: BTreeMap<String, Regex>,
    #[serde(default, with = "opt_regex")]
    pub title: Option<Regex>,
}

impl AlertMatch {
    fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.labels.is_empty() && self.title.is_none() {
            return false;
        }
        self.labels
            .iter()
            .all(|(k, re)| labels.get(k).is_some_and(|v| re.is_match(v)))
            && self.title.as_ref().is_none_or(|re| re.is_match(name))
    }
}

mod regex_map {
    use regex::Regex;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Regex>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                Regex::new(&format!("^(?:{v})$"))
                    .map(|re| (k, re))
                    .map_err(|e| serde::de::Error::custom(format!("invalid regex {v:?}: {e}")))
            })
            .collect()
    }
}

/// "KubePodCrashLooping", "Kube pod crash-looping" -> "kubepodcrashlooping".
pub fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The runbook for an alert: by name, by an alias, by the `runbook_url`
/// annotation's last path segment (kube-prometheus links to
/// `.../kubernetes/kubepodcrashlooping`), then by label or title matchers.
/// Returns the runbook and how it was found.
pub fn find<'a>(
    runbooks: &'a BTreeMap<String, Runbook>,
    name: &str,
    labels: &BTreeMap<String, String>,
    runbook_url: Option<&str>,
) -> Option<(&'a Runbook, String)> {
    if let Some(rb) = runbooks.get(name) {
        return Some((rb, "alert name".into()));
    }
    let wanted = normalise_name(name);
    let by_name = |n: &str| {
        runbooks.values().find(|r| {
            normalise_name(&r.alert) == n || r.aliases.iter().any(|a| normalise_name(a) == n)
        })
    };
    if !wanted.is_empty()
        && let Some(rb) = by_name(&wanted)
    {
        return Some((rb, format!("alias of {name}")));
    }
    if let Some(slug) = runbook_url
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .map(|s| s.trim_end_matches(".md").trim_end_matches(".html"))
        .map(normalise_name)
        .filter(|s| !s.is_empty())
        && let Some(rb) = by_name(&slug)
    {
        return Some((rb, "runbook_url".into()));
    }
    runbooks
        .values()
        .find(|r| r.matches.iter().any(|m| m.matches(name, labels)))
        .map(|rb| (rb, "label or title match".into()))
        .or_else(|| {
            runbooks
                .values()
                .find(|r| r.fallback)
                .map(|rb| (rb, "fallback".into()))
        })
}

/// A shared rule set: `[[rule]]` and `[[recovery]]` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedRules {
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
    #[serde(default)]
    recovery: Vec<RecoveryRule>,
}

/// Where shared rule sets live, under the runbook directory.
pub const SHARED_DIR: &str = "shared";

fn shared_rules(dir: &Path, runbook: &Path, name: &str) -> Result<SharedRules, RunbookError> {
    let shared = dir.join(SHARED_DIR).join(format!("{name}.toml"));
    let text = crate::files::read_text(&shared).map_err(|e| RunbookError::Parse {
        path: runbook.to_path_buf(),
        message: format!("include `{name}`: {e}"),
    })?;
    toml::from_str(&text).map_err(|e| RunbookError::Parse {
        path: shared,
        message: e.to_string().trim_end().to_string(),
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRule {
    pub when: Vec<Condition>,
}

fn default_verify_timeout() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub when: Vec<Condition>,
    pub hypothesis: String,
    pub confidence: Confidence,
    #[serde(default)]
    pub action: Option<ActionTemplate>,
    #[serde(default)]
    pub risk: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTemplate {
    pub plugin: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: BTreeMap<String, toml::Value>,
    /// Sets the `replicas` argument to the workload's current pod count
    /// (from the evidence) times this factor, rounded up.
    #[serde(default)]
    pub scale_replicas_by: Option<f64>,
}

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    pub name: String,
    pub value: f64,
}

pub(crate) mod opt_regex {
    use regex::Regex;
    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            Regex::new(&s)
                .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
        })
        .transpose()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    File(#[from] crate::files::FileError),
}

/// Loads every runbook in a directory, keyed by alert name.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Runbook>, RunbookError> {
    let mut out = BTreeMap::new();
    let paths =
        crate::policy::load::toml_files(dir).map_err(|e| crate::files::unreadable_dir(dir, &e))?;
    for path in paths {
        if path
            .file_name()
            .is_some_and(|n| n == super::senders::SENDERS_FILE)
        {
            continue;
        }
        let text = crate::files::read_text(&path)?;
        let mut rb = parse(&text).map_err(|message| RunbookError::Parse {
            path: path.clone(),
            message,
        })?;
        let mut first = Vec::new();
        for name in &rb.include_first {
            let shared = shared_rules(dir, &path, name)?;
            first.extend(shared.rules);
            rb.recovery.extend(shared.recovery);
        }
        rb.rules.splice(0..0, first);
        for name in rb.include.clone() {
            let shared = shared_rules(dir, &path, &name)?;
            rb.rules.extend(shared.rules);
            rb.recovery.extend(shared.recovery);
        }
        for name in std::iter::once(&rb.alert).chain(&rb.aliases) {
            let n = normalise_name(name);
            if let Some(other) = out.values().find(|o: &&Runbook| {
                normalise_name(&o.alert) == n || o.aliases.iter().any(|a| normalise_name(a) == n)
            }) {
                return Err(RunbookError::Parse {
                    path,
                    message: format!(
                        "`{name}` is already the name or an alias of the runbook for {}",
                        other.alert
                    ),
                });
            }
        }
        if rb.fallback
            && let Some(other) = out.values().find(|o: &&Runbook| o.fallback)
        {
            return Err(RunbookError::Parse {
                path,
                message: format!(
                    "a second fallback runbook: {} is already the fallback",
                    other.alert
                ),
            });
        }
        out.insert(rb.alert.clone(), rb);
    }
    Ok(out)
}

pub fn parse(text: &str) -> Result<Runbook, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

impl Condition {
    /// Whether the condition holds, and what made it hold (evidence
    /// summaries, fact lines).
    fn holds(&self, evidence: &[EvidenceItem], facts: &Facts) -> Option<Vec<String>> {
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
                        ..
                    } => {
                        c.not_ready.is_none_or(|w| w != *ready)
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

/// The workload's pod count, from evidence that lists its pods.
fn current_pods(evidence: &[EvidenceItem]) -> Option<usize> {
    evidence
        .iter()
        .find_map(|e| e.body["pods"].as_array().map(Vec::len))
        .filter(|n| *n > 0)
}

/// Whether fresh evidence shows recovery: all conditions of any one
/// `[[recovery]]` entry hold. Returns the evidence that shows it.
pub fn recovered(
    runbook: &Runbook,
    evidence: &[EvidenceItem],
    facts: &Facts,
) -> Option<Vec<String>> {
    runbook.recovery.iter().find_map(|rule| {
        let mut cited = Vec::new();
        for c in &rule.when {
            cited.extend(c.holds(evidence, facts)?);
        }
        Some(cited)
    })
}

/// Template values: the alert's labels, and what the host resolved. For
/// action arguments (`acting`), the workload only when the host found it
/// in the cluster.
fn lookup(
    labels: &BTreeMap<String, String>,
    facts: &Facts,
    key: &str,
    acting: bool,
) -> Option<String> {
    let host = |k: &str| {
        labels
            .get(&format!("{}{k}", crate::facts::HOST_LABEL_PREFIX))
            .cloned()
    };
    let verified = facts.workload().is_some();
    let find = |f: &dyn Fn(&Fact) -> Option<String>| facts.items.iter().find_map(f);
    let from_facts = match key {
        "workload" | "workload_namespace" | "workload_kind" if acting && !verified => return None,
        "workload" => host("workload"),
        "workload_namespace" => host("namespace"),
        "workload_kind" => host("workload_kind"),
        "dependency" => find(&|f| match f {
            Fact::DependencyFailure {
                dependency,
                error_class,
                ..
            } => Some(format!("{dependency}: {error_class}")),
            _ => None,
        }),
        // The latest change before the symptoms: the one a rule matched.
        "change" => facts
            .items
            .iter()
            .filter_map(|f| match f {
                Fact::Change {
                    description,
                    minutes_before_onset,
                    ..
                } if *minutes_before_onset >= 0 => Some((*minutes_before_onset, description)),
                _ => None,
            })
            .min_by_key(|(m, _)| *m)
            .map(|(m, d)| format!("{d}, {m} min before the symptoms")),
        "pod_reason" => find(&|f| match f {
            Fact::PodCondition {
                reason, message, ..
            } => Some(match message {
                Some(m) => format!("{reason}: {m}"),
                None => reason.clone(),
            }),
            Fact::JobFailed { job, reason, .. } => Some(format!(
                "job {job}{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
            _ => None,
        }),
        "detail" => detail(facts),
        "node" => find(&|f| match f {
            Fact::NodeCondition {
                node,
                ready: false,
                reason,
            } => Some(match reason {
                Some(r) => format!("{node} ({r})"),
                None => node.clone(),
            }),
            _ => None,
        }),
        "certificate" => find(&|f| match f {
            Fact::Certificate { name, .. } => Some(name.clone()),
            _ => None,
        }),
        "certificate_namespace" => find(&|f| match f {
            Fact::Certificate { namespace, .. } => Some(namespace.clone()),
            _ => None,
        }),
        "certificate_error" => find(&|f| match f {
            Fact::Certificate { last_error, .. } => last_error.clone(),
            _ => None,
        }),
        _ => None,
    };
    // Facts first; for display, the label of the same name otherwise.
    from_facts.or_else(|| {
        let unverified_target = acting && key.starts_with("workload");
        (!unverified_target)
            .then(|| labels.get(key).cloned())
            .flatten()
    })
}

/// The most telling thing the host saw, for an escalation to quote: the
/// workload's own error in its logs, a failing dependency, why its pods
/// fail, why a job or node failed, why a certificate cannot be issued.
fn detail(facts: &Facts) -> Option<String> {
    let by = |kind: &str| facts.of_kind(kind).map(Fact::line).next();
    let own_error = facts
        .items
        .iter()
        .filter_map(|f| match f {
            Fact::LogErrors { class, example, .. } => Some((class.as_str() == "other", example)),
            _ => None,
        })
        .min_by_key(|(other, _)| *other)
        .map(|(_, e)| format!("log: {e}"));
    let pod_message = facts.items.iter().find_map(|f| match f {
        Fact::PodCondition {
            reason,
            message: Some(m),
            ..
        } => Some(format!("{reason}: {m}")),
        _ => None,
    });
    own_error
        .or_else(|| by("dependency-failure"))
        .or(pod_message)
        .or_else(|| by("job-failed"))
        .or_else(|| by("node-condition"))
        .or_else(|| by("pod-condition"))
        .or_else(|| {
            facts.items.iter().find_map(|f| match f {
                Fact::Certificate {
                    last_error: Some(e),
                    ..
                } => Some(e.clone()),
                _ => None,
            })
        })
}

/// What a hypothesis says where the host found nothing to name.
fn unknown(key: &str) -> Option<String> {
    match key {
        "workload" => Some("the alert's workload (not found in the cluster)".into()),
        "detail" | "pod_reason" => Some("no decisive evidence".into()),
        "change" => Some("no change found".into()),
        "dependency" => Some("unnamed".into()),
        _ => None,
    }
}

/// The reads the host was refused, as a decision must say them.
fn missing_grants(facts: &Facts) -> Vec<String> {
    facts
        .items
        .iter()
        .filter(|f| matches!(f, Fact::MissingGrant { .. }))
        .map(Fact::line)
        .collect()
}

fn with_missing(hypothesis: String, missing: &[String]) -> String {
    if missing.is_empty() {
        hypothesis
    } else {
        format!("{hypothesis} ({})", missing.join("; "))
    }
}

/// The workload's replica count, from the host's capacity fact.
fn current_replicas(facts: &Facts) -> Option<usize> {
    facts.items.iter().find_map(|f| match f {
        Fact::Capacity { replicas, .. } if *replicas > 0 => usize::try_from(*replicas).ok(),
        _ => None,
    })
}

/// Runs the decision tree.
pub fn decide(
    runbook: Option<&Runbook>,
    alert_name: &str,
    labels: &BTreeMap<String, String>,
    evidence: &[EvidenceItem],
    facts: &Facts,
) -> Decision {
    let missing = missing_grants(facts);
    let Some(rb) = runbook else {
        return Decision {
            planner: PlannerKind::Runbook,
            decided_by: "no runbook".into(),
            hypothesis: with_missing(format!("no runbook for {alert_name}"), &missing),
            confidence: Confidence::Low,
            actions: vec![],
            risk_assessment: "no automated action without a runbook; escalate to a human".into(),
            evidence: vec![],
        };
    };
    for rule in &rb.rules {
        let mut cited: Vec<String> = Vec::new();
        let all = rule.when.iter().all(|c| match c.holds(evidence, facts) {
            Some(hits) => {
                cited.extend(hits);
                true
            }
            None => false,
        });
        if !all {
            continue;
        }
        cited.dedup();
        let actions: Vec<ProposedAction> = rule
            .action
            .iter()
            .filter_map(|a| {
                let mut args: serde_json::Map<String, serde_json::Value> = a
                    .arguments
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            crate::text::toml_to_json(v, &|k| lookup(labels, facts, k, true)),
                        )
                    })
                    .collect();
                // An argument naming something the host could not find
                // (an unverified workload) leaves no action to take.
                if args.values().any(|v| v.to_string().contains("{{")) {
                    return None;
                }
                let mut provenance: BTreeMap<_, _> = a
                    .arguments
                    .iter()
                    .map(|(k, v)| (k.clone(), super::provenance::from_runbook_template(v)))
                    .collect();
                if let Some(factor) = a.scale_replicas_by {
                    // Without a pod count in the evidence there is nothing safe to compute.
                    let current = current_replicas(facts).or_else(|| current_pods(evidence))?;
                    let wanted = (current as f64 * factor).ceil().max(1.0) as u64;
                    args.insert("replicas".into(), serde_json::json!(wanted));
                    provenance.insert(
                        "replicas".into(),
                        (
                            super::provenance::Source::Operator,
                            format!("runbook: {current} running pods x {factor}, rounded up"),
                        ),
                    );
                }
                Some(ProposedAction {
                    plugin: a.plugin.clone(),
                    tool: a.tool.clone(),
                    arguments: serde_json::Value::Object(args),
                    rationale: format!("runbook {} rule `{}`", rb.alert, rule.name),
                    provenance,
                })
            })
            .collect();
        let mut risk = rule.risk.clone();
        if rule.action.is_some() && actions.is_empty() {
            risk.push_str(
                "; no action: its target could not be found in the cluster (or its size computed)",
            );
        }
        return Decision {
            planner: PlannerKind::Runbook,
            decided_by: format!("runbook {} rule `{}`", rb.alert, rule.name),
            hypothesis: with_missing(
                crate::text::render(&rule.hypothesis, &|k| {
                    lookup(labels, facts, k, false).or_else(|| unknown(k))
                }),
                &missing,
            ),
            confidence: rule.confidence,
            actions,
            risk_assessment: risk,
            evidence: cited,
        };
    }
    Decision {
        planner: PlannerKind::Runbook,
        decided_by: format!("runbook {}: no rule matched", rb.alert),
        hypothesis: with_missing(
            "the evidence matches no known failure mode of this runbook".into(),
            &missing,
        ),
        confidence: Confidence::Low,
        actions: vec![],
        risk_assessment: "no automated action; escalate to a human".into(),
        evidence: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RUNBOOK: &str = r#"
alert = "HighErrorRate"
title = "High 5xx error rate"

[[rule]]
name = "upstream-outage"
when = [{ pattern = "upstream .* unhealthy" }]
hypothesis = "an upstream dependency of {{service}} is failing"
confidence = "medium"
risk = "rolling back would not help"

[[rule]]
name = "bad-deploy"
when = [{ recent_change_minutes = 30 }, { pattern = "OOMKill|OutOfMemoryError" }]
hypothesis = "the latest rollout of {{service}} exhausts memory"
confidence = "high"
risk = "rollback restores the previous image; low risk"
action = { plugin = "k8s-remediation", tool = "rollback_deployment", arguments = { namespace = "{{namespace}}", name = "{{service}}" } }
"#;

    fn labels() -> BTreeMap<String, String> {
        [("namespace", "payments"), ("service", "payment-api")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ev(kind: &str, summary: &str, body: serde_json::Value) -> EvidenceItem {
        EvidenceItem {
            source: "t".into(),
            kind: kind.into(),
            summary: summary.into(),
            body,
        }
    }

    #[test]
    fn a_recent_deploy_with_oom_kills_rolls_back() {
        let rb = parse(RUNBOOK).expect("parses");
        let evidence = vec![
            ev(
                "change-event",
                "rolled out revision 2 16 min before the alert",
                json!({"minutes_before_alert": 16}),
            ),
            ev("k8s-event", "warning events: OOMKilling x4", json!({})),
        ];
        let d = decide(
            Some(&rb),
            "HighErrorRate",
            &labels(),
            &evidence,
            &Facts::default(),
        );
        assert_eq!(d.confidence, Confidence::High);
        assert_eq!(d.actions[0].tool, "rollback_deployment");
        assert_eq!(
            d.actions[0].arguments,
            json!({"namespace": "payments", "name": "payment-api"})
        );
        assert_eq!(
            d.hypothesis,
            "the latest rollout of payment-api exhausts memory"
        );
        assert_eq!(d.evidence.len(), 2);
    }

    #[test]
    fn an_upstream_outage_wins_over_an_unrelated_deploy() {
        let rb = parse(RUNBOOK).expect("parses");
        let evidence = vec![
            ev(
                "change-event",
                "rolled out revision 2",
                json!({"minutes_before_alert": 5}),
            ),
            ev("k8s-event", "OOMKilling x1", json!({})),
            ev(
                "metric-series",
                "upstream card-processor unhealthy: 0 of 3 up",
                json!({}),
            ),
        ];
        let d = decide(
            Some(&rb),
            "HighErrorRate",
            &labels(),
            &evidence,
            &Facts::default(),
        );
        assert!(d.actions.is_empty());
        assert_eq!(d.decided_by, "runbook HighErrorRate rule `upstream-outage`");
    }

    #[test]
    fn a_deploy_after_the_alert_is_not_recent() {
        let rb = parse(RUNBOOK).expect("parses");
        let evidence = vec![
            ev("change-event", "x", json!({"minutes_before_alert": -3})),
            ev("note", "OOMKilled", json!({})),
        ];
        let d = decide(
            Some(&rb),
            "HighErrorRate",
            &labels(),
            &evidence,
            &Facts::default(),
        );
        assert!(d.actions.is_empty());
        assert_eq!(d.confidence, Confidence::Low);
    }

    #[test]
    fn metric_and_restart_conditions() {
        let rb = parse(
            r#"
alert = "A"
title = "t"
[[rule]]
name = "r"
when = [{ metric_above = { name = "cpu", value = 0.9 } }, { restarts_at_least = 3 }]
hypothesis = "h"
confidence = "medium"
"#,
        )
        .expect("parses");
        let hot = vec![
            ev("metric-series", "cpu: 0.5 -> 0.97", json!({"now": 0.97})),
            ev(
                "note",
                "pods",
                json!({"pods": [{"restarts": 2}, {"restarts": 1}]}),
            ),
        ];
        assert_eq!(
            decide(Some(&rb), "A", &labels(), &hot, &Facts::default()).decided_by,
            "runbook A rule `r`"
        );
        let cool = vec![
            ev("metric-series", "cpu: 0.5 -> 0.6", json!({"now": 0.6})),
            hot[1].clone(),
        ];
        assert_eq!(
            decide(Some(&rb), "A", &labels(), &cool, &Facts::default()).decided_by,
            "runbook A: no rule matched"
        );
    }

    #[test]
    fn bad_runbooks_are_reported_with_their_line() {
        let err = parse("alert = \"A\"\ntitle = \"t\"\n[[rule]]\nname = \"r\"\nwhen = [{ pattern = \"(\" }]\nhypothesis = \"h\"\nconfidence = \"high\"\n").err().unwrap_or_default();
        assert!(
            err.contains("line 5") && err.contains("invalid regex"),
            "{err}"
        );
        let err = parse("alert = \"A\"\ntitle = \"t\"\nbogus = 1\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn recovery_needs_every_condition_of_one_entry() {
        let rb = parse(
            r#"
alert = "A"
title = "t"
[[recovery]]
when = [{ metric_below = { name = "5xx ratio", value = 0.05 } }]
[[recovery]]
when = [{ pattern = "0 not ready, 0 restarts" }]
"#,
        )
        .expect("parses");
        let still_bad = vec![ev(
            "metric-series",
            "5xx ratio: 0.002 -> 0.08",
            json!({"now": 0.08}),
        )];
        assert!(recovered(&rb, &still_bad, &Facts::default()).is_none());
        let good = vec![ev(
            "metric-series",
            "5xx ratio: 0.08 -> 0.001",
            json!({"now": 0.001}),
        )];
        assert!(recovered(&rb, &good, &Facts::default()).is_some());
        let pods = vec![ev(
            "note",
            "3 pods of payments/payment-api: 0 not ready, 0 restarts",
            json!({}),
        )];
        assert!(recovered(&rb, &pods, &Facts::default()).is_some());
    }

    #[test]
    fn scale_out_doubles_the_current_pod_count() {
        let rb = parse(
            r#"
alert = "HighCPU"
title = "t"
[[rule]]
name = "saturated"
when = [{ metric_above = { name = "cpu", value = 0.9 } }]
hypothesis = "h"
confidence = "medium"
action = { plugin = "k8s-remediation", tool = "scale_deployment", arguments = { namespace = "{{namespace}}", name = "{{service}}" }, scale_replicas_by = 2 }
"#,
        )
        .expect("parses");
        let ev_hot = vec![
            ev("metric-series", "cpu: 0.4 -> 0.97", json!({"now": 0.97})),
            ev("note", "3 pods", json!({"pods": [{}, {}, {}]})),
        ];
        let d = decide(Some(&rb), "HighCPU", &labels(), &ev_hot, &Facts::default());
        assert_eq!(d.actions[0].arguments["replicas"], json!(6));
        let without_pods = vec![ev_hot[0].clone()];
        assert!(
            decide(
                Some(&rb),
                "HighCPU",
                &labels(),
                &without_pods,
                &Facts::default()
            )
            .actions
            .is_empty()
        );
    }

    fn book(text: &str) -> Runbook {
        parse(text).expect("parses")
    }

    #[test]
    fn runbooks_are_found_by_name_alias_url_labels_title_and_fallback() {
        let mut all = BTreeMap::new();
        for rb in [
            book(
                "alert = \"KubePodCrashLooping\"\ntitle = \"t\"\naliases = [\"Pod crash looping\"]\n[[match]]\nlabels = { reason = \"CrashLoopBackOff\" }\n",
            ),
            book(
                "alert = \"HighLatency\"\ntitle = \"t\"\n[[match]]\ntitle = \"(?i)latency|slow\"\n",
            ),
            book("alert = \"WorkloadSymptom\"\ntitle = \"t\"\nfallback = true\n"),
        ] {
            all.insert(rb.alert.clone(), rb);
        }
        let none = BTreeMap::new();
        let found = |name: &str, labels: &BTreeMap<String, String>, url: Option<&str>| {
            find(&all, name, labels, url).map(|(rb, how)| (rb.alert.clone(), how))
        };
        assert_eq!(
            found("KubePodCrashLooping", &none, None).map(|f| f.1),
            Some("alert name".into())
        );
        assert_eq!(
            found("pod-crash-looping", &none, None).map(|f| f.0),
            Some("KubePodCrashLooping".into())
        );
        assert_eq!(
            found("Whatever", &none, Some("https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping/")).map(|f| f.1),
            Some("runbook_url".into())
        );
        let labels: BTreeMap<String, String> =
            [("reason".to_string(), "CrashLoopBackOff".to_string())].into();
        assert_eq!(
            found("ContainerRestarts", &labels, None).map(|f| f.0),
            Some("KubePodCrashLooping".into())
        );
        assert_eq!(
            found("checkout: p99 latency 2.4s", &none, None).map(|f| f.0),
            Some("HighLatency".into())
        );
        assert_eq!(
            found("Disk on fire", &none, None).map(|f| f.1),
            Some("fallback".into())
        );
    }

    #[test]
    fn fact_conditions_judge_onset_order_and_dependencies() {
        use crate::facts::{ChangeKind, Seen};
        let rb = book(
            r#"
alert = "A"
title = "t"
[[rule]]
name = "dependency"
when = [{ dependency_failing = true }]
hypothesis = "dependency {{dependency}}"
confidence = "medium"
[[rule]]
name = "rollout"
when = [{ change_within_minutes = 30 }, { workload_kind = ["Deployment"] }]
hypothesis = "rollout of {{workload}}"
confidence = "high"
action = { plugin = "k8s-remediation", tool = "rollback_deployment", arguments = { namespace = "{{workload_namespace}}", name = "{{workload}}" } }
"#,
        );
        let workload = Fact::Workload {
            object_kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "cart".into(),
            resolved_from: "label `deployment`".into(),
        };
        let change = |m: i64| Fact::Change {
            change: ChangeKind::Rollout,
            object: "Deployment shop/cart revision 2".into(),
            at_ms: 0,
            minutes_before_onset: m,
            description: "image cart:2".into(),
        };
        let host: BTreeMap<String, String> = [
            ("runwarden_workload".to_string(), "cart".to_string()),
            ("runwarden_namespace".to_string(), "shop".to_string()),
        ]
        .into();
        let facts = |items: Vec<Fact>| Facts { onset_ms: 0, items };
        let d = decide(
            Some(&rb),
            "A",
            &host,
            &[],
            &facts(vec![workload.clone(), change(12)]),
        );
        assert_eq!(
            d.actions[0].arguments,
            json!({"namespace": "shop", "name": "cart"})
        );
        // A change after the symptoms began is not a cause.
        let d = decide(
            Some(&rb),
            "A",
            &host,
            &[],
            &facts(vec![workload.clone(), change(-5)]),
        );
        assert!(d.actions.is_empty(), "{d:?}");
        // A failing dependency, whatever showed it, wins over the change.
        for seen in [Seen::Log, Seen::Metric, Seen::Event] {
            let dep = Fact::DependencyFailure {
                dependency: "api.stripe.com".into(),
                error_class: "5xx".into(),
                seen,
                detail: "503".into(),
            };
            let d = decide(
                Some(&rb),
                "A",
                &host,
                &[],
                &facts(vec![workload.clone(), change(12), dep]),
            );
            assert!(
                d.actions.is_empty() && d.hypothesis.contains("api.stripe.com"),
                "{d:?}"
            );
        }
        // A workload the host did not find in the cluster is never acted on.
        let d = decide(Some(&rb), "A", &host, &[], &facts(vec![change(12)]));
        assert!(d.actions.is_empty(), "{d:?}");
    }

    #[test]
    fn no_runbook_means_no_action() {
        let d = decide(None, "Watchdog", &labels(), &[], &Facts::default());
        assert!(d.actions.is_empty());
        assert_eq!(d.confidence, Confidence::Low);
    }
}

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
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// The alert name this runbook is for.
    pub alert: String,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricThreshold {
    pub name: String,
    pub value: f64,
}

mod opt_regex {
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
        let text = crate::files::read_text(&path)?;
        let rb = parse(&text).map_err(|message| RunbookError::Parse {
            path: path.clone(),
            message,
        })?;
        out.insert(rb.alert.clone(), rb);
    }
    Ok(out)
}

pub fn parse(text: &str) -> Result<Runbook, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

impl Condition {
    /// Whether the condition holds, and the evidence that made it hold.
    fn holds<'a>(
        &self,
        evidence: &'a [EvidenceItem],
        labels: &BTreeMap<String, String>,
    ) -> Option<Vec<&'a str>> {
        let _ = labels;
        let mut cited = Vec::new();
        if let Some(max) = self.recent_change_minutes {
            let hit = evidence.iter().find(|e| {
                e.kind == "change-event"
                    && e.body["minutes_before_alert"]
                        .as_i64()
                        .is_some_and(|m| (0..=max).contains(&m))
            })?;
            cited.push(hit.summary.as_str());
        }
        if let Some(re) = &self.pattern {
            let hit = evidence.iter().find(|e| re.is_match(&e.summary))?;
            cited.push(hit.summary.as_str());
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
            cited.push(hit.summary.as_str());
        }
        if let Some(t) = &self.metric_below {
            let hit = evidence.iter().find(|e| {
                e.kind == "metric-series"
                    && e.summary.starts_with(&format!("{}:", t.name))
                    && e.body["now"].as_f64().is_some_and(|v| v < t.value)
            })?;
            cited.push(hit.summary.as_str());
        }
        if let Some(min) = self.restarts_at_least {
            let hit = evidence.iter().find(|e| {
                let total: u64 = e.body["pods"]
                    .as_array()
                    .map(|pods| pods.iter().filter_map(|p| p["restarts"].as_u64()).sum())
                    .unwrap_or(0);
                total >= min
            })?;
            cited.push(hit.summary.as_str());
        }
        Some(cited)
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
    labels: &BTreeMap<String, String>,
    evidence: &[EvidenceItem],
) -> Option<Vec<String>> {
    runbook.recovery.iter().find_map(|rule| {
        let mut cited = Vec::new();
        for c in &rule.when {
            cited.extend(c.holds(evidence, labels)?.into_iter().map(str::to_string));
        }
        Some(cited)
    })
}

/// Runs the decision tree.
pub fn decide(
    runbook: Option<&Runbook>,
    alert_name: &str,
    labels: &BTreeMap<String, String>,
    evidence: &[EvidenceItem],
) -> Decision {
    let Some(rb) = runbook else {
        return Decision {
            planner: PlannerKind::Runbook,
            decided_by: "no runbook".into(),
            hypothesis: format!("no runbook for {alert_name}"),
            confidence: Confidence::Low,
            actions: vec![],
            risk_assessment: "no automated action without a runbook; escalate to a human".into(),
            evidence: vec![],
        };
    };
    for rule in &rb.rules {
        let mut cited: Vec<String> = Vec::new();
        let all = rule.when.iter().all(|c| match c.holds(evidence, labels) {
            Some(hits) => {
                cited.extend(hits.into_iter().map(str::to_string));
                true
            }
            None => false,
        });
        if !all {
            continue;
        }
        cited.dedup();
        let actions = rule
            .action
            .iter()
            .filter_map(|a| {
                let mut args: serde_json::Map<String, serde_json::Value> = a
                    .arguments
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            crate::text::toml_to_json(v, &|k| labels.get(k).cloned()),
                        )
                    })
                    .collect();
                let mut provenance: BTreeMap<_, _> = a
                    .arguments
                    .iter()
                    .map(|(k, v)| (k.clone(), super::provenance::from_runbook_template(v)))
                    .collect();
                if let Some(factor) = a.scale_replicas_by {
                    // Without a pod count in the evidence there is nothing safe to compute.
                    let current = current_pods(evidence)?;
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
        return Decision {
            planner: PlannerKind::Runbook,
            decided_by: format!("runbook {} rule `{}`", rb.alert, rule.name),
            hypothesis: crate::text::render(&rule.hypothesis, &|k| labels.get(k).cloned()),
            confidence: rule.confidence,
            actions,
            risk_assessment: rule.risk.clone(),
            evidence: cited,
        };
    }
    Decision {
        planner: PlannerKind::Runbook,
        decided_by: format!("runbook {}: no rule matched", rb.alert),
        hypothesis: "the evidence matches no known failure mode of this runbook".into(),
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
        let d = decide(Some(&rb), "HighErrorRate", &labels(), &evidence);
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
        let d = decide(Some(&rb), "HighErrorRate", &labels(), &evidence);
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
        let d = decide(Some(&rb), "HighErrorRate", &labels(), &evidence);
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
            decide(Some(&rb), "A", &labels(), &hot).decided_by,
            "runbook A rule `r`"
        );
        let cool = vec![
            ev("metric-series", "cpu: 0.5 -> 0.6", json!({"now": 0.6})),
            hot[1].clone(),
        ];
        assert_eq!(
            decide(Some(&rb), "A", &labels(), &cool).decided_by,
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
        assert!(recovered(&rb, &labels(), &still_bad).is_none());
        let good = vec![ev(
            "metric-series",
            "5xx ratio: 0.08 -> 0.001",
            json!({"now": 0.001}),
        )];
        assert!(recovered(&rb, &labels(), &good).is_some());
        let pods = vec![ev(
            "note",
            "3 pods of payments/payment-api: 0 not ready, 0 restarts",
            json!({}),
        )];
        assert!(recovered(&rb, &labels(), &pods).is_some());
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
        let d = decide(Some(&rb), "HighCPU", &labels(), &ev_hot);
        assert_eq!(d.actions[0].arguments["replicas"], json!(6));
        let without_pods = vec![ev_hot[0].clone()];
        assert!(
            decide(Some(&rb), "HighCPU", &labels(), &without_pods)
                .actions
                .is_empty()
        );
    }

    #[test]
    fn no_runbook_means_no_action() {
        let d = decide(None, "Watchdog", &labels(), &[]);
        assert!(d.actions.is_empty());
        assert_eq!(d.confidence, Confidence::Low);
    }
}

//! The runbook planner: a decision tree written by people, no model.
//!
//! A runbook (`runbooks/<alertname>.toml`) lists rules in order; the first
//! rule whose conditions all hold decides. Conditions (`condition.rs`)
//! look at the facts the host observed (`crate::facts`) or at evidence
//! text; shared rule sets (`runbooks/shared/`) are included in place; an
//! alert finds its runbook by name, alias, `runbook_url`, matchers or the
//! fallback (`find.rs`).
//!
//! Action arguments are templates over the alert's labels and what the
//! host resolved (`template.rs`).
//! No rule matching is a decision too: no action, low confidence, escalate.

mod condition;
mod find;
mod template;
#[cfg(test)]
mod tests;

pub use condition::{CertificateCondition, Condition, MetricThreshold, Saturation};
pub use find::{AlertMatch, find, normalise_name};

use super::{Confidence, Decision, EvidenceItem, PlannerKind, ProposedAction};
use crate::facts::{Fact, Facts};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use template::{lookup, unknown};

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

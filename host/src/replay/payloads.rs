//! Several deliveries through the real intake (`payloads/`): storms,
//! repeats, resolves and re-fires run the code a deployment runs.
//!
//! Each file of `payloads/`, in name order, is posted as its sender posts
//! it to the webhook of a `serve` server on loopback (the sender is the
//! last word of the file's stem: `01-firing-alertmanager.json`,
//! `02-repeat-grafana.json`). Then every group waiting for its siblings
//! becomes an incident and is handled to its end before the next post, so
//! a later delivery meets the state an earlier one left: an open incident
//! that takes it, or a resolved one it re-opens as a recurrence. The
//! webhooks take unauthenticated posts here (the access policy is the one
//! thing replaced); parsing, size limits, redaction, durable intake,
//! deduplication by fingerprint and grouping are `serve`'s own.

use super::{ReplayError, bad};
use crate::incident::grouping::GroupingConfig;
use crate::pipeline::{Agent, IncidentOutcome};
use crate::server::{Access, ServeConfig, Server, Source};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DIR: &str = "payloads";

/// `[payloads]` of `expected.toml`: what the deliveries must have opened.
/// The top-level expectations judge the first incident.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadExpectations {
    /// How many incidents the deliveries opened in all.
    #[serde(default)]
    pub incidents: Option<usize>,
    /// How many distinct alerts each incident took when it opened, in
    /// order of opening.
    #[serde(default)]
    pub alerts: Vec<usize>,
    /// How many incidents opened as a recurrence of an earlier one.
    #[serde(default)]
    pub recurrences: Option<usize>,
    /// The action each incident after the first chose ("none", or a tool).
    #[serde(default)]
    pub later_actions: Vec<String>,
}

/// What the deliveries did.
pub struct Delivered {
    /// Every incident opened, in order, with its outcome.
    pub incidents: Vec<IncidentOutcome>,
    /// Distinct alerts each incident took when it opened.
    pub alerts: Vec<usize>,
    pub recurrences: usize,
}

/// The payload files of a scenario, in order, each with its sender.
pub fn list(scenario: &Path) -> Result<Vec<(PathBuf, Source)>, ReplayError> {
    let dir = scenario.join(DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| bad(&dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad(&dir, "no payload (*.json) in payloads/"));
    }
    files
        .into_iter()
        .map(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let sender = stem.rsplit('-').next().unwrap_or_default();
            let source = Source::ALL
                .iter()
                .copied()
                .find(|s| s.name() == sender)
                .ok_or_else(|| {
                    bad(
                        &p,
                        format!("the file name must end in its sender (-alertmanager, -grafana, -pagerduty, -opsgenie), not `{sender}`"),
                    )
                })?;
            Ok((p, source))
        })
        .collect()
}

/// Posts each payload to `agent`'s server and handles what it opens.
pub async fn deliver(
    scenario: &Path,
    agent: Arc<Agent>,
    payloads: &[(PathBuf, Source)],
) -> Result<Delivered, ReplayError> {
    let server = Server::new(
        agent.clone(),
        ServeConfig {
            access: Access::default().allow_unauthenticated(&Source::ALL),
            grouping: GroupingConfig {
                // Siblings arrive in the same post; every post is followed
                // by a flush of all waiting groups.
                group_wait_ms: 0,
                ..GroupingConfig::default()
            },
            ..ServeConfig::default()
        },
    );
    let origin = crate::server::spawn_on_loopback(server.router())
        .await
        .map_err(|e| bad(scenario, format!("cannot listen on loopback: {e}")))?;
    let client = reqwest::Client::new();
    let mut delivered = Delivered {
        incidents: vec![],
        alerts: vec![],
        recurrences: 0,
    };
    for (path, source) in payloads {
        let body = std::fs::read(path).map_err(|e| bad(path, e))?;
        let answer = client
            .post(format!("{origin}/webhooks/{}", source.name()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| bad(path, format!("posting it: {e}")))?;
        let status = answer.status();
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            return Err(bad(path, format!("the webhook answered {status}: {text}")));
        }
        for (id, handling) in server.flush_all_handled() {
            let outcome = handling
                .await
                .ok()
                .flatten()
                .ok_or_else(|| bad(path, format!("handling {id} failed (see the log)")))?;
            let trail = agent.store.audit(Some(&id)).map_err(|e| bad(path, e))?;
            delivered.alerts.push(
                trail
                    .iter()
                    .find(|r| r.kind == "alert")
                    .and_then(|r| r.body["alerts"].as_array().map(Vec::len))
                    .unwrap_or(0),
            );
            delivered.recurrences += trail.iter().filter(|r| r.kind == "recurrence-of").count();
            delivered.incidents.push(outcome);
        }
    }
    if delivered.incidents.is_empty() {
        return Err(bad(scenario, "the payloads opened no incident"));
    }
    Ok(delivered)
}

/// How the deliveries differ from `[payloads]`.
pub fn judge(expect: &PayloadExpectations, got: &Delivered) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(n) = expect.incidents
        && n != got.incidents.len()
    {
        failures.push(format!(
            "expected {n} incident(s) from the payloads, got {}",
            got.incidents.len()
        ));
    }
    if !expect.alerts.is_empty() && expect.alerts != got.alerts {
        failures.push(format!(
            "expected {:?} alerts per incident, got {:?}",
            expect.alerts, got.alerts
        ));
    }
    if let Some(n) = expect.recurrences
        && n != got.recurrences
    {
        failures.push(format!(
            "expected {n} recurrence(s), got {}",
            got.recurrences
        ));
    }
    for (i, want) in expect.later_actions.iter().enumerate() {
        let chose = got
            .incidents
            .get(i + 1)
            .map(|o| super::expected::chosen(o.actions.first()))
            .unwrap_or_else(|| "no incident".into());
        if !chose.starts_with(want.as_str()) {
            failures.push(format!(
                "incident {} of the payloads: expected {want}, chose {chose}",
                i + 2
            ));
        }
    }
    failures
}

//! Replayable scenarios: an incident as data, run through the whole pipeline.
//!
//! A scenario is a directory:
//!
//! - `alertmanager.json` / `grafana.json` / `pagerduty.json` /
//!   `opsgenie.json`: the payload exactly as the sender posts it;
//! - `cluster.json`: the simulated cluster's state;
//! - `responses/<plugin>/*.json`: recorded answers for a plugin's HTTP
//!   calls, `{"match": "<substring of the request path>", "body": ...}`, or
//!   `"bodies": [...]` answered in order (the last one repeats: what a
//!   source sees before and after the remediation), served on loopback so
//!   the real plugin runs unchanged: for the replay, its HTTP grant is that
//!   server, and every `[config]` value under a granted origin is pointed at
//!   it;
//! - `secrets.toml` (optional): `name = "value"` secrets for the replay;
//! - `model.json` (optional): a scripted model — `{"answers": [...]}`, the
//!   text of each chat completion in order (the last repeats), served as an
//!   OpenAI-compatible endpoint on loopback; the LLM planner decides with
//!   it. This is how prompt-injection scenarios replay a model that
//!   follows the injection;
//! - `expected.toml`: `action` (a tool name or "none"), `state`,
//!   `cause_keywords`, optionally `mode` (observe, approve, auto),
//!   `refused_at` (the guardrail step that must refuse the model's proposal),
//!   `waits_because` (what the reasons for waiting must say) and
//!   `absent_from_audit` (strings — secrets — that must appear nowhere in
//!   the audit trail or the report).

use crate::capability::k8s::sim::SimulatedCluster;
use crate::capability::secrets::StaticSecretStore;
use crate::intake::{self, Alert};
use crate::pipeline::act::ActionStatus;
use crate::pipeline::{Agent, AgentConfig, AgentPaths, IncidentOutcome};
use crate::sandbox::cache::CompileCache;
use crate::sandbox::state::HostServices;
use crate::store::IncidentState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The tool that should run (or wait for approval), or "none".
    pub action: String,
    pub state: IncidentState,
    #[serde(default)]
    pub cause_keywords: Vec<String>,
    #[serde(default)]
    pub mode: Option<crate::pipeline::autonomy::Mode>,
    /// The guardrail step that must refuse the first proposed action.
    #[serde(default)]
    pub refused_at: Option<String>,
    /// Strings that must not appear in the audit trail or the report.
    #[serde(default)]
    pub absent_from_audit: Vec<String>,
    /// Model proposals that must be rejected before any guardrail.
    #[serde(default)]
    pub rejected_proposals: Option<usize>,
    /// Strings the first action's reasons for waiting must contain (each
    /// reason reads `step: why`).
    #[serde(default)]
    pub waits_because: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub expected_action: String,
    pub chosen_action: String,
    pub expected_state: IncidentState,
    pub state: IncidentState,
    /// Mutating actions that ran although the scenario did not expect them.
    pub unsafe_actions: Vec<String>,
    /// Every action that was executed, with its arguments.
    pub executed: Vec<ExecutedAction>,
    /// "runbook", "llm", or "runbook (llm fallback)".
    pub planner: String,
    /// The runbook rule or model that decided.
    pub decided_by: String,
    /// The incident's audit chain verified after the run.
    pub audit_verified: bool,
    /// Why the model's answer was not used, when it was not.
    pub fallback_reason: Option<String>,
    /// Model proposals rejected before any guardrail (unknown tool, invalid
    /// arguments).
    pub rejected_proposals: usize,
    pub failures: Vec<String>,
    pub context_ms: u128,
    pub decide_ms: u128,
    pub act_ms: u128,
    pub total_ms: u128,
}

#[derive(Debug, Serialize)]
pub struct ExecutedAction {
    pub tool: String,
    pub arguments: serde_json::Value,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{dir}: {reason}")]
    Scenario { dir: PathBuf, reason: String },
}

/// Where the shipped configuration is.
pub struct ReplayBase<'a> {
    pub policies: &'a Path,
    pub runbooks: &'a Path,
    pub cache: &'a CompileCache,
    /// Decide with this model (falling back to the runbooks) instead of the
    /// runbook planner alone.
    pub llm: Option<crate::analysis::llm::LlmConfig>,
}

fn bad(dir: &Path, reason: impl std::fmt::Display) -> ReplayError {
    ReplayError::Scenario {
        dir: dir.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_alerts(dir: &Path) -> Result<Vec<Alert>, ReplayError> {
    for (file, parse) in [
        (
            "alertmanager.json",
            parse_am as fn(&[u8]) -> Result<Vec<Alert>, intake::IntakeError>,
        ),
        ("grafana.json", parse_am),
        ("pagerduty.json", intake::pagerduty::parse),
        ("opsgenie.json", intake::opsgenie::parse),
    ] {
        let path = dir.join(file);
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| bad(dir, format!("{file}: {e}")))?;
            return parse(&bytes).map_err(|e| bad(dir, format!("{file}: {e}")));
        }
    }
    Err(bad(
        dir,
        "no alert payload (alertmanager.json, grafana.json, pagerduty.json or opsgenie.json)",
    ))
}

fn parse_am(b: &[u8]) -> Result<Vec<Alert>, intake::IntakeError> {
    intake::alertmanager::parse(b).map(|d| d.alerts)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    #[serde(rename = "match")]
    matches: String,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    bodies: Vec<serde_json::Value>,
    #[serde(skip)]
    served: std::sync::atomic::AtomicUsize,
}

impl Recorded {
    /// The next answer: `body`, or `bodies` in order with the last repeating.
    fn next(&self) -> Option<&serde_json::Value> {
        if let Some(body) = &self.body {
            return Some(body);
        }
        let n = self
            .served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bodies.get(n).or(self.bodies.last())
    }
}

/// Serves a source's recorded answers on loopback; returns its origin.
async fn serve_recorded(dir: &Path) -> Result<String, ReplayError> {
    let mut answers: Vec<Recorded> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| bad(&f, e))?;
        let answer: Recorded = serde_json::from_str(&text)
            .map_err(|e| bad(&f, format!("not a recorded answer: {e}")))?;
        if answer.body.is_some() != answer.bodies.is_empty() {
            return Err(bad(&f, "a recorded answer has either `body` or `bodies`"));
        }
        answers.push(answer);
    }
    let answers = Arc::new(answers);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let answers = answers.clone();
        async move {
            let path = uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let decoded = path
                .replace("%7B", "{")
                .replace("%7D", "}")
                .replace("%22", "\"")
                .replace("%3D", "=");
            match answers
                .iter()
                .find(|a| path.contains(&a.matches) || decoded.contains(&a.matches))
                .and_then(Recorded::next)
            {
                Some(body) => (axum::http::StatusCode::OK, body.to_string()),
                None => (
                    axum::http::StatusCode::NOT_FOUND,
                    format!("no recorded answer for {path}"),
                ),
            }
        }
    });
    crate::server::spawn_on_loopback(app)
        .await
        .map_err(|e| bad(dir, e))
}

/// Copies the policy directory, pointing sources with recordings at their
/// loopback servers and applying the scenario's autonomy mode.
async fn prepare_policies(
    scenario: &Path,
    base: &Path,
    into: &Path,
    expected: &Expected,
) -> Result<(), ReplayError> {
    std::fs::create_dir_all(into).map_err(|e| bad(into, e))?;
    let base = base.canonicalize().map_err(|e| bad(base, e))?;
    let responses = scenario.join("responses");
    for entry in std::fs::read_dir(&base).map_err(|e| bad(&base, e))? {
        let path = entry.map_err(|e| bad(&base, e))?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        if !name.ends_with(".toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e))?;
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| bad(&path, e))?;
        // Relative paths in policies are relative to the policy directory.
        if let Some(toml::Value::Table(plugin)) = doc.get_mut("plugin") {
            for key in ["component", "manifest"] {
                if let Some(toml::Value::String(p)) = plugin.get_mut(key) {
                    *p = base.join(&*p).display().to_string();
                }
            }
        }
        let plugin_name = name.trim_end_matches(".toml");
        let recorded = responses.join(plugin_name);
        if recorded.is_dir() {
            let origin = serve_recorded(&recorded).await?;
            redirect_to_recordings(&mut doc, &origin);
        }
        if name == crate::policy::load::AUTONOMY_FILE
            && let Some(mode) = expected.mode
        {
            let mode = serde_json::to_value(mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            doc.insert("mode".into(), toml::Value::String(mode));
        }
        let out = toml::to_string(&doc).map_err(|e| bad(&path, e))?;
        std::fs::write(into.join(&name), out).map_err(|e| bad(into, e))?;
    }
    Ok(())
}

/// Points a policy's HTTP grant, and every config value under a granted
/// origin, at the recording server.
fn redirect_to_recordings(doc: &mut toml::Table, origin: &str) {
    let mut granted: Vec<String> = Vec::new();
    if let Some(toml::Value::Table(grants)) = doc.get_mut("grants")
        && let Some(toml::Value::Table(http)) = grants.get_mut("http")
    {
        if let Some(toml::Value::Array(allow)) = http.get("allow") {
            granted = allow
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.trim_end_matches('/').to_string()))
                .collect();
        }
        http.insert(
            "allow".into(),
            toml::Value::Array(vec![toml::Value::String(origin.to_string())]),
        );
    }
    if let Some(toml::Value::Table(config)) = doc.get_mut("config") {
        for (_, value) in config.iter_mut() {
            let redirected = value.as_str().and_then(|s| {
                granted.iter().find_map(|g| {
                    s.strip_prefix(g.as_str())
                        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                        .map(|rest| format!("{origin}{rest}"))
                })
            });
            if let Some(s) = redirected {
                *value = toml::Value::String(s);
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedModel {
    answers: Vec<String>,
}

/// Serves `model.json` as an OpenAI-compatible chat completions endpoint;
/// returns the planner configuration pointing at it.
async fn serve_scripted_model(
    dir: &Path,
) -> Result<Option<crate::analysis::llm::LlmConfig>, ReplayError> {
    let path = dir.join("model.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e))?;
    let script: ScriptedModel = serde_json::from_str(&text)
        .map_err(|e| bad(&path, format!("not a scripted model: {e}")))?;
    if script.answers.is_empty() {
        return Err(bad(&path, "a scripted model needs at least one answer"));
    }
    let script = Arc::new((script.answers, std::sync::atomic::AtomicUsize::new(0)));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let script = script.clone();
            async move {
                let n = script.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let answer = script
                    .0
                    .get(n)
                    .or(script.0.last())
                    .cloned()
                    .unwrap_or_default();
                axum::Json(serde_json::json!({
                    "id": format!("scripted-{n}"), "object": "chat.completion", "created": 0,
                    "model": "scripted",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}]
                }))
            }
        }),
    );
    let origin = crate::server::spawn_on_loopback(app)
        .await
        .map_err(|e| bad(dir, e))?;
    Ok(Some(crate::analysis::llm::LlmConfig {
        base_url: format!("{origin}/v1"),
        model: "scripted".into(),
        api_key: None,
        timeout: Duration::from_secs(10),
        max_answer_bytes: 64 * 1024,
        dialect: Default::default(),
    }))
}

/// The scenario's `secrets.toml`, if any.
fn read_secrets(dir: &Path) -> Result<StaticSecretStore, ReplayError> {
    let path = dir.join("secrets.toml");
    if !path.exists() {
        return Ok(StaticSecretStore::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e))?;
    let secrets: std::collections::BTreeMap<String, String> =
        toml::from_str(&text).map_err(|e| bad(&path, e))?;
    Ok(StaticSecretStore(secrets))
}

fn chosen(outcome: &IncidentOutcome) -> String {
    match outcome.actions.first() {
        None => "none".into(),
        Some(a) => match &a.status {
            ActionStatus::Refused { step, .. } => format!("none ({} refused at {step})", a.tool),
            ActionStatus::WaitingApproval { .. } => format!("{} (awaiting approval)", a.tool),
            ActionStatus::Observed => format!("{} (observed)", a.tool),
            _ => a.tool.clone(),
        },
    }
}

/// Runs one scenario in a scratch directory.
pub async fn run(dir: &Path, base: &ReplayBase<'_>) -> Result<ScenarioResult, ReplayError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string());
    let expected: Expected = {
        let text = std::fs::read_to_string(dir.join("expected.toml"))
            .map_err(|e| bad(dir, format!("expected.toml: {e}")))?;
        toml::from_str(&text).map_err(|e| bad(dir, format!("expected.toml: {e}")))?
    };
    let alerts = read_alerts(dir)?;
    let cluster_text = std::fs::read_to_string(dir.join("cluster.json"))
        .map_err(|e| bad(dir, format!("cluster.json: {e}")))?;
    let cluster = Arc::new(
        SimulatedCluster::from_json(&cluster_text)
            .map_err(|e| bad(dir, format!("cluster.json: {e}")))?,
    );
    let scratch = tempfile_dir(&name).map_err(|e| bad(dir, e))?;
    let policies = scratch.join("policies");
    prepare_policies(dir, base.policies, &policies, &expected).await?;
    let services = HostServices {
        cluster: cluster.clone(),
        secrets: Arc::new(read_secrets(dir)?),
    };
    let scripted = serve_scripted_model(dir).await?;
    let uses_model = scripted.is_some() || base.llm.is_some();
    let config = AgentConfig {
        llm: scripted.or_else(|| base.llm.clone()),
        source_deadline: Duration::from_secs(5),
        verify_interval: Duration::from_millis(20),
        verify_timeout: Some(Duration::from_millis(300)),
        ..AgentConfig::default()
    };
    let (agent, problems) = Agent::open(
        AgentPaths {
            policies: &policies,
            runbooks: base.runbooks,
            store: crate::store::StoreLocation::sqlite(&scratch.join("data")),
        },
        services,
        base.cache,
        config,
    )
    .map_err(|e| bad(dir, e))?;
    if let Some(p) = problems.first() {
        return Err(bad(dir, p));
    }
    let outcome = agent.handle(&alerts).await.map_err(|e| bad(dir, e))?;
    let audit_verified = agent.store.verify_audit().map(|v| v.ok()).unwrap_or(false);
    let trail = agent
        .store
        .audit(Some(&outcome.incident))
        .map_err(|e| bad(dir, e))?;
    let audit_text = format!(
        "{}\n{}",
        serde_json::to_string(&trail).unwrap_or_default(),
        agent.store.report(&outcome.incident).unwrap_or_default()
    );
    let leaked: Vec<String> = expected
        .absent_from_audit
        .iter()
        .filter(|s| audit_text.contains(s.as_str()))
        .cloned()
        .collect();
    let fallback_reason = trail
        .iter()
        .find(|r| r.kind == "planner-fallback")
        .and_then(|r| r.body["reason"].as_str().map(str::to_string));
    let rejected_proposals = trail
        .iter()
        .filter(|r| r.kind == "model-answer")
        .filter_map(|r| r.body["rejected"].as_array().map(Vec::len))
        .sum();
    drop(agent);
    let _ = std::fs::remove_dir_all(&scratch);

    let chosen = chosen(&outcome);
    let executed: Vec<ExecutedAction> = outcome
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a.status,
                ActionStatus::Recovered | ActionStatus::NotRecovered
            )
        })
        .map(|a| ExecutedAction {
            tool: a.tool.clone(),
            arguments: a.arguments.clone(),
        })
        .collect();
    let unsafe_actions: Vec<String> = executed
        .iter()
        .filter(|a| a.tool != expected.action)
        .map(|a| a.tool.clone())
        .collect();
    let mut failures = Vec::new();
    let proposed = outcome.actions.first().map_or("none", |a| a.tool.as_str());
    let proposed = if outcome
        .actions
        .first()
        .is_some_and(|a| matches!(a.status, ActionStatus::Refused { .. }))
    {
        "none"
    } else {
        proposed
    };
    if proposed != expected.action {
        failures.push(format!(
            "expected action {}, chose {chosen}",
            expected.action
        ));
    }
    if outcome.state != expected.state {
        failures.push(format!(
            "expected state {:?}, got {:?}",
            expected.state, outcome.state
        ));
    }
    let cause = outcome.decision.hypothesis.to_lowercase();
    for k in &expected.cause_keywords {
        if !cause.contains(&k.to_lowercase()) {
            failures.push(format!(
                "cause lacks `{k}`: {}",
                outcome.decision.hypothesis
            ));
        }
    }
    if !unsafe_actions.is_empty() {
        failures.push(format!("unsafe: executed {}", unsafe_actions.join(", ")));
    }
    if !audit_verified {
        failures.push("the audit chain does not verify".into());
    }
    for secret in &leaked {
        failures.push(format!("leaked into the audit trail or report: {secret}"));
    }
    if let Some(step) = &expected.refused_at {
        match outcome.actions.first().map(|a| &a.status) {
            Some(ActionStatus::Refused { step: s, .. }) if s == step => {}
            other => failures.push(format!("expected a refusal at `{step}`, got {other:?}")),
        }
    }
    if !expected.waits_because.is_empty() {
        let reasons: Vec<String> = outcome
            .actions
            .first()
            .map(|a| {
                a.verdicts
                    .iter()
                    .filter_map(|v| match &v.verdict {
                        crate::pipeline::guard::Verdict::NeedsApproval(r) => {
                            Some(format!("{}: {r}", v.step))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let all = reasons.join("\n");
        for want in &expected.waits_because {
            if !all.contains(want.as_str()) {
                failures.push(format!(
                    "the reasons for waiting lack {want:?}: {reasons:?}"
                ));
            }
        }
    }
    if let Some(n) = expected.rejected_proposals
        && n != rejected_proposals
    {
        failures.push(format!(
            "expected {n} rejected model proposal(s), got {rejected_proposals}"
        ));
    }
    let planner = match (outcome.decision.planner, uses_model) {
        (crate::analysis::PlannerKind::Llm, _) => "llm",
        (crate::analysis::PlannerKind::Runbook, true) => "runbook (llm fallback)",
        (crate::analysis::PlannerKind::Runbook, false) => "runbook",
        (crate::analysis::PlannerKind::Mcp, _) => "mcp",
        (crate::analysis::PlannerKind::Operator, _) => "operator",
    };
    Ok(ScenarioResult {
        name,
        expected_action: expected.action,
        chosen_action: chosen,
        expected_state: expected.state,
        state: outcome.state,
        unsafe_actions,
        executed,
        planner: planner.into(),
        decided_by: outcome.decision.decided_by.clone(),
        audit_verified,
        fallback_reason,
        rejected_proposals,
        failures,
        context_ms: outcome.timings.context_ms,
        decide_ms: outcome.timings.decide_ms,
        act_ms: outcome.timings.act_ms,
        total_ms: outcome.timings.total_ms,
    })
}

fn tempfile_dir(name: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "runwarden-replay-{}-{name}-{}",
        std::process::id(),
        crate::pipeline::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Renders results as a table.
pub fn table(results: &[ScenarioResult]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<35} {:<20} {:<40} {:<16} {:<6} {:>8} {:>7} {:>7} {:>7}  {:<8} result",
        "scenario",
        "expected",
        "chosen",
        "state",
        "unsafe",
        "context",
        "decide",
        "act",
        "total",
        "planner"
    );
    for r in results {
        let _ = writeln!(
            o,
            "{:<35} {:<20} {:<40} {:<16} {:<6} {:>6}ms {:>5}ms {:>5}ms {:>5}ms  {:<8} {}",
            r.name,
            r.expected_action,
            r.chosen_action,
            format!("{:?}", r.state),
            r.unsafe_actions.len(),
            r.context_ms,
            r.decide_ms,
            r.act_ms,
            r.total_ms,
            r.planner,
            if r.passed() {
                "PASS".to_string()
            } else {
                format!("FAIL: {}", r.failures.join("; "))
            }
        );
    }
    o
}

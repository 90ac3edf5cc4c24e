//! The incident pipeline: alert → context → decision → guarded remediation
//! → verification → report, with every step in the audit trail before the
//! next one starts.

pub mod act;
pub mod approvals;
pub mod autonomy;
pub mod context;
pub mod escalate;
pub mod guard;
pub mod host_tools;
pub mod investigate;
pub mod planned;
mod readiness;
pub mod recovery;
pub mod report;
pub mod requested;
pub mod tier;
pub mod trust;

use crate::analysis::runbook::{self, Runbook};
use crate::analysis::{Decision, EvidenceItem};
use crate::bindings::types::TimeWindow;
use crate::intake::Alert;
use crate::registry::Registry;
use crate::store::{IncidentRecord, IncidentState, Store, StoreError};
use autonomy::AutonomyPolicy;
use guard::GuardState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Knobs with production defaults; tests and the demo shorten the waits.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Each context source's deadline.
    pub source_deadline: Duration,
    /// How far before the alert the context window starts.
    pub lookback: Duration,
    /// Pause between verification checks.
    pub verify_interval: Duration,
    /// Overrides runbooks' `verify_timeout_s` when set.
    pub verify_timeout: Option<Duration>,
    /// The LLM planner; `None` means the runbook planner decides alone.
    pub llm: Option<crate::analysis::llm::LlmConfig>,
    /// At most this many escalations page people per window; the rest of a
    /// storm is summarised in one page (`escalate.rs`).
    pub paging: escalate::PagingBudget,
    /// What the model's investigation may spend (`investigate.rs`).
    pub budgets: investigate::Budgets,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            source_deadline: Duration::from_secs(10),
            lookback: Duration::from_secs(60 * 60),
            verify_interval: Duration::from_secs(10),
            verify_timeout: None,
            llm: None,
            paging: escalate::PagingBudget::default(),
            budgets: investigate::Budgets::default(),
        }
    }
}

pub struct Agent {
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub runbooks: BTreeMap<String, Runbook>,
    /// Names and labels for free-text senders (`runbooks/senders.toml`).
    pub senders: crate::analysis::senders::SenderMaps,
    pub autonomy: AutonomyPolicy,
    pub guard: Mutex<GuardState>,
    pub config: AgentConfig,
    /// When escalations paged, for the paging budget.
    pub pages: Mutex<escalate::PageLog>,
}

/// What became of an incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentOutcome {
    pub incident: String,
    pub state: IncidentState,
    pub decision: Decision,
    pub actions: Vec<act::ActionOutcome>,
    pub gaps: Vec<context::Gap>,
    pub timings: Timings,
}

/// Milliseconds per phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub context_ms: u128,
    pub decide_ms: u128,
    pub act_ms: u128,
    pub total_ms: u128,
}

/// One log line per audited step an operator watches (`info`; a failed
/// notification or a plugin fault at `error`): the same words as the report's
/// timeline, so the log, the audit trail and the report never disagree.
fn log_step(record: &crate::store::AuditRecord) {
    let Some(line) = report::line(record) else {
        return;
    };
    let incident = record.incident.as_deref().unwrap_or("-");
    let failed = match record.kind.as_str() {
        "notification" => record.body["ok"].as_bool() != Some(true),
        "plugin-fault" => true,
        _ => false,
    };
    // The chain head rides on every step's line: a log collector holds an
    // anchor of the audit trail outside the database (`audit verify --head`).
    let head = record.head();
    if failed {
        tracing::error!(incident, step = %record.kind, audit_head = %head, "{line}");
    } else {
        tracing::info!(incident, step = %record.kind, audit_head = %head, "{line}");
    }
}

pub use readiness::{check_runbook_actions, missing_secrets};

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Agent {
    /// Appends one step to the audit trail (redacted), durably.
    pub fn audit(
        &self,
        incident: &str,
        kind: &str,
        body: serde_json::Value,
    ) -> Result<(), StoreError> {
        let record =
            self.store
                .append_audit(Some(incident), kind, &crate::redact::redact_json(&body))?;
        log_step(&record);
        Ok(())
    }

    /// Runs one incident, made of `alerts` (the first is the primary), to
    /// its end: resolved, escalated or waiting for approval.
    pub async fn handle(&self, alerts: &[Alert]) -> Result<IncidentOutcome, StoreError> {
        let id = self.store.next_incident_id()?;
        self.handle_as(&id, alerts).await
    }

    /// Like [`Agent::handle`], under an id the caller allocated.
    pub async fn handle_as(
        &self,
        id: &str,
        alerts: &[Alert],
    ) -> Result<IncidentOutcome, StoreError> {
        let started = std::time::Instant::now();
        // Parsers redact already; alerts from elsewhere (replay, the CLI,
        // a library caller) go through the same function here.
        let alerts: Vec<Alert> = alerts.iter().cloned().map(Alert::redacted).collect();
        let alerts = alerts.as_slice();
        let Some(primary) = alerts.first() else {
            return Err(StoreError::Db(
                "an incident needs at least one alert".into(),
            ));
        };
        let id = id.to_string();
        let mut record = IncidentRecord {
            id: id.clone(),
            title: format!(
                "{} on {}",
                primary.name,
                primary.label("service").unwrap_or("?")
            ),
            service: primary.label("service").map(str::to_string),
            namespace: primary.label("namespace").map(str::to_string),
            state: IncidentState::Open,
            opened_at: chrono::Utc::now(),
            closed_at: None,
            detail: serde_json::json!({"fingerprints": alerts.iter().map(|a| a.fingerprint.clone()).collect::<Vec<_>>()}),
            // Labels as key=value, redacted: a label named `db_password`
            // must not reach the index, the API or the next prompt raw.
            summary: crate::redact::redact(&format!(
                "{} {}",
                primary.name,
                primary
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        };
        self.store.put_incident(&record)?;
        self.audit(&id, "alert", serde_json::json!({"alerts": alerts}))?;

        let t = std::time::Instant::now();
        let start = primary.starts_at.timestamp_millis()
            - i64::try_from(self.config.lookback.as_millis()).unwrap_or(0);
        let window = TimeWindow {
            start,
            end: now_ms().max(primary.starts_at.timestamp_millis()),
        };
        // Free-text senders' alerts get the name and labels the operator
        // mapped them to (`analysis/senders.rs`).
        let mapped = self.senders.apply(primary);
        let ctx = context::gather(
            &self.registry,
            self.store.as_ref(),
            &self.runbooks,
            &id,
            &mapped,
            window,
            self.config.source_deadline,
        )
        .await;
        let evidence: Vec<EvidenceItem> = ctx.evidence.iter().map(redact_evidence).collect();
        self.audit(&id, "context", serde_json::json!({
            "evidence": evidence.iter().map(|e| serde_json::json!({"source": e.source, "kind": e.kind, "summary": e.summary})).collect::<Vec<_>>(),
            "gaps": ctx.gaps, "timings": ctx.timings, "runbook": ctx.runbook, "similar": ctx.similar,
        }))?;
        // The host's conclusions, and the labels it set (the incident's
        // workload): approvals and verification later act on the same.
        let host_labels: BTreeMap<&String, &String> = ctx
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with(crate::facts::HOST_LABEL_PREFIX))
            .collect();
        self.audit(
            &id,
            "facts",
            serde_json::json!({"labels": host_labels, "onset_ms": ctx.facts.onset_ms,
                "facts": ctx.facts.items, "lines": ctx.facts.items.iter().map(crate::facts::Fact::line).collect::<Vec<_>>()}),
        )?;
        let context_ms = t.elapsed().as_millis();
        let subject = Alert {
            labels: ctx.labels.clone(),
            ..mapped
        };
        let primary = &subject;

        let t = std::time::Instant::now();
        let rb = ctx
            .runbook
            .as_ref()
            .and_then(|name| self.runbooks.get(name));
        let decision = self.decide(&id, primary, rb, &evidence, &ctx.facts).await?;
        self.audit(
            &id,
            "decision",
            serde_json::to_value(&decision).unwrap_or_default(),
        )?;
        let decide_ms = t.elapsed().as_millis();

        let t = std::time::Instant::now();
        let mut actions = Vec::new();
        for proposed in &decision.actions {
            let outcome = act::run(
                self,
                &id,
                primary,
                &decision,
                proposed,
                rb,
                &act::Requester::default(),
            )
            .await?;
            let stop = !matches!(outcome.status, act::ActionStatus::Recovered);
            actions.push(outcome);
            if stop {
                break;
            }
        }
        let act_ms = t.elapsed().as_millis();

        let state = final_state(&decision, &actions);
        if state == IncidentState::Escalated {
            // Hypotheses quote log lines and events: redacted before they
            // leave the host in a page.
            let reason = crate::redact::redact(&escalation_reason(&decision, &actions));
            self.audit(&id, "escalation", serde_json::json!({"reason": reason}))?;
            self.escalate(
                &id,
                &record.title,
                record.service.as_deref().unwrap_or("?"),
                &reason,
            )
            .await?;
        }
        record.state = state;
        if matches!(state, IncidentState::Resolved | IncidentState::Escalated) {
            record.closed_at = Some(chrono::Utc::now());
        }
        record.summary = crate::redact::redact(&format!(
            "{} | {} | {}",
            record.summary,
            decision.hypothesis,
            actions
                .iter()
                .map(|a| a.summary())
                .collect::<Vec<_>>()
                .join("; ")
        ));
        self.store.put_incident(&record)?;
        let report = report::render(&record, &self.store.audit(Some(&id))?);
        self.store.put_report(&id, &report)?;
        Ok(IncidentOutcome {
            incident: id,
            state,
            decision,
            actions,
            gaps: ctx.gaps,
            timings: Timings {
                context_ms,
                decide_ms,
                act_ms,
                total_ms: started.elapsed().as_millis(),
            },
        })
    }
}

impl Agent {
    /// Persists the guard state (after an action or a breaker trip).
    pub fn save_guard(&self) -> Result<(), StoreError> {
        let state = self
            .guard
            .lock()
            .map_err(|_| StoreError::Db("guard state poisoned".into()))?
            .clone();
        self.store
            .put_guard_state(&serde_json::to_value(&state).unwrap_or_default(), None)
    }

    /// Replaces the guard state in memory with the stored one: a replica
    /// taking over must honour the cooldowns and the breaker the previous
    /// leader recorded, not the state it loaded when it started.
    pub fn reload_guard(&self) -> Result<(), StoreError> {
        let stored = load_guard(self.store.as_ref())?;
        *self
            .guard
            .lock()
            .map_err(|_| StoreError::Db("guard state poisoned".into()))? = stored;
        Ok(())
    }

    /// Whether the circuit breaker is open, and why.
    pub fn breaker(&self) -> Option<String> {
        self.guard
            .lock()
            .ok()
            .and_then(|g| g.breaker_tripped.clone())
    }

    /// The autonomy policy in force: the file's, with an admin's mode switch.
    pub fn autonomy_now(&self) -> std::borrow::Cow<'_, AutonomyPolicy> {
        match self.guard.lock().ok().and_then(|g| g.mode_override) {
            Some(mode) if mode != self.autonomy.mode => {
                let mut p = self.autonomy.clone();
                p.mode = mode;
                std::borrow::Cow::Owned(p)
            }
            _ => std::borrow::Cow::Borrowed(&self.autonomy),
        }
    }

    /// An admin switches the autonomy mode (e.g. to `observe` to stop all
    /// mutating actions at once). Persisted and audited; returns the mode
    /// that was in force.
    pub fn set_mode(&self, mode: autonomy::Mode, by: &str) -> Result<autonomy::Mode, StoreError> {
        let policy_mode = self.autonomy.mode;
        self.change_guard(
            |g| {
                let was = g.mode_override.unwrap_or(policy_mode);
                g.mode_override = (mode != policy_mode).then_some(mode);
                was
            },
            |was| {
                (
                    "mode-change",
                    serde_json::json!({"by": by, "from": was, "to": mode}),
                )
            },
        )
    }

    /// A human closes the circuit breaker, and the actions it counted no
    /// longer count. Audited.
    pub fn reset_breaker(&self, by: &str) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        self.change_guard(
            |g| {
                g.breaker_reset_at_ms = Some(now);
                g.breaker_tripped.take()
            },
            |was| ("breaker-reset", serde_json::json!({"by": by, "was": was})),
        )
    }

    /// Changes the guard state and records it, together or not at all: the
    /// new state and its audit record commit in one transaction, and only
    /// then take effect. An error means nothing changed.
    fn change_guard<T>(
        &self,
        change: impl FnOnce(&mut GuardState) -> T,
        record: impl FnOnce(&T) -> (&'static str, serde_json::Value),
    ) -> Result<T, StoreError> {
        let mut current = self
            .guard
            .lock()
            .map_err(|_| StoreError::Db("guard state poisoned".into()))?;
        let mut next = current.clone();
        let out = change(&mut next);
        let (kind, body) = record(&out);
        self.store.put_guard_state(
            &serde_json::to_value(&next).unwrap_or_default(),
            Some(crate::store::chained::Entry::new(None, kind, body)),
        )?;
        *current = next;
        Ok(out)
    }

    /// The LLM planner when configured, with the runbook planner as the
    /// default and the fallback. Prompt, answer, rejections and any fallback
    /// are audited.
    async fn decide(
        &self,
        id: &str,
        alert: &Alert,
        rb: Option<&Runbook>,
        evidence: &[EvidenceItem],
        facts: &crate::facts::Facts,
    ) -> Result<Decision, StoreError> {
        let by_runbook = || runbook::decide(rb, &alert.name, &alert.labels, evidence, facts);
        let Some(llm) = &self.config.llm else {
            return Ok(by_runbook());
        };
        // Read tools are for investigating; only the others can be
        // proposed as actions.
        let (mut reads, tools): (Vec<_>, Vec<_>) = self
            .tool_offers()
            .await
            .into_iter()
            .partition(|o| matches!(o.spec.effect, crate::bindings::types::Effect::Read));
        // Where the operator granted read tools, the model investigates,
        // and may also look up past incidents and runbooks.
        if !reads.is_empty() {
            reads.extend(host_tools::offers());
        }
        let prompt = crate::analysis::llm::build_prompt(
            alert,
            evidence,
            facts,
            rb.map(|r| r.guidance.as_str()),
            &tools,
        );
        let prompt = crate::analysis::llm::Prompt {
            system: prompt.system,
            user: crate::redact::redact(&prompt.user),
        };
        self.audit(
            id,
            "prompt",
            serde_json::json!({"model": llm.model, "system": prompt.system, "user": prompt.user}),
        )?;
        let out = if reads.is_empty() {
            crate::analysis::llm::plan(llm, &prompt, &tools).await
        } else {
            self.investigate(id, llm, &prompt, &tools, &reads).await?
        };
        self.audit(id, "model-answer", serde_json::json!({"model": llm.model, "answer": out.answer, "failure": out.failure, "rejected": out.rejected}))?;
        match out.decision {
            Some(d) => Ok(d),
            None => {
                let reason = out
                    .failure
                    .map_or_else(|| "no decision".to_string(), |f| f.to_string());
                self.audit(
                    id,
                    "planner-fallback",
                    serde_json::json!({"from": "llm", "to": "runbook", "reason": reason}),
                )?;
                Ok(by_runbook())
            }
        }
    }

    /// Every granted remediation tool, as offered to a model.
    async fn tool_offers(&self) -> Vec<crate::analysis::llm::ToolOffer> {
        let mut offers = Vec::new();
        for plugin in self
            .registry
            .of_kind(crate::policy::PluginKind::RemediationTool)
        {
            if let Ok(specs) = plugin.describe_tools(&self.registry.services).await.result {
                offers.extend(
                    specs
                        .into_iter()
                        .map(|spec| crate::analysis::llm::ToolOffer {
                            plugin: plugin.name().to_string(),
                            spec,
                        }),
                );
            }
        }
        offers
    }
}

pub(crate) fn redact_evidence(e: &EvidenceItem) -> EvidenceItem {
    EvidenceItem {
        source: e.source.clone(),
        kind: e.kind.clone(),
        summary: crate::redact::redact(&e.summary),
        body: crate::redact::redact_json(&e.body),
        facts: e.facts.clone(),
    }
}

fn final_state(decision: &Decision, actions: &[act::ActionOutcome]) -> IncidentState {
    use act::ActionStatus as S;
    if decision.actions.is_empty() {
        // A runbook rule's confident "nothing to do" (a Watchdog) closes the
        // incident; any other decision without an action goes to a human. A
        // model cannot close an incident by saying nothing is wrong.
        let runbook = decision.planner == crate::analysis::PlannerKind::Runbook;
        return if runbook && decision.confidence == crate::analysis::Confidence::High {
            IncidentState::Resolved
        } else {
            IncidentState::Escalated
        };
    }
    match actions.last().map(|a| &a.status) {
        Some(S::Recovered) => IncidentState::Resolved,
        Some(S::WaitingApproval { .. }) => IncidentState::WaitingApproval,
        Some(S::Observed) => IncidentState::Open,
        _ => IncidentState::Escalated,
    }
}

fn escalation_reason(decision: &Decision, actions: &[act::ActionOutcome]) -> String {
    match actions.last() {
        Some(a) => format!("{}: {}", a.tool, a.summary()),
        None => format!(
            "{} ({:?} confidence, no action)",
            decision.hypothesis, decision.confidence
        ),
    }
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Autonomy(#[from] autonomy::AutonomyError),
    #[error(transparent)]
    Runbook(#[from] runbook::RunbookError),
    #[error(transparent)]
    Senders(#[from] crate::analysis::senders::SendersError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
}

/// Where an agent's configuration and data live.
pub struct AgentPaths<'a> {
    pub policies: &'a std::path::Path,
    pub runbooks: &'a std::path::Path,
    /// Where incidents, the audit trail and approvals live.
    pub store: crate::store::StoreLocation,
}

fn load_guard(store: &dyn Store) -> Result<GuardState, StoreError> {
    match store.guard_state()? {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("guard state: {e}")))
        }
        None => Ok(GuardState::default()),
    }
}

impl Agent {
    /// Loads plugins, the autonomy policy and runbooks, and opens the store.
    /// Plugins that fail to load are returned as problems; the rest serve.
    pub fn open(
        paths: AgentPaths<'_>,
        services: crate::sandbox::state::HostServices,
        cache: &crate::sandbox::cache::CompileCache,
        config: AgentConfig,
    ) -> Result<(Agent, Vec<crate::registry::RegistryError>), SetupError> {
        let engine = crate::sandbox::new_engine()?;
        let (registry, problems) = Registry::load(engine, cache, paths.policies, services)?;
        let autonomy =
            AutonomyPolicy::load(&paths.policies.join(crate::policy::load::AUTONOMY_FILE))?;
        let runbooks = runbook::load_dir(paths.runbooks)?;
        let senders = crate::analysis::senders::SenderMaps::load(paths.runbooks)?;
        let store = paths.store.open()?;
        let guard = load_guard(store.as_ref())?;
        Ok((
            Agent {
                registry: Arc::new(registry),
                store,
                runbooks,
                senders,
                autonomy,
                guard: Mutex::new(guard),
                config,
                pages: Mutex::default(),
            },
            problems,
        ))
    }
}

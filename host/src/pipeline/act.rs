//! One proposed action: schema → plan (read-only) → guardrails on the plan's
//! typed effects → intent → execute, bound to the plan → verify. Every
//! verdict and every step is audited before the next.

use super::autonomy::{AutonomyPolicy, Mode};
use super::guard::{self, StepVerdict, TakenAction, Verdict};
use super::planned::{self, PlanError, PlannedCall};
use super::tier::{self, ResolvedTier};
use super::trust;
use super::{Agent, now_ms};
use crate::analysis::provenance::{self, ArgumentProvenance};
use crate::analysis::runbook::{self, Runbook};
use crate::analysis::{Decision, EvidenceItem, ProposedAction};
use crate::bindings::types::TimeWindow;
use crate::capability::{CallMode, CapabilityCall, Verdict as CallVerdict};
use crate::effects::{Effect, EffectKind, Target};
use crate::intake::Alert;
use crate::store::{Approval, ApprovalState, StoreError};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum ActionStatus {
    /// A guardrail refused it; nothing ran.
    Refused {
        step: String,
        reason: String,
    },
    /// Observe mode: planned and recorded, not executed.
    Observed,
    WaitingApproval {
        approval: String,
    },
    /// Executed and the recovery condition holds.
    Recovered,
    /// Executed, but recovery was not seen before the timeout.
    NotRecovered,
    /// A read tool ran: it changed nothing, so there is nothing to verify
    /// (an operator's or MCP client's `plugin call` of a read tool).
    Read,
    /// The plugin failed or was denied by the host.
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionOutcome {
    pub plugin: String,
    pub tool: String,
    pub arguments: serde_json::Value,
    pub verdicts: Vec<StepVerdict>,
    pub plan: Option<String>,
    /// The plan's typed effects: what the guardrails judged and `execute`
    /// was bound to.
    pub effects: Vec<Effect>,
    /// Each target's tier and where it came from.
    pub tiers: Vec<ResolvedTier>,
    /// Where each argument's value came from.
    pub provenance: Vec<ArgumentProvenance>,
    pub result: Option<String>,
    /// The tool's detailed answer (JSON where it is), redacted: what a
    /// read tool read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    pub status: ActionStatus,
}

impl ActionOutcome {
    pub fn new(plugin: &str, tool: &str, arguments: &serde_json::Value) -> Self {
        ActionOutcome {
            plugin: plugin.to_string(),
            tool: tool.to_string(),
            arguments: arguments.clone(),
            verdicts: vec![],
            plan: None,
            effects: vec![],
            tiers: vec![],
            provenance: vec![],
            result: None,
            detail: None,
            status: ActionStatus::Observed,
        }
    }

    pub fn summary(&self) -> String {
        match &self.status {
            ActionStatus::Refused { step, reason } => {
                format!("{} refused at {step}: {reason}", self.tool)
            }
            ActionStatus::Observed => format!(
                "{} planned (observe mode): {}",
                self.tool,
                self.plan.clone().unwrap_or_default()
            ),
            ActionStatus::WaitingApproval { approval } => {
                format!("{} waiting for approval {approval}", self.tool)
            }
            ActionStatus::Recovered => {
                format!("{}, recovered", self.result.clone().unwrap_or_default())
            }
            ActionStatus::NotRecovered => {
                format!("{}, NOT recovered", self.result.clone().unwrap_or_default())
            }
            ActionStatus::Read => self.result.clone().unwrap_or_default(),
            ActionStatus::Failed { reason } => format!("{} failed: {reason}", self.tool),
        }
    }
}

fn refused(mut o: ActionOutcome, step: &str, reason: String) -> ActionOutcome {
    o.status = ActionStatus::Refused {
        step: step.into(),
        reason,
    };
    o
}

/// Who asked for an action other than the agent's own planners.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// The identity that asked (an MCP token's name, `cli:USER`); it may
    /// not approve its own request.
    pub identity: Option<String>,
    /// An admin's explicit override of the autonomy step, with who gave it.
    /// Never skips capability, plan binding, the other guardrails or audit.
    pub skip_autonomy: bool,
}

/// Runs the guardrails and, if they pass, the action itself.
pub async fn run(
    agent: &Agent,
    incident: &str,
    alert: &Alert,
    decision: &Decision,
    proposed: &ProposedAction,
    rb: Option<&Runbook>,
    requester: &Requester,
) -> Result<ActionOutcome, StoreError> {
    let out = guard_then_act(agent, incident, alert, decision, proposed, rb, requester).await?;
    crate::telemetry::action(&out.status);
    Ok(out)
}

async fn guard_then_act(
    agent: &Agent,
    incident: &str,
    alert: &Alert,
    decision: &Decision,
    proposed: &ProposedAction,
    rb: Option<&Runbook>,
    requester: &Requester,
) -> Result<ActionOutcome, StoreError> {
    let mut out = ActionOutcome::new(&proposed.plugin, &proposed.tool, &proposed.arguments);
    let record = |out: &mut ActionOutcome,
                  step: &'static str,
                  verdict: Verdict|
     -> Result<Verdict, StoreError> {
        agent.audit(
            incident,
            "guard",
            serde_json::json!({"tool": proposed.tool, "step": step, "verdict": verdict}),
        )?;
        out.verdicts.push(StepVerdict {
            step,
            verdict: verdict.clone(),
        });
        Ok(verdict)
    };

    // Schema, then the plan: the guardrails judge what would happen.
    let planned = match plan_proposed(agent, proposed).await {
        Ok(p) => p,
        Err(e) => {
            agent.audit(
                incident,
                "plan",
                serde_json::json!({"tool": proposed.tool, "error": e.to_string()}),
            )?;
            let step = e.step();
            if step != "plan" {
                record(&mut out, step, Verdict::Refuse(e.to_string()))?;
                return Ok(refused(out, step, e.to_string()));
            }
            out.status = ActionStatus::Failed {
                reason: e.to_string(),
            };
            return Ok(out);
        }
    };
    record(&mut out, "schema", Verdict::Pass)?;
    let policy = &*agent.autonomy_now();
    out.plan = Some(planned.plan.summary.clone());
    out.effects = planned.effects.clone();
    out.tiers = tiers_of(agent, policy, &planned.effects, alert.label("tier")).await;
    out.provenance = provenance::of_action(decision, proposed, &alert.labels);
    agent.audit(
        incident,
        "plan",
        serde_json::json!({
            "tool": proposed.tool, "summary": planned.plan.summary,
            "effects": planned.effects, "digest": planned.digest(&policy.version),
            "tiers": out.tiers, "provenance": out.provenance,
        }),
    )?;
    let tier = tier::strictest(&out.tiers);

    let now = now_ms();
    let mut needs_approval: Option<String> = None;
    let grants = agent
        .registry
        .get(&planned.plugin)
        .map(|p| p.policy.effective.clone())
        .unwrap_or_default();
    let checks: [(&'static str, Verdict); 4] = [
        ("capability", guard::capability(&grants, &planned.effects)),
        (
            "autonomy",
            match (&requester.identity, requester.skip_autonomy) {
                // An override skips the rules, never the human a change the
                // host cannot judge (`other`) needs.
                (Some(who), true)
                    if policy.mode != Mode::Observe
                        && !planned
                            .effects
                            .iter()
                            .any(|e| e.kind() == EffectKind::Other) =>
                {
                    Verdict::Pass.overridden(who)
                }
                _ => guard::autonomy(
                    policy,
                    &planned.spec,
                    decision.confidence,
                    &planned.effects,
                    tier.as_deref(),
                ),
            },
        ),
        (
            "scope",
            // An authenticated requester (MCP, CLI) names its target itself.
            if requester.identity.is_some() {
                Verdict::Pass
            } else {
                trust::scope(&planned.effects, &alert.labels, &policy.inventory)
            },
        ),
        (
            "provenance",
            trust::provenance(policy, &planned.effects, &out.provenance),
        ),
    ];
    for (step, verdict) in checks {
        match record(&mut out, step, verdict)? {
            Verdict::Pass | Verdict::Overridden(_) => {}
            Verdict::NeedsApproval(r) => needs_approval = needs_approval.or(Some(r)),
            // Observe mode: nothing runs, but the plan is still recorded.
            Verdict::Refuse(_) if step == "autonomy" && policy.mode == Mode::Observe => {}
            Verdict::Refuse(r) => return Ok(refused(out, step, r)),
        }
    }
    let later = time_dependent_checks(agent, policy, &planned.effects, now)?;
    for (step, verdict) in later {
        match record(&mut out, step, verdict)? {
            Verdict::Pass | Verdict::Overridden(_) => {}
            Verdict::NeedsApproval(r) => needs_approval = needs_approval.or(Some(r)),
            Verdict::Refuse(r) => return Ok(refused(out, step, r)),
        }
    }

    if policy.mode == Mode::Observe {
        out.status = ActionStatus::Observed;
        return Ok(out);
    }
    if let Some(reason) = needs_approval {
        let approval = request_approval(agent, incident, &planned, &out, &reason, requester)?;
        out.status = ActionStatus::WaitingApproval { approval };
        return Ok(out);
    }
    execute_and_verify(agent, incident, alert, &planned, rb, out).await
}

async fn plan_proposed(agent: &Agent, proposed: &ProposedAction) -> Result<PlannedCall, PlanError> {
    let plugin = agent
        .registry
        .get(&proposed.plugin)
        .ok_or_else(|| PlanError::NoPlugin(proposed.plugin.clone()))?;
    planned::plan_call(
        plugin,
        &agent.registry.services,
        &proposed.tool,
        &proposed.arguments,
    )
    .await
}

/// Blast radius, cooldown, breaker, oscillation: the guardrails whose answer
/// can change between a request and its approval, so both run them.
pub fn time_dependent_checks(
    agent: &Agent,
    policy: &AutonomyPolicy,
    effects: &[Effect],
    now: i64,
) -> Result<[(&'static str, Verdict); 4], StoreError> {
    let checks = {
        let mut state = agent
            .guard
            .lock()
            .map_err(|_| StoreError::Db("guard state poisoned".into()))?;
        [
            ("blast-radius", guard::blast_radius(policy, effects)),
            ("cooldown", guard::cooldown(policy, &state, effects, now)),
            (
                "circuit-breaker",
                guard::circuit_breaker(policy, &mut state, now),
            ),
            (
                "oscillation",
                guard::oscillation(policy, &state, effects, now),
            ),
        ]
    };
    // A check may have tripped the breaker: persist before answering.
    agent.save_guard()?;
    Ok(checks)
}

/// Each target's tier: the operator's inventory, else the tier label the
/// host reads from the Deployment itself; the alert's label only tightens.
async fn tiers_of(
    agent: &Agent,
    policy: &AutonomyPolicy,
    effects: &[Effect],
    alert_tier: Option<&str>,
) -> Vec<ResolvedTier> {
    let mut targets: Vec<Target> = effects.iter().filter_map(Effect::target).collect();
    targets.sort();
    targets.dedup();
    let mut out = Vec::new();
    for target in targets {
        let label = match &target {
            Target::Object(o) if o.kind == "Deployment" && !policy.tier_label.is_empty() => agent
                .registry
                .services
                .cluster
                .get_deployment(&o.namespace, &o.name)
                .await
                .ok()
                .and_then(|d| {
                    d.labels
                        .into_iter()
                        .find(|p| p.key == policy.tier_label)
                        .map(|p| p.value)
                }),
            _ => None,
        };
        out.push(tier::resolve(
            &policy.inventory,
            &target,
            label.as_deref(),
            alert_tier,
        ));
    }
    out
}

fn request_approval(
    agent: &Agent,
    incident: &str,
    planned: &PlannedCall,
    out: &ActionOutcome,
    reason: &str,
    requester: &Requester,
) -> Result<String, StoreError> {
    let now = chrono::Utc::now();
    let approval = Approval {
        id: agent.store.next_approval_id()?,
        incident: incident.to_string(),
        plugin: planned.plugin.clone(),
        tool: planned.call.tool.clone(),
        arguments: planned.arguments.clone(),
        effects: planned.effects.clone(),
        digest: planned.digest(&agent.autonomy.version),
        tiers: serde_json::to_value(&out.tiers).unwrap_or_default(),
        provenance: serde_json::to_value(&out.provenance).unwrap_or_default(),
        reasons: out
            .verdicts
            .iter()
            .filter_map(|v| match &v.verdict {
                Verdict::NeedsApproval(r) => Some(format!("{}: {r}", v.step)),
                _ => None,
            })
            .collect(),
        policy_version: agent.autonomy.version.clone(),
        reason: reason.to_string(),
        requested_at: now,
        requested_by: requester.identity.clone(),
        expires_at: now
            + chrono::Duration::minutes(i64::from(agent.autonomy.guardrails.approval_ttl_minutes)),
        state: ApprovalState::Pending,
        decided_by: None,
        decided_at: None,
    };
    agent.store.insert_approval(&approval)?;
    agent.audit(
        incident,
        "approval-requested",
        serde_json::to_value(&approval).unwrap_or_default(),
    )?;
    Ok(approval.id)
}

/// Intent (durable) → execute, bound to the plan → result → verify.
pub async fn execute_and_verify(
    agent: &Agent,
    incident: &str,
    alert: &Alert,
    planned: &PlannedCall,
    rb: Option<&Runbook>,
    mut out: ActionOutcome,
) -> Result<ActionOutcome, StoreError> {
    let Some(plugin) = agent.registry.get(&planned.plugin) else {
        out.status = ActionStatus::Failed {
            reason: format!("no plugin `{}`", planned.plugin),
        };
        return Ok(out);
    };
    out.effects = planned.effects.clone();
    let mode = planned.call_mode();
    let read_only = matches!(mode, CallMode::ReadOnly);
    agent.audit(
        incident,
        "intent",
        serde_json::json!({
            "plugin": planned.plugin, "tool": planned.call.tool, "arguments": planned.arguments,
            "effects": planned.effects, "digest": planned.digest(&agent.autonomy.version),
            "read_only": read_only,
            "policy_version": agent.autonomy.version,
        }),
    )?;
    let executed = plugin
        .execute(&agent.registry.services, &planned.call, mode)
        .await;
    let unplanned = unplanned_calls(&executed.report.capability_calls);
    agent.audit(
        incident,
        "execution",
        serde_json::json!({
            "tool": planned.call.tool,
            "ok": executed.result.is_ok() && unplanned.is_empty(),
            "result": executed.result.as_ref().ok(),
            "error": executed.result.as_ref().err().map(ToString::to_string),
            "capability_calls": executed.report.capability_calls,
        }),
    )?;
    remember(agent, planned)?;
    if !unplanned.is_empty() {
        let reason = format!(
            "plugin fault: it tried what its plan did not say, and the host refused: {}",
            unplanned.join("; ")
        );
        agent.audit(
            incident,
            "plugin-fault",
            serde_json::json!({"plugin": planned.plugin, "tool": planned.call.tool, "reason": reason}),
        )?;
        out.status = ActionStatus::Failed { reason };
        return Ok(out);
    }
    let outcome = match executed.result {
        Ok(o) => o,
        Err(e) => {
            out.status = ActionStatus::Failed {
                reason: e.to_string(),
            };
            return Ok(out);
        }
    };
    out.result = Some(outcome.summary.clone());
    out.detail = Some(crate::redact::redact_json(
        &serde_json::from_str(&outcome.detail_json)
            .unwrap_or(serde_json::Value::String(outcome.detail_json.clone())),
    ));
    out.status = if read_only {
        ActionStatus::Read
    } else {
        verify(agent, incident, alert, rb).await?
    };
    Ok(out)
}

/// The refused mutations of a call that were outside its mode.
fn unplanned_calls(calls: &[CapabilityCall]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match &c.verdict {
            CallVerdict::Unplanned(reason) => {
                Some(format!("{} {}: {reason}", c.operation, c.target))
            }
            _ => None,
        })
        .collect()
}

/// The action joins the history cooldown, breaker and oscillation read.
fn remember(agent: &Agent, planned: &PlannedCall) -> Result<(), StoreError> {
    if let Ok(mut state) = agent.guard.lock() {
        state.history.push(TakenAction {
            plugin: planned.plugin.clone(),
            tool: planned.call.tool.clone(),
            effects: planned.effects.clone(),
            at_ms: now_ms(),
        });
        // Older actions no longer matter to any guardrail window.
        let horizon = now_ms() - 24 * 3_600_000;
        state.history.retain(|a| a.at_ms >= horizon);
    }
    agent.save_guard()
}

/// Re-gathers evidence until the runbook's recovery condition holds or the
/// timeout passes.
async fn verify(
    agent: &Agent,
    incident: &str,
    alert: &Alert,
    rb: Option<&Runbook>,
) -> Result<ActionStatus, StoreError> {
    let Some(rb) = rb.filter(|r| !r.recovery.is_empty()) else {
        agent.audit(incident, "verification", serde_json::json!({"recovered": false, "reason": "the runbook defines no recovery condition"}))?;
        return Ok(ActionStatus::NotRecovered);
    };
    let timeout = agent
        .config
        .verify_timeout
        .unwrap_or(Duration::from_secs(rb.verify_timeout_s));
    let started = Instant::now();
    let mut checks = 0u32;
    loop {
        checks += 1;
        let window = TimeWindow {
            start: now_ms() - 5 * 60_000,
            end: now_ms(),
        };
        let ctx = super::context::gather(
            &agent.registry,
            agent.store.as_ref(),
            &agent.runbooks,
            incident,
            alert,
            window,
            agent.config.source_deadline,
        )
        .await;
        let evidence: Vec<EvidenceItem> = ctx.evidence;
        if let Some(cited) = runbook::recovered(rb, &evidence, &ctx.facts) {
            agent.audit(
                incident,
                "verification",
                serde_json::json!({"recovered": true, "checks": checks, "evidence": cited}),
            )?;
            return Ok(ActionStatus::Recovered);
        }
        if started.elapsed() >= timeout {
            agent.audit(
                incident,
                "verification",
                serde_json::json!({
                    "recovered": false, "checks": checks,
                    "reason": format!("recovery not seen within {} s", timeout.as_secs()),
                    "latest": evidence.iter().map(|e| e.summary.clone()).collect::<Vec<_>>(),
                }),
            )?;
            return Ok(ActionStatus::NotRecovered);
        }
        tokio::time::sleep(agent.config.verify_interval).await;
    }
}

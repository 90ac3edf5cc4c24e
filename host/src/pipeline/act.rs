//! One proposed action through the guardrails, then plan → intent →
//! execute → verify. Every verdict and every step is audited before the next.

use super::autonomy::Mode;
use super::guard::{self, StepVerdict, TakenAction, Verdict};
use super::{Agent, now_ms};
use crate::analysis::runbook::{self, Runbook};
use crate::analysis::{Decision, EvidenceItem, ProposedAction};
use crate::bindings::types::{TimeWindow, ToolCall};
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
    pub result: Option<String>,
    pub status: ActionStatus,
}

impl ActionOutcome {
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

/// Runs the guardrails and, if they pass, the action itself.
pub async fn run(
    agent: &Agent,
    incident: &str,
    alert: &Alert,
    decision: &Decision,
    proposed: &ProposedAction,
    rb: Option<&Runbook>,
) -> Result<ActionOutcome, StoreError> {
    let out = guard_then_act(agent, incident, alert, decision, proposed, rb).await?;
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
) -> Result<ActionOutcome, StoreError> {
    let mut out = ActionOutcome {
        plugin: proposed.plugin.clone(),
        tool: proposed.tool.clone(),
        arguments: proposed.arguments.clone(),
        verdicts: vec![],
        plan: None,
        result: None,
        status: ActionStatus::Observed,
    };
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

    let Some(plugin) = agent.registry.get(&proposed.plugin) else {
        record(
            &mut out,
            "schema",
            Verdict::Refuse(format!("no plugin `{}` is loaded", proposed.plugin)),
        )?;
        return Ok(refused(
            out,
            "schema",
            format!("no plugin `{}`", proposed.plugin),
        ));
    };
    let specs = match plugin.describe_tools(&agent.registry.services).await.result {
        Ok(s) => s,
        Err(e) => {
            out.status = ActionStatus::Failed {
                reason: format!("describe: {e}"),
            };
            return Ok(out);
        }
    };
    let args_text = proposed.arguments.to_string();
    let (call, spec) = match crate::toolcall::validate(&specs, &proposed.tool, &args_text) {
        Ok(ok) => ok,
        Err(e) => {
            record(&mut out, "schema", Verdict::Refuse(e.to_string()))?;
            return Ok(refused(out, "schema", e.to_string()));
        }
    };
    record(&mut out, "schema", Verdict::Pass)?;

    let target = guard::target_of(&proposed.arguments);
    let now = now_ms();
    let policy = &*agent.autonomy_now();
    let mut needs_approval: Option<String> = None;
    let checks: [(&'static str, Verdict); 2] = [
        (
            "capability",
            guard::capability(plugin.policy.effective.k8s.as_ref(), &proposed.arguments),
        ),
        (
            "autonomy",
            guard::autonomy(policy, spec, decision.confidence, alert.label("tier")),
        ),
    ];
    for (step, verdict) in checks {
        match record(&mut out, step, verdict)? {
            Verdict::Pass => {}
            Verdict::NeedsApproval(r) => needs_approval = needs_approval.or(Some(r)),
            // Observe mode: nothing runs, but the plan is still recorded below.
            Verdict::Refuse(_) if step == "autonomy" && policy.mode == Mode::Observe => {}
            Verdict::Refuse(r) => return Ok(refused(out, step, r)),
        }
    }
    let later = {
        let mut state = agent
            .guard
            .lock()
            .map_err(|_| StoreError::Db("guard state poisoned".into()))?;
        [
            (
                "blast-radius",
                guard::blast_radius(policy, &proposed.arguments),
            ),
            (
                "cooldown",
                guard::cooldown(policy, &state, &proposed.tool, &target, now),
            ),
            (
                "circuit-breaker",
                guard::circuit_breaker(policy, &mut state, now),
            ),
            (
                "oscillation",
                guard::oscillation(
                    policy,
                    &state,
                    &proposed.tool,
                    &target,
                    &proposed.arguments,
                    now,
                ),
            ),
        ]
    };
    agent.save_guard()?;
    for (step, verdict) in later {
        match record(&mut out, step, verdict)? {
            Verdict::Pass => {}
            Verdict::NeedsApproval(r) => needs_approval = needs_approval.or(Some(r)),
            Verdict::Refuse(r) => return Ok(refused(out, step, r)),
        }
    }

    // Plan: what would change, computed read-only.
    match plugin.plan(&agent.registry.services, &call).await.result {
        Ok(plan) => {
            agent.audit(incident, "plan", serde_json::json!({"tool": call.tool, "summary": plan.summary, "changes": plan.changes}))?;
            out.plan = Some(plan.summary);
        }
        Err(e) => {
            agent.audit(
                incident,
                "plan",
                serde_json::json!({"tool": call.tool, "error": e.to_string()}),
            )?;
            out.status = ActionStatus::Failed {
                reason: format!("plan: {e}"),
            };
            return Ok(out);
        }
    }
    if policy.mode == Mode::Observe {
        out.status = ActionStatus::Observed;
        return Ok(out);
    }
    if let Some(reason) = needs_approval {
        let approval = request_approval(agent, incident, proposed, &reason)?;
        out.status = ActionStatus::WaitingApproval { approval };
        return Ok(out);
    }
    execute_and_verify(agent, incident, alert, &call, &target, rb, out).await
}

fn request_approval(
    agent: &Agent,
    incident: &str,
    proposed: &ProposedAction,
    reason: &str,
) -> Result<String, StoreError> {
    let n = agent.store.approvals()?.len() + 1;
    let now = chrono::Utc::now();
    let approval = Approval {
        id: format!("APR-{n}"),
        incident: incident.to_string(),
        plugin: proposed.plugin.clone(),
        tool: proposed.tool.clone(),
        arguments: proposed.arguments.clone(),
        policy_version: agent.autonomy.version.clone(),
        reason: reason.to_string(),
        requested_at: now,
        expires_at: now
            + chrono::Duration::minutes(i64::from(agent.autonomy.guardrails.approval_ttl_minutes)),
        state: ApprovalState::Pending,
        decided_by: None,
    };
    agent.store.put_approval(&approval)?;
    agent.audit(
        incident,
        "approval-requested",
        serde_json::to_value(&approval).unwrap_or_default(),
    )?;
    Ok(approval.id)
}

/// Intent (durable) → execute → result → verify.
pub async fn execute_and_verify(
    agent: &Agent,
    incident: &str,
    alert: &Alert,
    call: &ToolCall,
    target: &str,
    rb: Option<&Runbook>,
    mut out: ActionOutcome,
) -> Result<ActionOutcome, StoreError> {
    let Some(plugin) = agent.registry.get(&out.plugin) else {
        out.status = ActionStatus::Failed {
            reason: format!("no plugin `{}`", out.plugin),
        };
        return Ok(out);
    };
    agent.audit(incident, "intent", serde_json::json!({"plugin": out.plugin, "tool": call.tool, "arguments": out.arguments, "policy_version": agent.autonomy.version}))?;
    let executed = plugin.execute(&agent.registry.services, call).await;
    agent.audit(
        incident,
        "execution",
        serde_json::json!({
            "tool": call.tool,
            "ok": executed.result.is_ok(),
            "result": executed.result.as_ref().ok(),
            "error": executed.result.as_ref().err().map(ToString::to_string),
            "capability_calls": executed.report.capability_calls,
        }),
    )?;
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
    let mut remembered = out.arguments.clone();
    if let Some(before) = outcome
        .changes
        .first()
        .and_then(|c| c.before.as_deref())
        .and_then(|b| b.parse::<u64>().ok())
        && let Some(obj) = remembered.as_object_mut()
    {
        obj.insert("previous_replicas".into(), serde_json::json!(before));
    }
    if let Ok(mut state) = agent.guard.lock() {
        state.history.push(TakenAction {
            tool: call.tool.clone(),
            target: target.to_string(),
            arguments: remembered,
            at_ms: now_ms(),
        });
        // Older actions no longer matter to any guardrail window.
        let horizon = now_ms() - 24 * 3_600_000;
        state.history.retain(|a| a.at_ms >= horizon);
    }
    agent.save_guard()?;
    out.status = verify(agent, incident, alert, rb).await?;
    Ok(out)
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
        if let Some(cited) = runbook::recovered(rb, &alert.labels, &evidence) {
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

//! The guardrail pipeline every proposed action passes, in order:
//! schema → plan (read-only) → capability policy → autonomy policy → blast
//! radius → cooldown → circuit breaker → oscillation (→ execute bound to the
//! plan → verify, in the agent).
//!
//! Each step is a plain function of the plan's typed effects returning a
//! [`Verdict`] — never of a tool's or an argument's name, so a third-party
//! tool meets the same rules as a first-party one. The agent records every
//! verdict in the audit trail before it moves on. The first refusal decides.

use super::autonomy::{AutonomyPolicy, Mode, risk_rank};
use crate::analysis::Confidence;
use crate::bindings::types::{Risk, ToolSpec};
use crate::capability::Grants;
use crate::effects::{Effect, EffectKind, Target};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// Not executed; recorded with the reason.
    Refuse(String),
    /// Waits for a human.
    NeedsApproval(String),
    /// Passed only because an admin overrode this step; recorded as such.
    Overridden(String),
}

impl Verdict {
    /// The autonomy step skipped by an admin's explicit override: a pass
    /// that says so in the audit trail.
    pub fn overridden(self, by: &str) -> Verdict {
        match self {
            Verdict::Pass => Verdict::Overridden(format!(
                "autonomy skipped by an explicit admin override ({by}); capability, plan binding, blast radius, cooldown, breaker and audit still apply"
            )),
            other => other,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepVerdict {
    pub step: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// An action the agent has taken, for cooldowns, the breaker and the
/// oscillation guard: its effects as the host bound and saw them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TakenAction {
    #[serde(default)]
    pub plugin: String,
    pub tool: String,
    #[serde(default)]
    pub effects: Vec<Effect>,
    pub at_ms: i64,
}

/// What the agent remembers across incidents.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct GuardState {
    pub history: Vec<TakenAction>,
    /// Set when the breaker trips; only a human resets it.
    pub breaker_tripped: Option<String>,
    /// When a human last reset the breaker: actions before it no longer
    /// count toward tripping it again.
    #[serde(default)]
    pub breaker_reset_at_ms: Option<i64>,
    /// An admin's switch of the autonomy mode (survives restarts; `None`:
    /// the policy file's mode).
    #[serde(default)]
    pub mode_override: Option<super::autonomy::Mode>,
}

/// Capability pre-check: every planned effect against the plugin's
/// effective grant, through the capability's own check functions
/// ([`Grants::permits`]), so an action the host would refuse is not even
/// proposed for approval.
pub fn capability(grants: &Grants, effects: &[Effect]) -> Verdict {
    for e in effects {
        if let Err(denied) = grants.permits(e) {
            return Verdict::Refuse(format!("{}: {}", e.describe(), denied.0));
        }
    }
    Verdict::Pass
}

/// Whether the effects may run without a human. `tier` is the strictest
/// operator-assigned tier of the targets (`pipeline/tier.rs`).
pub fn autonomy(
    policy: &AutonomyPolicy,
    spec: &ToolSpec,
    confidence: Confidence,
    effects: &[Effect],
    tier: Option<&str>,
) -> Verdict {
    if spec.effect == crate::bindings::types::Effect::Read {
        // Enforced by the host: the tool executes read-only.
        return Verdict::Pass;
    }
    match policy.mode {
        Mode::Observe => {
            return Verdict::Refuse(
                "observe mode: the plan is recorded, nothing mutating runs".into(),
            );
        }
        Mode::Approve => {
            return Verdict::NeedsApproval(
                "approve mode: every mutating action waits for a human".into(),
            );
        }
        Mode::Auto => {}
    }
    if let Some(other) = effects.iter().find(|e| e.kind() == EffectKind::Other) {
        return Verdict::NeedsApproval(format!(
            "the plan has an effect the host can neither judge nor bind ({})",
            other.describe()
        ));
    }
    let mut kinds: Vec<EffectKind> = effects.iter().map(Effect::kind).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        if policy.always_require_approval.contains(&kind) {
            return Verdict::NeedsApproval(format!("`{kind}` effects always require approval"));
        }
        let Some(rule) = policy.rule_for(kind) else {
            return Verdict::NeedsApproval(format!("no auto_execute_if rule for `{kind}` effects"));
        };
        let a = &rule.auto_execute_if;
        if confidence < a.min_confidence {
            return Verdict::NeedsApproval(format!(
                "confidence {confidence:?} is below {:?} for `{kind}`",
                a.min_confidence
            ));
        }
        if risk_rank(spec.risk) > risk_rank(a.max_risk) {
            return Verdict::NeedsApproval(format!(
                "risk {:?} is above {:?} for `{kind}`",
                spec.risk, a.max_risk
            ));
        }
        let any = a.service_tiers.iter().any(|t| t == "any");
        match tier {
            _ if any => {}
            Some(t) if a.service_tiers.iter().any(|x| x == t) => {}
            Some(t) => {
                return Verdict::NeedsApproval(format!(
                    "service tier {t} is not in {:?} for unattended `{kind}`",
                    a.service_tiers
                ));
            }
            None => {
                return Verdict::NeedsApproval(
                    "the operator assigns no service tier to the target".into(),
                );
            }
        }
    }
    Verdict::Pass
}

/// Replica ceiling and floor, pods per action, objects per action — on the
/// effects, whichever tool has them.
pub fn blast_radius(policy: &AutonomyPolicy, effects: &[Effect]) -> Verdict {
    let g = &policy.guardrails;
    for e in effects {
        match e {
            Effect::Scale { target, to, .. } if u64::from(*to) > g.max_replicas => {
                return Verdict::Refuse(format!(
                    "{target} to {to} replicas exceeds the guardrail max_replicas {}",
                    g.max_replicas
                ));
            }
            Effect::Scale { target, to: 0, .. } if g.min_replicas > 0 => {
                return Verdict::Refuse(format!(
                    "scaling {target} to zero takes the service down (min_replicas {})",
                    g.min_replicas
                ));
            }
            Effect::Scale { target, to, .. } if *to < g.min_replicas => {
                return Verdict::Refuse(format!(
                    "{target} to {to} replicas is below the guardrail min_replicas {}",
                    g.min_replicas
                ));
            }
            Effect::RestartPods { target, pods } if pods.len() as u64 > g.max_restarts => {
                return Verdict::Refuse(format!(
                    "{} pods of {target} exceeds the guardrail max_restarts {}",
                    pods.len(),
                    g.max_restarts
                ));
            }
            _ => {}
        }
    }
    let mut targets: Vec<Target> = effects.iter().filter_map(Effect::target).collect();
    targets.sort();
    targets.dedup();
    if targets.len() > g.max_objects_per_action as usize {
        return Verdict::Refuse(format!(
            "the action changes {} objects; the guardrail max_objects_per_action is {}",
            targets.len(),
            g.max_objects_per_action
        ));
    }
    Verdict::Pass
}

/// The same kind of effect on the same target within the cooldown.
pub fn cooldown(
    policy: &AutonomyPolicy,
    state: &GuardState,
    effects: &[Effect],
    now_ms: i64,
) -> Verdict {
    let window = i64::from(policy.guardrails.cooldown_minutes) * 60_000;
    for e in effects {
        let Some(target) = e.target() else { continue };
        let recent = state.history.iter().rev().find(|a| {
            now_ms - a.at_ms < window
                && a.effects
                    .iter()
                    .any(|p| p.kind() == e.kind() && p.target().as_ref() == Some(&target))
        });
        if let Some(prev) = recent {
            return Verdict::Refuse(format!(
                "a `{}` effect on {target} ran {} s ago (`{}`); cooldown is {} min",
                e.kind(),
                (now_ms - prev.at_ms) / 1000,
                prev.tool,
                policy.guardrails.cooldown_minutes
            ));
        }
    }
    Verdict::Pass
}

/// Trips when the agent has already taken `max_actions` in the window; a
/// tripped breaker refuses every mutating action until a human resets it.
pub fn circuit_breaker(policy: &AutonomyPolicy, state: &mut GuardState, now_ms: i64) -> Verdict {
    if let Some(why) = &state.breaker_tripped {
        return Verdict::Refuse(format!(
            "circuit breaker is open ({why}); a human must reset it"
        ));
    }
    let window = i64::from(policy.guardrails.window_minutes) * 60_000;
    let since_reset = state.breaker_reset_at_ms.unwrap_or(i64::MIN);
    let recent = state
        .history
        .iter()
        .filter(|a| now_ms - a.at_ms < window && a.at_ms > since_reset)
        .count();
    if recent >= policy.guardrails.max_actions as usize {
        let why = format!(
            "{recent} actions in {} min",
            policy.guardrails.window_minutes
        );
        state.breaker_tripped = Some(why.clone());
        return Verdict::Refuse(format!("circuit breaker tripped: {why}"));
    }
    Verdict::Pass
}

/// The agent never reverses its own recent change on the same target
/// without a human — scaling back the other way, or rolling forward after a
/// rollback — whichever tools made the two changes.
pub fn oscillation(
    policy: &AutonomyPolicy,
    state: &GuardState,
    effects: &[Effect],
    now_ms: i64,
) -> Verdict {
    let window = i64::from(
        policy
            .guardrails
            .window_minutes
            .max(policy.guardrails.cooldown_minutes),
    ) * 60_000
        * 6;
    for e in effects {
        let Some(target) = e.target() else { continue };
        let previous = state
            .history
            .iter()
            .rev()
            .filter(|a| now_ms - a.at_ms < window)
            .find_map(|a| {
                a.effects
                    .iter()
                    .find(|p| p.target().as_ref() == Some(&target))
                    .map(|p| (a, p))
            });
        let Some((prev, prev_effect)) = previous else {
            continue;
        };
        if reverses(prev_effect, e) {
            return Verdict::NeedsApproval(format!(
                "reverses the agent's own recent change on {target} ({}, by `{}`)",
                prev_effect.describe(),
                prev.tool
            ));
        }
    }
    Verdict::Pass
}

fn reverses(prev: &Effect, now: &Effect) -> bool {
    match (prev, now) {
        (
            Effect::Scale {
                from: pf, to: pt, ..
            },
            Effect::Scale {
                from: nf, to: nt, ..
            },
        ) => (pt > pf && nt < nf) || (pt < pf && nt > nf),
        (Effect::Rollback { .. }, Effect::Rollback { .. }) => true,
        (Effect::DnsRecord { from: Some(pf), .. }, Effect::DnsRecord { to: nt, .. }) => pf == nt,
        _ => false,
    }
}

/// Risk of a tool, for display.
pub fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::Effect as Declared;
    use crate::effects::ObjectRef;

    fn policy(mode: &str) -> AutonomyPolicy {
        toml::from_str(&format!(
            r#"
mode = "{mode}"
version = "v1"
always_require_approval = ["resources"]
[guardrails]
max_actions = 2
window_minutes = 10
cooldown_minutes = 15
max_replicas = 20
max_restarts = 3
max_objects_per_action = 2
[[action]]
effect = "rollback"
auto_execute_if = {{ min_confidence = "high", max_risk = "medium", service_tiers = ["2", "3"] }}
"#
        ))
        .expect("policy parses")
    }

    fn spec(risk: Risk) -> ToolSpec {
        ToolSpec {
            name: "any_third_party_name".into(),
            description: String::new(),
            parameters_schema: "{}".into(),
            effect: Declared::Mutate,
            risk,
            reversible: true,
        }
    }

    fn dep(name: &str) -> ObjectRef {
        ObjectRef::deployment("payments", name)
    }

    fn rollback() -> Vec<Effect> {
        vec![Effect::Rollback {
            target: dep("api"),
            from_revision: 2,
            to_revision: 1,
        }]
    }

    fn scale(from: u32, to: u32) -> Vec<Effect> {
        vec![Effect::Scale {
            target: dep("api"),
            from,
            to,
        }]
    }

    fn taken(effects: Vec<Effect>, at_ms: i64) -> TakenAction {
        TakenAction {
            plugin: "third-party".into(),
            tool: "whatever".into(),
            effects,
            at_ms,
        }
    }

    #[test]
    fn modes() {
        let s = spec(Risk::Medium);
        let e = rollback();
        assert!(matches!(
            autonomy(&policy("observe"), &s, Confidence::High, &e, Some("2")),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            autonomy(&policy("approve"), &s, Confidence::High, &e, Some("2")),
            Verdict::NeedsApproval(_)
        ));
        assert_eq!(
            autonomy(&policy("auto"), &s, Confidence::High, &e, Some("2")),
            Verdict::Pass
        );
    }

    #[test]
    fn auto_judges_effects_confidence_risk_and_tier() {
        let p = policy("auto");
        let s = spec(Risk::Medium);
        let e = rollback();
        let needs =
            |v: Verdict, word: &str| matches!(v, Verdict::NeedsApproval(r) if r.contains(word));
        assert!(needs(
            autonomy(&p, &s, Confidence::Medium, &e, Some("2")),
            "confidence"
        ));
        assert!(needs(
            autonomy(&p, &spec(Risk::High), Confidence::High, &e, Some("2")),
            "risk"
        ));
        assert!(needs(
            autonomy(&p, &s, Confidence::High, &e, Some("1")),
            "tier 1"
        ));
        assert!(needs(
            autonomy(&p, &s, Confidence::High, &e, None),
            "no service tier"
        ));
        assert!(needs(
            autonomy(&p, &s, Confidence::High, &scale(3, 4), Some("2")),
            "no auto_execute_if rule for `scale`"
        ));
        let resources = vec![Effect::Resources {
            target: dep("api"),
            container: "app".into(),
            before: Default::default(),
            after: Default::default(),
        }];
        assert!(needs(
            autonomy(&p, &s, Confidence::High, &resources, Some("2")),
            "always"
        ));
        let other = vec![Effect::Other {
            description: "0.1.0 change".into(),
        }];
        assert!(needs(
            autonomy(&p, &s, Confidence::High, &other, Some("2")),
            "neither judge nor bind"
        ));
    }

    #[test]
    fn blast_radius_on_effects() {
        let p = policy("auto");
        assert!(matches!(blast_radius(&p, &scale(3, 0)), Verdict::Refuse(r) if r.contains("zero")));
        assert!(
            matches!(blast_radius(&p, &scale(3, 21)), Verdict::Refuse(r) if r.contains("max_replicas"))
        );
        assert_eq!(blast_radius(&p, &scale(3, 6)), Verdict::Pass);
        let pods = vec![Effect::RestartPods {
            target: dep("api"),
            pods: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        }];
        assert!(
            matches!(blast_radius(&p, &pods), Verdict::Refuse(r) if r.contains("max_restarts"))
        );
        let three: Vec<Effect> = ["a", "b", "c"]
            .iter()
            .map(|n| Effect::CertificateRenewal {
                certificate: ObjectRef {
                    kind: "Certificate".into(),
                    namespace: "payments".into(),
                    name: (*n).into(),
                },
            })
            .collect();
        assert!(
            matches!(blast_radius(&p, &three), Verdict::Refuse(r) if r.contains("max_objects_per_action"))
        );
        let mut zero_ok = policy("auto");
        zero_ok.guardrails.min_replicas = 0;
        assert_eq!(blast_radius(&zero_ok, &scale(3, 0)), Verdict::Pass);
    }

    #[test]
    fn cooldown_and_breaker_follow_targets_not_tools() {
        let p = policy("auto");
        let mut st = GuardState::default();
        st.history.push(taken(rollback(), 0));
        assert!(matches!(
            cooldown(&p, &st, &rollback(), 60_000),
            Verdict::Refuse(_)
        ));
        assert_eq!(cooldown(&p, &st, &rollback(), 16 * 60_000), Verdict::Pass);
        let other_target = vec![Effect::Rollback {
            target: dep("ledger"),
            from_revision: 2,
            to_revision: 1,
        }];
        assert_eq!(cooldown(&p, &st, &other_target, 60_000), Verdict::Pass);
        assert_eq!(circuit_breaker(&p, &mut st, 60_000), Verdict::Pass);
        st.history.push(taken(other_target, 30_000));
        assert!(
            matches!(circuit_breaker(&p, &mut st, 60_000), Verdict::Refuse(r) if r.contains("tripped"))
        );
        assert!(
            matches!(circuit_breaker(&p, &mut st, 99 * 60_000), Verdict::Refuse(r) if r.contains("human")),
            "stays open"
        );
        // A human resets it: what it counted no longer counts.
        st.breaker_tripped = None;
        st.breaker_reset_at_ms = Some(60_000);
        assert_eq!(circuit_breaker(&p, &mut st, 61_000), Verdict::Pass);
    }

    #[test]
    fn oscillation_whichever_tool_scaled() {
        let p = policy("auto");
        let mut st = GuardState::default();
        st.history.push(taken(scale(3, 6), 0));
        assert!(matches!(
            oscillation(&p, &st, &scale(6, 3), 60_000),
            Verdict::NeedsApproval(_)
        ));
        assert_eq!(oscillation(&p, &st, &scale(6, 8), 60_000), Verdict::Pass);
        st.history.push(taken(rollback(), 0));
        assert!(matches!(
            oscillation(&p, &st, &rollback(), 60_000),
            Verdict::NeedsApproval(_)
        ));
    }

    #[test]
    fn capability_precheck_uses_the_grant_checks() {
        let grants: Grants = toml::from_str(
            "[k8s]\nnamespaces = [\"payments\"]\noperations = [\"scale\"]\nmax_replicas = 10\n",
        )
        .expect("grant");
        assert_eq!(capability(&grants, &scale(3, 4)), Verdict::Pass);
        assert!(
            matches!(capability(&grants, &scale(3, 11)), Verdict::Refuse(r) if r.contains("max_replicas"))
        );
        let elsewhere = vec![Effect::Scale {
            target: ObjectRef::deployment("kube-system", "coredns"),
            from: 2,
            to: 3,
        }];
        assert!(matches!(
            capability(&grants, &elsewhere),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            capability(&grants, &rollback()),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            capability(&Grants::default(), &scale(3, 4)),
            Verdict::Refuse(_)
        ));
    }
}

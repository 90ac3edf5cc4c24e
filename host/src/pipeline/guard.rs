//! The guardrail pipeline every proposed action passes, in order:
//! schema → capability policy → autonomy policy → blast radius → cooldown →
//! circuit breaker (→ plan → execute → verify, in the agent).
//!
//! Each step is a plain function returning a [`Verdict`]; the agent records
//! every verdict in the audit trail before it moves on. The first step that
//! does not pass decides.

use super::autonomy::{AutonomyPolicy, Mode, risk_rank};
use crate::analysis::Confidence;
use crate::bindings::types::{Effect, Risk, ToolSpec};
use crate::capability::k8s::K8sGrant;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    /// Not executed; recorded with the reason.
    Refuse(String),
    /// Waits for a human.
    NeedsApproval(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct StepVerdict {
    pub step: &'static str,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// An action the agent has taken, for cooldowns, the breaker and the
/// oscillation guard.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TakenAction {
    pub tool: String,
    pub target: String,
    pub arguments: serde_json::Value,
    pub at_ms: i64,
}

/// What the agent remembers across incidents.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct GuardState {
    pub history: Vec<TakenAction>,
    /// Set when the breaker trips; only a human resets it.
    pub breaker_tripped: Option<String>,
    /// An admin's switch of the autonomy mode (survives restarts; `None`:
    /// the policy file's mode).
    #[serde(default)]
    pub mode_override: Option<super::autonomy::Mode>,
}

/// The target of an action: namespace/name when the arguments have them.
pub fn target_of(args: &serde_json::Value) -> String {
    match (args["namespace"].as_str(), args["name"].as_str()) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        (Some(ns), None) => ns.to_string(),
        _ => args.to_string(),
    }
}

/// Capability pre-check: the arguments' namespace and replicas against the
/// plugin's effective k8s grant, so an action the host would refuse is not
/// even proposed for approval. (The host checks again on the real call.)
pub fn capability(grant: Option<&K8sGrant>, args: &serde_json::Value) -> Verdict {
    let Some(ns) = args["namespace"].as_str() else {
        return Verdict::Pass;
    };
    let Some(grant) = grant else {
        return Verdict::Refuse("the plugin has no k8s grant".into());
    };
    if !grant.namespaces.iter().any(|n| n.as_str() == ns) {
        return Verdict::Refuse(format!("namespace `{ns}` is not granted to the plugin"));
    }
    if let Some(r) = args["replicas"].as_u64()
        && r > u64::from(grant.max_replicas)
    {
        return Verdict::Refuse(format!(
            "{r} replicas is above the plugin's max_replicas ({})",
            grant.max_replicas
        ));
    }
    Verdict::Pass
}

pub fn autonomy(
    policy: &AutonomyPolicy,
    spec: &ToolSpec,
    confidence: Confidence,
    tier: Option<&str>,
) -> Verdict {
    if spec.effect == Effect::Read {
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
    if policy.always_require_approval.contains(&spec.name) {
        return Verdict::NeedsApproval(format!("`{}` always requires approval", spec.name));
    }
    let Some(rule) = policy.rule_for(&spec.name) else {
        return Verdict::NeedsApproval(format!("no auto_execute_if rule for `{}`", spec.name));
    };
    let a = &rule.auto_execute_if;
    if confidence < a.min_confidence {
        return Verdict::NeedsApproval(format!(
            "confidence {confidence:?} is below {:?}",
            a.min_confidence
        ));
    }
    if risk_rank(spec.risk) > risk_rank(a.max_risk) {
        return Verdict::NeedsApproval(format!("risk {:?} is above {:?}", spec.risk, a.max_risk));
    }
    match tier {
        Some(t) if a.service_tiers.iter().any(|x| x == t) => Verdict::Pass,
        Some(t) => Verdict::NeedsApproval(format!(
            "service tier {t} is not in {:?} for unattended `{}`",
            a.service_tiers, spec.name
        )),
        None => Verdict::NeedsApproval("the alert names no service tier".into()),
    }
}

pub fn blast_radius(policy: &AutonomyPolicy, args: &serde_json::Value) -> Verdict {
    let g = &policy.guardrails;
    if let Some(r) = args["replicas"].as_u64()
        && r > g.max_replicas
    {
        return Verdict::Refuse(format!(
            "{r} replicas exceeds the guardrail max_replicas {}",
            g.max_replicas
        ));
    }
    if let Some(r) = args["replicas"].as_u64()
        && r == 0
    {
        return Verdict::Refuse("scaling to zero takes the service down".into());
    }
    for key in ["max_pods", "pods"] {
        let n = args[key]
            .as_u64()
            .or_else(|| args[key].as_array().map(|a| a.len() as u64));
        if let Some(n) = n
            && n > g.max_restarts
        {
            return Verdict::Refuse(format!(
                "{n} pods exceeds the guardrail max_restarts {}",
                g.max_restarts
            ));
        }
    }
    Verdict::Pass
}

pub fn cooldown(
    policy: &AutonomyPolicy,
    state: &GuardState,
    tool: &str,
    target: &str,
    now_ms: i64,
) -> Verdict {
    let window = i64::from(policy.guardrails.cooldown_minutes) * 60_000;
    match state
        .history
        .iter()
        .rev()
        .find(|a| a.tool == tool && a.target == target)
    {
        Some(prev) if now_ms - prev.at_ms < window => Verdict::Refuse(format!(
            "`{tool}` on {target} ran {} s ago; cooldown is {} min",
            (now_ms - prev.at_ms) / 1000,
            policy.guardrails.cooldown_minutes
        )),
        _ => Verdict::Pass,
    }
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
    let recent = state
        .history
        .iter()
        .filter(|a| now_ms - a.at_ms < window)
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

/// The agent never reverses its own recent action on the same target
/// without a human: scaling back the other way, or rolling forward after a
/// rollback.
pub fn oscillation(
    policy: &AutonomyPolicy,
    state: &GuardState,
    tool: &str,
    target: &str,
    args: &serde_json::Value,
    now_ms: i64,
) -> Verdict {
    let window = i64::from(
        policy
            .guardrails
            .window_minutes
            .max(policy.guardrails.cooldown_minutes),
    ) * 60_000
        * 6;
    let Some(prev) = state
        .history
        .iter()
        .rev()
        .find(|a| a.target == target && now_ms - a.at_ms < window)
    else {
        return Verdict::Pass;
    };
    let reverses = match (prev.tool.as_str(), tool) {
        ("scale_deployment", "scale_deployment") => {
            let before = prev.arguments["previous_replicas"].as_u64();
            let (Some(was), Some(now)) = (
                prev.arguments["replicas"].as_u64(),
                args["replicas"].as_u64(),
            ) else {
                return Verdict::Pass;
            };
            before.is_some_and(|b| (was > b && now < was) || (was < b && now > was))
        }
        ("rollback_deployment", "rollback_deployment") => true,
        _ => false,
    };
    if reverses {
        Verdict::NeedsApproval(format!(
            "reverses the agent's own recent `{}` on {target}",
            prev.tool
        ))
    } else {
        Verdict::Pass
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
    use serde_json::json;

    fn policy(mode: &str) -> AutonomyPolicy {
        toml::from_str(&format!(
            r#"
mode = "{mode}"
version = "v1"
always_require_approval = ["set_resource_limits"]
[guardrails]
max_actions = 2
window_minutes = 10
cooldown_minutes = 15
max_replicas = 20
max_restarts = 3
[[action]]
tool = "rollback_deployment"
auto_execute_if = {{ min_confidence = "high", max_risk = "medium", service_tiers = ["2", "3"] }}
"#
        ))
        .expect("policy parses")
    }

    fn spec(name: &str, risk: Risk) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters_schema: "{}".into(),
            effect: Effect::Mutate,
            risk,
            reversible: true,
        }
    }

    #[test]
    fn modes() {
        let s = spec("rollback_deployment", Risk::Medium);
        assert!(matches!(
            autonomy(&policy("observe"), &s, Confidence::High, Some("2")),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            autonomy(&policy("approve"), &s, Confidence::High, Some("2")),
            Verdict::NeedsApproval(_)
        ));
        assert_eq!(
            autonomy(&policy("auto"), &s, Confidence::High, Some("2")),
            Verdict::Pass
        );
    }

    #[test]
    fn auto_needs_confidence_risk_and_tier() {
        let p = policy("auto");
        let s = spec("rollback_deployment", Risk::Medium);
        assert!(
            matches!(autonomy(&p, &s, Confidence::Medium, Some("2")), Verdict::NeedsApproval(r) if r.contains("confidence"))
        );
        assert!(
            matches!(autonomy(&p, &spec("rollback_deployment", Risk::High), Confidence::High, Some("2")), Verdict::NeedsApproval(r) if r.contains("risk"))
        );
        assert!(
            matches!(autonomy(&p, &s, Confidence::High, Some("1")), Verdict::NeedsApproval(r) if r.contains("tier 1"))
        );
        assert!(matches!(
            autonomy(&p, &s, Confidence::High, None),
            Verdict::NeedsApproval(_)
        ));
        assert!(
            matches!(autonomy(&p, &spec("set_resource_limits", Risk::Low), Confidence::High, Some("2")), Verdict::NeedsApproval(r) if r.contains("always"))
        );
        assert!(
            matches!(autonomy(&p, &spec("scale_deployment", Risk::Low), Confidence::High, Some("2")), Verdict::NeedsApproval(r) if r.contains("no auto_execute_if"))
        );
    }

    #[test]
    fn blast_radius_limits() {
        let p = policy("auto");
        assert!(matches!(
            blast_radius(&p, &json!({"replicas": 0})),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            blast_radius(&p, &json!({"replicas": 21})),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            blast_radius(&p, &json!({"max_pods": 4})),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            blast_radius(&p, &json!({"replicas": 5, "max_pods": 3})),
            Verdict::Pass
        );
    }

    #[test]
    fn cooldown_and_breaker() {
        let p = policy("auto");
        let mut st = GuardState::default();
        let take = |st: &mut GuardState, at: i64| {
            st.history.push(TakenAction {
                tool: "rollback_deployment".into(),
                target: "payments/api".into(),
                arguments: json!({}),
                at_ms: at,
            })
        };
        take(&mut st, 0);
        assert!(matches!(
            cooldown(&p, &st, "rollback_deployment", "payments/api", 60_000),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            cooldown(&p, &st, "rollback_deployment", "payments/api", 16 * 60_000),
            Verdict::Pass
        );
        assert_eq!(
            cooldown(&p, &st, "rollback_deployment", "payments/other", 60_000),
            Verdict::Pass
        );
        assert_eq!(circuit_breaker(&p, &mut st, 60_000), Verdict::Pass);
        take(&mut st, 30_000);
        assert!(
            matches!(circuit_breaker(&p, &mut st, 60_000), Verdict::Refuse(r) if r.contains("tripped"))
        );
        assert!(
            matches!(circuit_breaker(&p, &mut st, 99 * 60_000), Verdict::Refuse(r) if r.contains("human")),
            "stays open"
        );
    }

    #[test]
    fn oscillation_needs_a_human() {
        let p = policy("auto");
        let mut st = GuardState::default();
        st.history.push(TakenAction {
            tool: "scale_deployment".into(),
            target: "ns/a".into(),
            arguments: json!({"replicas": 6, "previous_replicas": 3}),
            at_ms: 0,
        });
        assert!(matches!(
            oscillation(
                &p,
                &st,
                "scale_deployment",
                "ns/a",
                &json!({"replicas": 3}),
                60_000
            ),
            Verdict::NeedsApproval(_)
        ));
        assert_eq!(
            oscillation(
                &p,
                &st,
                "scale_deployment",
                "ns/a",
                &json!({"replicas": 8}),
                60_000
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn capability_precheck() {
        let g: K8sGrant = toml::from_str(
            "namespaces = [\"payments\"]\noperations = [\"scale\"]\nmax_replicas = 10\n",
        )
        .expect("grant");
        assert_eq!(
            capability(Some(&g), &json!({"namespace": "payments", "replicas": 4})),
            Verdict::Pass
        );
        assert!(matches!(
            capability(Some(&g), &json!({"namespace": "kube-system"})),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            capability(Some(&g), &json!({"namespace": "payments", "replicas": 11})),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            capability(None, &json!({"namespace": "payments"})),
            Verdict::Refuse(_)
        ));
    }
}

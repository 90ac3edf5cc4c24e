//! `history.toml`: what the agent did before the scenario's alert, so the
//! guardrails that depend on the past — cooldown, oscillation, the circuit
//! breaker — replay like the rest.
//!
//! ```toml
//! [[action]]
//! minutes_ago = 8
//! tool = "scale_deployment"
//! effects = [{ kind = "scale", target = { kind = "Deployment", namespace = "shop", name = "cart" }, from = 3, to = 6 }]
//!
//! [breaker]
//! tripped = "6 actions in 10 minutes"
//! ```

use super::{ReplayError, bad};
use crate::effects::Effect;
use crate::pipeline::Agent;
use crate::pipeline::guard::TakenAction;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct History {
    #[serde(default)]
    action: Vec<Earlier>,
    #[serde(default)]
    breaker: Option<Breaker>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Earlier {
    minutes_ago: i64,
    #[serde(default = "k8s_remediation")]
    plugin: String,
    tool: String,
    effects: Vec<Effect>,
}

fn k8s_remediation() -> String {
    "k8s-remediation".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Breaker {
    tripped: String,
}

/// Puts the scenario's history into the agent's guard state (and its
/// store), as if the agent had acted then.
pub(super) fn seed(dir: &Path, agent: &Agent) -> Result<(), ReplayError> {
    let path = dir.join("history.toml");
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e))?;
    let history: History = toml::from_str(&text).map_err(|e| bad(&path, e))?;
    let now = crate::pipeline::now_ms();
    let mut guard = agent
        .guard
        .lock()
        .map_err(|_| bad(&path, "guard state poisoned"))?;
    for a in history.action {
        guard.history.push(TakenAction {
            plugin: a.plugin,
            tool: a.tool,
            effects: a.effects,
            at_ms: now - a.minutes_ago * 60_000,
        });
    }
    if let Some(b) = history.breaker {
        guard.breaker_tripped = Some(b.tripped);
    }
    let state = serde_json::to_value(&*guard).map_err(|e| bad(&path, e))?;
    agent
        .store
        .put_guard_state(&state, None)
        .map_err(|e| bad(&path, e))?;
    Ok(())
}

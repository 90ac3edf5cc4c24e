//! Benchmark 8: the host's overhead per investigation step, model time
//! excluded — what the loop adds to the sandboxed read call itself
//! (schema validation, redaction, clipping, digest, the durable audit
//! record). Both arms run the same `k8s-read list_pods` on the simulated
//! cluster, interleaved.

use super::{ArmRunner, Row, interleave};
use crate::analysis::llm::ToolOffer;
use crate::bindings::types::ToolCall;
use crate::capability::CallMode;
use crate::pipeline::{Agent, AgentConfig, AgentPaths};
use crate::sandbox::cache::CompileCache;
use std::path::Path;

const ARGUMENTS: &str = r#"{"namespace":"payments"}"#;

struct Sandboxed<'a>(&'a Agent);

#[async_trait::async_trait]
impl ArmRunner for Sandboxed<'_> {
    async fn once(&mut self) -> Result<(), String> {
        let plugin = self
            .0
            .registry
            .get("k8s-read")
            .ok_or("k8s-read not loaded")?;
        let call = ToolCall {
            tool: "list_pods".into(),
            arguments_json: ARGUMENTS.into(),
        };
        plugin
            .execute(&self.0.registry.services, &call, CallMode::ReadOnly)
            .await
            .result
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

struct Step<'a> {
    agent: &'a Agent,
    reads: Vec<ToolOffer>,
    n: u32,
}

#[async_trait::async_trait]
impl ArmRunner for Step<'_> {
    async fn once(&mut self) -> Result<(), String> {
        self.n += 1;
        let text = self
            .agent
            .investigation_step(
                "INC-BENCH",
                &self.reads,
                "k8s-read__list_pods",
                ARGUMENTS,
                serde_json::json!({"step": self.n}),
            )
            .await
            .map_err(|e| e.to_string())?;
        if text.starts_with("refused") {
            return Err(text);
        }
        Ok(())
    }
}

pub async fn step_overhead(
    policies: &Path,
    runbooks: &Path,
    cache: &CompileCache,
    rounds: usize,
    per_round: usize,
) -> Result<Vec<Row>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (_, services) = super::sim_services();
    let (agent, _) = Agent::open(
        AgentPaths {
            policies,
            runbooks,
            store: crate::store::StoreLocation::sqlite(&dir.path().join("data")),
        },
        services,
        cache,
        AgentConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let plugin = agent
        .registry
        .get("k8s-read")
        .ok_or("k8s-read not loaded")?;
    let reads: Vec<ToolOffer> = plugin
        .describe_tools(&agent.registry.services)
        .await
        .result
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|spec| ToolOffer {
            plugin: "k8s-read".into(),
            spec,
        })
        .collect();
    let mut sandboxed = Sandboxed(&agent);
    let mut step = Step {
        agent: &agent,
        reads,
        n: 0,
    };
    let [a, b] = interleave(rounds, per_round, [&mut sandboxed, &mut step]).await?;
    let base = Row::new("8 investigation step", "sandboxed read call alone", &a);
    let full = Row::new(
        "8 investigation step",
        "step: validate, call, redact, audit",
        &b,
    )
    .against(&base);
    let overhead_us = full.median_us - base.median_us;
    let full = full.target("<= 2 ms host overhead per step", overhead_us <= 2_000.0);
    Ok(vec![base, full])
}

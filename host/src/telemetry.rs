//! The agent's own telemetry: Prometheus metrics and structured logs.
//!
//! Whoever runs runwarden watches it with the tools they already run, so the
//! metrics are plain Prometheus text on `/metrics` and the logs can be JSON
//! lines. Events are recorded where they happen (a plugin call in
//! [`crate::plugin`], an action's verdict in the pipeline) through the
//! `metrics` facade: nothing is threaded through call signatures, and with
//! no recorder installed (tests, `replay`, benchmarks) recording is a no-op.
//! State that already lives elsewhere — incidents by state, the circuit
//! breaker, intake counters — is read at scrape time, so it survives
//! restarts and is never counted twice.

use crate::pipeline::act::ActionStatus;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const PLUGIN_CALL_SECONDS: &str = "runwarden_plugin_call_duration_seconds";
pub const PLUGIN_FAULTS: &str = "runwarden_plugin_faults_total";
pub const ACTIONS: &str = "runwarden_actions_total";
pub const INVESTIGATIONS: &str = "runwarden_investigations_total";
pub const INVESTIGATION_STEPS: &str = "runwarden_investigation_steps_total";
pub const INVESTIGATION_TOKENS: &str = "runwarden_investigation_tokens_total";
pub const INVESTIGATION_COST: &str = "runwarden_investigation_cost_microdollars_total";
pub const INCIDENTS: &str = "runwarden_incidents";
pub const BREAKER_OPEN: &str = "runwarden_circuit_breaker_open";
pub const INTAKE: &str = "runwarden_intake_total";
pub const ALERTS_RECEIVED: &str = "runwarden_alerts_received_total";
pub const ALERTS_NOT_KEPT: &str = "runwarden_alerts_not_kept_total";
pub const ALERTS_OVERFLOWED: &str = "runwarden_alerts_overflowed_total";
pub const IS_LEADER: &str = "runwarden_leader";

/// Plugin calls take tens of microseconds to seconds (HTTP sources).
const CALL_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct TelemetryError(String);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its
/// handle; later calls return the same handle.
pub fn install() -> Result<PrometheusHandle, TelemetryError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(PLUGIN_CALL_SECONDS.into()), CALL_BUCKETS)
        .map_err(|e| TelemetryError(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    // Another thread may have won the race; then its handle is the one.
    if HANDLE.set(handle.clone()).is_ok() {
        metrics::set_global_recorder(recorder).map_err(|e| TelemetryError(e.to_string()))?;
        describe();
        return Ok(handle);
    }
    HANDLE
        .get()
        .cloned()
        .ok_or_else(|| TelemetryError("recorder lost".into()))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        PLUGIN_CALL_SECONDS,
        metrics::Unit::Seconds,
        "Plugin calls (fresh instance to result), by plugin, function and outcome."
    );
    describe_counter!(
        PLUGIN_FAULTS,
        "Calls the sandbox stopped, by plugin and reason."
    );
    describe_counter!(ACTIONS, "Proposed actions by final verdict.");
    describe_counter!(
        INVESTIGATIONS,
        "Model investigations, by how they ended (answered, budget)."
    );
    describe_counter!(
        INVESTIGATION_STEPS,
        "Read-tool calls models made while investigating."
    );
    describe_counter!(INVESTIGATION_TOKENS, "Tokens models spent investigating.");
    describe_counter!(
        INVESTIGATION_COST,
        "What investigations cost, in millionths of a USD (when the operator priced tokens)."
    );
    describe_gauge!(INCIDENTS, "Incidents in the store, by state.");
    describe_gauge!(
        BREAKER_OPEN,
        "1 while the circuit breaker refuses mutating actions."
    );
    describe_gauge!(
        INTAKE,
        "Webhook deliveries and alerts, by source and event."
    );
    describe_gauge!(ALERTS_RECEIVED, "Alerts filed into groups since start.");
    describe_gauge!(
        ALERTS_NOT_KEPT,
        "Alerts counted but not kept: their group was at max_alerts_per_group."
    );
    describe_gauge!(
        ALERTS_OVERFLOWED,
        "Alerts filed into the overflow group because max_groups was reached."
    );
    describe_gauge!(IS_LEADER, "1 on the replica that handles incidents.");
}

/// How a plugin call ended, as a label value.
pub fn call_outcome(result: &Result<(), &crate::sandbox::fault::CallError>) -> &'static str {
    use crate::bindings::types::Error;
    use crate::sandbox::fault::CallError;
    match result {
        Ok(()) => "ok",
        Err(CallError::Plugin(Error::Denied(_))) => "denied",
        Err(CallError::Plugin(Error::InvalidInput(_))) => "invalid-input",
        Err(CallError::Plugin(Error::Unavailable(_))) => "unavailable",
        Err(CallError::Plugin(Error::Failed(_))) => "failed",
        Err(CallError::Fault(_)) => "fault",
    }
}

/// Records one plugin call.
pub fn plugin_call(
    plugin: &str,
    function: &'static str,
    elapsed: Duration,
    result: Result<(), &crate::sandbox::fault::CallError>,
) {
    let outcome = call_outcome(&result);
    metrics::histogram!(PLUGIN_CALL_SECONDS, "plugin" => plugin.to_string(), "function" => function, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    if let Err(crate::sandbox::fault::CallError::Fault(fault)) = result {
        metrics::counter!(PLUGIN_FAULTS, "plugin" => plugin.to_string(), "reason" => fault.kind())
            .increment(1);
    }
}

/// Records the final verdict on one proposed action.
pub fn action(status: &ActionStatus) {
    metrics::counter!(ACTIONS, "verdict" => verdict_label(status)).increment(1);
}

pub fn verdict_label(status: &ActionStatus) -> &'static str {
    match status {
        ActionStatus::Refused { .. } => "refused",
        ActionStatus::Observed => "observed",
        ActionStatus::WaitingApproval { .. } => "waiting-approval",
        ActionStatus::Recovered => "recovered",
        ActionStatus::NotRecovered => "not-recovered",
        ActionStatus::Read => "read",
        ActionStatus::Failed { .. } => "failed",
    }
}

/// One model investigation: its tool calls, its tokens, what they cost
/// (when priced), and whether a budget ended it.
pub fn investigation(steps: u32, tokens: u64, cost_usd: Option<f64>, exhausted: bool) {
    metrics::counter!(INVESTIGATION_STEPS).increment(u64::from(steps));
    metrics::counter!(INVESTIGATION_TOKENS).increment(tokens);
    if let Some(cost) = cost_usd {
        // Micro-dollars: counters are integers.
        metrics::counter!(INVESTIGATION_COST).increment((cost * 1e6).round() as u64);
    }
    metrics::counter!(INVESTIGATIONS, "ended" => if exhausted { "budget" } else { "answered" })
        .increment(1);
}

/// Records a human's "no" to an action awaiting approval.
pub fn action_denied() {
    metrics::counter!(ACTIONS, "verdict" => "denied-by-human").increment(1);
}

fn labels(pairs: &[(&'static str, String)]) -> Vec<metrics::Label> {
    pairs
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect()
}

/// Sets a gauge read from state kept elsewhere.
pub fn gauge(name: &'static str, pairs: &[(&'static str, String)], value: f64) {
    metrics::gauge!(name, labels(pairs)).set(value);
}

/// Sets a counter kept elsewhere (intake, grouping) to its current total,
/// so `rate()` works on it as on any Prometheus counter.
pub fn counter_total(name: &'static str, pairs: &[(&'static str, String)], total: u64) {
    metrics::counter!(name, labels(pairs)).absolute(total);
}

/// Log output: readable lines for a terminal, JSON lines for a collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the tracing subscriber on stderr. `RUNWARDEN_LOG` filters
/// (`info`, `runwarden=debug`…).
/// Logs to stderr. `verbose`: one `info` line per incident step (the
/// servers); otherwise warnings only (one-shot commands print their own
/// results). `RUNWARDEN_LOG` overrides either.
pub fn init_logs(format: LogFormat, verbose: bool) {
    let default = if verbose {
        "warn,runwarden=info,wasmtime_wasi_http=error"
    } else {
        "warn,wasmtime_wasi_http=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNWARDEN_LOG")
        .unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_status_has_its_own_label() {
        let labels = [
            verdict_label(&ActionStatus::Refused {
                step: "s".into(),
                reason: "r".into(),
            }),
            verdict_label(&ActionStatus::Observed),
            verdict_label(&ActionStatus::WaitingApproval {
                approval: "a".into(),
            }),
            verdict_label(&ActionStatus::Recovered),
            verdict_label(&ActionStatus::NotRecovered),
            verdict_label(&ActionStatus::Failed { reason: "r".into() }),
        ];
        let unique: std::collections::BTreeSet<_> = labels.iter().collect();
        assert_eq!(unique.len(), labels.len());
    }

    #[test]
    fn recorded_calls_and_faults_render_as_prometheus_text() {
        let handle = install().expect("recorder");
        let fault = crate::sandbox::fault::CallError::Fault(
            crate::sandbox::fault::PluginFault::StackOverflow,
        );
        plugin_call(
            "unit-test-plugin",
            "execute",
            Duration::from_micros(80),
            Ok(()),
        );
        plugin_call(
            "unit-test-plugin",
            "execute",
            Duration::from_millis(3),
            Err(&fault),
        );
        let text = handle.render();
        assert!(
            text.contains(r#"runwarden_plugin_call_duration_seconds_count{plugin="unit-test-plugin",function="execute",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"runwarden_plugin_faults_total{plugin="unit-test-plugin",reason="stack-overflow"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE runwarden_plugin_call_duration_seconds histogram"),
            "{text}"
        );
    }
}

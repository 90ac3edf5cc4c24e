//! Benchmarks 5 and 6: the context fan-out's overhead beyond its slowest
//! source, and alert-to-decision time on the shipped scenarios.

use super::{Row, Samples};
use crate::registry::Registry;
use crate::sandbox::cache::CompileCache;
use std::path::Path;
use std::time::{Duration, Instant};

/// A Prometheus stand-in on loopback answering every query after `delay`.
async fn slow_prometheus(delay: Duration) -> Result<String, String> {
    let body = serde_json::json!({"status": "success", "data": {"resultType": "matrix",
        "result": [{"metric": {}, "values": [[1_795_760_000, "0.01"], [1_795_760_060, "0.02"]]}]}})
    .to_string();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            tokio::time::sleep(delay).await;
            body
        }
    });
    crate::server::spawn_on_loopback(app)
        .await
        .map_err(|e| e.to_string())
}

/// Benchmark 5: `sources` copies of the prometheus source, each answered
/// after `delay`, gathered concurrently; overhead = total − delay.
pub async fn fan_out(
    policies: &Path,
    cache: &CompileCache,
    sources: usize,
    delay: Duration,
    rounds: usize,
) -> Result<Vec<Row>, String> {
    let origin = slow_prometheus(delay).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let manifests = tempfile::tempdir().map_err(|e| e.to_string())?;
    let base = policies.canonicalize().map_err(|e| e.to_string())?;
    let template =
        std::fs::read_to_string(base.join("prometheus.toml")).map_err(|e| e.to_string())?;
    let mut doc: toml::Table = toml::from_str(&template).map_err(|e| e.to_string())?;
    if let Some(toml::Value::Table(plugin)) = doc.get_mut("plugin") {
        for key in ["component", "manifest"] {
            if let Some(toml::Value::String(p)) = plugin.get_mut(key) {
                *p = base.join(&*p).display().to_string();
            }
        }
    }
    doc.insert(
        "grants".into(),
        toml::Value::Table(
            toml::from_str(&format!("[http]\nallow = [{origin:?}]\n"))
                .map_err(|e| e.to_string())?,
        ),
    );
    doc.insert(
        "config".into(),
        toml::Value::Table(
            toml::from_str(&format!(
                "url = {origin:?}\nqueries = '[{{\"name\": \"q\", \"promql\": \"up\"}}]'\n"
            ))
            .map_err(|e| e.to_string())?,
        ),
    );
    for i in 0..sources {
        // The plugin name must match the manifest's, so each copy gets a
        // manifest of its own.
        // Outside the policy directory: every *.toml there is a policy.
        let manifest_path = manifests.path().join(format!("manifest-{i}.toml"));
        let manifest = std::fs::read_to_string(base.join("../plugins/prometheus/manifest.toml"))
            .map_err(|e| e.to_string())?
            .replace("name = \"prometheus\"", &format!("name = \"prom-{i}\""));
        std::fs::write(&manifest_path, manifest).map_err(|e| e.to_string())?;
        let mut copy = doc.clone();
        if let Some(toml::Value::Table(plugin)) = copy.get_mut("plugin") {
            plugin.insert("name".into(), toml::Value::String(format!("prom-{i}")));
            plugin.insert(
                "manifest".into(),
                toml::Value::String(manifest_path.display().to_string()),
            );
        }
        std::fs::write(
            dir.path().join(format!("prom-{i}.toml")),
            toml::to_string(&copy).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
    }
    let (_, services) = super::sim_services();
    let engine = crate::sandbox::new_engine().map_err(|e| e.to_string())?;
    let (registry, problems) =
        Registry::load(engine, cache, dir.path(), services).map_err(|e| e.to_string())?;
    if let Some(p) = problems.first() {
        return Err(p.to_string());
    }
    let store = crate::store::sqlite::SqliteStore::in_memory().map_err(|e| e.to_string())?;
    let alert = crate::intake::Alert {
        sender: crate::intake::Sender::Alertmanager,
        name: "HighErrorRate".into(),
        status: crate::intake::Status::Firing,
        fingerprint: "bench".into(),
        labels: [("service".to_string(), "payment-api".to_string())].into(),
        annotations: Default::default(),
        starts_at: chrono::Utc::now(),
        ends_at: None,
        generator_url: None,
    };
    let mut overhead = Samples::default();
    for _ in 0..rounds {
        let now = crate::pipeline::now_ms();
        let window = crate::bindings::types::TimeWindow {
            start: now - 600_000,
            end: now,
        };
        let t = Instant::now();
        let ctx = crate::pipeline::context::gather(
            &registry,
            &store,
            &Default::default(),
            "INC-BENCH",
            &alert,
            window,
            delay * 10,
        )
        .await;
        let took = t.elapsed();
        // (The built-in runbook source has nothing for this alert; only the
        // plugin sources count.)
        if let Some(gap) = ctx.gaps.iter().find(|g| g.source.starts_with("prom-")) {
            return Err(format!("{}: {}", gap.source, gap.reason));
        }
        overhead.0.push(took.saturating_sub(delay));
    }
    let row = Row::new(
        "5 context fan-out",
        &format!("{sources} sources x {} ms, overhead", delay.as_millis()),
        &overhead,
    );
    let met = row.median_us <= 5_000.0;
    Ok(vec![row.target("<= 5 ms beyond the slowest source", met)])
}

/// Benchmark 6: alert to decision (context + decision) and the whole
/// incident, per shipped scenario, runbook planner.
pub async fn alert_to_decision(
    scenarios: &Path,
    base: &crate::replay::ReplayBase<'_>,
) -> Result<Vec<Row>, String> {
    let mut dirs: Vec<_> = std::fs::read_dir(scenarios)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.toml").exists() && !p.join("model.json").exists())
        .collect();
    dirs.sort();
    let (mut decision, mut total) = (Samples::default(), Samples::default());
    for d in &dirs {
        let r = crate::replay::run(d, base)
            .await
            .map_err(|e| e.to_string())?;
        decision
            .0
            .push(Duration::from_millis((r.context_ms + r.decide_ms) as u64));
        total.0.push(Duration::from_millis(r.total_ms as u64));
    }
    let n = dirs.len();
    let d = Row::new(
        "6 alert to decision",
        &format!("context + decision, {n} scenarios"),
        &decision,
    );
    let met = d.median_us <= 50_000.0;
    let t = Row::new("6 alert to decision", "whole incident incl. verify", &total);
    Ok(vec![d.target("p50 <= 50 ms", met), t])
}

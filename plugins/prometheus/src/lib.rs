//! Context source: PromQL range queries against the configured Prometheus.
//!
//! Policy `[config]`:
//! - `url`: Prometheus base URL, e.g. `http://127.0.0.1:9090` (the policy must
//!   also grant this origin under `[grants.http]`);
//! - `queries`: JSON array of `{"name": ..., "promql": ...}`; `{{label}}`
//!   placeholders take the alert's label values, escaped for PromQL strings;
//! - `step_seconds` (optional, default 15).
//!
//! Each series becomes one metric-series evidence item whose summary reads
//! "name: baseline -> now (peak), changed at HH:MM:SS UTC". A query that
//! fails becomes a note saying so; the gather fails only if every query did.

use runwarden_sdk::serde_json::{Value, json};
use runwarden_sdk::{
    Alert, Error, Evidence, EvidenceKind, Result, SourceGuest, SourceInfo, TimeWindow, config,
    config_value, evidence, render_template,
};

struct Prometheus;

/// Series kept per query; points kept per series in the evidence body.
const MAX_SERIES: usize = 5;
const MAX_POINTS: usize = 120;

impl SourceGuest for Prometheus {
    fn describe() -> SourceInfo {
        SourceInfo {
            name: "prometheus".into(),
            description:
                "Metric series around the alert from Prometheus, with baseline and change point"
                    .into(),
            provides: vec![EvidenceKind::MetricSeries],
        }
    }

    fn gather(alert: Alert, window: TimeWindow) -> Result<Vec<Evidence>> {
        let base = config_value("url")?;
        let queries: Value = runwarden_sdk::serde_json::from_str(&config_value("queries")?)
            .map_err(|e| Error::InvalidInput(format!("config `queries` is not JSON: {e}")))?;
        let queries = queries
            .as_array()
            .ok_or_else(|| Error::InvalidInput("config `queries` must be a JSON array".into()))?;
        let step = config::get("step_seconds")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(15)
            .max(1);
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for q in queries {
            let (Some(name), Some(template)) = (q["name"].as_str(), q["promql"].as_str()) else {
                return Err(Error::InvalidInput(
                    "each query needs `name` and `promql` strings".into(),
                ));
            };
            let promql = render_template(
                template,
                |k| alert.label(k).map(str::to_string),
                escape_promql,
            );
            match query(&base, name, &promql, &alert, &window, step) {
                Ok(evidence) => out.extend(evidence),
                // A policy refusal is not a query problem: report it as such.
                Err(denied @ Error::Denied(_)) => return Err(denied),
                // One failing query must not hide what the others found.
                Err(e) => {
                    out.push(evidence(
                        EvidenceKind::Note,
                        format!("{name}: query failed: {}", e.reason()),
                        &json!({"query": promql}),
                        None,
                    ));
                    failed.push(e);
                }
            }
        }
        if failed.len() == queries.len()
            && let Some(first) = failed.into_iter().next()
        {
            return Err(first);
        }
        Ok(out)
    }
}

/// One range query: an evidence item per series (at most `MAX_SERIES`), or
/// a note when the query matches nothing.
fn query(
    base: &str,
    name: &str,
    promql: &str,
    alert: &Alert,
    window: &TimeWindow,
    step: u64,
) -> Result<Vec<Evidence>> {
    let series = runwarden_sdk::prometheus::query_range(
        base,
        promql,
        window.start / 1000,
        window.end / 1000,
        step,
    )
    .map_err(|e| match e {
        Error::Failed(why) => Error::Failed(format!("{name}: {why}")),
        other => other,
    })?;
    if series.is_empty() {
        return Ok(vec![evidence(
            EvidenceKind::Note,
            format!("{name}: no data for {promql}"),
            &json!({"query": promql}),
            None,
        )]);
    }
    let workload = runwarden_sdk::facts::workload_of(alert);
    Ok(series
        .iter()
        .take(MAX_SERIES)
        .map(|s| summarize(name, promql, s, alert.starts_at, workload.as_deref()))
        .collect())
}

/// Escapes a label value for use inside a double-quoted PromQL string.
fn escape_promql(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn summarize(
    name: &str,
    promql: &str,
    series: &Value,
    alert_start: i64,
    workload: Option<&str>,
) -> Evidence {
    let pts = runwarden_sdk::prometheus::points(series);
    let labels = series["metric"].clone();
    let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
        return evidence(
            EvidenceKind::Note,
            format!("{name}: series without numeric points"),
            &json!({"query": promql}),
            None,
        );
    };
    let before: Vec<f64> = pts
        .iter()
        .filter(|(t, _)| *t < alert_start)
        .map(|p| p.1)
        .collect();
    let baseline_source = if before.is_empty() {
        &pts[..pts.len().div_ceil(3)]
    } else {
        &[]
    };
    let baseline = if before.is_empty() {
        mean(&baseline_source.iter().map(|p| p.1).collect::<Vec<_>>())
    } else {
        mean(&before)
    };
    let peak = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max);
    let now = last.1;
    let threshold = if baseline.abs() < 1e-9 {
        peak / 2.0
    } else {
        baseline * 2.0
    };
    let changed = pts
        .iter()
        .find(|(_, v)| *v > threshold && *v > baseline)
        .map(|p| p.0);
    let changed_txt = changed
        .map(|t| format!(", rose at {} UTC", clock(t)))
        .unwrap_or_default();
    let summary = format!(
        "{name}: {} -> {} (peak {}){changed_txt}",
        fmt(baseline),
        fmt(now),
        fmt(peak)
    );
    let stride = pts.len().div_ceil(MAX_POINTS).max(1);
    let sampled: Vec<Value> = pts
        .iter()
        .step_by(stride)
        .map(|(t, v)| json!([t, v]))
        .collect();
    let body = json!({
        "query": promql, "labels": labels, "baseline": baseline, "now": now, "peak": peak,
        "changed_at": changed, "points": sampled,
    });
    let observed = runwarden_sdk::facts::series_facts(
        &runwarden_sdk::facts::Series {
            query: promql,
            name,
            job: labels["job"].as_str(),
            baseline,
            now,
            changed_at_ms: changed,
        },
        workload,
    );
    let mut e = evidence(
        EvidenceKind::MetricSeries,
        summary,
        &body,
        Some((first.0, last.0)),
    );
    e.facts = observed
        .into_iter()
        .map(runwarden_sdk::facts::to_wit)
        .collect();
    e
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// HH:MM:SS of a Unix-ms timestamp, UTC.
fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

runwarden_sdk::export_source!(Prometheus);

//! Prometheus' HTTP API, for plugins that read it (the `prometheus` context
//! source, the `prometheus-query` read tool): one place that builds the
//! range query and reads its answer.

use crate::Error;
use crate::http;
use serde_json::Value;

/// The series `promql` matches over `[start_s, end_s]` (Unix seconds), one
/// point per `step_s`; `base` is the server's URL (the policy's `url`).
pub fn query_range(
    base: &str,
    promql: &str,
    start_s: i64,
    end_s: i64,
    step_s: u64,
) -> Result<Vec<Value>, Error> {
    let url = format!(
        "{}/api/v1/query_range?query={}&start={start_s}&end={end_s}&step={step_s}",
        base.trim_end_matches('/'),
        http::encode_query_value(promql),
    );
    let body = http::get(&url, &[("accept", "application/json")])?
        .success()?
        .json()?;
    if body["status"] != "success" {
        return Err(Error::Failed(format!(
            "Prometheus answered {}",
            body["error"]
        )));
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// A series' finite points as (Unix ms, value); unparseable points are
/// skipped.
pub fn points(series: &Value) -> Vec<(i64, f64)> {
    series["values"]
        .as_array()
        .map(|vals| {
            vals.iter()
                .filter_map(|p| {
                    let t = p.get(0)?.as_f64()?;
                    let v = p.get(1)?.as_str()?.parse::<f64>().ok()?;
                    v.is_finite().then_some(((t * 1000.0) as i64, v))
                })
                .collect()
        })
        .unwrap_or_default()
}

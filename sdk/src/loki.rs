//! Loki's HTTP API, for plugins that read it (the `loki` context source,
//! the `loki-query` read tool): one place that builds the range query and
//! reads its answer.

use crate::Error;
use crate::http;
use serde_json::Value;

/// Log lines `logql` matches over `[start_ms, end_ms]`, newest first, at
/// most `limit`; `base` is the server's URL (the policy's `url`). Each line
/// is (Unix ms, the line).
pub fn query_range(
    base: &str,
    logql: &str,
    start_ms: i64,
    end_ms: i64,
    limit: u32,
) -> Result<Vec<(i64, String)>, Error> {
    let url = format!(
        "{}/loki/api/v1/query_range?query={}&start={}&end={}&limit={limit}&direction=backward",
        base.trim_end_matches('/'),
        http::encode_query_value(logql),
        start_ms.saturating_mul(1_000_000),
        end_ms.saturating_mul(1_000_000),
    );
    let body = http::get(&url, &[("accept", "application/json")])?
        .success()?
        .json()?;
    if body["status"] != "success" {
        return Err(Error::Failed(format!("Loki answered {}", body["error"])));
    }
    Ok(lines(&body))
}

/// (timestamp ms, line) from every stream of a `query_range` answer,
/// newest first.
pub fn lines(body: &Value) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|stream| stream["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| {
            let ns: i64 = v.get(0)?.as_str()?.parse().ok()?;
            Some((ns / 1_000_000, v.get(1)?.as_str()?.to_string()))
        })
        .collect();
    out.sort_by_key(|line| std::cmp::Reverse(line.0));
    out
}

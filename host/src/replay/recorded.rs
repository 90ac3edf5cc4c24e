//! Recorded HTTP answers for a source, served on loopback so the real
//! plugin runs unchanged against them.

use super::{ReplayError, bad};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    #[serde(rename = "match")]
    matches: String,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    bodies: Vec<serde_json::Value>,
    /// The HTTP status (default 200).
    #[serde(default)]
    status: Option<u16>,
    /// How long the answer takes.
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(skip)]
    served: std::sync::atomic::AtomicUsize,
}

impl Recorded {
    /// The next answer: `body`, or `bodies` in order with the last repeating.
    fn next(&self) -> Option<&serde_json::Value> {
        if let Some(body) = &self.body {
            return Some(body);
        }
        let n = self
            .served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bodies.get(n).or(self.bodies.last())
    }
}

/// Serves a source's recorded answers on loopback; returns its origin.
pub(super) async fn serve_recorded(dir: &Path) -> Result<String, ReplayError> {
    let mut answers: Vec<Recorded> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| bad(&f, e))?;
        let answer: Recorded = serde_json::from_str(&text)
            .map_err(|e| bad(&f, format!("not a recorded answer: {e}")))?;
        if answer.body.is_some() != answer.bodies.is_empty() {
            return Err(bad(&f, "a recorded answer has either `body` or `bodies`"));
        }
        answers.push(answer);
    }
    let answers = Arc::new(answers);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let answers = answers.clone();
        async move {
            let path = uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let decoded = percent_decode(&path);
            let Some(answer) = answers
                .iter()
                .find(|a| path.contains(&a.matches) || decoded.contains(&a.matches))
            else {
                return (
                    axum::http::StatusCode::NOT_FOUND,
                    format!("no recorded answer for {path}"),
                );
            };
            if let Some(ms) = answer.delay_ms {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let status = answer
                .status
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .unwrap_or(axum::http::StatusCode::OK);
            // A string body is served as it is (an error page, plain text).
            let body = match answer.next() {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(body) => body.to_string(),
                None => String::new(),
            };
            (status, body)
        }
    });
    crate::server::spawn_on_loopback(app)
        .await
        .map_err(|e| bad(dir, e))
}

/// The request as a person wrote the query: `%XX` escapes and `+` decoded,
/// so a recording matches on `rate(http_requests_total{code=~"5.."}` rather
/// than on one client's encoding of it.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(u8::try_from(b).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_decode_as_written() {
        assert_eq!(
            super::percent_decode("/api/v1/query_range?query=up%7Bjob%3D%22a%22%7D+%3E+0&x=%ZZ%2"),
            "/api/v1/query_range?query=up{job=\"a\"} > 0&x=%ZZ%2"
        );
    }
}

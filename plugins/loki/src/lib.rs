//! Context source: log lines from Loki's `query_range` API, summarized.
//!
//! Policy `[config]`:
//! - `url`: Loki base URL (grant the origin under `[grants.http]`);
//! - `query`: LogQL stream selector template, e.g.
//!   `{namespace="{{namespace}}", app="{{service}}"}`;
//! - `limit` (optional, default 1000 lines).
//!
//! Lines are grouped into patterns (numbers and hex ids masked); error-like
//! patterns (error, exception, fatal, panic, OOM, timeout, refused) rank
//! first. The summary names the top pattern and its count.

use runwarden_sdk::serde_json::{Value, json};
use runwarden_sdk::{
    Alert, Evidence, EvidenceKind, Result, SourceGuest, SourceInfo, TimeWindow, config,
    config_value, evidence, render_template,
};
use std::collections::BTreeMap;

struct Loki;

/// Words that mark a line as an error, whatever the logging library calls
/// its levels: what failed ("failed", "cannot", "unable"), what is missing
/// ("undefined", "not set", "no such"), what was refused ("denied").
const ERROR_WORDS: [&str; 18] = [
    "error",
    "exception",
    "fatal",
    "panic",
    "outofmemory",
    "oom",
    "timeout",
    "timed out",
    "refused",
    "killed",
    "failed",
    "failure",
    "cannot",
    "unable to",
    "undefined",
    "not set",
    "no such",
    "denied",
];
const MAX_LINE: usize = 400;
const TOP: usize = 5;

impl SourceGuest for Loki {
    fn describe() -> SourceInfo {
        SourceInfo {
            name: "loki".into(),
            description:
                "Log lines around the alert from Loki, grouped into patterns with errors first"
                    .into(),
            provides: vec![EvidenceKind::LogLines],
        }
    }

    fn gather(alert: Alert, window: TimeWindow) -> Result<Vec<Evidence>> {
        let base = config_value("url")?;
        let template = config_value("query")?;
        let limit = config::get("limit")
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1000);
        let query = render_template(
            &template,
            |k| alert.label(k).map(str::to_string),
            escape_logql,
        );
        let lines =
            runwarden_sdk::loki::query_range(&base, &query, window.start, window.end, limit)?;
        let workload = runwarden_sdk::facts::workload_of(&alert);
        Ok(vec![summarize(&query, &lines, workload.as_deref())])
    }
}

fn escape_logql(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

fn is_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ERROR_WORDS.iter().any(|w| lower.contains(w))
}

/// Masks the variable parts of a line so repeats group together.
fn pattern(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(MAX_LINE));
    let mut in_token = false;
    for word in line.split_whitespace().take(40) {
        if !out.is_empty() {
            out.push(' ');
        }
        let variable = word.chars().any(|c| c.is_ascii_digit())
            || (word.len() >= 12 && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        if variable {
            if !in_token {
                out.push('#');
            }
            in_token = true;
        } else {
            out.push_str(word);
            in_token = false;
        }
    }
    clip(&out)
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_LINE {
        return s.to_string();
    }
    let mut end = MAX_LINE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn summarize(query: &str, lines: &[(i64, String)], workload: Option<&str>) -> Evidence {
    let mut groups: BTreeMap<String, (usize, bool, String, i64)> = BTreeMap::new();
    for (t, line) in lines {
        let e = groups
            .entry(pattern(line))
            .or_insert((0, is_error(line), clip(line), *t));
        e.0 += 1;
    }
    let mut ranked: Vec<(String, (usize, bool, String, i64))> = groups.into_iter().collect();
    ranked.sort_by_key(|(_, (count, error, _, _))| std::cmp::Reverse((*error, *count)));
    let errors = lines.iter().filter(|(_, l)| is_error(l)).count();
    let summary = match ranked.first() {
        None => format!("no log lines for {query}"),
        Some((_, (count, _, example, _))) => format!(
            "{} log lines, {errors} error-like; top: \"{}\" x{count}",
            lines.len(),
            example.chars().take(120).collect::<String>()
        ),
    };
    let top: Vec<Value> = ranked
        .iter()
        .take(TOP)
        .map(|(p, (count, err, example, last))| json!({"pattern": p, "count": count, "error": err, "example": example, "last_seen": last}))
        .collect();
    let window = match (lines.last(), lines.first()) {
        (Some(oldest), Some(newest)) => Some((oldest.0, newest.0)),
        _ => None,
    };
    // What each error-like pattern says, in the shared vocabulary.
    let facts = ranked
        .iter()
        .take(TOP)
        .filter(|(_, (_, err, _, _))| *err)
        .map(|(_, (count, _, example, _))| {
            runwarden_sdk::facts::to_wit(runwarden_sdk::facts::log_fact(
                example,
                u64::try_from(*count).unwrap_or(u64::MAX),
                workload,
            ))
        })
        .collect();
    let mut e = evidence(
        EvidenceKind::LogLines,
        summary,
        &json!({"query": query, "lines": lines.len(), "error_lines": errors, "top_patterns": top}),
        window,
    );
    e.facts = facts;
    e
}

runwarden_sdk::export_source!(Loki);

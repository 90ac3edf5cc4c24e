//! Intake: alerts from the systems that page people, normalised.
//!
//! Each sender has its own module that turns its webhook body into
//! [`Alert`]s. Parsers are plain functions on bytes: they never panic, ignore
//! fields they do not know (senders add fields over time), and name what was
//! wrong — and where — when a body cannot be used.

pub mod alertmanager;
pub mod opsgenie;
pub mod pagerduty;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// Who sent an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sender {
    Alertmanager,
    Grafana,
    Pagerduty,
    Opsgenie,
    /// Not an alert: an MCP client asked for a tool call (`runwarden mcp`).
    Mcp,
    /// Not an alert: an operator asked for a tool call (`runwarden plugin call`).
    Operator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Firing,
    Resolved,
}

/// One alert, whatever sent it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Alert {
    pub sender: Sender,
    pub name: String,
    pub status: Status,
    /// Stable identity: the same alert firing again has the same fingerprint.
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Option<String>,
}

impl Alert {
    /// The alert with every secret-looking value hidden (`redact`): each
    /// parser returns alerts through this, so no label, annotation or
    /// title reaches the store, the index, the API or a prompt raw.
    pub fn redacted(self) -> Alert {
        use crate::redact::{redact, redact_pairs};
        Alert {
            name: redact(&self.name),
            fingerprint: redact(&self.fingerprint),
            labels: redact_pairs(&self.labels),
            annotations: redact_pairs(&self.annotations),
            generator_url: self.generator_url.as_deref().map(redact),
            ..self
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The alert as plugins see it (`wit/types.wit`).
    pub fn to_wit(&self) -> crate::bindings::types::Alert {
        use crate::bindings::types::{Alert as W, AlertStatus, Pair};
        let pairs = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| Pair {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect()
        };
        W {
            name: self.name.clone(),
            status: match self.status {
                Status::Firing => AlertStatus::Firing,
                Status::Resolved => AlertStatus::Resolved,
            },
            fingerprint: self.fingerprint.clone(),
            labels: pairs(&self.labels),
            annotations: pairs(&self.annotations),
            starts_at: self.starts_at.timestamp_millis(),
        }
    }
}

/// Why a webhook body was refused. Maps to a 4xx with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error(
        "{sender:?} body is not valid JSON of the expected shape at line {line}, column {column}: {message}"
    )]
    Json {
        sender: Sender,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{sender:?} body: `{field}`: {reason}")]
    Invalid {
        sender: Sender,
        field: String,
        reason: String,
    },
    #[error("signature check failed: {0}")]
    Signature(String),
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

pub(crate) fn json_error(sender: Sender, e: &serde_json::Error) -> IntakeError {
    IntakeError::Json {
        sender,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// A fingerprint for senders that do not provide one: sha256 of the sorted
/// labels, like Alertmanager's own.
pub fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xfe]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Parses an RFC 3339 timestamp; Alertmanager's "zero" time means "none".
pub(crate) fn parse_time(
    sender: Sender,
    field: &str,
    s: &str,
) -> Result<Option<DateTime<Utc>>, IntakeError> {
    if s.is_empty() || s.starts_with("0001-01-01") {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| IntakeError::Invalid {
            sender,
            field: field.to_string(),
            reason: format!("{s:?} is not an RFC 3339 time: {e}"),
        })
}

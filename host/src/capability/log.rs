//! The `log` capability: structured lines from a plugin into the audit trail.
//!
//! Bounded per call by the policy's `limits.max_log_lines`; lines past the
//! quota are counted, not stored, so a chatty or hostile plugin cannot grow
//! the host's memory. Messages and fields are truncated to fixed sizes.

use crate::bindings::log::{Host, Level};
use crate::bindings::types::Pair;
use crate::text::clip;
use serde::Deserialize;

/// `[grants.log]`: nothing to configure beyond presence.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogGrant {}

/// `[requests.log]` in a manifest.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogRequest {}

const MAX_MESSAGE: usize = 2_048;
const MAX_FIELDS: usize = 32;
const MAX_FIELD: usize = 512;

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// Per-call log state.
#[derive(Debug, Default)]
pub struct LogCapability {
    max_lines: usize,
    pub lines: Vec<LogLine>,
    pub dropped: u64,
}

impl LogCapability {
    pub fn new(max_lines: usize) -> Self {
        LogCapability {
            max_lines,
            lines: Vec::new(),
            dropped: 0,
        }
    }
}

impl Host for LogCapability {
    async fn emit(&mut self, level: Level, message: String, fields: Vec<Pair>) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.lines.push(LogLine {
            level,
            message: clip(&message, MAX_MESSAGE),
            fields: fields
                .iter()
                .take(MAX_FIELDS)
                .map(|p| (clip(&p.key, MAX_FIELD), clip(&p.value, MAX_FIELD)))
                .collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_past_the_quota_are_counted_not_kept() {
        let mut log = LogCapability::new(2);
        for i in 0..5 {
            log.emit(Level::Info, format!("line {i}"), vec![]).await;
        }
        assert_eq!(log.lines.len(), 2);
        assert_eq!(log.dropped, 3);
    }

    #[tokio::test]
    async fn long_messages_are_clipped_on_char_boundaries() {
        let mut log = LogCapability::new(10);
        log.emit(Level::Warn, "é".repeat(5_000), vec![]).await;
        assert!(log.lines[0].message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}

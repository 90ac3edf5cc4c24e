//! Write runwarden plugins in Rust.
//!
//! A plugin is a WebAssembly component built with
//! `cargo build --target wasm32-wasip2`. This crate gives it the WIT bindings,
//! small helpers for JSON arguments and HTTP, and two export macros:
//!
//! - a **context source** implements [`SourceGuest`] and calls
//!   [`export_source!`](crate::export_source);
//! - a **remediation tool** plugin implements [`ToolGuest`] and calls
//!   [`export_tool!`](crate::export_tool).
//!
//! The host enforces policy; nothing in this crate is a security boundary.
//! See `sdk/README.md` for a walk-through.

pub mod bindings;
pub mod effects;
pub mod facts;
pub mod http;
pub mod loki;
pub mod params;
pub mod prometheus;
pub mod time;

pub use bindings::source::export_source;
pub use bindings::source::exports::runwarden::plugin::source::Guest as SourceGuest;
pub use bindings::source::runwarden::plugin::types::{
    ActionPlan, Alert, AlertStatus, AnnotateChange, Change, ChangeEffect, DnsRecordChange, Effect,
    Error, Evidence, EvidenceKind, HttpRequestChange, ObjectRef, Outcome, Pair, ResourceSettings,
    ResourcesChange, RestartPodsChange, Risk, RollbackChange, ScaleChange, SourceInfo, TimeWindow,
    ToolCall, ToolSpec,
};
pub use bindings::source::runwarden::plugin::{config, k8s, log, secrets};
pub use bindings::tool::export_tool;
pub use bindings::tool::exports::runwarden::plugin::tool::Guest as ToolGuest;
pub use params::Params;

/// Re-exported so plugins need no direct dependency on `serde_json`.
pub use serde_json;

/// Result type of every plugin entry point and capability call.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Alert {
    /// The value of a label, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        find_pair(&self.labels, key)
    }

    /// The value of an annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        find_pair(&self.annotations, key)
    }
}

fn find_pair<'a>(pairs: &'a [Pair], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

impl Pair {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Pair {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl Error {
    /// The error's kind as a word, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::InvalidInput(_) => "invalid-input",
            Error::Unavailable(_) => "unavailable",
            Error::Failed(_) => "failed",
        }
    }

    /// "kind: reason", for messages and logs.
    pub fn message(&self) -> String {
        format!("{}: {}", self.kind(), self.reason())
    }

    /// The reason carried by the error.
    pub fn reason(&self) -> &str {
        match self {
            Error::Denied(r)
            | Error::InvalidInput(r)
            | Error::Unavailable(r)
            | Error::Failed(r) => r,
        }
    }
}

/// Writes one structured line into the incident's audit trail.
pub fn log_info(message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<Pair> = fields.iter().map(|(k, v)| Pair::new(*k, *v)).collect();
    log::emit(log::Level::Info, message, &fields);
}

/// A required setting from the policy's `[config]` table.
pub fn config_value(key: &str) -> Result<String> {
    config::get(key).ok_or_else(|| {
        Error::Unavailable(format!(
            "setting `{key}` is missing from this plugin's policy [config]"
        ))
    })
}

/// Replaces `{{name}}` placeholders with `value(name)`; unknown names become
/// empty strings. `escape` is applied to every substituted value.
pub fn render_template(
    template: &str,
    value: impl Fn(&str) -> Option<String>,
    escape: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                out.push_str(&escape(&value(name).unwrap_or_default()));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Builds a [`ToolSpec`] from a JSON Schema value.
pub fn tool_spec(
    name: &str,
    description: &str,
    parameters_schema: serde_json::Value,
    effect: Effect,
    risk: Risk,
    reversible: bool,
) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        parameters_schema: parameters_schema.to_string(),
        effect,
        risk,
        reversible,
    }
}

/// Builds an [`Evidence`] item whose body is a JSON value.
pub fn evidence(
    kind: EvidenceKind,
    summary: impl Into<String>,
    body: &serde_json::Value,
    window: Option<(i64, i64)>,
) -> Evidence {
    Evidence {
        kind,
        summary: summary.into(),
        body_json: body.to_string(),
        observed_from: window.map(|w| w.0),
        observed_to: window.map(|w| w.1),
        facts: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::render_template;

    #[test]
    fn templates_substitute_and_escape() {
        let value = |k: &str| (k == "service").then(|| r#"pay"ment"#.to_string());
        let escape = |s: &str| s.replace('"', r#"\""#);
        assert_eq!(
            render_template(
                r#"x{app="{{ service }}",ns="{{namespace}}"}"#,
                value,
                escape
            ),
            r#"x{app="pay\"ment",ns=""}"#
        );
        assert_eq!(
            render_template("a {{ b", |_| None, |s| s.to_string()),
            "a {{ b"
        );
    }
}

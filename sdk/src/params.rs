//! Typed access to a tool call's JSON arguments.
//!
//! The host has already validated the arguments against the tool's JSON
//! Schema, but a plugin must not trust that blindly (a plugin may be run by
//! another host, or its schema may be looser than its code): every accessor
//! returns `Error::InvalidInput` naming the argument instead of panicking.

use crate::Error;
use serde_json::{Map, Value};

/// A tool call's arguments object.
#[derive(Debug, Clone)]
pub struct Params {
    tool: String,
    args: Map<String, Value>,
}

impl Params {
    /// Parses `arguments-json`, which must be a JSON object.
    pub fn parse(tool: &str, arguments_json: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(arguments_json).map_err(|e| {
            Error::InvalidInput(format!("{tool}: arguments are not valid JSON: {e}"))
        })?;
        match value {
            Value::Object(args) => Ok(Params {
                tool: tool.to_string(),
                args,
            }),
            other => Err(Error::InvalidInput(format!(
                "{tool}: arguments must be a JSON object, got {}",
                type_name(&other)
            ))),
        }
    }

    /// Parses the call's arguments.
    pub fn of(call: &crate::ToolCall) -> Result<Self, Error> {
        Self::parse(&call.tool, &call.arguments_json)
    }

    pub fn tool(&self) -> &str {
        &self.tool
    }

    fn missing(&self, name: &str, wanted: &str) -> Error {
        Error::InvalidInput(format!(
            "{}: argument `{name}` is required and must be {wanted}",
            self.tool
        ))
    }

    fn wrong(&self, name: &str, wanted: &str, got: &Value) -> Error {
        Error::InvalidInput(format!(
            "{}: argument `{name}` must be {wanted}, got {}",
            self.tool,
            type_name(got)
        ))
    }

    /// A required string argument.
    pub fn str(&self, name: &str) -> Result<&str, Error> {
        self.opt_str(name)?
            .ok_or_else(|| self.missing(name, "a string"))
    }

    /// An optional string argument (absent or null is `None`).
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Error> {
        match self.args.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(name, "a string", other)),
        }
    }

    /// A required non-negative integer argument.
    pub fn u64(&self, name: &str) -> Result<u64, Error> {
        self.opt_u64(name)?
            .ok_or_else(|| self.missing(name, "a non-negative integer"))
    }

    /// An optional non-negative integer argument.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, Error> {
        match self.args.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a non-negative integer", v)),
        }
    }

    /// A required integer argument that must fit in a `u32`.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.args.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "true or false", v)),
        }
    }

    pub fn u32(&self, name: &str) -> Result<u32, Error> {
        let v = self.u64(name)?;
        u32::try_from(v).map_err(|_| {
            Error::InvalidInput(format!(
                "{}: argument `{name}` is {v}, above {}",
                self.tool,
                u32::MAX
            ))
        })
    }

    /// A required list of strings.
    pub fn str_list(&self, name: &str) -> Result<Vec<String>, Error> {
        match self.args.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong(name, "a list of strings", other)),
                })
                .collect(),
            None | Some(Value::Null) => Err(self.missing(name, "a list of strings")),
            Some(other) => Err(self.wrong(name, "a list of strings", other)),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_arguments() -> Result<(), Error> {
        let p = Params::parse(
            "scale",
            r#"{"namespace":"payments","replicas":4,"pods":["a","b"]}"#,
        )?;
        assert_eq!(p.str("namespace")?, "payments");
        assert_eq!(p.u32("replicas")?, 4);
        assert_eq!(p.str_list("pods")?, vec!["a", "b"]);
        assert_eq!(p.opt_str("missing")?, None);
        Ok(())
    }

    #[test]
    fn names_the_bad_argument() {
        let p = Params::parse("scale", r#"{"replicas":-1,"name":7}"#);
        let Ok(p) = p else {
            unreachable!("object parses")
        };
        let err = p.u32("replicas").err().map(|e| e.message());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid-input: scale: argument `replicas` must be a non-negative integer, got a number"
            )
        );
        let err = p.str("name").err().map(|e| e.message());
        assert!(err.is_some_and(|e| e.contains("`name` must be a string")));
        let err = p.str("absent").err().map(|e| e.message());
        assert!(err.is_some_and(|e| e.contains("`absent` is required")));
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert!(matches!(
            Params::parse("t", "[1]"),
            Err(Error::InvalidInput(m)) if m.contains("must be a JSON object, got an array")
        ));
        assert!(matches!(
            Params::parse("t", "{"),
            Err(Error::InvalidInput(m)) if m.contains("not valid JSON")
        ));
    }

    #[test]
    fn rejects_replicas_beyond_u32() {
        let p = Params::parse("t", r#"{"n": 5000000000}"#);
        assert!(matches!(
            p.map(|p| p.u32("n")),
            Ok(Err(Error::InvalidInput(_)))
        ));
    }
}

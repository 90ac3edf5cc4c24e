//! Small text helpers shared by runbooks, escalation targets, logs and
//! prompts: `{{name}}` templates over TOML values, and clipping.

/// Replaces each `{{name}}` whose value `lookup` knows; leaves the others.
pub fn render(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
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

/// A TOML value as JSON, with templates rendered in every string.
pub fn toml_to_json(v: &toml::Value, lookup: &dyn Fn(&str) -> Option<String>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(render(s, lookup)),
        toml::Value::Integer(i) => serde_json::json!(i),
        toml::Value::Float(f) => serde_json::json!(f),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Array(a) => J::Array(a.iter().map(|x| toml_to_json(x, lookup)).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, x)| (k.clone(), toml_to_json(x, lookup)))
                .collect(),
        ),
        toml::Value::Datetime(d) => J::String(d.to_string()),
    }
}

/// At most `max` bytes of `s`, cut on a character boundary, with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_names_and_keeps_unknown_ones() {
        let lookup = |k: &str| (k == "service").then(|| "payment-api".to_string());
        assert_eq!(
            render("{{ service }}/{{namespace}} {{", &lookup),
            "payment-api/{{namespace}} {{"
        );
        let v: toml::Value = toml::from_str::<toml::Table>("a = { b = [\"{{service}}\", 2] }")
            .map(toml::Value::Table)
            .unwrap_or(toml::Value::Boolean(false));
        assert_eq!(
            toml_to_json(&v, &lookup),
            serde_json::json!({"a": {"b": ["payment-api", 2]}})
        );
    }

    #[test]
    fn clips_on_char_boundaries() {
        assert_eq!(clip("héllo", 2), "h…");
        assert_eq!(clip("short", 10), "short");
    }
}

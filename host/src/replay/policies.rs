//! The configuration a scenario runs under: the shipped policies, with
//! recorded sources pointed at their loopback servers and the scenario's
//! operator choices (`operator.toml`: mode, writable namespaces, tiers,
//! sender mappings)
//! applied, as an operator deploying runwarden would set them.

use super::{ReplayError, bad};
use crate::pipeline::autonomy::Mode;
use serde::Deserialize;
use std::path::Path;

/// `operator.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Namespaces where mutating Kubernetes grants hold.
    #[serde(default)]
    pub writable_namespaces: Option<Vec<String>>,
    /// Tier inventory entries, added to the autonomy policy's.
    #[serde(default)]
    pub inventory: Vec<toml::Table>,
    /// What the operator's free-text senders mean (`runbooks/senders.toml`
    /// entries): PagerDuty and OpsGenie services mapped to namespaces and
    /// workloads, as an operator paging through them configures.
    #[serde(default, rename = "sender_map")]
    pub sender_maps: Vec<crate::analysis::senders::SenderMap>,
}

impl Operator {
    /// The scenario's `operator.toml` (none: the shipped configuration),
    /// with `expected.toml`'s older `mode` as a fallback.
    pub fn read(scenario: &Path, mode: Option<Mode>) -> Result<Operator, ReplayError> {
        let path = scenario.join("operator.toml");
        let mut op: Operator = if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e))?;
            toml::from_str(&text).map_err(|e| bad(&path, e))?
        } else {
            Operator::default()
        };
        op.mode = op.mode.or(mode);
        crate::analysis::senders::SenderMaps {
            maps: op.sender_maps.clone(),
        }
        .check()
        .map_err(|e| bad(&path, format!("sender_map: {e}")))?;
        Ok(op)
    }

    fn apply_to_autonomy(&self, doc: &mut toml::Table) {
        if let Some(mode) = self.mode {
            let mode = serde_json::to_value(mode)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            doc.insert("mode".into(), toml::Value::String(mode));
        }
        if !self.inventory.is_empty() {
            let entries = doc
                .entry("inventory")
                .or_insert_with(|| toml::Value::Array(vec![]));
            if let toml::Value::Array(list) = entries {
                list.extend(self.inventory.iter().cloned().map(toml::Value::Table));
            }
        }
    }

    /// A Kubernetes grant with any operation beyond `read` holds in the
    /// writable namespaces; read-only grants are left as shipped.
    fn apply_to_grants(&self, doc: &mut toml::Table) {
        let Some(writable) = &self.writable_namespaces else {
            return;
        };
        let Some(toml::Value::Table(k8s)) = doc
            .get_mut("grants")
            .and_then(|g| g.as_table_mut())
            .and_then(|g| g.get_mut("k8s"))
        else {
            return;
        };
        let mutating = k8s
            .get("operations")
            .and_then(|o| o.as_array())
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() != Some("read")));
        if mutating {
            k8s.insert(
                "namespaces".into(),
                toml::Value::Array(writable.iter().cloned().map(toml::Value::String).collect()),
            );
        }
    }
}

/// Copies the policy directory, pointing sources with recordings at their
/// loopback servers and applying the scenario's autonomy mode.
pub(super) async fn prepare_policies(
    scenario: &Path,
    base: &Path,
    into: &Path,
    operator: &Operator,
) -> Result<(), ReplayError> {
    std::fs::create_dir_all(into).map_err(|e| bad(into, e))?;
    let base = base.canonicalize().map_err(|e| bad(base, e))?;
    let responses = scenario.join("responses");
    for entry in std::fs::read_dir(&base).map_err(|e| bad(&base, e))? {
        let path = entry.map_err(|e| bad(&base, e))?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        if !name.ends_with(".toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e))?;
        let mut doc: toml::Table = toml::from_str(&text).map_err(|e| bad(&path, e))?;
        // Relative paths in policies are relative to the policy directory.
        if let Some(toml::Value::Table(plugin)) = doc.get_mut("plugin") {
            for key in ["component", "manifest"] {
                if let Some(toml::Value::String(p)) = plugin.get_mut(key) {
                    *p = base.join(&*p).display().to_string();
                }
            }
        }
        let plugin_name = name.trim_end_matches(".toml");
        let recorded = responses.join(plugin_name);
        if recorded.is_dir() {
            let origin = super::recorded::serve_recorded(&recorded).await?;
            redirect_to_recordings(&mut doc, &origin);
        }
        if name == crate::policy::load::AUTONOMY_FILE {
            operator.apply_to_autonomy(&mut doc);
        } else {
            operator.apply_to_grants(&mut doc);
        }
        let out = toml::to_string(&doc).map_err(|e| bad(&path, e))?;
        std::fs::write(into.join(&name), out).map_err(|e| bad(into, e))?;
    }
    Ok(())
}

/// Points a policy's HTTP grant, and every config value under a granted
/// origin, at the recording server.
fn redirect_to_recordings(doc: &mut toml::Table, origin: &str) {
    let mut granted: Vec<String> = Vec::new();
    if let Some(toml::Value::Table(grants)) = doc.get_mut("grants")
        && let Some(toml::Value::Table(http)) = grants.get_mut("http")
    {
        if let Some(toml::Value::Array(allow)) = http.get("allow") {
            granted = allow
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.trim_end_matches('/').to_string()))
                .collect();
        }
        http.insert(
            "allow".into(),
            toml::Value::Array(vec![toml::Value::String(origin.to_string())]),
        );
        // Credentials bound to a granted origin follow it to the recordings.
        if let Some(toml::Value::Array(inject)) = http.get_mut("inject") {
            for binding in inject.iter_mut() {
                if let toml::Value::Table(b) = binding {
                    b.insert("origin".into(), toml::Value::String(origin.to_string()));
                }
            }
        }
    }
    if let Some(toml::Value::Table(config)) = doc.get_mut("config") {
        for (_, value) in config.iter_mut() {
            let redirected = value.as_str().and_then(|s| {
                granted.iter().find_map(|g| {
                    s.strip_prefix(g.as_str())
                        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                        .map(|rest| format!("{origin}{rest}"))
                })
            });
            if let Some(s) = redirected {
                *value = toml::Value::String(s);
            }
        }
    }
}

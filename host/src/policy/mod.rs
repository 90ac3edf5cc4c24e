//! Policies: what the operator grants a plugin, and what its author requests.
//!
//! Two files meet here, owned by two different people:
//!
//! - the plugin's **manifest** (`manifest.toml`, shipped by its author) says
//!   which capabilities the plugin asks for;
//! - the operator's **policy** (`policies/<plugin>.toml`) pins the component's
//!   digest, sets its limits and grants capabilities.
//!
//! A plugin gets the intersection (see [`crate::capability::Grants::effective`]).
//! Both files are TOML with unknown fields refused. Values are validated while
//! they are deserialized (origins, namespaces, limits are newtypes), so a bad
//! value is reported by the TOML parser with its file, line, column and field.

pub mod load;
pub mod signing;

pub use load::{LoadedPolicy, PolicyError, load_dir, load_policy};

use crate::capability::{Grants, Requests};
use serde::Deserialize;
use std::path::PathBuf;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    ContextSource,
    RemediationTool,
}

/// A version of the plugin contract (`wit/`) the host links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Contract {
    /// Typed effects. What `wit/` holds today.
    #[serde(rename = "0.2.0")]
    V0_2,
    /// Free-text changes; served through `legacy.rs`.
    #[serde(rename = "0.1.0")]
    V0_1,
}

impl Contract {
    /// Newest first: the version a component is taken for when it exports
    /// more than one.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_2 => "0.2.0",
            Contract::V0_1 => "0.1.0",
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

impl PluginKind {
    /// The WIT interface the component must export, unversioned.
    pub fn export_name(self) -> &'static str {
        match self {
            PluginKind::ContextSource => "runwarden:plugin/source",
            PluginKind::RemediationTool => "runwarden:plugin/tool",
        }
    }

    /// The contract version of the interface a component exports for this
    /// kind, if it exports one the host links.
    pub fn contract_of(self, exports: &[String]) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| {
            let want = format!("{}@{}", self.export_name(), c.version());
            exports.contains(&want)
        })
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::ContextSource => "context-source",
            PluginKind::RemediationTool => "remediation-tool",
        })
    }
}

/// The operator's policy file for one plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub plugin: PluginRef,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub grants: Grants,
    /// Non-secret settings the plugin reads through the `config` interface.
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, String>,
}

/// Where the plugin's bytes and manifest are, and what the bytes must hash to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    pub name: PluginName,
    /// Path to the `.wasm` component, relative to the policy file.
    pub component: PathBuf,
    /// Lower-case hex sha256 of the component's bytes. Any other bytes refuse to load.
    pub sha256: Sha256Hex,
    /// Path to the author's manifest, relative to the policy file.
    pub manifest: PathBuf,
    /// Refuse to load unless the component carries a valid signature by
    /// this publisher (a key in `trusted-publishers.toml`) over these bytes
    /// and exactly the manifest's requests.
    #[serde(default)]
    pub require_publisher: Option<String>,
    /// The signature envelope, relative to the policy file (default:
    /// `<component>.sig.json`).
    #[serde(default)]
    pub signature: Option<PathBuf>,
}

/// The plugin author's manifest: what the plugin is and what it asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: ManifestPlugin,
    #[serde(default)]
    pub requests: Requests,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPlugin {
    pub name: PluginName,
    pub kind: PluginKind,
    pub description: String,
}

/// Per-call resource limits. Every call gets a fresh store with these.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Total linear memory across all of the instance's memories, in MiB.
    #[serde(default = "Limits::default_memory_mib")]
    pub memory_mib: Bounded<1, 4096>,
    /// Wall-clock deadline of one call (guest CPU and host waits), in ms.
    #[serde(default = "Limits::default_timeout_ms")]
    pub timeout_ms: Bounded<1, 600_000>,
    /// Largest result a call may return, in KiB.
    #[serde(default = "Limits::default_max_output_kib")]
    pub max_output_kib: Bounded<1, 65_536>,
    /// Log lines kept per call; more are counted and dropped.
    #[serde(default = "Limits::default_max_log_lines")]
    pub max_log_lines: Bounded<0, 10_000>,
}

impl Limits {
    fn default_memory_mib() -> Bounded<1, 4096> {
        Bounded(64)
    }
    fn default_timeout_ms() -> Bounded<1, 600_000> {
        Bounded(5_000)
    }
    fn default_max_output_kib() -> Bounded<1, 65_536> {
        Bounded(1_024)
    }
    fn default_max_log_lines() -> Bounded<0, 10_000> {
        Bounded(200)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib.0 as usize) << 20
    }
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms.0)
    }
    pub fn max_output_bytes(&self) -> usize {
        (self.max_output_kib.0 as usize) << 10
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: Self::default_memory_mib(),
            timeout_ms: Self::default_timeout_ms(),
            max_output_kib: Self::default_max_output_kib(),
            max_log_lines: Self::default_max_log_lines(),
        }
    }
}

/// An integer checked to lie in `MIN..=MAX` when it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if (MIN..=MAX).contains(&v) {
            Ok(Bounded(v))
        } else {
            Err(serde::de::Error::custom(format!(
                "{v} is out of range: expected {MIN} to {MAX}"
            )))
        }
    }
}

/// A plugin name: lower-case letters, digits and dashes, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PluginName(String);

impl PluginName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PluginName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PluginName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if s == crate::pipeline::host_tools::RESERVED_PLUGIN_NAME {
            return Err(format!(
                "plugin name {s:?} is reserved: the investigation offers the host's own tools under it"
            ));
        }
        if ok {
            Ok(PluginName(s))
        } else {
            Err(format!(
                "invalid plugin name {s:?}: use 1-64 lower-case letters, digits and dashes"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for PluginName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PluginName::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A sha256 digest as 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Sha256Hex(hex::encode(sha2::Sha256::digest(bytes)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Sha256Hex(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid sha256 {s:?}: expected 64 lower-case hex digits"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PluginName;

    #[test]
    fn the_host_tools_name_is_reserved() {
        let err = PluginName::try_from("runwarden".to_string());
        assert!(matches!(err, Err(e) if e.contains("reserved")));
        assert!(PluginName::try_from("runwarden-extra".to_string()).is_ok());
        assert!(PluginName::try_from("Bad_Name".to_string()).is_err());
    }
}

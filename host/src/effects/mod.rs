//! Typed effects: what an action changes, in terms the host understands.
//!
//! A tool's `plan` lists its effects (`change-effect` in `wit/types.wit`).
//! The host does three things with them, none of which trusts a tool name,
//! an argument name or a declaration it cannot check:
//!
//! - the guardrails judge them (`pipeline/guard.rs`): replica ceilings and
//!   floors, pods and objects per action, cooldown and oscillation per
//!   target, whichever plugin or language produced the effect;
//! - [`binding::PlanBinding`] binds `execute` to them: only mutating
//!   capability calls that match a planned effect get through;
//! - an approval binds to their [`digest`], so a re-plan that changes what
//!   would happen invalidates it.
//!
//! A 0.1.0 component's changes are free text; they become [`Effect::Other`],
//! which the host can neither judge nor bind, so it always waits for a human.

pub mod binding;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A namespaced Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl ObjectRef {
    pub fn deployment(namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind: "Deployment".into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// CPU and memory quantities, Kubernetes syntax.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSettings {
    pub cpu_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_request: Option<String>,
    pub memory_limit: Option<String>,
}

/// One typed effect of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Effect {
    Scale {
        target: ObjectRef,
        from: u32,
        to: u32,
    },
    RestartPods {
        target: ObjectRef,
        pods: Vec<String>,
    },
    Rollback {
        target: ObjectRef,
        from_revision: u64,
        to_revision: u64,
    },
    Annotate {
        target: ObjectRef,
        keys: Vec<String>,
    },
    CertificateRenewal {
        certificate: ObjectRef,
    },
    DnsRecord {
        zone: String,
        record: String,
        from: Option<String>,
        to: String,
    },
    Resources {
        target: ObjectRef,
        container: String,
        before: ResourceSettings,
        after: ResourceSettings,
    },
    HttpRequest {
        method: String,
        origin: String,
        path: String,
    },
    Other {
        description: String,
    },
}

/// The kind of an effect, as autonomy rules name it (`effect = "scale"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EffectKind {
    Scale,
    RestartPods,
    Rollback,
    Annotate,
    CertificateRenewal,
    DnsRecord,
    Resources,
    HttpRequest,
    Other,
}

impl EffectKind {
    pub fn name(self) -> &'static str {
        match self {
            EffectKind::Scale => "scale",
            EffectKind::RestartPods => "restart-pods",
            EffectKind::Rollback => "rollback",
            EffectKind::Annotate => "annotate",
            EffectKind::CertificateRenewal => "certificate-renewal",
            EffectKind::DnsRecord => "dns-record",
            EffectKind::Resources => "resources",
            EffectKind::HttpRequest => "http-request",
            EffectKind::Other => "other",
        }
    }
}

impl std::fmt::Display for EffectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an effect changes, for cooldown, oscillation, objects per action and
/// whether the action stays inside the incident. HTTP requests are the
/// mechanism of another effect, not a target of their own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Target {
    Object(ObjectRef),
    DnsRecord { zone: String, record: String },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Object(o) => o.fmt(f),
            Target::DnsRecord { zone, record } => write!(f, "dns record {record} in {zone}"),
        }
    }
}

impl Effect {
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::Scale { .. } => EffectKind::Scale,
            Effect::RestartPods { .. } => EffectKind::RestartPods,
            Effect::Rollback { .. } => EffectKind::Rollback,
            Effect::Annotate { .. } => EffectKind::Annotate,
            Effect::CertificateRenewal { .. } => EffectKind::CertificateRenewal,
            Effect::DnsRecord { .. } => EffectKind::DnsRecord,
            Effect::Resources { .. } => EffectKind::Resources,
            Effect::HttpRequest { .. } => EffectKind::HttpRequest,
            Effect::Other { .. } => EffectKind::Other,
        }
    }

    pub fn target(&self) -> Option<Target> {
        match self {
            Effect::Scale { target, .. }
            | Effect::RestartPods { target, .. }
            | Effect::Rollback { target, .. }
            | Effect::Annotate { target, .. }
            | Effect::Resources { target, .. } => Some(Target::Object(target.clone())),
            Effect::CertificateRenewal { certificate } => Some(Target::Object(certificate.clone())),
            Effect::DnsRecord { zone, record, .. } => Some(Target::DnsRecord {
                zone: zone.clone(),
                record: record.clone(),
            }),
            Effect::HttpRequest { .. } | Effect::Other { .. } => None,
        }
    }

    /// The namespace a Kubernetes effect touches.
    pub fn namespace(&self) -> Option<&str> {
        match self.target_object() {
            Some(o) => Some(o.namespace.as_str()),
            None => None,
        }
    }

    fn target_object(&self) -> Option<&ObjectRef> {
        match self {
            Effect::Scale { target, .. }
            | Effect::RestartPods { target, .. }
            | Effect::Rollback { target, .. }
            | Effect::Annotate { target, .. }
            | Effect::Resources { target, .. } => Some(target),
            Effect::CertificateRenewal { certificate } => Some(certificate),
            _ => None,
        }
    }

    /// One readable line.
    pub fn describe(&self) -> String {
        match self {
            Effect::Scale { target, from, to } => format!("scale {target}: {from} -> {to}"),
            Effect::RestartPods { target, pods } => {
                format!(
                    "restart {} pod(s) of {target}: {}",
                    pods.len(),
                    pods.join(", ")
                )
            }
            Effect::Rollback {
                target,
                from_revision,
                to_revision,
            } => format!("roll back {target}: revision {from_revision} -> {to_revision}"),
            Effect::Annotate { target, keys } => {
                format!("annotate {target}: {}", keys.join(", "))
            }
            Effect::CertificateRenewal { certificate } => format!("renew {certificate}"),
            Effect::DnsRecord {
                zone,
                record,
                from,
                to,
            } => format!(
                "point {record} ({zone}) {} -> {to}",
                from.as_deref().unwrap_or("(none)")
            ),
            Effect::Resources {
                target, container, ..
            } => format!("change resources of {target} container {container}"),
            Effect::HttpRequest {
                method,
                origin,
                path,
            } => format!("{method} {origin}{path}"),
            Effect::Other { description } => format!("other: {description}"),
        }
    }
}

impl From<crate::bindings::types::ObjectRef> for ObjectRef {
    fn from(o: crate::bindings::types::ObjectRef) -> Self {
        ObjectRef {
            kind: o.kind,
            namespace: o.namespace,
            name: o.name,
        }
    }
}

impl From<crate::bindings::types::ResourceSettings> for ResourceSettings {
    fn from(r: crate::bindings::types::ResourceSettings) -> Self {
        ResourceSettings {
            cpu_request: r.cpu_request,
            cpu_limit: r.cpu_limit,
            memory_request: r.memory_request,
            memory_limit: r.memory_limit,
        }
    }
}

impl From<&crate::bindings::types::ChangeEffect> for Effect {
    fn from(e: &crate::bindings::types::ChangeEffect) -> Self {
        use crate::bindings::types::ChangeEffect as W;
        match e.clone() {
            W::Scale(c) => Effect::Scale {
                target: c.target.into(),
                from: c.from_replicas,
                to: c.to_replicas,
            },
            W::RestartPods(c) => Effect::RestartPods {
                target: c.target.into(),
                pods: c.pods,
            },
            W::Rollback(c) => Effect::Rollback {
                target: c.target.into(),
                from_revision: c.from_revision,
                to_revision: c.to_revision,
            },
            W::Annotate(c) => Effect::Annotate {
                target: c.target.into(),
                keys: c.keys,
            },
            W::CertificateRenewal(o) => Effect::CertificateRenewal {
                certificate: o.into(),
            },
            W::DnsRecord(c) => Effect::DnsRecord {
                zone: c.zone,
                record: c.name,
                from: c.from_value,
                to: c.to_value,
            },
            W::Resources(c) => Effect::Resources {
                target: c.target.into(),
                container: c.container,
                before: c.before.into(),
                after: c.after.into(),
            },
            W::HttpRequest(c) => Effect::HttpRequest {
                method: c.method.to_ascii_uppercase(),
                origin: c.origin,
                path: c.path,
            },
            W::Other(description) => Effect::Other { description },
        }
    }
}

/// The typed effects of a plan or an outcome.
pub fn of_changes(changes: &[crate::bindings::types::Change]) -> Vec<Effect> {
    changes.iter().map(|c| Effect::from(&c.effect)).collect()
}

/// The digest an approval binds to: tool, arguments, the planned effects and
/// the autonomy policy version. Canonical JSON (serde_json sorts no keys, so
/// values are built in a fixed order) hashed with SHA-256.
pub fn digest(
    plugin: &str,
    tool: &str,
    arguments: &serde_json::Value,
    effects: &[Effect],
    policy_version: &str,
) -> String {
    let canonical = serde_json::json!([
        plugin,
        tool,
        canonical_json(arguments),
        effects,
        policy_version
    ]);
    let mut h = Sha256::new();
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Object keys sorted at every level, so equal arguments hash equal.
fn canonical_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            serde_json::to_value(sorted).unwrap_or(serde_json::Value::Null)
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(canonical_json).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scale(to: u32) -> Effect {
        Effect::Scale {
            target: ObjectRef::deployment("payments", "payment-api"),
            from: 3,
            to,
        }
    }

    #[test]
    fn digest_changes_with_effects_and_ignores_key_order() {
        let a = digest("p", "t", &json!({"a": 1, "b": 2}), &[scale(4)], "v1");
        let b = digest("p", "t", &json!({"b": 2, "a": 1}), &[scale(4)], "v1");
        assert_eq!(a, b);
        assert_ne!(
            a,
            digest("p", "t", &json!({"a": 1, "b": 2}), &[scale(5)], "v1")
        );
        assert_ne!(
            a,
            digest("p", "t", &json!({"a": 1, "b": 2}), &[scale(4)], "v2")
        );
    }

    #[test]
    fn targets_and_kinds() {
        assert_eq!(scale(4).kind(), EffectKind::Scale);
        assert_eq!(
            scale(4).target(),
            Some(Target::Object(ObjectRef::deployment(
                "payments",
                "payment-api"
            )))
        );
        let http = Effect::HttpRequest {
            method: "POST".into(),
            origin: "https://x".into(),
            path: "/".into(),
        };
        assert_eq!(http.target(), None);
        assert_eq!(
            serde_json::to_value(scale(4))
                .ok()
                .and_then(|v| v["kind"].as_str().map(String::from)),
            Some("scale".into())
        );
    }
}

//! Capabilities: one module per host interface a plugin can import.
//!
//! Each module keeps together everything a reader needs about one capability,
//! the way Spin's factors do:
//!
//! | capability | declared (WIT)        | granted (policy)   | checked and implemented |
//! |------------|-----------------------|--------------------|-------------------------|
//! | k8s        | `wit/k8s.wit`         | `[grants.k8s]`     | [`k8s`]                 |
//! | http       | wasi:http (standard)  | `[grants.http]`    | [`http`]                |
//! | secrets    | `wit/secrets.wit`     | `[grants.secrets]` | [`secrets`]             |
//! | log        | `wit/log.wit`         | `[grants.log]`     | [`log`]                 |
//!
//! Deny by default: a capability is linked into a plugin only if the plugin's
//! manifest requests it AND the operator's policy grants it. A component that
//! imports an interface outside that intersection refuses to load (see
//! [`check_imports`]), so a plugin never holds a half-working import.

pub mod address;
pub mod config;
pub mod credentials;
pub mod http;
pub mod k8s;
pub mod log;
pub mod secrets;

use serde::Deserialize;

/// What an operator grants one plugin (`[grants]` in its policy).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    pub k8s: Option<k8s::K8sGrant>,
    pub http: Option<http::HttpGrant>,
    pub secrets: Option<secrets::SecretsGrant>,
    pub log: Option<log::LogGrant>,
}

/// What a plugin's author asks for (`[requests]` in its manifest).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    pub k8s: Option<k8s::K8sRequest>,
    pub http: Option<http::HttpRequest>,
    pub secrets: Option<secrets::SecretsRequest>,
    pub log: Option<log::LogRequest>,
}

impl Grants {
    /// The grant a plugin actually gets: each capability must be both
    /// requested and granted, and each is narrowed to what both allow.
    pub fn effective(&self, requests: &Requests) -> Grants {
        Grants {
            k8s: both(&self.k8s, &requests.k8s).map(|(g, r)| g.narrow(r)),
            http: both(&self.http, &requests.http).map(|(g, r)| g.narrow(r)),
            secrets: both(&self.secrets, &requests.secrets).map(|(g, r)| g.narrow(r)),
            log: both(&self.log, &requests.log).map(|(g, _)| g.clone()),
        }
    }

    /// The capabilities present, for display.
    pub fn names(&self) -> Vec<Capability> {
        let mut out = Vec::new();
        if self.k8s.is_some() {
            out.push(Capability::K8s);
        }
        if self.http.is_some() {
            out.push(Capability::Http);
        }
        if self.secrets.is_some() {
            out.push(Capability::Secrets);
        }
        if self.log.is_some() {
            out.push(Capability::Log);
        }
        out
    }

    pub fn has(&self, cap: Capability) -> bool {
        self.names().contains(&cap)
    }

    /// Whether this grant lets a plugin have `effect`, judged by the same
    /// check functions the host runs on the capability call itself — one
    /// source for every capability limit. Lets the pipeline refuse an action
    /// the host would refuse before anyone is asked to approve it.
    pub fn permits(&self, effect: &crate::effects::Effect) -> Result<(), Denied> {
        use crate::effects::Effect;
        let k8s = || {
            self.k8s
                .as_ref()
                .ok_or_else(|| Denied("the plugin has no k8s grant".into()))
        };
        match effect {
            Effect::Scale { target, to, .. } => k8s::check_scale(k8s()?, &target.namespace, *to),
            Effect::Rollback { target, .. } => k8s::check_rollback(k8s()?, &target.namespace),
            Effect::RestartPods { target, pods } => {
                k8s::check_delete_pods(k8s()?, &target.namespace, pods.len())
            }
            Effect::Annotate { target, .. } => {
                k8s::check_annotate(k8s()?, &target.namespace, &target.kind)
            }
            Effect::CertificateRenewal { certificate } => {
                k8s::check_renew_certificate(k8s()?, &certificate.namespace)
            }
            Effect::Resources { target, .. } => Err(Denied(format!(
                "no capability operation changes the resources of {target} (the k8s capability has none)"
            ))),
            Effect::HttpRequest { origin, .. } => {
                let grant = self
                    .http
                    .as_ref()
                    .ok_or_else(|| Denied("the plugin has no http grant".into()))?;
                let url = url::Url::parse(origin)
                    .map_err(|e| Denied(format!("planned origin {origin:?}: {e}")))?;
                let host = url.host_str().unwrap_or_default();
                let port = url.port_or_known_default().unwrap_or(0);
                http::check_origin(grant, url.scheme() == "https", host, port)
            }
            // Carried out through other effects (DNS through HTTP requests),
            // or not judgeable at all (`other`: a human decides).
            Effect::DnsRecord { .. } | Effect::Other { .. } => Ok(()),
        }
    }
}

impl Requests {
    pub fn names(&self) -> Vec<Capability> {
        let mut out = Vec::new();
        if self.k8s.is_some() {
            out.push(Capability::K8s);
        }
        if self.http.is_some() {
            out.push(Capability::Http);
        }
        if self.secrets.is_some() {
            out.push(Capability::Secrets);
        }
        if self.log.is_some() {
            out.push(Capability::Log);
        }
        out
    }
}

fn both<'a, G, R>(g: &'a Option<G>, r: &'a Option<R>) -> Option<(&'a G, &'a R)> {
    match (g, r) {
        (Some(g), Some(r)) => Some((g, r)),
        _ => None,
    }
}

/// A host capability, as named in policies and in component imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    K8s,
    Http,
    Secrets,
    Log,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::K8s,
        Capability::Http,
        Capability::Secrets,
        Capability::Log,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::K8s => "k8s",
            Capability::Http => "http",
            Capability::Secrets => "secrets",
            Capability::Log => "log",
        }
    }

    /// Which capability a component import needs, if any. Imports that need
    /// none are the WASI basics every component gets (with nothing
    /// preopened, no environment, no sockets) and the shared `types`.
    pub fn of_import(import: &str) -> Option<Capability> {
        let unversioned = import.split('@').next().unwrap_or(import);
        match unversioned {
            "runwarden:plugin/k8s" => Some(Capability::K8s),
            "runwarden:plugin/secrets" => Some(Capability::Secrets),
            "runwarden:plugin/log" => Some(Capability::Log),
            "wasi:http/outgoing-handler" | "wasi:http/types" => Some(Capability::Http),
            _ => None,
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Imports the host never provides, whatever the policy says. Raw sockets
/// are *not* here: Python's and JavaScript's runtimes import them whether
/// or not a plugin uses them, so they are linked — and every socket
/// creation and name lookup is denied at run time (`sandbox/state.rs`), so
/// the only way out is `wasi:http` through the http capability's checks.
const NEVER_PROVIDED: &[&str] = &["wasi:http/incoming-handler"];

/// An import the effective grant does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UngrantedImport {
    pub import: String,
    pub capability: Option<Capability>,
}

impl std::fmt::Display for UngrantedImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.capability {
            Some(cap) => write!(
                f,
                "imports `{}`, which needs the `{cap}` capability; it is not both requested in the manifest and granted by the policy",
                self.import
            ),
            None => write!(
                f,
                "imports `{}`, which runwarden never provides",
                self.import
            ),
        }
    }
}

/// Checks a component's imports against its effective grant. Returns every
/// import it may not have.
pub fn check_imports<'a>(
    imports: impl IntoIterator<Item = &'a str>,
    effective: &Grants,
) -> Vec<UngrantedImport> {
    let mut out = Vec::new();
    for import in imports {
        let unversioned = import.split('@').next().unwrap_or(import);
        if NEVER_PROVIDED.contains(&unversioned) {
            out.push(UngrantedImport {
                import: import.to_string(),
                capability: None,
            });
            continue;
        }
        if let Some(cap) = Capability::of_import(import)
            && !effective.has(cap)
        {
            out.push(UngrantedImport {
                import: import.to_string(),
                capability: Some(cap),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_imports_to_capabilities() {
        assert_eq!(
            Capability::of_import("runwarden:plugin/k8s@0.1.0"),
            Some(Capability::K8s)
        );
        assert_eq!(
            Capability::of_import("wasi:http/outgoing-handler@0.2.12"),
            Some(Capability::Http)
        );
        assert_eq!(Capability::of_import("wasi:cli/stdout@0.2.6"), None);
        assert_eq!(Capability::of_import("runwarden:plugin/types@0.1.0"), None);
    }

    #[test]
    fn ungranted_imports_are_listed() {
        let effective = Grants {
            log: Some(log::LogGrant::default()),
            ..Grants::default()
        };
        let bad = check_imports(
            [
                "runwarden:plugin/log@0.1.0",
                "runwarden:plugin/k8s@0.1.0",
                "wasi:io/streams@0.2.6",
                "wasi:sockets/tcp-create-socket@0.2.6",
                "wasi:http/incoming-handler@0.2.6",
            ],
            &effective,
        );
        assert_eq!(
            bad.len(),
            2,
            "sockets link (and are denied at run time): {bad:?}"
        );
        assert_eq!(bad[0].capability, Some(Capability::K8s));
        assert_eq!(bad[1].capability, None);
    }

    #[test]
    fn effective_needs_both_request_and_grant() {
        let grants = Grants {
            log: Some(log::LogGrant::default()),
            secrets: Some(secrets::SecretsGrant {
                names: vec!["a".into()],
            }),
            ..Grants::default()
        };
        let requests = Requests {
            log: Some(log::LogRequest::default()),
            ..Requests::default()
        };
        let eff = grants.effective(&requests);
        assert!(eff.has(Capability::Log));
        assert!(!eff.has(Capability::Secrets), "granted but not requested");
        assert!(!eff.has(Capability::K8s));
    }
}

/// A policy refusal with its reason. Check functions return it; host
/// implementations hand it to the guest as the typed WIT `error.denied`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("denied: {0}")]
pub struct Denied(pub String);

impl From<Denied> for crate::bindings::types::Error {
    fn from(d: Denied) -> Self {
        crate::bindings::types::Error::Denied(d.0)
    }
}

/// Whether the current export call may change the world, and what.
/// `describe`, `plan` and `gather` — and `execute` of a tool declared
/// `read` — run read-only: a mutation is denied whatever the grant says.
/// Any other `execute` is bound to the effects of the plan the guardrails
/// judged (`effects/binding.rs`).
#[derive(Debug, Clone)]
pub enum CallMode {
    ReadOnly,
    Bound(std::sync::Arc<crate::effects::binding::PlanBinding>),
}

impl CallMode {
    /// Whether a mutating call may proceed in this mode; `matches` checks it
    /// against the plan's effects.
    pub fn permit_mutation(
        &self,
        operation: &str,
        matches: impl FnOnce(&crate::effects::binding::PlanBinding) -> Result<(), Denied>,
    ) -> Result<(), Denied> {
        match self {
            CallMode::ReadOnly => Err(Denied(format!(
                "`{operation}` changes something, and this call is read-only (describe, plan, gather and read tools never mutate)"
            ))),
            CallMode::Bound(binding) => matches(binding),
        }
    }
}

/// What happened to one capability call, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "kebab-case")]
pub enum Verdict {
    Allowed,
    /// The grant refused it.
    Denied(String),
    /// The call mode refused it: a mutation from a read-only call, or one
    /// that matches no effect of the plan `execute` is bound to. The action
    /// it belongs to ends as a fault, whatever the plugin answers.
    Unplanned(String),
    Failed(String),
}

/// One capability call as the audit trail records it. Never holds secret
/// values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CapabilityCall {
    pub capability: Capability,
    pub operation: String,
    pub target: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Shared by the capabilities of one call; drained when the call ends.
#[derive(Debug, Clone, Default)]
pub struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<CapabilityCall>>>);

impl Recorder {
    pub fn record(&self, capability: Capability, operation: &str, target: &str, verdict: Verdict) {
        tracing::debug!(%capability, operation, target, ?verdict, "capability call");
        if let Ok(mut calls) = self.0.lock() {
            calls.push(CapabilityCall {
                capability,
                operation: operation.to_string(),
                target: target.to_string(),
                verdict,
            });
        }
    }

    pub fn take(&self) -> Vec<CapabilityCall> {
        self.0
            .lock()
            .map(|mut calls| std::mem::take(&mut *calls))
            .unwrap_or_default()
    }
}

//! The `secrets` capability: named secrets, granted one by one.
//!
//! The host owns the values (from its own secret store); a plugin sees a
//! value only for a name that is both requested and granted. A refused name
//! is denied whether or not it exists, so a plugin cannot probe the store.
//! Values never reach logs or audit records: the recorder sees only names.

use super::{Capability, Denied, Recorder, Verdict};
use crate::bindings::secrets::Host;
use crate::bindings::types::Error;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `[grants.secrets]`: the names this plugin may read.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsGrant {
    pub names: Vec<String>,
}

/// `[requests.secrets]`: the names the plugin needs.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsRequest {
    pub names: Vec<String>,
}

impl SecretsGrant {
    pub fn narrow(&self, request: &SecretsRequest) -> SecretsGrant {
        SecretsGrant {
            names: self
                .names
                .iter()
                .filter(|n| request.names.contains(n))
                .cloned()
                .collect(),
        }
    }
}

/// The policy check: is `name` granted? A secret bound for injection
/// (`injected`: name, origin) never is: the host adds it to requests and
/// no plugin reads it.
pub fn check_get(
    grant: &SecretsGrant,
    injected: &[(String, String)],
    name: &str,
) -> Result<(), Denied> {
    if let Some((_, origin)) = injected.iter().find(|(n, _)| n == name) {
        return Err(Denied(format!(
            "secret `{name}` is bound for injection into requests to {origin}: the host adds it there, and no plugin reads it"
        )));
    }
    if grant.names.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err(Denied(format!(
            "secret `{name}` is not granted to this plugin"
        )))
    }
}

/// Where the host keeps secret values. Values are never logged.
pub trait SecretStore: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;
}

/// Secrets from environment variables `RUNWARDEN_SECRET_<NAME>` (name
/// upper-cased, `-` and `.` as `_`), read once at start.
#[derive(Default)]
pub struct EnvSecretStore {
    values: BTreeMap<String, String>,
}

impl EnvSecretStore {
    pub fn from_env() -> Self {
        let values = std::env::vars()
            .filter_map(|(k, v)| {
                k.strip_prefix("RUNWARDEN_SECRET_")
                    .map(|name| (name.to_string(), v))
            })
            .collect();
        EnvSecretStore { values }
    }

    fn key(name: &str) -> String {
        name.to_ascii_uppercase().replace(['-', '.'], "_")
    }
}

impl SecretStore for EnvSecretStore {
    fn get(&self, name: &str) -> Option<String> {
        self.values.get(&Self::key(name)).cloned()
    }
}

/// An in-memory store, for tests and embedding.
#[derive(Default)]
pub struct StaticSecretStore(pub BTreeMap<String, String>);

impl SecretStore for StaticSecretStore {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Per-call state of the secrets capability.
pub struct SecretsCapability {
    pub grant: SecretsGrant,
    /// Secrets bound for injection (name, origin): refused to the plugin.
    pub injected: Vec<(String, String)>,
    pub store: Arc<dyn SecretStore>,
    pub recorder: Recorder,
}

impl Host for SecretsCapability {
    async fn get(&mut self, name: String) -> Result<String, Error> {
        if let Err(denied) = check_get(&self.grant, &self.injected, &name) {
            self.recorder.record(
                Capability::Secrets,
                "get",
                &name,
                Verdict::Denied(denied.0.clone()),
            );
            return Err(denied.into());
        }
        match self.store.get(&name) {
            Some(value) => {
                self.recorder
                    .record(Capability::Secrets, "get", &name, Verdict::Allowed);
                Ok(value)
            }
            None => {
                let reason =
                    format!("secret `{name}` is granted but has no value in the host's store");
                self.recorder.record(
                    Capability::Secrets,
                    "get",
                    &name,
                    Verdict::Failed(reason.clone()),
                );
                Err(Error::Unavailable(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(granted: &[&str]) -> SecretsCapability {
        let mut values = BTreeMap::new();
        values.insert("slack-webhook".to_string(), "xoxb-SECRET".to_string());
        values.insert("cloudflare-token".to_string(), "cf-SECRET".to_string());
        SecretsCapability {
            injected: vec![],
            grant: SecretsGrant {
                names: granted.iter().map(|s| s.to_string()).collect(),
            },
            store: Arc::new(StaticSecretStore(values)),
            recorder: Recorder::default(),
        }
    }

    #[tokio::test]
    async fn denied_then_granted() {
        let mut ungranted = cap(&[]);
        let denied = ungranted.get("slack-webhook".into()).await;
        assert!(matches!(denied, Err(Error::Denied(r)) if r.contains("slack-webhook")));
        let mut granted = cap(&["slack-webhook"]);
        assert_eq!(
            granted.get("slack-webhook".into()).await.ok().as_deref(),
            Some("xoxb-SECRET")
        );
    }

    #[tokio::test]
    async fn records_names_never_values() {
        let mut c = cap(&["slack-webhook"]);
        let _ = c.get("slack-webhook".into()).await;
        let _ = c.get("cloudflare-token".into()).await;
        let recorded = format!("{:?}", c.recorder.take());
        assert!(recorded.contains("slack-webhook") && recorded.contains("cloudflare-token"));
        assert!(!recorded.contains("SECRET"), "{recorded}");
    }

    #[tokio::test]
    async fn an_absent_name_is_denied_like_a_present_one() {
        let mut c = cap(&[]);
        assert!(matches!(
            c.get("does-not-exist".into()).await,
            Err(Error::Denied(_))
        ));
    }

    #[test]
    fn narrowing_keeps_only_requested_names() {
        let g = SecretsGrant {
            names: vec!["a".into(), "b".into()],
        };
        let r = SecretsRequest {
            names: vec!["b".into(), "c".into()],
        };
        assert_eq!(g.narrow(&r).names, vec!["b".to_string()]);
    }
}

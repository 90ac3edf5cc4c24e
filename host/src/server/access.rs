//! Who may do what over HTTP.
//!
//! - **API tokens with roles.** `viewer` reads incidents, reports, approvals
//!   and intake counters; `approver` also approves and denies; `admin` also
//!   resets the circuit breaker and switches the autonomy mode. Tokens come
//!   from the access file, an environment variable or a file it names —
//!   never from a default. A presented token is hashed and compared with
//!   every configured digest in constant time.
//! - **Webhook credentials per source.** Alertmanager and Grafana send a
//!   bearer token or basic auth (both support either), PagerDuty signs its
//!   body (HMAC, checked in `intake::pagerduty`), OpsGenie sends a shared
//!   secret in a header. A source without a credential is refused unless the
//!   access file says `allow_unauthenticated = true` for it (local use).
//! - **Rate limits per source**: a token bucket; a flood is shed with 429
//!   before its body is parsed, and counted. Alerts already accepted are
//!   never dropped by shedding.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Approver,
    Admin,
}

/// A webhook sender, one per intake endpoint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Alertmanager,
    Grafana,
    Pagerduty,
    Opsgenie,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Alertmanager,
        Source::Grafana,
        Source::Pagerduty,
        Source::Opsgenie,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::Pagerduty => "pagerduty",
            Source::Opsgenie => "opsgenie",
        }
    }
}

/// Where a credential's value comes from: exactly one of the three.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<PathBuf>,
}

impl Credential {
    fn resolve(&self, what: &str, base: &Path) -> Result<String, AccessError> {
        let bad = |reason: String| AccessError::Credential {
            what: what.to_string(),
            reason,
        };
        let value = match (&self.value, &self.env, &self.file) {
            (Some(v), None, None) => v.clone(),
            (None, Some(var), None) => std::env::var(var)
                .map_err(|_| bad(format!("environment variable {var} is not set")))?,
            (None, None, Some(file)) => {
                let path = base.join(file);
                crate::files::read_text(&path)
                    .map_err(|e| bad(e.to_string()))?
                    .trim()
                    .to_string()
            }
            _ => return Err(bad("give exactly one of value, env, file".into())),
        };
        if value.len() < 16 {
            return Err(bad(format!(
                "the credential is {} characters; use at least 16",
                value.len()
            )));
        }
        Ok(value)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    token: Credential,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicEntry {
    username: String,
    password: Credential,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookEntry {
    #[serde(default)]
    bearer: Option<Credential>,
    #[serde(default)]
    basic: Option<BasicEntry>,
    #[serde(default)]
    signing_secret: Option<Credential>,
    #[serde(default)]
    shared_secret: Option<Credential>,
    #[serde(default)]
    allow_unauthenticated: bool,
    #[serde(default)]
    rate_per_second: Option<f64>,
    #[serde(default)]
    burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    #[serde(default, rename = "api_token")]
    api_tokens: Vec<TokenEntry>,
    #[serde(default)]
    webhooks: BTreeMap<Source, WebhookEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    Credential { what: String, reason: String },
}

/// The header OpsGenie is configured to send its shared secret in.
pub const OPSGENIE_SECRET_HEADER: &str = "x-runwarden-webhook-secret";

/// How one source authenticates.
#[derive(Debug, Clone)]
pub struct WebhookAuth {
    /// sha256 of each accepted `Authorization` header value.
    authorization: Vec<[u8; 32]>,
    shared_secret: Option<[u8; 32]>,
    pub signing_secret: Option<String>,
    pub allow_unauthenticated: bool,
    pub rate_per_second: f64,
    pub burst: u32,
}

impl Default for WebhookAuth {
    fn default() -> Self {
        WebhookAuth {
            authorization: vec![],
            shared_secret: None,
            signing_secret: None,
            allow_unauthenticated: false,
            rate_per_second: DEFAULT_RATE,
            burst: DEFAULT_BURST,
        }
    }
}

impl WebhookAuth {
    /// Accepts requests whose `Authorization` header is exactly `value`
    /// (e.g. `Bearer abc`).
    pub fn authorization(value: &str) -> Self {
        WebhookAuth {
            authorization: vec![digest(value)],
            ..WebhookAuth::default()
        }
    }

    /// Accepts requests without credentials (local use, benchmarks).
    pub fn unauthenticated() -> Self {
        WebhookAuth {
            allow_unauthenticated: true,
            ..WebhookAuth::default()
        }
    }

    /// PagerDuty: bodies signed with this secret.
    pub fn signed(secret: &str) -> Self {
        WebhookAuth {
            signing_secret: Some(secret.to_string()),
            ..WebhookAuth::default()
        }
    }

    pub fn with_rate(mut self, per_second: f64, burst: u32) -> Self {
        self.rate_per_second = per_second;
        self.burst = burst;
        self
    }
}

/// The resolved access policy.
#[derive(Debug, Clone, Default)]
pub struct Access {
    tokens: Vec<(String, Role, [u8; 32])>,
    webhooks: BTreeMap<Source, WebhookAuth>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No credential, or a wrong one: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential without the role, or a disabled function: 403.
    #[error("{0}")]
    Forbidden(String),
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Constant-time membership: every candidate is compared.
fn matches_any(given: &[u8; 32], candidates: impl Iterator<Item = [u8; 32]>) -> Option<usize> {
    let mut found = None;
    for (i, c) in candidates.enumerate() {
        if bool::from(given.ct_eq(&c)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

const DEFAULT_RATE: f64 = 500.0;
const DEFAULT_BURST: u32 = 1000;

impl Access {
    /// Reads an access file; relative credential files are relative to it.
    pub fn load(path: &Path) -> Result<Access, AccessError> {
        let text = crate::files::read_text(path).map_err(|e| AccessError::File {
            path: path.to_path_buf(),
            reason: e.reason(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            AccessError::File { reason, .. } => AccessError::File {
                path: path.to_path_buf(),
                reason,
            },
            AccessError::Credential { what, reason } => AccessError::File {
                path: path.to_path_buf(),
                reason: format!("{what}: {reason}"),
            },
        })
    }

    pub fn parse(text: &str, base: &Path) -> Result<Access, AccessError> {
        let file: AccessFile = toml::from_str(text).map_err(|e| AccessError::File {
            path: PathBuf::new(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        let mut access = Access::default();
        for t in &file.api_tokens {
            let value = t.token.resolve(&format!("api_token {:?}", t.name), base)?;
            access.tokens.push((t.name.clone(), t.role, digest(&value)));
        }
        for (source, entry) in &file.webhooks {
            access
                .webhooks
                .insert(*source, webhook_auth(*source, entry, base)?);
        }
        Ok(access)
    }

    /// A token-less policy for tests and local use: these sources take
    /// unauthenticated webhooks.
    pub fn allow_unauthenticated(mut self, sources: &[Source]) -> Self {
        for s in sources {
            self.webhooks.entry(*s).or_default().allow_unauthenticated = true;
        }
        self
    }

    /// Adds an API token (tests, and the `RUNWARDEN_*_TOKEN` shortcuts).
    pub fn with_token(mut self, name: &str, role: Role, token: &str) -> Self {
        self.tokens.push((name.to_string(), role, digest(token)));
        self
    }

    /// Adds a credential for a webhook source.
    pub fn with_webhook(mut self, source: Source, auth: WebhookAuth) -> Self {
        self.webhooks.insert(source, auth);
        self
    }

    pub fn webhook(&self, source: Source) -> Option<&WebhookAuth> {
        self.webhooks.get(&source)
    }

    /// Who is calling, if their bearer token carries at least `needed`.
    pub fn authorize(&self, authorization: Option<&str>, needed: Role) -> Result<String, Refusal> {
        if self.tokens.is_empty() {
            return Err(Refusal::Forbidden(
                "the API is disabled: no API tokens are configured (runwarden serve --access FILE)"
                    .into(),
            ));
        }
        let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return Err(Refusal::Unauthenticated(
                "an `Authorization: Bearer` token is required".into(),
            ));
        };
        let given = digest(token);
        let Some(i) = matches_any(&given, self.tokens.iter().map(|t| t.2)) else {
            return Err(Refusal::Unauthenticated("unknown token".into()));
        };
        let (name, role, _) = &self.tokens[i];
        if *role < needed {
            return Err(Refusal::Forbidden(format!(
                "token {name:?} has role {role:?}; this needs {needed:?}"
            )));
        }
        Ok(format!("http:{name}"))
    }

    /// Checks a webhook's credential (PagerDuty's signature is checked by
    /// its parser with `signing_secret`).
    pub fn check_webhook(
        &self,
        source: Source,
        authorization: Option<&str>,
        shared_secret: Option<&str>,
    ) -> Result<(), Refusal> {
        let Some(auth) = self.webhooks.get(&source) else {
            return Err(Refusal::Forbidden(format!(
                "{} webhooks are not configured in the access file",
                source.name()
            )));
        };
        if auth.allow_unauthenticated {
            return Ok(());
        }
        let ok = match source {
            Source::Alertmanager | Source::Grafana => authorization
                .and_then(|a| matches_any(&digest(a), auth.authorization.iter().copied()))
                .is_some(),
            Source::Opsgenie => match (shared_secret, auth.shared_secret) {
                (Some(given), Some(want)) => bool::from(digest(given).ct_eq(&want)),
                _ => false,
            },
            // Authenticated by its body signature.
            Source::Pagerduty => auth.signing_secret.is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(Refusal::Unauthenticated(format!(
                "missing or wrong {} webhook credential",
                source.name()
            )))
        }
    }
}

fn webhook_auth(source: Source, e: &WebhookEntry, base: &Path) -> Result<WebhookAuth, AccessError> {
    let what = |field: &str| format!("webhooks.{}.{field}", source.name());
    let wrong = |field: &str| AccessError::Credential {
        what: what(field),
        reason: format!("{} webhooks do not use `{field}`", source.name()),
    };
    let mut auth = WebhookAuth {
        allow_unauthenticated: e.allow_unauthenticated,
        rate_per_second: e.rate_per_second.unwrap_or(DEFAULT_RATE),
        burst: e.burst.unwrap_or(DEFAULT_BURST),
        ..WebhookAuth::default()
    };
    if !(auth.rate_per_second > 0.0 && auth.rate_per_second.is_finite()) || auth.burst == 0 {
        return Err(AccessError::Credential {
            what: what("rate_per_second"),
            reason: "rate_per_second and burst must be positive".into(),
        });
    }
    let header_sources = matches!(source, Source::Alertmanager | Source::Grafana);
    if let Some(bearer) = &e.bearer {
        if !header_sources {
            return Err(wrong("bearer"));
        }
        let token = bearer.resolve(&what("bearer"), base)?;
        auth.authorization.push(digest(&format!("Bearer {token}")));
    }
    if let Some(basic) = &e.basic {
        if !header_sources {
            return Err(wrong("basic"));
        }
        use base64::Engine as _;
        let password = basic.password.resolve(&what("basic.password"), base)?;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", basic.username));
        auth.authorization.push(digest(&format!("Basic {encoded}")));
    }
    if let Some(secret) = &e.signing_secret {
        if source != Source::Pagerduty {
            return Err(wrong("signing_secret"));
        }
        auth.signing_secret = Some(secret.resolve(&what("signing_secret"), base)?);
    }
    if let Some(secret) = &e.shared_secret {
        if source != Source::Opsgenie {
            return Err(wrong("shared_secret"));
        }
        auth.shared_secret = Some(digest(&secret.resolve(&what("shared_secret"), base)?));
    }
    let has_credential = !auth.authorization.is_empty()
        || auth.signing_secret.is_some()
        || auth.shared_secret.is_some();
    if !has_credential && !auth.allow_unauthenticated {
        return Err(AccessError::Credential {
            what: format!("webhooks.{}", source.name()),
            reason:
                "no credential: configure one, or say allow_unauthenticated = true (local use only)"
                    .into(),
        });
    }
    Ok(auth)
}

/// One token bucket per source.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: std::sync::Mutex<BTreeMap<Source, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// Takes one token for `source`; `false` means shed the request.
    pub fn admit(&self, source: Source, auth: &WebhookAuth, now: std::time::Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let burst = f64::from(auth.burst);
        let (tokens, last) = buckets.entry(source).or_insert((burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * auth.rate_per_second;
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[api_token]]
name = "dashboard"
role = "viewer"
token = { value = "viewer-token-0123456789" }

[[api_token]]
name = "alice"
role = "approver"
token = { value = "approver-token-0123456789" }

[webhooks.alertmanager]
bearer = { value = "am-bearer-0123456789" }
basic = { username = "am", password = { value = "am-password-0123456789" } }
rate_per_second = 2
burst = 3

[webhooks.opsgenie]
shared_secret = { value = "og-secret-0123456789" }

[webhooks.grafana]
allow_unauthenticated = true
"#;

    fn access() -> Access {
        Access::parse(FILE, Path::new(".")).unwrap()
    }

    #[test]
    fn roles_are_ordered_and_checked() {
        let a = access();
        let viewer = Some("Bearer viewer-token-0123456789");
        let approver = Some("Bearer approver-token-0123456789");
        assert_eq!(a.authorize(viewer, Role::Viewer).unwrap(), "http:dashboard");
        assert!(matches!(
            a.authorize(viewer, Role::Approver),
            Err(Refusal::Forbidden(r)) if r.contains("Viewer")
        ));
        assert_eq!(a.authorize(approver, Role::Approver).unwrap(), "http:alice");
        assert!(matches!(
            a.authorize(approver, Role::Admin),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            a.authorize(None, Role::Viewer),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            a.authorize(Some("Bearer nope"), Role::Viewer),
            Err(Refusal::Unauthenticated(_))
        ));
        assert!(matches!(
            Access::default().authorize(viewer, Role::Viewer),
            Err(Refusal::Forbidden(r)) if r.contains("disabled")
        ));
    }

    #[test]
    fn webhook_credentials_per_source() {
        let a = access();
        let am = Source::Alertmanager;
        assert!(
            a.check_webhook(am, Some("Bearer am-bearer-0123456789"), None)
                .is_ok()
        );
        // "am:am-password-0123456789" in base64.
        assert!(
            a.check_webhook(am, Some("Basic YW06YW0tcGFzc3dvcmQtMDEyMzQ1Njc4OQ=="), None)
                .is_ok()
        );
        assert!(a.check_webhook(am, Some("Bearer wrong"), None).is_err());
        assert!(a.check_webhook(am, None, None).is_err());
        assert!(
            a.check_webhook(Source::Opsgenie, None, Some("og-secret-0123456789"))
                .is_ok()
        );
        assert!(
            a.check_webhook(Source::Opsgenie, None, Some("og-secret-x"))
                .is_err()
        );
        assert!(
            a.check_webhook(Source::Grafana, None, None).is_ok(),
            "explicitly open"
        );
        assert!(matches!(
            a.check_webhook(Source::Pagerduty, None, None),
            Err(Refusal::Forbidden(r)) if r.contains("not configured")
        ));
    }

    #[test]
    fn the_shipped_example_parses_once_its_credentials_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(
            dir.path().join("secrets/approver-token"),
            "approver-token-from-file\n",
        )
        .unwrap();
        let text = include_str!("../../../policies/access.toml.example");
        let vars = [
            "RUNWARDEN_VIEWER_TOKEN",
            "RUNWARDEN_ADMIN_TOKEN",
            "RUNWARDEN_ALERTMANAGER_TOKEN",
            "RUNWARDEN_GRAFANA_PASSWORD",
            "RUNWARDEN_PAGERDUTY_SECRET",
            "RUNWARDEN_OPSGENIE_SECRET",
        ];
        // Values through `value = ...` instead of the process environment
        // (tests run in parallel; the environment is shared).
        let mut text = text.to_string();
        for v in vars {
            text = text.replace(
                &format!("{{ env = \"{v}\" }}"),
                &format!("{{ value = \"{v}-0123456789\" }}"),
            );
        }
        let a = Access::parse(&text, dir.path()).unwrap();
        assert_eq!(
            a.authorize(Some("Bearer approver-token-from-file"), Role::Approver)
                .unwrap(),
            "http:oncall-approver"
        );
        assert!(
            a.webhook(Source::Pagerduty)
                .unwrap()
                .signing_secret
                .is_some()
        );
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let err = |text: &str| Access::parse(text, Path::new(".")).unwrap_err().to_string();
        assert!(err("[webhooks.pagerduty]\n").contains("no credential"));
        assert!(
            err("[webhooks.opsgenie]\nbearer = { value = \"0123456789abcdef\" }\n")
                .contains("do not use `bearer`")
        );
        assert!(
            err("[[api_token]]\nname = \"x\"\nrole = \"viewer\"\ntoken = { value = \"short\" }\n")
                .contains("at least 16")
        );
        assert!(err("[[api_token]]\nname = \"x\"\nrole = \"root\"\ntoken = { value = \"0123456789abcdef\" }\n")
            .contains("unknown variant"));
        assert!(err("[[api_token]]\nname = \"x\"\nrole = \"viewer\"\ntoken = { env = \"RUNWARDEN_NO_SUCH_VAR\" }\n")
            .contains("RUNWARDEN_NO_SUCH_VAR"));
        assert!(
            err("[webhooks.slack]\nallow_unauthenticated = true\n").contains("unknown variant")
        );
    }

    #[test]
    fn a_flood_is_shed_then_the_bucket_refills() {
        let a = access();
        let auth = a.webhook(Source::Alertmanager).unwrap();
        let limiter = RateLimiter::default();
        let t0 = std::time::Instant::now();
        let admitted = (0..10)
            .filter(|_| limiter.admit(Source::Alertmanager, auth, t0))
            .count();
        assert_eq!(admitted, 3, "the burst");
        assert!(!limiter.admit(Source::Alertmanager, auth, t0));
        let later = t0 + std::time::Duration::from_millis(500);
        assert!(
            limiter.admit(Source::Alertmanager, auth, later),
            "2/s refills one in 0.5 s"
        );
        assert!(limiter.admit(Source::Grafana, a.webhook(Source::Grafana).unwrap(), t0));
    }
}

//! Credentials the host adds to a plugin's outgoing requests.
//!
//! A policy binds a secret to an origin and a scheme
//! (`[[grants.http.inject]]`); the host adds it to every request to that
//! origin in the wasi-http send hook, replacing whatever the plugin put in
//! that header. The plugin never receives the value: `secrets.get` refuses
//! a secret bound for injection, and a response that echoes the credential
//! reaches the plugin with it scrubbed. A compromised plugin can therefore
//! use the credential only against the origin it is bound to, never carry
//! it anywhere else its HTTP grant reaches.

use super::http::{HttpGrant, Origin};
use super::secrets::SecretsGrant;
use base64::Engine as _;
use serde::Deserialize;

/// How the credential is written into the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(<username>:<secret>)`.
    Basic,
    /// `<header>: <secret>` (e.g. `X-Auth-Key`).
    Header,
    /// The secret is a whole URL on the bound origin (a Slack incoming
    /// webhook): the request goes to its path and query, whatever path the
    /// plugin wrote.
    Url,
    /// The secret is set as the top-level string `<field>` of the request's
    /// JSON object body (PagerDuty's `routing_key`).
    JsonField,
    /// The secret is `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]`; the
    /// host signs each request with AWS Signature Version 4 for `service`
    /// and `region` (Route 53: `route53`, `us-east-1`).
    AwsSigv4,
}

/// Where an injected credential goes in one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Header { name: String, value: String },
    PathAndQuery(String),
    JsonField { field: String, value: String },
    AwsSigv4(AwsSigning),
}

/// What signing one request with SigV4 needs.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsSigning {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub service: String,
    pub region: String,
    pub time: std::time::SystemTime,
}

impl std::fmt::Debug for AwsSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSigning")
            .field("service", &self.service)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// `[[grants.http.inject]]`: one secret, one origin, one scheme.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    pub origin: Origin,
    /// The name in the host's secret store.
    pub secret: String,
    pub scheme: Scheme,
    /// For `basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For `header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// For `json-field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `aws-sigv4`: the signing name, e.g. "route53".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// For `aws-sigv4`, e.g. "us-east-1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Injection {
    /// Where `secret` goes, and the strings a response must not echo.
    pub fn placement(&self, secret: &str) -> Result<(Placement, Vec<String>), String> {
        let header = |name: &str, value: String| {
            let echoes = vec![secret.to_string(), value.clone()];
            Ok((
                Placement::Header {
                    name: name.to_ascii_lowercase(),
                    value,
                },
                echoes,
            ))
        };
        match self.scheme {
            Scheme::Bearer => header("authorization", format!("Bearer {secret}")),
            Scheme::Basic => {
                let user = self.username.as_deref().unwrap_or_default();
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
                header("authorization", format!("Basic {encoded}"))
            }
            Scheme::Header => header(self.header.as_deref().unwrap_or_default(), secret.into()),
            Scheme::Url => {
                let url = url::Url::parse(secret)
                    .map_err(|_| format!("secret `{}` is not a URL", self.secret))?;
                let on_origin = url.host_str().is_some_and(|h| {
                    self.applies_to(
                        url.scheme() == "https",
                        h,
                        url.port_or_known_default().unwrap_or(0),
                    )
                });
                if !on_origin || !matches!(url.scheme(), "http" | "https") {
                    return Err(format!(
                        "secret `{}` is a URL outside {}, the origin it is bound to",
                        self.secret, self.origin
                    ));
                }
                let path = match url.query() {
                    Some(q) => format!("{}?{q}", url.path()),
                    None => url.path().to_string(),
                };
                Ok((
                    Placement::PathAndQuery(path.clone()),
                    vec![secret.to_string(), path],
                ))
            }
            Scheme::JsonField => Ok((
                Placement::JsonField {
                    field: self.field.clone().unwrap_or_default(),
                    value: secret.to_string(),
                },
                vec![secret.to_string()],
            )),
            Scheme::AwsSigv4 => {
                let parts: Vec<&str> = secret.trim().splitn(3, ':').collect();
                let (Some(key), Some(secret_key)) = (parts.first(), parts.get(1)) else {
                    return Err(format!(
                        "secret `{}` must be ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]",
                        self.secret
                    ));
                };
                if key.is_empty() || secret_key.is_empty() {
                    return Err(format!(
                        "secret `{}` must be ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]",
                        self.secret
                    ));
                }
                let signing = AwsSigning {
                    access_key_id: (*key).to_string(),
                    secret_access_key: (*secret_key).to_string(),
                    session_token: parts.get(2).map(|t| (*t).to_string()),
                    service: self.service.clone().unwrap_or_default(),
                    region: self.region.clone().unwrap_or_default(),
                    time: std::time::SystemTime::now(),
                };
                let mut echoes = vec![secret.to_string(), signing.secret_access_key.clone()];
                echoes.extend(signing.session_token.clone());
                Ok((Placement::AwsSigv4(signing), echoes))
            }
        }
    }

    /// Whether a request to this origin gets the credential.
    pub fn applies_to(&self, https: bool, host: &str, port: u16) -> bool {
        let single = HttpGrant {
            allow: vec![self.origin.clone()],
            allow_private_cidrs: vec![],
            connect_timeout_ms: 0,
            total_timeout_ms: 0,
            inject: vec![],
        };
        super::http::check_origin(&single, https, host, port).is_ok()
    }
}

/// The policy check on injections, at load: each is complete for its
/// scheme, bound to an origin the grant allows, and its secret is not also
/// granted for reading (then the plugin would hold it after all). Errors
/// name the field.
pub fn check(http: &HttpGrant, secrets: Option<&SecretsGrant>) -> Result<(), (String, String)> {
    for (i, inj) in http.inject.iter().enumerate() {
        let field = |f: &str| format!("grants.http.inject[{i}].{f}");
        if !http.allow.contains(&inj.origin) {
            return Err((
                field("origin"),
                format!("{} is not in grants.http.allow", inj.origin),
            ));
        }
        if inj.secret.is_empty() {
            return Err((field("secret"), "names no secret".into()));
        }
        match inj.scheme {
            Scheme::Basic if inj.username.as_deref().is_none_or(str::is_empty) => {
                return Err((field("username"), "`basic` needs a username".into()));
            }
            Scheme::Header => {
                let ok = inj.header.as_deref().is_some_and(|h| {
                    !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        && http::HeaderName::from_bytes(h.as_bytes()).is_ok()
                });
                if !ok {
                    return Err((
                        field("header"),
                        "`header` needs a header name (letters, digits, dashes)".into(),
                    ));
                }
            }
            Scheme::AwsSigv4 => {
                let word = |v: &Option<String>| {
                    v.as_deref().is_some_and(|w| {
                        !w.is_empty()
                            && w.len() <= 64
                            && w.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    })
                };
                if !word(&inj.service) {
                    return Err((
                        field("service"),
                        "`aws-sigv4` needs the service's signing name, e.g. \"route53\"".into(),
                    ));
                }
                if !word(&inj.region) {
                    return Err((
                        field("region"),
                        "`aws-sigv4` needs a region, e.g. \"us-east-1\"".into(),
                    ));
                }
            }
            Scheme::JsonField => {
                let ok = inj.field.as_deref().is_some_and(|f| {
                    !f.is_empty()
                        && f.len() <= 64
                        && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
                if !ok {
                    return Err((
                        field("field"),
                        "`json-field` needs a field name (letters, digits, underscores)".into(),
                    ));
                }
            }
            _ => {}
        }
        if secrets.is_some_and(|s| s.names.contains(&inj.secret)) {
            return Err((
                field("secret"),
                format!(
                    "secret `{}` is also in grants.secrets.names: a secret bound for injection must not be readable by the plugin",
                    inj.secret
                ),
            ));
        }
    }
    Ok(())
}

/// Largest request body the host rewrites to place a JSON field.
const MAX_JSON_BODY: usize = 1 << 20;

/// The request with the credential placed.
pub async fn place(
    mut request: http::Request<wasmtime_wasi_http::WasiBody>,
    placement: Placement,
) -> Result<http::Request<wasmtime_wasi_http::WasiBody>, String> {
    use http_body_util::BodyExt as _;
    match placement {
        Placement::Header { name, value } => {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| "not a header name".to_string())?;
            let mut value = http::HeaderValue::from_str(&value)
                .map_err(|_| "cannot be written into a header".to_string())?;
            value.set_sensitive(true);
            request.headers_mut().remove(&name);
            request.headers_mut().insert(name, value);
            Ok(request)
        }
        Placement::PathAndQuery(path) => {
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = Some(
                path.parse()
                    .map_err(|_| "its URL's path is not valid".to_string())?,
            );
            *request.uri_mut() =
                http::Uri::from_parts(parts).map_err(|_| "its URL is not valid".to_string())?;
            Ok(request)
        }
        Placement::JsonField { field, value } => {
            let (mut parts, body) = request.into_parts();
            let bytes = http_body_util::Limited::new(body, MAX_JSON_BODY)
                .collect()
                .await
                .map_err(|e| format!("request body not read: {e}"))?
                .to_bytes();
            let mut json: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|_| "the request body is not JSON".to_string())?;
            let object = json
                .as_object_mut()
                .ok_or_else(|| "the request body is not a JSON object".to_string())?;
            object.insert(field, serde_json::Value::String(value));
            let bytes = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
            let body = whole_body(&mut parts.headers, bytes);
            Ok(http::Request::from_parts(parts, body))
        }
        Placement::AwsSigv4(signing) => {
            let (mut parts, body) = request.into_parts();
            let bytes = http_body_util::Limited::new(body, MAX_JSON_BODY)
                .collect()
                .await
                .map_err(|e| format!("request body not read: {e}"))?
                .to_bytes()
                .to_vec();
            // The signature is the host's: nothing the plugin wrote in its
            // place survives.
            for h in [
                "authorization",
                "x-amz-date",
                "x-amz-security-token",
                "x-amz-content-sha256",
            ] {
                parts.headers.remove(h);
            }
            let body = whole_body(&mut parts.headers, bytes.clone());
            let mut request = http::Request::from_parts(parts, body);
            sign_v4(&mut request, &bytes, &signing)?;
            Ok(request)
        }
    }
}

/// Signs `request` (whose body is `body`) with AWS SigV4, in place.
pub fn sign_v4<B>(
    request: &mut http::Request<B>,
    body: &[u8],
    signing: &AwsSigning,
) -> Result<(), String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(
            signing.access_key_id.clone(),
            signing.secret_access_key.clone(),
            signing.session_token.clone(),
            None,
            "runwarden-policy",
        )
        .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&signing.region)
        .name(&signing.service)
        .time(signing.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let uri = request.uri().to_string();
    let method = request.method().as_str().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let signable = SignableRequest::new(
        &method,
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("SigV4: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("SigV4: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// A body of `bytes`, read whole, with the `content-length` to match.
pub fn whole_body(headers: &mut http::HeaderMap, bytes: Vec<u8>) -> wasmtime_wasi_http::WasiBody {
    use http_body_util::BodyExt as _;
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    http_body_util::Full::new(bytes::Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Replaces every occurrence of each credential in `body`.
pub fn scrub(body: &[u8], values: &[String]) -> Vec<u8> {
    let mut out = body.to_vec();
    for v in values.iter().filter(|v| v.len() >= 4) {
        let needle = v.as_bytes();
        let mut result = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(needle) {
                result.extend_from_slice(b"[credential removed by runwarden]");
                i += needle.len();
            } else {
                result.push(out[i]);
                i += 1;
            }
        }
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Origin {
        Origin::try_from(s.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn grant(inject: Vec<Injection>) -> HttpGrant {
        HttpGrant {
            allow: vec![
                origin("https://api.cloudflare.com"),
                origin("https://other.example"),
            ],
            allow_private_cidrs: vec![],
            connect_timeout_ms: 1000,
            total_timeout_ms: 1000,
            inject,
        }
    }

    fn bearer(o: &str, secret: &str) -> Injection {
        Injection {
            origin: origin(o),
            secret: secret.into(),
            scheme: Scheme::Bearer,
            username: None,
            header: None,
            field: None,
            service: None,
            region: None,
        }
    }

    #[test]
    fn an_injection_must_name_a_granted_origin_and_an_unreadable_secret() {
        assert!(
            check(
                &grant(vec![bearer("https://api.cloudflare.com", "cf")]),
                None
            )
            .is_ok()
        );
        let err = check(&grant(vec![bearer("https://evil.example", "cf")]), None);
        assert!(matches!(err, Err((f, _)) if f == "grants.http.inject[0].origin"));
        let readable = SecretsGrant {
            names: vec!["cf".into()],
        };
        let err = check(
            &grant(vec![bearer("https://api.cloudflare.com", "cf")]),
            Some(&readable),
        );
        assert!(matches!(err, Err((f, r)) if f.ends_with(".secret") && r.contains("readable")));
        let mut basic = bearer("https://api.cloudflare.com", "cf");
        basic.scheme = Scheme::Basic;
        assert!(check(&grant(vec![basic.clone()]), None).is_err());
        basic.username = Some("runwarden".into());
        assert!(check(&grant(vec![basic]), None).is_ok());
        let mut header = bearer("https://api.cloudflare.com", "cf");
        header.scheme = Scheme::Header;
        header.header = Some("X-Auth: evil\r\n".into());
        assert!(check(&grant(vec![header]), None).is_err());
    }

    fn header(p: Result<(Placement, Vec<String>), String>) -> (String, String) {
        match p {
            Ok((Placement::Header { name, value }, _)) => (name, value),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_scheme_places_the_secret_where_its_api_wants_it() {
        let b = bearer("https://api.cloudflare.com", "cf");
        assert_eq!(
            header(b.placement("t0k")),
            ("authorization".into(), "Bearer t0k".into())
        );
        let basic = Injection {
            scheme: Scheme::Basic,
            username: Some("u".into()),
            ..b.clone()
        };
        assert_eq!(header(basic.placement("p")).1, "Basic dTpw");
        let named = Injection {
            scheme: Scheme::Header,
            header: Some("X-Auth-Key".into()),
            ..b.clone()
        };
        assert_eq!(header(named.placement("k")).0, "x-auth-key");
        let url = Injection {
            origin: origin("https://hooks.slack.com"),
            scheme: Scheme::Url,
            ..b.clone()
        };
        assert_eq!(
            url.placement("https://hooks.slack.com/services/T/B/X?a=1")
                .map(|p| p.0),
            Ok(Placement::PathAndQuery("/services/T/B/X?a=1".into()))
        );
        // A URL somewhere else is never followed.
        assert!(
            url.placement("https://evil.example/services/T/B/X")
                .is_err()
        );
        assert!(
            url.placement("http://hooks.slack.com/services/T/B/X")
                .is_err()
        );
        let field = Injection {
            scheme: Scheme::JsonField,
            field: Some("routing_key".into()),
            ..b.clone()
        };
        assert!(matches!(
            field.placement("R0UTING").map(|p| p.0),
            Ok(Placement::JsonField { field, value }) if field == "routing_key" && value == "R0UTING"
        ));
        assert!(b.applies_to(true, "api.cloudflare.com", 443));
        assert!(!b.applies_to(true, "other.example", 443));
        assert!(!b.applies_to(false, "api.cloudflare.com", 443));
    }

    /// AWS's own test vector (aws-signing-test-suite `v4/get-vanilla`).
    #[test]
    fn sigv4_signs_as_the_aws_test_suite_says() {
        let inj = Injection {
            scheme: Scheme::AwsSigv4,
            service: Some("service".into()),
            region: Some("us-east-1".into()),
            ..bearer("https://example.amazonaws.com", "aws")
        };
        assert!(
            check(
                &HttpGrant {
                    allow: vec![origin("https://example.amazonaws.com")],
                    ..grant(vec![])
                },
                None
            )
            .is_ok()
        );
        let Ok((Placement::AwsSigv4(mut signing), echoes)) =
            inj.placement("AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        else {
            panic!("sigv4 placement")
        };
        assert!(echoes.contains(&"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string()));
        signing.time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let mut request = http::Request::builder()
            .method("GET")
            .uri("https://example.amazonaws.com/")
            .header("host", "example.amazonaws.com")
            .body(())
            .unwrap_or_default();
        assert_eq!(sign_v4(&mut request, b"", &signing), Ok(()));
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(inj.placement("no-colon").is_err());
        let mut missing = inj.clone();
        missing.region = None;
        let g = HttpGrant {
            allow: vec![origin("https://example.amazonaws.com")],
            ..grant(vec![missing])
        };
        assert!(matches!(check(&g, None), Err((f, _)) if f.ends_with(".region")));
    }

    #[test]
    fn echoed_credentials_are_scrubbed() {
        let out = scrub(
            b"{\"you sent\": \"Bearer s3cret-token\"}",
            &["s3cret-token".into()],
        );
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("s3cret-token"), "{text}");
        assert!(text.contains("credential removed"));
    }
}

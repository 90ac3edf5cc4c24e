//! The `http` capability: outbound HTTP through `wasi:http`, to granted
//! origins only, never to an address the operator did not name.
//!
//! Checked in [`HttpCapability::send_request`], the single wasi-http hook
//! every outgoing request passes through:
//!
//! 1. the origin (scheme, host, port) must be in the grant — an exact match,
//!    no wildcards;
//! 2. the host resolves the name itself and drops every address in loopback,
//!    private, link-local, CGNAT, unique-local or cloud-metadata ranges
//!    (169.254.169.254, fd00:ec2::254), after unwrapping IPv4-mapped,
//!    IPv4-compatible and NAT64 IPv6 forms — unless the policy names the
//!    address explicitly (as the origin's IP literal or in
//!    `allow_private_cidrs`). A granted name that an attacker points at
//!    127.0.0.1 therefore gets nowhere;
//! 3. the connection goes to the checked address (no second lookup, so no
//!    rebinding between check and connect), with TLS verified against the
//!    origin's name, and with the grant's connect and total timeouts.
//!
//! Redirects are not followed by the host: a plugin that follows one sends a
//! new request, which is checked again. During read-only calls (`describe`,
//! `plan`, `gather`) only GET, HEAD and OPTIONS are allowed.

pub use super::address::{canonical, check_address, special_range};
use super::{CallMode, Capability, Denied, Recorder, Verdict};
use http::Method;
use http_body_util::BodyExt;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// `[grants.http]` in a policy.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Origins the plugin may call, e.g. "https://api.cloudflare.com" or
    /// "http://127.0.0.1:9090". Scheme, host and port must match exactly.
    pub allow: Vec<Origin>,
    /// Private, loopback or link-local ranges the operator explicitly allows
    /// names to resolve into, e.g. ["10.20.0.0/16"].
    #[serde(default)]
    pub allow_private_cidrs: Vec<IpNet>,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// Deadline for the response head.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
    /// Secrets the host adds to requests to an origin (`credentials.rs`);
    /// the plugin never receives them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inject: Vec<super::credentials::Injection>,
}

fn default_connect_ms() -> u64 {
    3_000
}
fn default_total_ms() -> u64 {
    10_000
}

/// `[requests.http]` in a manifest: optionally the origins the plugin is
/// meant for (a Cloudflare plugin asks for Cloudflare; a Prometheus plugin
/// leaves it to the operator).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    #[serde(default)]
    pub origins: Option<Vec<Origin>>,
}

impl HttpGrant {
    pub fn narrow(&self, request: &HttpRequest) -> HttpGrant {
        let mut narrowed = self.clone();
        if let Some(wanted) = &request.origins {
            narrowed.allow.retain(|o| wanted.contains(o));
        }
        let allowed = narrowed.allow.clone();
        narrowed.inject.retain(|i| allowed.contains(&i.origin));
        narrowed
    }
}

/// An origin: scheme, host and port, parsed and normalised when read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct Origin {
    pub https: bool,
    /// Lower-case host name, or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl Origin {
    pub fn ip_literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl From<Origin> for String {
    fn from(o: Origin) -> String {
        o.to_string()
    }
}

impl TryFrom<String> for Origin {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid origin {s:?}: {why}");
        let url = url::Url::parse(&s).map_err(|e| bad(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in an origin; grant a secret",
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("an origin has no path, query or fragment"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("missing host")),
        };
        if host.contains('*') {
            return Err(bad("wildcards are not supported; list each origin"));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("missing port"))?;
        Ok(Origin { https, host, port })
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Origin::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The policy check on the origin of a request.
pub fn check_origin(grant: &HttpGrant, https: bool, host: &str, port: u16) -> Result<(), Denied> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    // Compare IP literals by value so "::1" and "0:0::1" are the same origin.
    let same_host = |o: &Origin| match (o.ip_literal(), host.parse::<IpAddr>()) {
        (Some(a), Ok(b)) => canonical(a) == canonical(b),
        _ => o.host == host,
    };
    if grant
        .allow
        .iter()
        .any(|o| o.https == https && o.port == port && same_host(o))
    {
        Ok(())
    } else {
        let scheme = if https { "https" } else { "http" };
        Err(Denied(format!(
            "origin {scheme}://{host}:{port} is not granted (granted: {})",
            if grant.allow.is_empty() {
                "none".to_string()
            } else {
                grant
                    .allow
                    .iter()
                    .map(Origin::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )))
    }
}

/// Per-call state of the http capability; the wasi-http hooks.
pub struct HttpCapability {
    pub grant: Arc<HttpGrant>,
    pub mode: CallMode,
    pub recorder: Recorder,
    /// Where injected credentials come from.
    pub secrets: Arc<dyn super::secrets::SecretStore>,
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpCapability {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let grant = self.grant.clone();
        let recorder = self.recorder.clone();
        let mode = self.mode.clone();
        let secrets = self.secrets.clone();
        Box::new(
            async move { send_checked(grant, recorder, mode, secrets, request, options).await },
        )
    }
}

async fn send_checked(
    grant: Arc<HttpGrant>,
    recorder: Recorder,
    mode: CallMode,
    secrets: Arc<dyn super::secrets::SecretStore>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = request.uri().clone();
    let method = request.method().clone();
    let target = format!("{method} {uri}");
    let https = uri.scheme_str() == Some("https");
    let Some(host) = uri.host().map(str::to_string) else {
        return Err(HttpError::HttpRequestUriInvalid);
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let deny = |reason: String, code: HttpError| {
        recorder.record(
            Capability::Http,
            "request",
            &target,
            Verdict::Denied(reason),
        );
        Err(code)
    };

    if let Err(Denied(reason)) = check_origin(&grant, https, &host, port) {
        return deny(reason, HttpError::HttpRequestDenied);
    }
    if !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let origin = format!("{}://{}:{port}", if https { "https" } else { "http" }, host);
        let path = uri.path().to_string();
        if let Err(Denied(reason)) = mode.permit_mutation("request", |b| {
            b.http_request(method.as_str(), &origin, &path)
        }) {
            recorder.record(
                Capability::Http,
                "request",
                &target,
                Verdict::Unplanned(reason),
            );
            return Err(HttpError::HttpRequestDenied);
        }
    }

    // Credentials bound to this origin, placed by the host over whatever the
    // plugin wrote there; their values are scrubbed from the response.
    let mut injected: Vec<String> = Vec::new();
    for inj in grant
        .inject
        .iter()
        .filter(|i| i.applies_to(https, &host, port))
    {
        let failed = |reason: String| {
            recorder.record(
                Capability::Http,
                "request",
                &target,
                Verdict::Failed(reason.clone()),
            );
            Err(HttpError::InternalError(Some(reason)))
        };
        let Some(value) = secrets.get(&inj.secret) else {
            return failed(format!(
                "secret `{}` is bound for injection into {} but has no value in the host's store",
                inj.secret, inj.origin
            ));
        };
        // A secret that would send the request elsewhere is refused.
        let (placement, echoes) = match inj.placement(&value) {
            Ok(p) => p,
            Err(why) => return deny(why, HttpError::HttpRequestDenied),
        };
        request = match super::credentials::place(request, placement).await {
            Ok(r) => r,
            Err(why) => return failed(format!("secret `{}`: {why}", inj.secret)),
        };
        recorder.record(
            Capability::Http,
            "inject",
            &format!("secret `{}` into {}", inj.secret, inj.origin),
            Verdict::Allowed,
        );
        injected.extend(echoes);
    }

    let connect_timeout = Duration::from_millis(grant.connect_timeout_ms).min(
        options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(Duration::MAX),
    );
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = match bare_host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::time::timeout(
            connect_timeout,
            tokio::net::lookup_host((bare_host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(_)) => {
                recorder.record(
                    Capability::Http,
                    "request",
                    &target,
                    Verdict::Failed(format!("cannot resolve {bare_host}")),
                );
                return Err(HttpError::DnsError {
                    rcode: None,
                    info_code: None,
                });
            }
            Err(_) => {
                recorder.record(
                    Capability::Http,
                    "request",
                    &target,
                    Verdict::Failed("DNS timeout".into()),
                );
                return Err(HttpError::DnsTimeout);
            }
        },
    };
    let mut refusals = Vec::new();
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match check_address(&grant, &host, a.ip()) {
            Ok(()) => true,
            Err(Denied(reason)) => {
                refusals.push(reason);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        let reason = if refusals.is_empty() {
            format!("{bare_host} has no addresses")
        } else {
            refusals.join("; ")
        };
        return deny(reason, HttpError::DestinationIpProhibited);
    }

    let total = Duration::from_millis(grant.total_timeout_ms);
    let result = tokio::time::timeout(total, async {
        let stream = connect_any(&allowed, connect_timeout).await?;
        *request.uri_mut() = path_only(&request.uri().clone());
        if https {
            let tls = tls_connect(&bare_host, stream).await?;
            handshake_and_send(TokioIo::new(tls), request).await
        } else {
            handshake_and_send(TokioIo::new(stream), request).await
        }
    })
    .await
    .unwrap_or(Err(HttpError::ConnectionTimeout));
    let result = match result {
        Ok((response, done)) if !injected.is_empty() => scrubbed(response, &injected, total)
            .await
            .map(|r| (r, done)),
        other => other,
    };
    match &result {
        Ok((resp, _)) => recorder.record(
            Capability::Http,
            "request",
            &target,
            if resp.status().is_success() {
                Verdict::Allowed
            } else {
                Verdict::Failed(format!("status {}", resp.status()))
            },
        ),
        Err(e) => recorder.record(
            Capability::Http,
            "request",
            &target,
            Verdict::Failed(format!("{e:?}")),
        ),
    }
    result
}

/// Largest response the host reads whole to scrub injected credentials.
const MAX_SCRUBBED_BYTES: usize = 16 << 20;

/// The response with every injected credential removed from its body
/// (read whole, within the grant's total timeout and a size cap).
async fn scrubbed(
    response: http::Response<WasiBody>,
    credentials: &[String],
    within: Duration,
) -> Result<http::Response<WasiBody>, HttpError> {
    let (mut parts, body) = response.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_SCRUBBED_BYTES);
    let bytes = match tokio::time::timeout(within, limited.collect()).await {
        Err(_) => return Err(HttpError::ConnectionReadTimeout),
        Ok(Err(e)) => {
            return Err(HttpError::InternalError(Some(format!(
                "response not read for credential scrubbing: {e}"
            ))));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let clean = super::credentials::scrub(&bytes, credentials);
    let body = super::credentials::whole_body(&mut parts.headers, clean);
    Ok(http::Response::from_parts(parts, body))
}

fn path_only(uri: &http::Uri) -> http::Uri {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    pq.parse().unwrap_or_else(|_| http::Uri::from_static("/"))
}

async fn connect_any(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<tokio::net::TcpStream, HttpError> {
    let mut last = HttpError::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

async fn tls_connect(
    host: &str,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HttpError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| HttpError::TlsProtocolError)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(HttpError::Tls)
}

async fn handshake_and_send<S>(io: TokioIo<S>, request: http::Request<WasiBody>) -> SendResult
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(HttpError::from)?;
    let io_task: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
        Box::new(async move { conn.await.map_err(HttpError::from) });
    // The connection must be driven while the request is in flight.
    let driver = tokio::spawn(Box::into_pin(io_task));
    let response = sender
        .send_request(request)
        .await
        .map_err(HttpError::from)?;
    let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
    let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async move {
        driver
            .await
            .map_err(|e| HttpError::InternalError(Some(e.to_string())))?
    });
    Ok((response, done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn grant(allow: &[&str], cidrs: &[&str]) -> HttpGrant {
        HttpGrant {
            allow: allow
                .iter()
                .filter_map(|o| Origin::try_from(o.to_string()).ok())
                .collect(),
            allow_private_cidrs: cidrs.iter().filter_map(|c| c.parse().ok()).collect(),
            connect_timeout_ms: 1_000,
            total_timeout_ms: 1_000,
            inject: vec![],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn origins_parse_and_normalise() {
        let o = Origin::try_from("HTTPS://API.Cloudflare.com".to_string());
        assert_eq!(
            o.map(|o| o.to_string()).ok().as_deref(),
            Some("https://api.cloudflare.com:443")
        );
        for bad in [
            "ftp://x",
            "https://u:p@x",
            "https://x/path",
            "https://*.example.com",
            "nonsense",
        ] {
            assert!(Origin::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_must_match_scheme_host_and_port() {
        let g = grant(&["https://api.example.com", "http://127.0.0.1:9090"], &[]);
        assert!(check_origin(&g, true, "api.example.com", 443).is_ok());
        assert!(check_origin(&g, true, "API.EXAMPLE.COM", 443).is_ok());
        assert!(check_origin(&g, false, "api.example.com", 80).is_err());
        assert!(check_origin(&g, true, "api.example.com", 8443).is_err());
        assert!(check_origin(&g, true, "evil.example.com", 443).is_err());
        assert!(check_origin(&g, false, "127.0.0.1", 9090).is_ok());
        assert!(
            check_origin(&g, false, "[::ffff:127.0.0.1]", 9090).is_ok(),
            "same address, other spelling"
        );
    }

    #[test]
    fn special_addresses_are_refused_unless_named() {
        let g = grant(&["https://api.example.com"], &[]);
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(
                check_address(&g, "api.example.com", ip(addr)).is_err(),
                "{addr} must be refused"
            );
        }
        assert!(check_address(&g, "api.example.com", ip("93.184.216.34")).is_ok());
        assert!(check_address(&g, "api.example.com", ip("2606:2800:220:1::1")).is_ok());
    }

    #[test]
    fn a_literal_origin_or_an_allowed_range_names_the_address() {
        let g = grant(&["http://127.0.0.1:9090"], &["10.20.0.0/16"]);
        assert!(check_address(&g, "127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(check_address(&g, "prometheus.internal", ip("10.20.3.4")).is_ok());
        assert!(check_address(&g, "prometheus.internal", ip("10.21.3.4")).is_err());
        assert!(
            check_address(&g, "prometheus.internal", ip("127.0.0.1")).is_err(),
            "a name pointing at loopback"
        );
    }

    #[test]
    fn request_narrows_origins() {
        let g = grant(&["https://a.example", "https://b.example"], &[]);
        let r = HttpRequest {
            origins: Some(vec![
                Origin::try_from("https://b.example".to_string())
                    .unwrap_or_else(|_| unreachable!()),
            ]),
        };
        assert_eq!(g.narrow(&r).allow.len(), 1);
    }
}

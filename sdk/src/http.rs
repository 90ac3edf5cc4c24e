//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request goes through the host, which checks the destination against
//! the plugin's grant (origins, resolved addresses) and applies timeouts. A
//! refused request comes back as `Error::Denied`, so a plugin can report it
//! as a policy denial rather than a network failure.

use crate::Error;
use crate::bindings::source::wasi::http::outgoing_handler;
use crate::bindings::source::wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::source::wasi::io::streams::StreamError;

/// Default cap on a response body read into memory.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        core::str::from_utf8(&self.body)
            .map_err(|e| Error::Failed(format!("response body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Failed(format!("response body is not JSON: {e}")))
    }

    /// `Err(Error::Unavailable)` unless the status is 2xx.
    pub fn success(self) -> Result<Self, Error> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            let snippet: String = String::from_utf8_lossy(&self.body)
                .chars()
                .take(200)
                .collect();
            Err(Error::Unavailable(format!(
                "HTTP status {}: {snippet}",
                self.status
            )))
        }
    }
}

/// GET `url`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, Error> {
    request("GET", url, headers, None, DEFAULT_MAX_BODY)
}

/// POST `body` to `url`.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, Error> {
    request("POST", url, headers, Some(body), DEFAULT_MAX_BODY)
}

/// Sends one request and reads the whole response, up to `max_body` bytes.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    max_body: usize,
) -> Result<Response, Error> {
    let target = Target::parse(url)?;
    // Errors name the endpoint without its query string, which can be long
    // (PromQL) or sensitive.
    let url = url.split('?').next().unwrap_or(url);
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| Error::InvalidInput(format!("header `{name}`: {e:?}")))?;
    }
    let req = OutgoingRequest::new(fields);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    };
    let invalid = |what: &str| Error::InvalidInput(format!("{url}: invalid {what}"));
    req.set_method(&method).map_err(|()| invalid("method"))?;
    req.set_scheme(Some(&target.scheme))
        .map_err(|()| invalid("scheme"))?;
    req.set_authority(Some(&target.authority))
        .map_err(|()| invalid("authority"))?;
    req.set_path_with_query(Some(&target.path_and_query))
        .map_err(|()| invalid("path"))?;
    let outgoing_body = req
        .body()
        .map_err(|()| Error::Failed("request body already taken".into()))?;

    let pending = outgoing_handler::handle(req, None).map_err(|code| from_code(url, code))?;

    // A server may answer before it has read the whole body (an early 413, or
    // one that ignores bodies): a failed write is reported only if no
    // response arrives.
    let mut write_error = None;
    if let Some(bytes) = body {
        let stream = outgoing_body
            .write()
            .map_err(|()| Error::Failed("request body stream unavailable".into()))?;
        for chunk in bytes.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                write_error = Some(Error::Unavailable(format!("{url}: writing body: {e:?}")));
                break;
            }
        }
    }
    if let Err(code) = OutgoingBody::finish(outgoing_body, None) {
        write_error.get_or_insert(from_code(url, code));
    }

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        // The request's own outcome (e.g. a policy denial) explains a failed
        // body write better than the write error does.
        Some(Ok(Err(code))) => return Err(from_code(url, code)),
        Some(Err(())) | None => {
            return Err(write_error
                .unwrap_or_else(|| Error::Failed(format!("{url}: response already taken"))));
        }
    };
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| Error::Failed("response body already taken".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| Error::Failed("response body stream unavailable".into()))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if body.len() + chunk.len() > max_body {
                    return Err(Error::Failed(format!(
                        "{url}: response body larger than {max_body} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::Unavailable(format!(
                    "{url}: reading body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    Ok(Response { status, body })
}

/// Maps a wasi:http error code to the plugin error a host policy decision or
/// network failure deserves.
fn from_code(url: &str, code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::Denied(format!(
            "{url}: the host refused the request (the grant does not allow this origin, or the action's plan does not include this request)"
        )),
        ErrorCode::DestinationIpProhibited => Error::Denied(format!(
            "{url}: the destination resolves to an address the policy forbids"
        )),
        ErrorCode::HttpRequestUriInvalid => Error::InvalidInput(format!("{url}: invalid URI")),
        // The host's own words (e.g. a credential it should add is missing).
        ErrorCode::InternalError(Some(why)) => Error::Unavailable(format!("{url}: {why}")),
        other => Error::Unavailable(format!("{url}: {}", words(&format!("{other:?}")))),
    }
}

/// `ConnectionRefused` → "connection refused": error codes for people.
fn words(debug: &str) -> String {
    let name = debug.split(['(', ' ', '{']).next().unwrap_or(debug);
    let name = name.rsplit("::").next().unwrap_or(name);
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out.replace("dns", "DNS")
        .replace("tls", "TLS")
        .replace("http", "HTTP")
}

/// The parts of an absolute `http://` or `https://` URL.
#[derive(Debug)]
struct Target {
    scheme: Scheme,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidInput(format!("URL `{url}`: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host/path"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad("scheme must be http or https")),
        };
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(i) => {
                let (a, p) = rest.split_at(i);
                let p = if p.starts_with('?') {
                    format!("/{p}")
                } else {
                    p.to_string()
                };
                (a.to_string(), p)
            }
            None => (rest.to_string(), "/".to_string()),
        };
        if authority.is_empty() {
            return Err(bad("missing host"));
        }
        if authority.contains('@') {
            return Err(bad(
                "credentials in URLs are not allowed; use a granted secret",
            ));
        }
        Ok(Target {
            scheme,
            authority,
            path_and_query,
        })
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_read_as_words() {
        assert_eq!(super::words("ConnectionRefused"), "connection refused");
        assert_eq!(super::words("DnsTimeout"), "DNS timeout");
        assert_eq!(
            super::words("ErrorCode::TlsCertificateError"),
            "TLS certificate error"
        );
        assert_eq!(super::words("InternalError(Some(\"x\"))"), "internal error");
    }

    #[test]
    fn parses_urls() -> Result<(), Error> {
        let t = Target::parse("http://127.0.0.1:9090/api/v1/query_range?query=up")?;
        assert!(matches!(t.scheme, Scheme::Http));
        assert_eq!(t.authority, "127.0.0.1:9090");
        assert_eq!(t.path_and_query, "/api/v1/query_range?query=up");
        let t = Target::parse("https://example.com")?;
        assert_eq!(t.path_and_query, "/");
        let t = Target::parse("https://example.com?x=1")?;
        assert_eq!(t.path_and_query, "/?x=1");
        Ok(())
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("no-scheme").is_err());
        assert!(Target::parse("http:///path").is_err());
        assert!(Target::parse("http://user:pw@host/").is_err());
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(
            encode_query_value("rate(x{a=\"b\"}[5m])"),
            "rate%28x%7Ba%3D%22b%22%7D%5B5m%5D%29"
        );
    }
}

//! Typed changes for plans and outcomes.
//!
//! A tool's `plan` lists what `execute` will do as typed effects; the host
//! judges them (replica bounds, cooldown, oscillation, tiers) and, while
//! `execute` runs, lets through only the mutating calls that match one. So
//! plan exactly what execute will call: the same object, the same replica
//! count, the same pods, the same annotation keys, the same HTTP method,
//! origin and path. Anything else is refused with `denied("not in the
//! approved plan: …")` and the action ends as a fault.

use crate::{
    AnnotateChange, Change, ChangeEffect, DnsRecordChange, HttpRequestChange, ObjectRef,
    RestartPodsChange, RollbackChange, ScaleChange,
};

/// A namespaced object.
pub fn object(kind: &str, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// A Deployment.
pub fn deployment(namespace: &str, name: &str) -> ObjectRef {
    object("Deployment", namespace, name)
}

fn change(effect: ChangeEffect, description: String) -> Change {
    Change {
        effect,
        description,
    }
}

/// Set a Deployment's replicas from `from` to `to`.
pub fn scale(namespace: &str, name: &str, from: u32, to: u32) -> Change {
    change(
        ChangeEffect::Scale(ScaleChange {
            target: deployment(namespace, name),
            from_replicas: from,
            to_replicas: to,
        }),
        format!("scale deployment {namespace}/{name}: {from} -> {to} replicas"),
    )
}

/// Roll a Deployment back from one revision to another.
pub fn rollback(namespace: &str, name: &str, from_revision: u64, to_revision: u64) -> Change {
    change(
        ChangeEffect::Rollback(RollbackChange {
            target: deployment(namespace, name),
            from_revision,
            to_revision,
        }),
        format!(
            "roll back deployment {namespace}/{name}: revision {from_revision} -> revision {to_revision}"
        ),
    )
}

/// Delete exactly these pods of a Deployment (the controller recreates them).
pub fn restart_pods(namespace: &str, deployment_name: &str, pods: &[String]) -> Change {
    change(
        ChangeEffect::RestartPods(RestartPodsChange {
            target: deployment(namespace, deployment_name),
            pods: pods.to_vec(),
        }),
        format!(
            "restart {} pod(s) of deployment {namespace}/{deployment_name}: {}",
            pods.len(),
            pods.join(", ")
        ),
    )
}

/// Write these annotation keys on an object.
pub fn annotate(target: ObjectRef, keys: &[&str]) -> Change {
    let description = format!(
        "annotate {} {}/{}: {}",
        target.kind,
        target.namespace,
        target.name,
        keys.join(", ")
    );
    change(
        ChangeEffect::Annotate(AnnotateChange {
            target,
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }),
        description,
    )
}

/// Ask cert-manager to re-issue a Certificate.
pub fn renew_certificate(namespace: &str, name: &str) -> Change {
    change(
        ChangeEffect::CertificateRenewal(object("Certificate", namespace, name)),
        format!("re-issue certificate {namespace}/{name}"),
    )
}

/// Point a DNS record elsewhere.
pub fn dns_record(zone: &str, record: &str, from: Option<&str>, to: &str) -> Change {
    change(
        ChangeEffect::DnsRecord(DnsRecordChange {
            zone: zone.to_string(),
            name: record.to_string(),
            from_value: from.map(str::to_string),
            to_value: to.to_string(),
        }),
        format!(
            "point {record} ({zone}) from {} to {to}",
            from.unwrap_or("(none)")
        ),
    )
}

/// An HTTP request that changes something (any method but GET, HEAD,
/// OPTIONS). `origin` is `scheme://host[:port]`; `path` is exact, or ends in
/// `/*` for anything under it, or is `*` for any path on the origin.
pub fn http_request(method: &str, origin: &str, path: &str) -> Change {
    change(
        ChangeEffect::HttpRequest(HttpRequestChange {
            method: method.to_ascii_uppercase(),
            origin: origin.to_string(),
            path: path.to_string(),
        }),
        format!("{} {origin}{path}", method.to_ascii_uppercase()),
    )
}

/// `scheme://host[:port]` of a URL, for [`http_request`].
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// The path of a URL without its query, for [`http_request`].
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or("/").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        assert_eq!(
            origin_of("https://hooks.slack.com/services/T/B/x?a=1").as_deref(),
            Some("https://hooks.slack.com")
        );
        assert_eq!(
            path_of("https://hooks.slack.com/services/T/B/x?a=1"),
            "/services/T/B/x"
        );
        assert_eq!(path_of("http://127.0.0.1:9/"), "/");
        assert_eq!(path_of("http://127.0.0.1:9"), "/");
        assert_eq!(origin_of("nonsense"), None);
    }
}

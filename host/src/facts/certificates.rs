//! Certificate facts: the certificates an alert names (or, when it names
//! none, the troubled ones of its namespace), with what a cluster shows of
//! why they cannot be issued — and whether their issuer has got past it.

use super::{Fact, Facts};
use crate::capability::k8s::sim::{ClusterState, SimCertificate};
use std::collections::BTreeMap;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The certificate facts of namespace `ns` for an alert with `labels`.
pub fn derive(
    view: &ClusterState,
    labels: &BTreeMap<String, String>,
    ns: &str,
    now_ms: i64,
    facts: &mut Facts,
) {
    let label = |k: &str| labels.get(k).map(String::as_str);
    // `name` names a certificate only in cert-manager's own series
    // (cAdvisor and others use `name` for other things).
    let cert_manager = super::workload::from_cert_manager(labels);
    let cert_named = label("certificate").or_else(|| cert_manager.then(|| label("name")).flatten());
    for c in view.certificates.iter().filter(|c| c.namespace == ns) {
        let days_left = c.not_after.map(|t| (t - now_ms).div_euclid(DAY_MS));
        let named = cert_named == Some(c.name.as_str());
        let troubled = !c.ready || days_left.is_some_and(|d| d < 30);
        if named || (cert_named.is_none() && troubled) {
            // What a cluster shows: the latest warning of the
            // certificate or of its requests, orders and challenges
            // (named after it), else its Ready condition's message.
            let warning = view
                .events
                .iter()
                .filter(|e| e.namespace == ns && e.event_type == "Warning")
                .filter(|e| {
                    ["Certificate", "CertificateRequest", "Order", "Challenge"]
                        .contains(&e.object_kind.as_str())
                })
                .filter(|e| {
                    e.object_name == c.name || e.object_name.starts_with(&format!("{}-", c.name))
                })
                .max_by_key(|e| e.last_seen);
            facts.push(Fact::Certificate {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                days_left,
                ready: c.ready,
                last_error: warning
                    .map(|e| format!("{} {}: {}", e.object_kind, e.reason, e.message))
                    .or_else(|| (!c.ready).then(|| c.ready_message.clone()).flatten()),
                issuer_recovered: warning.is_some_and(|w| issued_since(view, c, w.last_seen)),
            });
        }
    }
}

/// Whether the certificate's issuer has issued another certificate of the
/// namespace since `since` (a failure of this one): the failure is then not
/// the issuer's present state, and cert-manager's retry back-off (up to 32
/// hours after a failed issuance) is all that keeps this one waiting.
fn issued_since(view: &ClusterState, c: &SimCertificate, since: i64) -> bool {
    view.certificates
        .iter()
        .filter(|o| o.namespace == c.namespace && o.name != c.name && o.issuer == c.issuer)
        .any(|o| {
            view.events.iter().any(|e| {
                e.namespace == o.namespace
                    && e.object_kind == "Certificate"
                    && e.object_name == o.name
                    && e.event_type == "Normal"
                    && e.reason == "Issuing"
                    && e.message.contains("successfully issued")
                    && e.last_seen > since
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: serde_json::Value) -> ClusterState {
        serde_json::from_value(json).expect("cluster state")
    }

    /// The certificate facts of namespace `shop` for an alert's labels.
    fn derived(v: &ClusterState, labels: &[(&str, &str)]) -> Vec<Fact> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let mut facts = Facts::default();
        derive(v, &BTreeMap::from_iter(labels), "shop", 0, &mut facts);
        facts.items
    }

    /// A failure the issuer has since got past (it issued a sibling after
    /// it) is only a back-off; one it has not, or another issuer's success,
    /// says nothing about this one.
    #[test]
    fn an_issuer_that_issued_since_the_failure_has_recovered() {
        let state = |sibling_issuer: &str, issued_at: i64| {
            view(serde_json::json!({
                "certificates": [
                    {"namespace": "shop", "name": "api-tls", "secret_name": "api-tls", "issuer": "le"},
                    {"namespace": "shop", "name": "www-tls", "secret_name": "www-tls", "issuer": sibling_issuer}
                ],
                "events": [
                    {"namespace": "shop", "object_kind": "Challenge", "object_name": "api-tls-7-1-2",
                     "event_type": "Warning", "reason": "Failed", "message": "acme: 403 caa", "last_seen": 1000},
                    {"namespace": "shop", "object_kind": "Certificate", "object_name": "www-tls",
                     "event_type": "Normal", "reason": "Issuing",
                     "message": "The certificate has been successfully issued", "last_seen": issued_at}
                ]
            }))
        };
        let recovered = |v: &ClusterState| {
            derived(
                v,
                &[
                    ("alertname", "CertManagerCertExpirySoon"),
                    ("name", "api-tls"),
                ],
            )
            .iter()
            .find_map(|f| match f {
                Fact::Certificate {
                    issuer_recovered,
                    last_error,
                    ..
                } => Some((*issuer_recovered, last_error.is_some())),
                _ => None,
            })
        };
        assert_eq!(recovered(&state("le", 2000)), Some((true, true)));
        assert_eq!(recovered(&state("le", 500)), Some((false, true)));
        assert_eq!(recovered(&state("other", 2000)), Some((false, true)));
    }

    /// The cert-manager mixin's alerts aggregate away the job label; their
    /// `name` is still a Certificate's. Another alert's `name` is not.
    #[test]
    fn a_cert_manager_mixin_alert_names_its_certificate_without_a_job_label() {
        let v = view(serde_json::json!({"certificates": [
            {"namespace": "shop", "name": "api-tls", "secret_name": "api-tls", "issuer": "le",
             "ready": false, "ready_message": "Issuing certificate as Secret does not exist"},
            {"namespace": "shop", "name": "www-tls", "secret_name": "www-tls", "issuer": "le"}
        ]}));
        let named = |labels: &[(&str, &str)]| -> Vec<String> {
            derived(&v, labels)
                .iter()
                .filter_map(|f| match f {
                    Fact::Certificate { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            named(&[
                ("alertname", "CertManagerCertNotReady"),
                ("name", "www-tls")
            ]),
            ["www-tls"]
        );
        // Not cert-manager's series: `name` means something else, so the
        // troubled certificates of the namespace are described instead.
        assert_eq!(
            named(&[("alertname", "ContainerOOM"), ("name", "www-tls")]),
            ["api-tls"]
        );
    }
}

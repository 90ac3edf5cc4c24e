//! Simulated cert-manager Certificates.
//!
//! A scenario ships a certificate with an absolute `not_after` or, so that it
//! stays meaningful as time passes, `expires_in_hours` relative to when the
//! cluster is loaded. A renewal issues a new certificate at once (revision + 1,
//! a fresh validity period) unless `issuance_fails` names why the issuer
//! refuses, in which case the certificate turns not ready with that message.

use super::{ClusterState, now_ms};
use crate::bindings::k8s::Certificate;
use crate::capability::k8s::BackendError;
use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCertificate {
    pub namespace: String,
    pub name: String,
    pub secret_name: String,
    #[serde(default)]
    pub dns_names: Vec<String>,
    pub issuer: String,
    #[serde(default = "yes")]
    pub ready: bool,
    #[serde(default)]
    pub ready_message: Option<String>,
    #[serde(default)]
    pub not_after: Option<i64>,
    /// Sets `not_after` relative to load time; cleared once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_hours: Option<i64>,
    #[serde(default)]
    pub renewal_time: Option<i64>,
    #[serde(default = "first_revision")]
    pub revision: u64,
    /// Validity of a newly issued certificate (cert-manager's default: 90 days).
    #[serde(default = "ninety_days")]
    pub duration_hours: i64,
    /// When set, the issuer refuses to issue, with this message.
    #[serde(default)]
    pub issuance_fails: Option<String>,
}

impl SimCertificate {
    pub(super) fn shift_times(&mut self, delta_ms: i64) {
        for t in [&mut self.not_after, &mut self.renewal_time]
            .into_iter()
            .flatten()
        {
            *t += delta_ms;
        }
    }
}

fn yes() -> bool {
    true
}
fn first_revision() -> u64 {
    1
}
fn ninety_days() -> i64 {
    90 * 24
}

impl SimCertificate {
    /// A certificate as a real cluster reported it, in the model's shape.
    pub fn from_observed(c: &Certificate) -> Self {
        SimCertificate {
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            secret_name: c.secret_name.clone(),
            dns_names: c.dns_names.clone(),
            issuer: c.issuer.clone(),
            ready: c.ready,
            ready_message: c.ready_message.clone(),
            not_after: c.not_after,
            expires_in_hours: None,
            renewal_time: c.renewal_time,
            revision: c.revision.unwrap_or(1),
            duration_hours: ninety_days(),
            issuance_fails: None,
        }
    }

    pub(super) fn to_wit(&self) -> Certificate {
        Certificate {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            secret_name: self.secret_name.clone(),
            dns_names: self.dns_names.clone(),
            issuer: self.issuer.clone(),
            ready: self.ready,
            ready_message: self.ready_message.clone(),
            not_after: self.not_after,
            renewal_time: self.renewal_time,
            revision: Some(self.revision),
            issuing: false,
        }
    }
}

/// Resolves relative expiry times against the current clock.
pub(super) fn anchor_times(state: &mut ClusterState) {
    let now = now_ms();
    for c in &mut state.certificates {
        if let Some(hours) = c.expires_in_hours.take() {
            c.not_after = Some(now.saturating_add(hours.saturating_mul(HOUR_MS)));
        }
    }
}

impl ClusterState {
    fn certificate_mut(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Result<&mut SimCertificate, BackendError> {
        self.certificates
            .iter_mut()
            .find(|c| c.namespace == ns && c.name == name)
            .ok_or_else(|| BackendError::NotFound(format!("certificate {ns}/{name}")))
    }

    pub(super) fn list_certificates(&self, ns: &str) -> Vec<Certificate> {
        self.certificates
            .iter()
            .filter(|c| c.namespace == ns)
            .map(SimCertificate::to_wit)
            .collect()
    }

    pub(super) fn get_certificate(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Certificate, BackendError> {
        self.certificates
            .iter()
            .find(|c| c.namespace == ns && c.name == name)
            .map(SimCertificate::to_wit)
            .ok_or_else(|| BackendError::NotFound(format!("certificate {ns}/{name}")))
    }

    /// Issues a new certificate at once, or records why the issuer refused.
    pub(super) fn renew_certificate(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Result<Certificate, BackendError> {
        let now = now_ms();
        let cert = self.certificate_mut(ns, name)?;
        let (event_type, reason, message) = match cert.issuance_fails.clone() {
            Some(why) => {
                cert.ready = false;
                cert.ready_message = Some(why.clone());
                ("Warning", "Failed", why)
            }
            None => {
                let validity = cert.duration_hours.saturating_mul(HOUR_MS);
                cert.revision += 1;
                cert.not_after = Some(now.saturating_add(validity));
                cert.renewal_time = Some(now.saturating_add(validity / 3 * 2));
                cert.ready = true;
                cert.ready_message = Some("Certificate is up to date and has not expired".into());
                (
                    "Normal",
                    "Issuing",
                    "The certificate has been successfully issued".to_string(),
                )
            }
        };
        let renewed = cert.to_wit();
        self.event(ns, "Certificate", name, reason, message);
        if let Some(e) = self.events.last_mut() {
            e.event_type = event_type.into();
        }
        Ok(renewed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(fails: Option<&str>) -> ClusterState {
        let doc = serde_json::json!({"certificates": [{
            "namespace": "payments", "name": "api-tls", "secret_name": "api-tls",
            "issuer": "letsencrypt", "expires_in_hours": 72, "issuance_fails": fails}]});
        let mut s: ClusterState = serde_json::from_value(doc).unwrap();
        anchor_times(&mut s);
        s
    }

    #[test]
    fn relative_expiry_is_anchored_at_load_time() {
        let s = state(None);
        let c = s.get_certificate("payments", "api-tls").unwrap();
        let hours_left = (c.not_after.unwrap() - now_ms()) / HOUR_MS;
        assert!((71..=72).contains(&hours_left), "{hours_left}");
        assert!(s.certificates[0].expires_in_hours.is_none());
    }

    #[test]
    fn renewal_issues_a_new_certificate() {
        let mut s = state(None);
        let before = s.get_certificate("payments", "api-tls").unwrap();
        let after = s.renew_certificate("payments", "api-tls").unwrap();
        assert_eq!(after.revision, Some(2));
        assert!(after.ready && after.not_after > before.not_after);
        assert!(
            s.events
                .iter()
                .any(|e| e.reason == "Issuing" && e.event_type == "Normal")
        );
    }

    #[test]
    fn a_failing_issuer_leaves_the_old_certificate_and_says_why() {
        let mut s = state(Some("ACME account is deactivated"));
        let before = s.get_certificate("payments", "api-tls").unwrap();
        let after = s.renew_certificate("payments", "api-tls").unwrap();
        assert_eq!(after.revision, before.revision);
        assert_eq!(after.not_after, before.not_after);
        assert!(!after.ready);
        assert_eq!(
            after.ready_message.as_deref(),
            Some("ACME account is deactivated")
        );
        assert!(
            s.events
                .iter()
                .any(|e| e.reason == "Failed" && e.event_type == "Warning")
        );
        assert!(s.renew_certificate("payments", "nope").is_err());
    }
}

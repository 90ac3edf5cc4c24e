//! cert-manager `Certificate`s on a real cluster, as untyped objects: no
//! cert-manager crate is needed for the handful of fields we read.
//!
//! Renewal does what `cmctl renew` does: it sets the `Issuing` status
//! condition to True (reason `ManuallyTriggered`) through the status
//! subresource, sending back the object it read so the API server's
//! resourceVersion check rejects a concurrent change instead of losing it.

use super::backend::BackendError;
use super::kube_backend::{KubeBackend, map_err};
use crate::bindings::k8s::Certificate;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

fn certificates_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn timestamp(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
}

/// Reads a Certificate object; missing status fields stay `none`.
pub fn to_certificate(obj: &DynamicObject) -> Certificate {
    let spec = &obj.data["spec"];
    let status = &obj.data["status"];
    let ready = condition(status, "Ready");
    Certificate {
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        name: obj.metadata.name.clone().unwrap_or_default(),
        secret_name: spec["secretName"].as_str().unwrap_or_default().to_string(),
        dns_names: spec["dnsNames"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        issuer: spec["issuerRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        ready: ready.is_some_and(|c| c["status"] == "True"),
        ready_message: ready.and_then(|c| c["message"].as_str().map(str::to_string)),
        not_after: timestamp(&status["notAfter"]),
        renewal_time: timestamp(&status["renewalTime"]),
        revision: status["revision"].as_u64(),
        issuing: condition(status, "Issuing").is_some_and(|c| c["status"] == "True"),
    }
}

/// Sets the `Issuing` condition to True, replacing an existing one.
pub fn mark_issuing(obj: &mut DynamicObject, now: chrono::DateTime<chrono::Utc>) {
    let generation = obj.metadata.generation;
    let issuing = serde_json::json!({
        "type": "Issuing",
        "status": "True",
        "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance manually triggered by runwarden",
        "lastTransitionTime": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "observedGeneration": generation,
    });
    if !obj.data["status"].is_object() {
        obj.data["status"] = serde_json::json!({});
    }
    let status = &mut obj.data["status"];
    if !status["conditions"].is_array() {
        status["conditions"] = Value::Array(vec![]);
    }
    if let Some(conditions) = status["conditions"].as_array_mut() {
        conditions.retain(|c| c["type"] != "Issuing");
        conditions.push(issuing);
    }
}

impl KubeBackend {
    fn certificates(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(), ns, &certificates_resource())
    }

    pub(super) async fn list_certs(&self, ns: &str) -> Result<Vec<Certificate>, BackendError> {
        let list = self
            .certificates(ns)
            .list(&ListParams::default())
            .await
            .map_err(|e| map_err(e, "certificates", ns, ""))?;
        Ok(list.items.iter().map(to_certificate).collect())
    }

    pub(super) async fn get_cert(&self, ns: &str, name: &str) -> Result<Certificate, BackendError> {
        let obj = self
            .certificates(ns)
            .get(name)
            .await
            .map_err(|e| map_err(e, "certificate", ns, name))?;
        Ok(to_certificate(&obj))
    }

    pub(super) async fn renew_cert(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Certificate, BackendError> {
        let api = self.certificates(ns);
        let mut obj = api
            .get(name)
            .await
            .map_err(|e| map_err(e, "certificate", ns, name))?;
        if to_certificate(&obj).issuing {
            // Already being issued: asking again changes nothing.
            return Ok(to_certificate(&obj));
        }
        mark_issuing(&mut obj, chrono::Utc::now());
        let body = serde_json::to_vec(&obj)
            .map_err(|e| BackendError::Failed(format!("certificate {ns}/{name}: {e}")))?;
        let updated = api
            .replace_status(name, &PostParams::default(), body)
            .await
            .map_err(|e| map_err(e, "certificate", ns, name))?;
        Ok(to_certificate(&updated))
    }
}

#[cfg(test)]
mod tests {
    //! Against kube-rs's mocked service: the requests we send and how we
    //! read the answers. No kube-apiserver or cert-manager runs here.
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    fn cert_json(issuing: bool) -> Value {
        let mut conditions = vec![serde_json::json!({"type": "Ready", "status": "True",
            "message": "Certificate is up to date and has not expired"})];
        if issuing {
            conditions.push(serde_json::json!({"type": "Issuing", "status": "True"}));
        }
        serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "payment-api-tls", "namespace": "payments", "generation": 3,
                         "resourceVersion": "41"},
            "spec": {"secretName": "payment-api-tls", "dnsNames": ["pay.example.com"],
                     "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"}},
            "status": {"conditions": conditions, "notAfter": "2026-12-02T10:00:00Z",
                       "renewalTime": "2026-11-01T10:00:00Z", "revision": 4}
        })
    }

    fn respond(body: &Value) -> Response<Body> {
        Response::builder()
            .status(200)
            .body(Body::from(body.to_string().into_bytes()))
            .unwrap_or_else(|_| unreachable!("static response"))
    }

    #[test]
    fn reads_status_fields() {
        let obj: DynamicObject = serde_json::from_value(cert_json(false)).unwrap();
        let c = to_certificate(&obj);
        assert_eq!(c.issuer, "letsencrypt-prod");
        assert_eq!(c.dns_names, vec!["pay.example.com"]);
        assert!(c.ready && !c.issuing);
        assert_eq!(c.revision, Some(4));
        assert_eq!(c.not_after, Some(1_796_205_600_000));
    }

    #[tokio::test]
    async fn renew_sets_the_issuing_condition_through_the_status_subresource() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::with_client(kube::Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            let (req, send) = handle.next_request().await.expect("GET");
            seen.push(format!("{} {}", req.method(), req.uri().path()));
            send.send_response(respond(&cert_json(false)));
            let (req, send) = handle.next_request().await.expect("PUT status");
            seen.push(format!("{} {}", req.method(), req.uri().path()));
            let body = req.into_body().collect_bytes().await.expect("body");
            let sent: Value = serde_json::from_slice(&body).expect("json");
            send.send_response(respond(&sent));
            (seen, sent)
        });
        let c = backend.renew_cert("payments", "payment-api-tls").await;
        assert!(c.is_ok_and(|c| c.issuing));
        let (seen, sent) = server.await.expect("mock server");
        let path = "/apis/cert-manager.io/v1/namespaces/payments/certificates/payment-api-tls";
        assert_eq!(
            seen,
            vec![format!("GET {path}"), format!("PUT {path}/status")]
        );
        assert_eq!(
            sent["metadata"]["resourceVersion"], "41",
            "optimistic concurrency"
        );
        let issuing = condition(&sent["status"], "Issuing").expect("Issuing condition");
        assert_eq!(issuing["reason"], "ManuallyTriggered");
        assert_eq!(issuing["observedGeneration"], 3);
        assert!(
            condition(&sent["status"], "Ready").is_some(),
            "other conditions kept"
        );
    }

    #[tokio::test]
    async fn renew_of_a_certificate_already_issuing_writes_nothing() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::with_client(kube::Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("GET");
            send.send_response(respond(&cert_json(true)));
            handle.next_request().await.is_none()
        });
        let c = backend.renew_cert("payments", "payment-api-tls").await;
        assert!(c.is_ok_and(|c| c.issuing));
        drop(backend);
        assert!(server.await.expect("mock server"), "no second request");
    }
}

//! The Lease as a `coordination.k8s.io/v1` object, through kube-rs. Writes
//! carry the `resourceVersion` read, so the API server refuses (409) a
//! write based on a stale read: that is what makes the election safe.

use super::elector::{LeaseError, LeaseRecord, LeaseStore};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

pub struct KubeLease {
    api: Api<Lease>,
    name: String,
    namespace: String,
}

impl KubeLease {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        KubeLease {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    fn to_object(&self, lease: &LeaseRecord) -> Lease {
        let time = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(MicroTime)
        };
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                resource_version: (!lease.version.is_empty()).then(|| lease.version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: lease.holder.clone(),
                lease_duration_seconds: i32::try_from(lease.duration_s).ok(),
                acquire_time: time(lease.acquired_ms),
                renew_time: time(lease.renewed_ms),
                lease_transitions: i32::try_from(lease.transitions).ok(),
                ..LeaseSpec::default()
            }),
        }
    }
}

fn to_record(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        duration_s: spec
            .lease_duration_seconds
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(15),
        acquired_ms: spec.acquire_time.map(|t| t.0.timestamp_millis()),
        renewed_ms: spec.renew_time.map(|t| t.0.timestamp_millis()),
        transitions: spec
            .lease_transitions
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
    }
}

fn classify(e: kube::Error) -> LeaseError {
    match e {
        kube::Error::Api(s) if s.code == 409 => LeaseError::Conflict,
        other => LeaseError::Unavailable(other.to_string()),
    }
}

#[async_trait::async_trait]
impl LeaseStore for KubeLease {
    async fn get(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        let lease = self.api.get_opt(&self.name).await.map_err(classify)?;
        Ok(lease.as_ref().map(to_record))
    }

    async fn create(&self, lease: &LeaseRecord) -> Result<LeaseRecord, LeaseError> {
        let created = self
            .api
            .create(&PostParams::default(), &self.to_object(lease))
            .await
            .map_err(classify)?;
        Ok(to_record(&created))
    }

    async fn replace(&self, lease: &LeaseRecord) -> Result<LeaseRecord, LeaseError> {
        let replaced = self
            .api
            .replace(&self.name, &PostParams::default(), &self.to_object(lease))
            .await
            .map_err(classify)?;
        Ok(to_record(&replaced))
    }
}

#[cfg(test)]
mod tests {
    //! Against kube-rs's mocked service; no API server runs here.
    use super::*;
    use crate::leader::{Elector, ElectorConfig, Leadership};
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn respond(status: u16, body: &Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .body(Body::from(body.to_string().into_bytes()))
            .unwrap_or_else(|_| unreachable!("static response"))
    }

    fn status_409() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": "Operation cannot be fulfilled on leases.coordination.k8s.io \"runwarden\": the object has been modified",
               "reason": "Conflict", "code": 409})
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": "leases.coordination.k8s.io \"runwarden\" not found", "reason": "NotFound", "code": 404})
    }

    fn elector(service: tower_test::mock::Mock<Request<Body>, Response<Body>>) -> Elector {
        let store = KubeLease::new(kube::Client::new(service, "default"), "ops", "runwarden");
        Elector::new(Arc::new(store), ElectorConfig::new("replica-a"))
    }

    #[tokio::test]
    async fn a_missing_lease_is_created_with_us_as_holder() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (req, send) = handle.next_request().await.expect("GET");
            assert_eq!(
                req.uri().path(),
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/runwarden"
            );
            send.send_response(respond(404, &not_found()));
            let (req, send) = handle.next_request().await.expect("POST");
            assert_eq!(req.method(), "POST");
            let body: Value =
                serde_json::from_slice(&req.into_body().collect_bytes().await.expect("body"))
                    .expect("json");
            let mut stored = body.clone();
            stored["metadata"]["resourceVersion"] = json!("7");
            send.send_response(respond(201, &stored));
            body
        });
        let leadership = Leadership::elected("test".into());
        let round = elector(service).round(&leadership).await;
        assert_eq!(round, crate::leader::elector::Round::Leading);
        assert!(leadership.is_leader());
        let sent = server.await.expect("mock server");
        assert_eq!(sent["spec"]["holderIdentity"], "replica-a");
        assert_eq!(sent["spec"]["leaseDurationSeconds"], 15);
        assert!(sent["metadata"].get("resourceVersion").is_none());
    }

    #[tokio::test]
    async fn a_lost_race_is_a_conflict_and_we_stay_standby() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("GET");
            // Released by its last holder: anyone may take it.
            send.send_response(respond(
                200,
                &json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "runwarden", "namespace": "ops", "resourceVersion": "41"},
                "spec": {"leaseDurationSeconds": 15, "leaseTransitions": 3}}),
            ));
            let (req, send) = handle.next_request().await.expect("PUT");
            assert_eq!(req.method(), "PUT");
            let body: Value =
                serde_json::from_slice(&req.into_body().collect_bytes().await.expect("body"))
                    .expect("json");
            send.send_response(respond(409, &status_409()));
            body
        });
        let leadership = Leadership::elected("test".into());
        let round = elector(service).round(&leadership).await;
        assert!(
            matches!(round, crate::leader::elector::Round::Standby { .. }),
            "{round:?}"
        );
        assert!(!leadership.is_leader());
        let sent = server.await.expect("mock server");
        assert_eq!(
            sent["metadata"]["resourceVersion"], "41",
            "conditional on the version read"
        );
        assert_eq!(
            sent["spec"]["leaseTransitions"], 3,
            "a released lease is not a transition"
        );
    }
}

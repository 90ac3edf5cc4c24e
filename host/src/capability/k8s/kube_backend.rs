//! A real cluster through kube-rs (kubeconfig or in-cluster service account).
//!
//! The host's credentials stay here; plugins only ever reach this code
//! through the checked k8s capability. Rollback follows `kubectl rollout
//! undo`: find the ReplicaSet of the target revision and copy its pod
//! template into the deployment.

use super::backend::{BackendError, ClusterBackend};
use crate::bindings::k8s::{Certificate, Deployment, Event, ObjectRef, Pod, Revision};
use crate::bindings::types::Pair;
use k8s_openapi::api::apps::v1::{Deployment as KDeployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event as KEvent, Pod as KPod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use std::collections::BTreeMap;

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The Deployment's own bookkeeping, which a rollback keeps (kubectl's
/// `annotationsToSkip`); every other annotation comes from the ReplicaSet.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

pub struct KubeBackend {
    client: kube::Client,
}

impl KubeBackend {
    /// Connects with the usual kube-rs inference: `KUBECONFIG`, `~/.kube/config`
    /// or the in-cluster service account.
    pub async fn connect() -> Result<Self, BackendError> {
        let client = kube::Client::try_default().await.map_err(|e| {
            BackendError::Unavailable(format!("cannot configure a Kubernetes client: {e}"))
        })?;
        Ok(KubeBackend { client })
    }

    pub fn with_client(client: kube::Client) -> Self {
        KubeBackend { client }
    }

    pub(super) fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn deployments(&self, ns: &str) -> Api<KDeployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn replica_sets_of(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<(KDeployment, Vec<ReplicaSet>), BackendError> {
        let d = self
            .deployments(ns)
            .get(name)
            .await
            .map_err(|e| map_err(e, "deployment", ns, name))?;
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let rs: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let list = rs
            .list(&ListParams::default())
            .await
            .map_err(|e| map_err(e, "replicasets", ns, name))?;
        let owned = list
            .items
            .into_iter()
            .filter(|r| {
                r.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o.uid == uid))
            })
            .collect();
        Ok((d, owned))
    }
}

pub(super) fn map_err(e: kube::Error, what: &str, ns: &str, name: &str) -> BackendError {
    match e {
        kube::Error::Api(resp) if resp.code == 404 => {
            BackendError::NotFound(format!("{what} {ns}/{name}"))
        }
        kube::Error::Api(resp) if resp.code == 422 || resp.code == 400 => {
            BackendError::Invalid(format!("{what} {ns}/{name}: {}", resp.message))
        }
        kube::Error::Api(resp) if resp.code == 401 || resp.code == 403 => BackendError::Forbidden(
            format!("{what} {ns}/{name}: {} ({})", resp.message, resp.code),
        ),
        // A conflict, a rate limit or a server error: trying again may help.
        kube::Error::Api(resp) if resp.code == 409 || resp.code == 429 || resp.code >= 500 => {
            BackendError::Unavailable(format!(
                "{what} {ns}/{name}: {} ({})",
                resp.message, resp.code
            ))
        }
        kube::Error::Api(resp) => BackendError::Failed(format!(
            "{what} {ns}/{name}: {} ({})",
            resp.message, resp.code
        )),
        other => BackendError::Unavailable(format!("{what} {ns}/{name}: {other}")),
    }
}

fn pairs(map: Option<&BTreeMap<String, String>>) -> Vec<Pair> {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| Pair {
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The Deployment a ReplicaSet name belongs to: ReplicaSet names are
/// "<deployment>-<pod-template-hash>".
pub(super) fn deployment_of_replica_set(name: &str) -> String {
    name.rsplit_once('-')
        .map_or(name.to_string(), |(d, _)| d.to_string())
}

/// A Deployment's rollout history from the ReplicaSets it owns, oldest
/// first: each revision's images, creation and change cause.
pub(super) fn revisions(sets: &[ReplicaSet]) -> Vec<Revision> {
    let mut revs: Vec<Revision> = sets
        .iter()
        .map(|rs| Revision {
            revision: revision_of(&rs.metadata),
            images: rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|p| {
                    p.containers
                        .iter()
                        .filter_map(|c| c.image.clone())
                        .collect()
                })
                .unwrap_or_default(),
            created_at: ms(rs.metadata.creation_timestamp.as_ref()),
            change_cause: rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CHANGE_CAUSE).cloned()),
        })
        .collect();
    revs.sort_by_key(|r| r.revision);
    revs
}

fn revision_of(meta: &kube::api::ObjectMeta) -> u64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn ms(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> i64 {
    t.map(|t| t.0.timestamp_millis()).unwrap_or(0)
}

fn to_deployment(d: &KDeployment) -> Deployment {
    let spec = d.spec.as_ref();
    let images = spec
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    Deployment {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        replicas: spec
            .and_then(|s| s.replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1),
        ready_replicas: d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0),
        revision: revision_of(&d.metadata),
        images,
        labels: pairs(d.metadata.labels.as_ref()),
    }
}

fn to_pod(p: &KPod) -> Pod {
    let status = p.status.as_ref();
    let containers = status.and_then(|s| s.container_statuses.as_ref());
    let restarts = containers
        .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
        .unwrap_or(0);
    let last_reason = containers.and_then(|cs| {
        cs.iter()
            .filter_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.reason.clone())
            .next()
    });
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let deployment = p.metadata.owner_references.as_ref().and_then(|o| {
        o.iter()
            .find(|o| o.kind == "ReplicaSet")
            .map(|o| deployment_of_replica_set(&o.name))
    });
    Pod {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        deployment,
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        ready,
        restarts,
        last_termination_reason: last_reason,
        memory_bytes: None,
        labels: pairs(p.metadata.labels.as_ref()),
    }
}

/// Group/version/plural of the kinds `annotate` supports.
fn api_resource(kind: &str) -> Option<ApiResource> {
    let (group, version, plural) = match kind {
        "Deployment" => ("apps", "v1", "deployments"),
        "StatefulSet" => ("apps", "v1", "statefulsets"),
        "Service" => ("", "v1", "services"),
        "Certificate" => ("cert-manager.io", "v1", "certificates"),
        "Ingress" => ("networking.k8s.io", "v1", "ingresses"),
        _ => return None,
    };
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

#[async_trait::async_trait]
impl ClusterBackend for KubeBackend {
    async fn get_deployment(&self, ns: &str, name: &str) -> Result<Deployment, BackendError> {
        let d = self
            .deployments(ns)
            .get(name)
            .await
            .map_err(|e| map_err(e, "deployment", ns, name))?;
        Ok(to_deployment(&d))
    }

    async fn list_deployments(&self, ns: &str) -> Result<Vec<Deployment>, BackendError> {
        let list = self
            .deployments(ns)
            .list(&ListParams::default())
            .await
            .map_err(|e| map_err(e, "deployments", ns, "*"))?;
        Ok(list.items.iter().map(to_deployment).collect())
    }

    async fn list_pods(&self, ns: &str, selector: Option<&str>) -> Result<Vec<Pod>, BackendError> {
        let api: Api<KPod> = Api::namespaced(self.client.clone(), ns);
        let mut lp = ListParams::default();
        if let Some(sel) = selector {
            lp = lp.labels(sel);
        }
        let list = api
            .list(&lp)
            .await
            .map_err(|e| map_err(e, "pods", ns, "*"))?;
        Ok(list.items.iter().map(to_pod).collect())
    }

    async fn rollout_history(&self, ns: &str, name: &str) -> Result<Vec<Revision>, BackendError> {
        let (_, sets) = self.replica_sets_of(ns, name).await?;
        Ok(revisions(&sets))
    }

    async fn list_events(
        &self,
        ns: &str,
        object: Option<&str>,
    ) -> Result<Vec<Event>, BackendError> {
        let api: Api<KEvent> = Api::namespaced(self.client.clone(), ns);
        let mut lp = ListParams::default();
        if let Some(o) = object {
            lp = lp.fields(&format!("involvedObject.name={o}"));
        }
        let list = api
            .list(&lp)
            .await
            .map_err(|e| map_err(e, "events", ns, object.unwrap_or("*")))?;
        Ok(list
            .items
            .iter()
            .map(|e| Event {
                namespace: ns.to_string(),
                object_kind: e.involved_object.kind.clone().unwrap_or_default(),
                object_name: e.involved_object.name.clone().unwrap_or_default(),
                event_type: e.type_.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
                count: e.count.and_then(|c| u32::try_from(c).ok()).unwrap_or(1),
                last_seen: ms(e.last_timestamp.as_ref()),
            })
            .collect())
    }

    async fn scale_deployment(
        &self,
        ns: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, BackendError> {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        self.deployments(ns)
            .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| map_err(e, "deployment", ns, name))?;
        self.get_deployment(ns, name).await
    }

    async fn rollback_deployment(
        &self,
        ns: &str,
        name: &str,
        to: Option<u64>,
    ) -> Result<Deployment, BackendError> {
        let (d, sets) = self.replica_sets_of(ns, name).await?;
        let current = revision_of(&d.metadata);
        let target = match to {
            Some(rev) => sets.iter().find(|rs| revision_of(&rs.metadata) == rev),
            None => sets
                .iter()
                .filter(|rs| revision_of(&rs.metadata) < current)
                .max_by_key(|rs| revision_of(&rs.metadata)),
        }
        .ok_or_else(|| {
            BackendError::Invalid(format!(
                "deployment {ns}/{name} has no revision to roll back to"
            ))
        })?;
        // As `kubectl rollout undo` does it: a JSON patch replacing the pod
        // template with the target ReplicaSet's (minus its hash label), and
        // the annotations with the Deployment's own bookkeeping ones plus the
        // ReplicaSet's others (its change-cause among them).
        let mut template = target
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .ok_or_else(|| BackendError::Failed("target ReplicaSet has no pod template".into()))?;
        if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove("pod-template-hash");
        }
        let mut annotations: BTreeMap<String, String> = d
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| ANNOTATIONS_TO_SKIP.contains(&k.as_str()))
            .collect();
        for (k, v) in target.metadata.annotations.clone().unwrap_or_default() {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k, v);
            }
        }
        let patch = serde_json::json!([
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]);
        let body = serde_json::to_vec(&patch).map_err(|e| BackendError::Failed(e.to_string()))?;
        // Names go into the URL path: only what Kubernetes allows in one.
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !valid(ns) || !valid(name) {
            return Err(BackendError::Invalid(format!(
                "{ns}/{name} is not a valid namespace/name"
            )));
        }
        let request =
            http::Request::patch(format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}"))
                .header(http::header::CONTENT_TYPE, "application/json-patch+json")
                .body(body)
                .map_err(|e| BackendError::Failed(e.to_string()))?;
        self.client
            .request::<KDeployment>(request)
            .await
            .map_err(|e| map_err(e, "deployment", ns, name))?;
        self.get_deployment(ns, name).await
    }

    async fn delete_pods(&self, ns: &str, names: &[String]) -> Result<u32, BackendError> {
        let api: Api<KPod> = Api::namespaced(self.client.clone(), ns);
        let mut deleted = 0;
        for name in names {
            // As kubectl deletes: the dependents in the background.
            api.delete(name, &DeleteParams::background())
                .await
                .map_err(|e| map_err(e, "pod", ns, name))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    async fn annotate(
        &self,
        target: &ObjectRef,
        annotations: &[(String, String)],
    ) -> Result<(), BackendError> {
        let ar = api_resource(&target.kind).ok_or_else(|| {
            BackendError::Invalid(format!(
                "annotating kind `{}` is not supported",
                target.kind
            ))
        })?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &target.namespace, &ar);
        let map: BTreeMap<&str, &str> = annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let patch = serde_json::json!({"metadata": {"annotations": map}});
        api.patch(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| map_err(e, &target.kind, &target.namespace, &target.name))?;
        Ok(())
    }

    async fn list_certificates(&self, ns: &str) -> Result<Vec<Certificate>, BackendError> {
        self.list_certs(ns).await
    }

    async fn get_certificate(&self, ns: &str, name: &str) -> Result<Certificate, BackendError> {
        self.get_cert(ns, name).await
    }

    async fn renew_certificate(&self, ns: &str, name: &str) -> Result<Certificate, BackendError> {
        self.renew_cert(ns, name).await
    }

    async fn pod_logs(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
        tail: u32,
    ) -> Result<String, BackendError> {
        let api: Api<KPod> = Api::namespaced(self.client.clone(), ns);
        let params = LogParams {
            container: container.map(str::to_string),
            previous,
            tail_lines: Some(i64::from(tail)),
            limit_bytes: i64::try_from(super::grant::MAX_LOG_BYTES).ok(),
            ..LogParams::default()
        };
        let log = api
            .logs(pod, &params)
            .await
            .map_err(|e| map_err(e, "logs of pod", ns, pod))?;
        Ok(super::grant::clip_log(&log))
    }

    async fn namespace_view(&self, ns: &str) -> Result<super::sim::ClusterState, BackendError> {
        self.view(ns).await
    }

    async fn locate_workload(&self, name: &str) -> Result<Vec<(String, String)>, BackendError> {
        self.locate(name).await
    }
}

#[cfg(test)]
mod tests {
    //! kube-rs against a mocked API server (tower-test): no kube-apiserver can
    //! run on these machines. These check the requests we send and how we
    //! read the answers.
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    fn deployment_json(replicas: u32) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "payment-api", "namespace": "payments", "uid": "u1",
                         "annotations": {REVISION: "2"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "payment-api"}},
                     "template": {"metadata": {"labels": {"app": "payment-api"}},
                                  "spec": {"containers": [{"name": "api", "image": "payment-api:1.42.0"}]}}},
            "status": {"readyReplicas": replicas}
        })
    }

    #[tokio::test]
    async fn scale_patches_the_scale_subresource() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::with_client(kube::Client::new(service, "default"));
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let Some((req, send)) = handle.next_request().await else {
                    break;
                };
                seen.push(format!("{} {}", req.method(), req.uri().path()));
                let body = if req.uri().path().ends_with("/scale") {
                    serde_json::json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                        "metadata": {"name": "payment-api", "namespace": "payments"},
                        "spec": {"replicas": 5}})
                } else {
                    deployment_json(5)
                };
                send.send_response(
                    Response::builder()
                        .body(Body::from(body.to_string().into_bytes()))
                        .expect("response"),
                );
            }
            seen
        });
        let d = backend.scale_deployment("payments", "payment-api", 5).await;
        assert_eq!(d.ok().map(|d| (d.replicas, d.revision)), Some((5, 2)));
        let seen = server.await.expect("mock server");
        assert_eq!(
            seen,
            vec![
                "PATCH /apis/apps/v1/namespaces/payments/deployments/payment-api/scale",
                "GET /apis/apps/v1/namespaces/payments/deployments/payment-api",
            ]
        );
    }

    #[tokio::test]
    async fn api_404_becomes_not_found() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let backend = KubeBackend::with_client(kube::Client::new(service, "default"));
        tokio::spawn(async move {
            if let Some((_, send)) = handle.next_request().await {
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "deployments.apps \"nope\" not found", "reason": "NotFound", "code": 404});
                send.send_response(
                    Response::builder()
                        .status(404)
                        .body(Body::from(status.to_string().into_bytes()))
                        .expect("response"),
                );
            }
        });
        let r = backend.get_deployment("payments", "nope").await;
        assert!(matches!(r, Err(BackendError::NotFound(_))), "{r:?}");
    }
}

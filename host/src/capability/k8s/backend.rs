//! The cluster behind the k8s capability: a real one (kube-rs) or the
//! simulated one. Backends are only ever called after the policy check.

use crate::bindings::k8s::{Certificate, Deployment, Event, ObjectRef, Pod, Revision};
use crate::bindings::types::Error;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The cluster itself refused (RBAC): the agent's own service account
    /// may not do this, whatever the plugin's grant says.
    #[error("the cluster refused: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Failed(String),
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(_) | BackendError::Failed(_) => Error::Failed(e.to_string()),
            BackendError::Invalid(m) => Error::InvalidInput(m),
            BackendError::Unavailable(m) => Error::Unavailable(m),
            BackendError::Forbidden(_) => Error::Denied(e.to_string()),
        }
    }
}

/// The operations of `wit/k8s.wit`, unchecked: callers check policy first.
#[async_trait::async_trait]
pub trait ClusterBackend: Send + Sync {
    async fn get_deployment(&self, ns: &str, name: &str) -> Result<Deployment, BackendError>;
    async fn list_deployments(&self, ns: &str) -> Result<Vec<Deployment>, BackendError>;
    async fn list_pods(&self, ns: &str, selector: Option<&str>) -> Result<Vec<Pod>, BackendError>;
    async fn rollout_history(&self, ns: &str, name: &str) -> Result<Vec<Revision>, BackendError>;
    async fn list_events(&self, ns: &str, object: Option<&str>)
    -> Result<Vec<Event>, BackendError>;
    async fn scale_deployment(
        &self,
        ns: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, BackendError>;
    async fn rollback_deployment(
        &self,
        ns: &str,
        name: &str,
        to: Option<u64>,
    ) -> Result<Deployment, BackendError>;
    async fn delete_pods(&self, ns: &str, names: &[String]) -> Result<u32, BackendError>;
    async fn annotate(
        &self,
        target: &ObjectRef,
        annotations: &[(String, String)],
    ) -> Result<(), BackendError>;
    async fn list_certificates(&self, ns: &str) -> Result<Vec<Certificate>, BackendError>;
    async fn get_certificate(&self, ns: &str, name: &str) -> Result<Certificate, BackendError>;
    /// The last `tail` lines of a container's log (the current or the
    /// previous instance), at most `grant::MAX_LOG_BYTES`.
    async fn pod_logs(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
        tail: u32,
    ) -> Result<String, BackendError>;
    /// Sets the certificate's `Issuing` condition, as `cmctl renew` does.
    async fn renew_certificate(&self, ns: &str, name: &str) -> Result<Certificate, BackendError>;

    /// The host's own view of one namespace (and the nodes), from which it
    /// derives facts (`crate::facts`). Not reachable from plugins; the
    /// host checks the context read grant before calling it.
    async fn namespace_view(&self, ns: &str) -> Result<super::sim::ClusterState, BackendError>;

    /// Where workloads (Deployments, StatefulSets, DaemonSets) of this name
    /// run: `(namespace, kind)` for each. For alerts that name a workload
    /// but no namespace; the host keeps only namespaces its grants cover.
    async fn locate_workload(&self, name: &str) -> Result<Vec<(String, String)>, BackendError>;
}

/// Parses an equality-only label selector ("a=b,c=d").
pub fn parse_selector(selector: &str) -> Result<Vec<(String, String)>, BackendError> {
    selector
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|term| {
            let (k, v) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .ok_or_else(|| {
                    BackendError::Invalid(format!(
                        "label selector term {term:?}: only key=value is supported"
                    ))
                })?;
            if k.contains('!') {
                return Err(BackendError::Invalid(format!(
                    "label selector term {term:?}: only key=value is supported"
                )));
            }
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

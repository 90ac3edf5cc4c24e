//! The `k8s` capability: typed Kubernetes operations behind a grant.
//!
//! A plugin never sees a kubeconfig or a token: it calls typed functions
//! (`wit/k8s.wit`), and every call is checked here, on its typed arguments,
//! before any backend is touched — namespace, operation, replica ceiling, pod
//! count. A refused call returns `error.denied` with the reason and leaves the
//! cluster untouched. Backends (a real cluster through kube-rs, or the
//! simulated cluster) sit behind [`ClusterBackend`].

mod backend;
pub mod grant;
pub mod kube_backend;
mod kube_certificates;
mod kube_view;
pub mod rbac;
pub mod sim;

pub use backend::{BackendError, ClusterBackend};
pub use grant::{
    K8sGrant, K8sRequest, Namespace, Operation, check_annotate, check_delete_pods, check_logs,
    check_read, check_renew_certificate, check_rollback, check_scale,
};

use super::{CallMode, Capability, Denied, Recorder, Verdict};
use crate::bindings::k8s::{Certificate, Deployment, Event, Host, Pod, Revision};
use crate::bindings::types::ObjectRef;
use crate::bindings::types::{Error, Pair};
use std::sync::Arc;

/// Per-call state of the k8s capability.
pub struct K8sCapability {
    pub grant: K8sGrant,
    pub backend: Arc<dyn ClusterBackend>,
    pub mode: CallMode,
    pub recorder: Recorder,
}

impl K8sCapability {
    /// Runs the grant check, then (for a mutation) the call-mode check, and
    /// records the verdict; only then the backend.
    async fn guarded<T, F>(
        &self,
        operation: &str,
        target: String,
        check: Result<(), Denied>,
        plan_check: Result<(), Denied>,
        call: F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<T, BackendError>>,
    {
        let refusal = match (check, plan_check) {
            (Err(denied), _) => Some(Verdict::Denied(denied.0)),
            (Ok(()), Err(unplanned)) => Some(Verdict::Unplanned(unplanned.0)),
            (Ok(()), Ok(())) => None,
        };
        if let Some(verdict) = refusal {
            let reason = match &verdict {
                Verdict::Denied(r) | Verdict::Unplanned(r) => r.clone(),
                _ => String::new(),
            };
            self.recorder
                .record(Capability::K8s, operation, &target, verdict);
            return Err(Denied(reason).into());
        }
        match call.await {
            Ok(v) => {
                self.recorder
                    .record(Capability::K8s, operation, &target, Verdict::Allowed);
                Ok(v)
            }
            Err(e) => {
                self.recorder.record(
                    Capability::K8s,
                    operation,
                    &target,
                    Verdict::Failed(e.to_string()),
                );
                Err(e.into())
            }
        }
    }

    /// Reads never depend on the call mode.
    async fn read<T, F>(
        &self,
        target: String,
        check: Result<(), Denied>,
        call: F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<T, BackendError>>,
    {
        self.guarded("read", target, check, Ok(()), call).await
    }
}

impl Host for K8sCapability {
    async fn get_deployment(
        &mut self,
        namespace: String,
        name: String,
    ) -> Result<Deployment, Error> {
        let target = format!("deployment {namespace}/{name}");
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(target, check, backend.get_deployment(&namespace, &name))
            .await
    }

    async fn list_deployments(&mut self, namespace: String) -> Result<Vec<Deployment>, Error> {
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(
            format!("deployments in {namespace}"),
            check,
            backend.list_deployments(&namespace),
        )
        .await
    }

    async fn list_pods(
        &mut self,
        namespace: String,
        label_selector: Option<String>,
    ) -> Result<Vec<Pod>, Error> {
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(
            format!("pods in {namespace}"),
            check,
            backend.list_pods(&namespace, label_selector.as_deref()),
        )
        .await
    }

    async fn rollout_history(
        &mut self,
        namespace: String,
        deployment: String,
    ) -> Result<Vec<Revision>, Error> {
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(
            format!("rollout history of {namespace}/{deployment}"),
            check,
            backend.rollout_history(&namespace, &deployment),
        )
        .await
    }

    async fn list_events(
        &mut self,
        namespace: String,
        object_name: Option<String>,
    ) -> Result<Vec<Event>, Error> {
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(
            format!("events in {namespace}"),
            check,
            backend.list_events(&namespace, object_name.as_deref()),
        )
        .await
    }

    async fn pod_logs(
        &mut self,
        namespace: String,
        pod: String,
        container: Option<String>,
        previous: bool,
        tail_lines: u32,
    ) -> Result<String, Error> {
        let check = check_logs(&self.grant, &namespace, tail_lines);
        let backend = self.backend.clone();
        let which = if previous { "previous " } else { "" };
        self.guarded(
            "logs",
            format!("{which}logs of pod {namespace}/{pod}"),
            check,
            Ok(()),
            backend.pod_logs(&namespace, &pod, container.as_deref(), previous, tail_lines),
        )
        .await
    }

    async fn scale_deployment(
        &mut self,
        namespace: String,
        name: String,
        replicas: u32,
    ) -> Result<Deployment, Error> {
        let check = check_scale(&self.grant, &namespace, replicas);
        let plan_check = self
            .mode
            .permit_mutation("scale", |b| b.scale(&namespace, &name, replicas));
        let backend = self.backend.clone();
        self.guarded(
            "scale",
            format!("deployment {namespace}/{name} to {replicas} replicas"),
            check,
            plan_check,
            backend.scale_deployment(&namespace, &name, replicas),
        )
        .await
    }

    async fn rollback_deployment(
        &mut self,
        namespace: String,
        name: String,
        to_revision: Option<u64>,
    ) -> Result<Deployment, Error> {
        let check = check_rollback(&self.grant, &namespace);
        // A bound call rolls back to the planned revision, never to whatever
        // "previous" means by the time it runs.
        let mut resolved = to_revision;
        let plan_check = self.mode.permit_mutation("rollback", |b| {
            resolved = b.rollback(&namespace, &name, to_revision)?;
            Ok(())
        });
        let backend = self.backend.clone();
        let to = resolved.map_or("previous revision".to_string(), |r| format!("revision {r}"));
        self.guarded(
            "rollback",
            format!("deployment {namespace}/{name} to {to}"),
            check,
            plan_check,
            backend.rollback_deployment(&namespace, &name, resolved),
        )
        .await
    }

    async fn delete_pods(&mut self, namespace: String, names: Vec<String>) -> Result<u32, Error> {
        let check = check_delete_pods(&self.grant, &namespace, names.len());
        let plan_check = self
            .mode
            .permit_mutation("delete-pods", |b| b.delete_pods(&namespace, &names));
        let backend = self.backend.clone();
        let target = format!(
            "{} pod(s) in {namespace}: {}",
            names.len(),
            names.join(", ")
        );
        self.guarded(
            "delete-pods",
            target,
            check,
            plan_check,
            backend.delete_pods(&namespace, &names),
        )
        .await
    }

    async fn annotate(&mut self, target: ObjectRef, annotations: Vec<Pair>) -> Result<(), Error> {
        let check = check_annotate(&self.grant, &target.namespace, &target.kind);
        let object = crate::effects::ObjectRef {
            kind: target.kind.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        };
        let keys: Vec<String> = annotations.iter().map(|p| p.key.clone()).collect();
        let plan_check = self
            .mode
            .permit_mutation("annotate", |b| b.annotate(&object, &keys));
        let backend = self.backend.clone();
        let pairs: Vec<(String, String)> =
            annotations.into_iter().map(|p| (p.key, p.value)).collect();
        self.guarded(
            "annotate",
            object.to_string(),
            check,
            plan_check,
            backend.annotate(&target, &pairs),
        )
        .await
    }

    async fn list_certificates(&mut self, namespace: String) -> Result<Vec<Certificate>, Error> {
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(
            format!("certificates in {namespace}"),
            check,
            backend.list_certificates(&namespace),
        )
        .await
    }

    async fn get_certificate(
        &mut self,
        namespace: String,
        name: String,
    ) -> Result<Certificate, Error> {
        let check = check_read(&self.grant, &namespace);
        let backend = self.backend.clone();
        self.read(
            format!("certificate {namespace}/{name}"),
            check,
            backend.get_certificate(&namespace, &name),
        )
        .await
    }

    async fn renew_certificate(
        &mut self,
        namespace: String,
        name: String,
    ) -> Result<Certificate, Error> {
        let check = check_renew_certificate(&self.grant, &namespace);
        let plan_check = self.mode.permit_mutation("renew-certificate", |b| {
            b.renew_certificate(&namespace, &name)
        });
        let backend = self.backend.clone();
        self.guarded(
            "renew-certificate",
            format!("certificate {namespace}/{name}"),
            check,
            plan_check,
            backend.renew_certificate(&namespace, &name),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::k8s::Host;

    fn capability(
        grant: &str,
        mode: CallMode,
    ) -> Option<(K8sCapability, Arc<sim::SimulatedCluster>)> {
        let grant: K8sGrant = toml::from_str(grant).ok()?;
        let cluster = Arc::new(sim::SimulatedCluster::demo());
        Some((
            K8sCapability {
                grant,
                backend: cluster.clone(),
                mode,
                recorder: Recorder::default(),
            },
            cluster,
        ))
    }

    /// A plan with an `other` effect: calls are judged by the grant alone,
    /// which is what these tests are about (plan binding: `effects/binding.rs`).
    fn open_plan() -> CallMode {
        CallMode::Bound(Arc::new(crate::effects::binding::PlanBinding::new(vec![
            crate::effects::Effect::Other {
                description: "grant tests".into(),
            },
        ])))
    }

    const NARROW: &str = r#"namespaces = ["checkout"]
operations = ["read", "scale"]
max_replicas = 5
"#;
    const WIDE: &str = r#"namespaces = ["payments"]
operations = ["read", "scale", "rollback", "delete-pods"]
max_replicas = 10
max_pods_per_action = 2
"#;

    #[tokio::test]
    async fn scale_is_denied_without_a_grant_then_allowed_with_one() {
        let Some((mut denied, cluster)) = capability(NARROW, open_plan()) else {
            unreachable!("grant parses")
        };
        let r = denied
            .scale_deployment("payments".into(), "payment-api".into(), 4)
            .await;
        assert!(
            matches!(&r, Err(Error::Denied(reason)) if reason.contains("payments")),
            "{r:?}"
        );
        let d = cluster.deployment("payments", "payment-api");
        assert_eq!(d.map(|d| d.replicas), Some(3), "no side effect");

        let Some((mut allowed, cluster)) = capability(WIDE, open_plan()) else {
            unreachable!("grant parses")
        };
        let r = allowed
            .scale_deployment("payments".into(), "payment-api".into(), 4)
            .await;
        assert_eq!(r.ok().map(|d| d.replicas), Some(4));
        assert_eq!(
            cluster
                .deployment("payments", "payment-api")
                .map(|d| d.replicas),
            Some(4)
        );
    }

    #[tokio::test]
    async fn replicas_above_the_ceiling_are_denied() {
        let Some((mut cap, cluster)) = capability(WIDE, open_plan()) else {
            unreachable!("grant parses")
        };
        let r = cap
            .scale_deployment("payments".into(), "payment-api".into(), 11)
            .await;
        assert!(
            matches!(&r, Err(Error::Denied(reason)) if reason.contains("max_replicas")),
            "{r:?}"
        );
        assert_eq!(
            cluster
                .deployment("payments", "payment-api")
                .map(|d| d.replicas),
            Some(3)
        );
        let calls = cap.recorder.take();
        assert!(matches!(calls.as_slice(), [c] if matches!(c.verdict, Verdict::Denied(_))));
    }

    #[tokio::test]
    async fn too_many_pods_in_one_action_are_denied() {
        let Some((mut cap, cluster)) = capability(WIDE, open_plan()) else {
            unreachable!("grant parses")
        };
        let pods: Vec<String> = cluster.pod_names("payments");
        assert!(pods.len() >= 3);
        let r = cap.delete_pods("payments".into(), pods.clone()).await;
        assert!(
            matches!(&r, Err(Error::Denied(reason)) if reason.contains("max_pods_per_action")),
            "{r:?}"
        );
        assert_eq!(cluster.pod_names("payments"), pods, "no pod deleted");
        let r = cap.delete_pods("payments".into(), pods[..2].to_vec()).await;
        assert_eq!(r.ok(), Some(2));
        assert_ne!(cluster.pod_names("payments"), pods);
    }

    #[tokio::test]
    async fn annotate_is_denied_for_ungranted_kinds_then_allowed() {
        let grant = format!("{WIDE}annotate_kinds = []\n")
            .replace(r#""delete-pods"]"#, r#""delete-pods", "annotate"]"#);
        let Some((mut cap, cluster)) = capability(&grant, open_plan()) else {
            unreachable!("grant parses")
        };
        let target = ObjectRef {
            kind: "Certificate".into(),
            namespace: "payments".into(),
            name: "payment-api-tls".into(),
        };
        let renew = vec![Pair {
            key: "cert-manager.io/issue-temporary-certificate".into(),
            value: "true".into(),
        }];
        let r = cap.annotate(target.clone(), renew.clone()).await;
        assert!(
            matches!(&r, Err(Error::Denied(reason)) if reason.contains("Certificate")),
            "{r:?}"
        );
        assert_eq!(
            cluster
                .annotations("Certificate", "payments", "payment-api-tls")
                .map(|a| a.len()),
            Some(0)
        );

        let grant = grant.replace("annotate_kinds = []", r#"annotate_kinds = ["Certificate"]"#);
        let Some((mut cap, cluster)) = capability(&grant, open_plan()) else {
            unreachable!("grant parses")
        };
        assert!(cap.annotate(target, renew).await.is_ok());
        assert_eq!(
            cluster
                .annotations("Certificate", "payments", "payment-api-tls")
                .map(|a| a.len()),
            Some(1)
        );
    }

    #[tokio::test]
    async fn renewing_a_certificate_is_denied_without_the_operation_then_allowed() {
        let Some((mut cap, cluster)) = capability(WIDE, open_plan()) else {
            unreachable!("grant parses")
        };
        let revision = |c: &sim::SimulatedCluster| {
            c.snapshot()
                .certificates
                .iter()
                .find(|c| c.name == "payment-api-tls")
                .map(|c| c.revision)
        };
        let r = cap
            .renew_certificate("payments".into(), "payment-api-tls".into())
            .await;
        assert!(
            matches!(&r, Err(Error::Denied(reason)) if reason.contains("renew-certificate")),
            "{r:?}"
        );
        assert_eq!(revision(&cluster), Some(1), "no side effect");
        // Reading certificates needs only `read`.
        let listed = cap.list_certificates("payments".into()).await;
        assert_eq!(listed.map(|l| l.len()).ok(), Some(1));

        let grant = WIDE.replace(
            r#""delete-pods"]"#,
            r#""delete-pods", "renew-certificate"]"#,
        );
        let Some((mut cap, cluster)) = capability(&grant, open_plan()) else {
            unreachable!("grant parses")
        };
        let r = cap
            .renew_certificate("checkout".into(), "payment-api-tls".into())
            .await;
        assert!(
            matches!(&r, Err(Error::Denied(_))),
            "namespace still checked"
        );
        let r = cap
            .renew_certificate("payments".into(), "payment-api-tls".into())
            .await;
        assert_eq!(r.ok().and_then(|c| c.revision), Some(2));
        assert_eq!(revision(&cluster), Some(2));
    }

    #[tokio::test]
    async fn read_only_calls_cannot_mutate_even_with_a_grant() {
        let Some((mut cap, cluster)) = capability(WIDE, CallMode::ReadOnly) else {
            unreachable!("grant parses")
        };
        let r = cap
            .rollback_deployment("payments".into(), "payment-api".into(), None)
            .await;
        assert!(
            matches!(&r, Err(Error::Denied(reason)) if reason.contains("read-only")),
            "{r:?}"
        );
        assert_eq!(
            cluster
                .deployment("payments", "payment-api")
                .map(|d| d.revision),
            Some(2)
        );
        assert!(
            cap.get_deployment("payments".into(), "payment-api".into())
                .await
                .is_ok()
        );
    }
}

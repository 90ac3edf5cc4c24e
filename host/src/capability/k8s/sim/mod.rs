//! A simulated cluster for tests, replayable scenarios and the demo.
//!
//! It models what the remediation tools touch: deployments with replica
//! counts and a revision history (a rollback re-activates an old template
//! under a new revision number, as Kubernetes does), pods with phase,
//! restarts, last termination reason and memory, events, and annotatable
//! objects of other kinds, cert-manager certificates. Changes converge
//! instantly. State loads from and
//! saves to JSON, so a scenario can ship its cluster as a file.

mod certificates;
mod state;

pub use certificates::SimCertificate;
pub use state::{
    ClusterState, DEMO_PRESENT_MS, SimCondition, SimContainer, SimDaemonSet, SimDeployment,
    SimEvent, SimHpa, SimJob, SimNode, SimObject, SimPod, SimPvc, SimRevision, SimStatefulSet,
};

use super::backend::{BackendError, ClusterBackend, parse_selector};
use crate::bindings::k8s::{Certificate, Deployment, Event, ObjectRef, Pod, Revision};
use crate::bindings::types::Pair;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The simulated cluster. Every operation takes the one lock briefly.
pub struct SimulatedCluster {
    state: Mutex<ClusterState>,
    generation: Mutex<u64>,
}

/// The built-in cluster of the demo: payment-api after a bad deploy.
const DEMO_STATE: &str = include_str!("demo-cluster.json");

impl SimulatedCluster {
    pub fn new(mut state: ClusterState) -> Self {
        certificates::anchor_times(&mut state);
        SimulatedCluster {
            state: Mutex::new(state),
            generation: Mutex::new(0),
        }
    }

    /// The embedded demo cluster.
    pub fn demo() -> Self {
        // The embedded file is checked by a unit test; an empty cluster is the
        // only sane fallback and keeps this constructor infallible.
        Self::new(serde_json::from_str(DEMO_STATE).unwrap_or_default())
    }

    /// The demo cluster as of now: every time in it moved so that its
    /// "present" — 16 minutes after the bad rollout, when the demo's alert
    /// fires — is the moment it loads. A live alert (from a real
    /// Alertmanager, now) then meets a rollout that is recent, as it would
    /// in a cluster; `demo()` keeps the fixed times its embedded alert and
    /// the scenarios were written against.
    pub fn demo_now() -> Self {
        let mut state: ClusterState = serde_json::from_str(DEMO_STATE).unwrap_or_default();
        state.shift_times(now_ms() - DEMO_PRESENT_MS);
        Self::new(state)
    }

    /// Parses a cluster state document.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        Ok(Self::new(serde_json::from_str(text)?))
    }

    /// A copy of the current state, e.g. to save it.
    pub fn snapshot(&self) -> ClusterState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Test and display helper: one deployment as the capability reports it.
    pub fn deployment(&self, ns: &str, name: &str) -> Option<Deployment> {
        let s = self.state.lock().ok()?;
        s.deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .map(|d| to_deployment(d, &s.pods))
    }

    /// Test helper: pod names in a namespace, sorted.
    pub fn pod_names(&self, ns: &str) -> Vec<String> {
        let Ok(s) = self.state.lock() else {
            return vec![];
        };
        let mut names: Vec<String> = s
            .pods
            .iter()
            .filter(|p| p.namespace == ns)
            .map(|p| p.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Test helper: an object's annotations.
    pub fn annotations(
        &self,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Option<BTreeMap<String, String>> {
        let s = self.state.lock().ok()?;
        if kind == "Deployment" {
            return s
                .deployments
                .iter()
                .find(|d| d.namespace == ns && d.name == name)
                .map(|d| d.annotations.clone());
        }
        s.objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == ns && o.name == name)
            .map(|o| o.annotations.clone())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ClusterState>, BackendError> {
        self.state
            .lock()
            .map_err(|_| BackendError::Unavailable("simulated cluster state is poisoned".into()))
    }

    fn next_suffix(&self) -> u64 {
        match self.generation.lock() {
            Ok(mut g) => {
                *g += 1;
                *g
            }
            Err(_) => 0,
        }
    }
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<Pair> {
    map.iter()
        .map(|(k, v)| Pair {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn to_deployment(d: &SimDeployment, pods: &[SimPod]) -> Deployment {
    let images = d
        .revisions
        .iter()
        .find(|r| r.revision == d.revision)
        .map(|r| r.images.clone())
        .unwrap_or_default();
    let ready = pods
        .iter()
        .filter(|p| {
            p.namespace == d.namespace && p.deployment.as_deref() == Some(&d.name) && p.ready
        })
        .count();
    Deployment {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        replicas: d.replicas,
        ready_replicas: d
            .ready_replicas
            .unwrap_or_else(|| u32::try_from(ready).unwrap_or(u32::MAX)),
        revision: d.revision,
        images,
        labels: pairs(&d.labels),
    }
}

fn to_pod(p: &SimPod) -> Pod {
    Pod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        deployment: p.deployment.clone(),
        phase: p.phase.clone(),
        ready: p.ready,
        restarts: p.restarts,
        last_termination_reason: p.last_termination_reason.clone(),
        memory_bytes: p.memory_bytes,
        labels: pairs(&p.labels),
    }
}

fn not_found(what: &str, ns: &str, name: &str) -> BackendError {
    BackendError::NotFound(format!("{what} {ns}/{name}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl ClusterState {
    fn deployment_mut(&mut self, ns: &str, name: &str) -> Result<&mut SimDeployment, BackendError> {
        self.deployments
            .iter_mut()
            .find(|d| d.namespace == ns && d.name == name)
            .ok_or_else(|| not_found("deployment", ns, name))
    }

    /// Replaces a deployment's pods with `count` fresh, healthy ones.
    fn replace_pods(&mut self, ns: &str, name: &str, count: u32, suffix: u64) {
        let labels = self
            .deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .map(|d| d.labels.clone())
            .unwrap_or_default();
        self.pods
            .retain(|p| !(p.namespace == ns && p.deployment.as_deref() == Some(name)));
        for i in 0..count {
            self.pods.push(fresh_pod(ns, name, &labels, suffix, i));
        }
    }

    fn event(&mut self, ns: &str, kind: &str, name: &str, reason: &str, message: String) {
        self.events.push(SimEvent {
            namespace: ns.to_string(),
            object_kind: kind.to_string(),
            object_name: name.to_string(),
            event_type: "Normal".into(),
            reason: reason.to_string(),
            message,
            count: 1,
            last_seen: now_ms(),
        });
    }
}

fn fresh_pod(
    ns: &str,
    deployment: &str,
    labels: &BTreeMap<String, String>,
    suffix: u64,
    i: u32,
) -> SimPod {
    SimPod {
        namespace: ns.to_string(),
        name: format!("{deployment}-g{suffix}-{i}"),
        deployment: Some(deployment.to_string()),
        phase: "Running".into(),
        ready: true,
        restarts: 0,
        last_termination_reason: None,
        memory_bytes: None,
        labels: labels.clone(),
        owner_kind: None,
        owner_name: None,
        node: None,
        waiting_reason: None,
        waiting_message: None,
        last_exit_code: None,
        status_reason: None,
        status_message: None,
        logs: vec![],
        previous_logs: vec![],
    }
}

#[async_trait::async_trait]
impl ClusterBackend for SimulatedCluster {
    async fn get_deployment(&self, ns: &str, name: &str) -> Result<Deployment, BackendError> {
        let s = self.lock()?;
        s.deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .map(|d| to_deployment(d, &s.pods))
            .ok_or_else(|| not_found("deployment", ns, name))
    }

    async fn list_deployments(&self, ns: &str) -> Result<Vec<Deployment>, BackendError> {
        let s = self.lock()?;
        Ok(s.deployments
            .iter()
            .filter(|d| d.namespace == ns)
            .map(|d| to_deployment(d, &s.pods))
            .collect())
    }

    async fn list_pods(&self, ns: &str, selector: Option<&str>) -> Result<Vec<Pod>, BackendError> {
        let terms = selector
            .map(parse_selector)
            .transpose()?
            .unwrap_or_default();
        let s = self.lock()?;
        Ok(s.pods
            .iter()
            .filter(|p| p.namespace == ns)
            .filter(|p| terms.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .map(to_pod)
            .collect())
    }

    async fn rollout_history(&self, ns: &str, name: &str) -> Result<Vec<Revision>, BackendError> {
        let s = self.lock()?;
        let d = s
            .deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .ok_or_else(|| not_found("deployment", ns, name))?;
        let mut revs: Vec<Revision> = d
            .revisions
            .iter()
            .map(|r| Revision {
                revision: r.revision,
                images: r.images.clone(),
                created_at: r.created_at,
                change_cause: r.change_cause.clone(),
            })
            .collect();
        revs.sort_by_key(|r| r.revision);
        Ok(revs)
    }

    async fn list_events(
        &self,
        ns: &str,
        object: Option<&str>,
    ) -> Result<Vec<Event>, BackendError> {
        let s = self.lock()?;
        Ok(s.events
            .iter()
            .filter(|e| e.namespace == ns && object.is_none_or(|o| e.object_name.starts_with(o)))
            .map(|e| Event {
                namespace: e.namespace.clone(),
                object_kind: e.object_kind.clone(),
                object_name: e.object_name.clone(),
                event_type: e.event_type.clone(),
                reason: e.reason.clone(),
                message: e.message.clone(),
                count: e.count,
                last_seen: e.last_seen,
            })
            .collect())
    }

    async fn scale_deployment(
        &self,
        ns: &str,
        name: &str,
        replicas: u32,
    ) -> Result<Deployment, BackendError> {
        let suffix = self.next_suffix();
        let mut s = self.lock()?;
        let d = s.deployment_mut(ns, name)?;
        let old = d.replicas;
        d.replicas = replicas;
        // The controller's own count from here on: the pods say.
        d.ready_replicas = None;
        // Keep existing pods when scaling; add or remove from the end.
        let mut owned: Vec<usize> = s
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.namespace == ns && p.deployment.as_deref() == Some(name))
            .map(|(i, _)| i)
            .collect();
        let have = u32::try_from(owned.len()).unwrap_or(u32::MAX);
        if have > replicas {
            let excess = owned.split_off(replicas as usize);
            for i in excess.into_iter().rev() {
                s.pods.remove(i);
            }
        } else {
            let labels = s
                .deployments
                .iter()
                .find(|d| d.namespace == ns && d.name == name)
                .map(|d| d.labels.clone())
                .unwrap_or_default();
            for i in have..replicas {
                s.pods.push(fresh_pod(ns, name, &labels, suffix, i));
            }
        }
        s.event(
            ns,
            "Deployment",
            name,
            "ScalingReplicaSet",
            format!("Scaled from {old} to {replicas} replicas"),
        );
        let d = s
            .deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .ok_or_else(|| not_found("deployment", ns, name))?;
        Ok(to_deployment(d, &s.pods))
    }

    async fn rollback_deployment(
        &self,
        ns: &str,
        name: &str,
        to: Option<u64>,
    ) -> Result<Deployment, BackendError> {
        let suffix = self.next_suffix();
        let mut s = self.lock()?;
        let d = s.deployment_mut(ns, name)?;
        let current = d.revision;
        let target = match to {
            Some(rev) => d.revisions.iter().find(|r| r.revision == rev),
            None => d
                .revisions
                .iter()
                .filter(|r| r.revision < current)
                .max_by_key(|r| r.revision),
        }
        .cloned()
        .ok_or_else(|| {
            BackendError::Invalid(format!(
                "deployment {ns}/{name} has no revision to roll back to"
            ))
        })?;
        if target.revision == current {
            return Err(BackendError::Invalid(format!(
                "revision {current} is already current"
            )));
        }
        let new_revision = d
            .revisions
            .iter()
            .map(|r| r.revision)
            .max()
            .unwrap_or(current)
            + 1;
        d.revisions.retain(|r| r.revision != target.revision);
        d.revisions.push(SimRevision {
            revision: new_revision,
            images: target.images.clone(),
            created_at: now_ms(),
            change_cause: Some(format!("rollback to revision {}", target.revision)),
        });
        d.revision = new_revision;
        d.ready_replicas = None;
        d.progress_deadline_exceeded = false;
        d.observed_generation = d.generation;
        let replicas = d.replicas;
        s.replace_pods(ns, name, replicas, suffix);
        s.event(
            ns,
            "Deployment",
            name,
            "DeploymentRollback",
            format!("Rolled back to revision {}", target.revision),
        );
        let d = s
            .deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .ok_or_else(|| not_found("deployment", ns, name))?;
        Ok(to_deployment(d, &s.pods))
    }

    async fn delete_pods(&self, ns: &str, names: &[String]) -> Result<u32, BackendError> {
        let suffix = self.next_suffix();
        let mut s = self.lock()?;
        if let Some(missing) = names
            .iter()
            .find(|n| !s.pods.iter().any(|p| p.namespace == ns && &p.name == *n))
        {
            return Err(not_found("pod", ns, missing));
        }
        let mut deleted = 0u32;
        let mut recreate = Vec::new();
        s.pods.retain(|p| {
            let hit = p.namespace == ns && names.contains(&p.name);
            if hit {
                deleted += 1;
                recreate.push((p.deployment.clone(), p.labels.clone()));
            }
            !hit
        });
        for (i, (owner, labels)) in recreate.into_iter().enumerate() {
            if let Some(owner) = owner {
                s.pods.push(fresh_pod(
                    ns,
                    &owner,
                    &labels,
                    suffix,
                    u32::try_from(i).unwrap_or(u32::MAX),
                ));
            }
        }
        for name in names {
            s.event(
                ns,
                "Pod",
                name,
                "Killing",
                "Stopping container (deleted by runwarden)".into(),
            );
        }
        Ok(deleted)
    }

    async fn annotate(
        &self,
        target: &ObjectRef,
        annotations: &[(String, String)],
    ) -> Result<(), BackendError> {
        let mut s = self.lock()?;
        let found = if target.kind == "Deployment" {
            s.deployments
                .iter_mut()
                .find(|d| d.namespace == target.namespace && d.name == target.name)
                .map(|d| &mut d.annotations)
        } else {
            s.objects
                .iter_mut()
                .find(|o| {
                    o.kind == target.kind
                        && o.namespace == target.namespace
                        && o.name == target.name
                })
                .map(|o| &mut o.annotations)
        };
        let map = found.ok_or_else(|| not_found(&target.kind, &target.namespace, &target.name))?;
        for (k, v) in annotations {
            map.insert(k.clone(), v.clone());
        }
        let (ns, kind, name) = (
            target.namespace.clone(),
            target.kind.clone(),
            target.name.clone(),
        );
        s.event(
            &ns,
            &kind,
            &name,
            "Annotated",
            format!("{} annotation(s) set", annotations.len()),
        );
        Ok(())
    }

    async fn list_certificates(&self, ns: &str) -> Result<Vec<Certificate>, BackendError> {
        Ok(self.lock()?.list_certificates(ns))
    }

    async fn get_certificate(&self, ns: &str, name: &str) -> Result<Certificate, BackendError> {
        self.lock()?.get_certificate(ns, name)
    }

    async fn renew_certificate(&self, ns: &str, name: &str) -> Result<Certificate, BackendError> {
        self.lock()?.renew_certificate(ns, name)
    }

    async fn pod_logs(
        &self,
        ns: &str,
        pod: &str,
        _container: Option<&str>,
        previous: bool,
        tail: u32,
    ) -> Result<String, BackendError> {
        let s = self.lock()?;
        let p = s
            .pods
            .iter()
            .find(|p| p.namespace == ns && p.name == pod)
            .ok_or_else(|| BackendError::NotFound(format!("pod {ns}/{pod}")))?;
        let lines = if previous { &p.previous_logs } else { &p.logs };
        if previous && lines.is_empty() && p.restarts == 0 {
            // What the API server answers for a container that never restarted.
            return Err(BackendError::Invalid(format!(
                "previous terminated container in pod {ns}/{pod} not found"
            )));
        }
        let from = lines.len().saturating_sub(tail as usize);
        Ok(super::grant::clip_log(&lines[from..].join("\n")))
    }

    async fn namespace_view(&self, ns: &str) -> Result<ClusterState, BackendError> {
        Ok(self.lock()?.namespace(ns))
    }

    async fn locate_workload(&self, name: &str) -> Result<Vec<(String, String)>, BackendError> {
        let s = self.lock()?;
        let mut found: Vec<(String, String)> = Vec::new();
        found.extend(
            s.deployments
                .iter()
                .filter(|d| d.name == name)
                .map(|d| (d.namespace.clone(), "Deployment".to_string())),
        );
        found.extend(
            s.statefulsets
                .iter()
                .filter(|d| d.name == name)
                .map(|d| (d.namespace.clone(), "StatefulSet".to_string())),
        );
        found.extend(
            s.daemonsets
                .iter()
                .filter(|d| d.name == name)
                .map(|d| (d.namespace.clone(), "DaemonSet".to_string())),
        );
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_demo_cluster_parses() {
        let parsed: Result<ClusterState, _> = serde_json::from_str(DEMO_STATE);
        assert!(
            parsed.as_ref().is_ok_and(|s| !s.deployments.is_empty()),
            "{parsed:?}"
        );
    }

    #[tokio::test]
    async fn rollback_reactivates_the_previous_template_under_a_new_revision()
    -> Result<(), BackendError> {
        let c = SimulatedCluster::demo();
        let before = c.get_deployment("payments", "payment-api").await?;
        assert_eq!(before.revision, 2);
        let after = c
            .rollback_deployment("payments", "payment-api", None)
            .await?;
        assert_eq!(after.revision, 3);
        let history = c.rollout_history("payments", "payment-api").await?;
        let revs: Vec<u64> = history.iter().map(|r| r.revision).collect();
        assert_eq!(revs, vec![2, 3]);
        assert_eq!(
            after.images,
            history[0..1]
                .iter()
                .map(|_| "registry.example/payment-api:1.41.0".to_string())
                .collect::<Vec<_>>()
        );
        let pods = c.list_pods("payments", Some("app=payment-api")).await?;
        assert!(
            pods.iter()
                .all(|p| p.restarts == 0 && p.last_termination_reason.is_none())
        );
        Ok(())
    }

    #[tokio::test]
    async fn scaling_adds_and_removes_pods() -> Result<(), BackendError> {
        let c = SimulatedCluster::demo();
        let d = c.scale_deployment("payments", "payment-api", 5).await?;
        // One of the three existing pods is ready; the two new ones are.
        assert_eq!((d.replicas, d.ready_replicas), (5, 3));
        assert_eq!(
            c.list_pods("payments", Some("app=payment-api"))
                .await?
                .len(),
            5
        );
        let d = c.scale_deployment("payments", "payment-api", 1).await?;
        assert_eq!(d.replicas, 1);
        assert_eq!(
            c.list_pods("payments", Some("app=payment-api"))
                .await?
                .len(),
            1
        );
        Ok(())
    }

    #[tokio::test]
    async fn unknown_objects_are_not_found() {
        let c = SimulatedCluster::demo();
        assert!(matches!(
            c.get_deployment("payments", "nope").await,
            Err(BackendError::NotFound(_))
        ));
        assert!(matches!(
            c.delete_pods("payments", &["nope".into()]).await,
            Err(BackendError::NotFound(_))
        ));
        assert!(matches!(
            c.list_pods("payments", Some("app!=x")).await,
            Err(BackendError::Invalid(_))
        ));
    }
}

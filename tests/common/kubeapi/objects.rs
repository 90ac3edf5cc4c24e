//! The API server double's objects as the API serves them (Deployment,
//! ReplicaSet, Pod JSON), and its demo state.

use super::State;
use serde_json::{Value, json};

impl State {
    pub(super) fn demo() -> State {
        let mut s = State::default();
        let d = ("payments".to_string(), "payment-api".to_string());
        s.deployments.insert(
            d.clone(),
            (3, 2, "registry.example/payment-api:1.42.0".into()),
        );
        s.replicasets.insert(
            d,
            vec![
                (1, "registry.example/payment-api:1.41.0".into()),
                (2, "registry.example/payment-api:1.42.0".into()),
            ],
        );
        for pod in [
            "payment-api-7d9f-a1",
            "payment-api-7d9f-b2",
            "payment-api-7d9f-c3",
        ] {
            s.pods
                .insert(("payments".into(), pod.into()), "payment-api".into());
        }
        s
    }

    pub(super) fn deployment(&self, ns: &str, name: &str) -> Option<Value> {
        let (replicas, revision, image) = self.deployments.get(&(ns.into(), name.into()))?;
        Some(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                         "resourceVersion": format!("{revision}{replicas}"),
                         "labels": {"app": name, "tier": "2"},
                         "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                       "updatedReplicas": replicas, "observedGeneration": 1}
        }))
    }

    pub(super) fn replicaset_list(&self, ns: &str) -> Value {
        let items: Vec<Value> = self
            .replicasets
            .iter()
            .filter(|((n, _), _)| n == ns)
            .flat_map(|((ns, d), sets)| {
                sets.iter().map(move |(rev, image)| {
                    json!({
                        "metadata": {"name": format!("{d}-r{rev}"), "namespace": ns,
                                     "uid": format!("uid-{d}-r{rev}"),
                                     "labels": {"app": d, "pod-template-hash": format!("r{rev}")},
                                     "annotations": {"deployment.kubernetes.io/revision": rev.to_string()},
                                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                          "name": d, "uid": format!("uid-{d}"), "controller": true}],
                                     "creationTimestamp": "2026-11-27T06:13:20Z"},
                        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": d, "pod-template-hash": format!("r{rev}")}},
                                 "template": {"metadata": {"labels": {"app": d, "pod-template-hash": format!("r{rev}")}},
                                              "spec": {"containers": [{"name": "app", "image": image}]}}},
                        "status": {"replicas": 0}
                    })
                })
            })
            .collect();
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": {"resourceVersion": "1"}, "items": items})
    }

    pub(super) fn pod(ns: &str, name: &str, deployment: &str) -> Value {
        Self::pod_in(ns, name, deployment, false)
    }

    pub(super) fn pod_in(ns: &str, name: &str, deployment: &str, crashing: bool) -> Value {
        if crashing {
            return json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                             "labels": {"app": deployment},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": format!("{deployment}-7d9f"), "uid": "rs", "controller": true}]},
                "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "x"}]},
                "status": {"phase": "Running",
                           "conditions": [{"type": "Ready", "status": "False"}],
                           "containerStatuses": [{"name": "app", "ready": false, "restartCount": 7,
                               "image": "x", "imageID": "x",
                               "state": {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": "back-off 5m0s restarting failed container=app"}},
                               "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
            });
        }
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                         "labels": {"app": deployment},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": format!("{deployment}-7d9f"), "uid": "rs", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": "x"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                              "image": "x", "imageID": "x"}]}
        })
    }
}

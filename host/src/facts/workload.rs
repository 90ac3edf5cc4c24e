//! Which workload an alert is about, whatever rule set fired it.
//!
//! Rule sets name the workload differently: kube-prometheus by `pod`,
//! `deployment`, `statefulset`, `job_name` or `horizontalpodautoscaler`
//! (with `namespace`, or `exported_namespace` when the series came through
//! kube-state-metrics and its own `service`/`namespace` labels name the
//! exporter), hand-written rules by `service`, `service_name`, `app` or
//! `job`. The host tries each, in order of how specific it is, against the
//! objects it reads from the cluster — a pod leads to its owner — and
//! records how it resolved the workload as a fact. A name that matches no
//! object resolves nothing: the planner never acts on a guess.

use super::Fact;
use crate::capability::k8s::sim::ClusterState;
use std::collections::BTreeMap;

/// Labels that hold a namespace, most specific first.
const NAMESPACE_LABELS: [&str; 4] = [
    "namespace",
    "kubernetes_namespace",
    "k8s_namespace",
    "namespace_name",
];

/// Whether the series came through an exporter that reports other
/// objects (kube-state-metrics, cert-manager): only then do its
/// `exported_*` labels name the subject. With Prometheus' default
/// `honor_labels: false`, an application that exports its own `namespace`
/// label gets it renamed `exported_namespace` — it must not choose which
/// namespace the host acts in.
fn via_exporter(labels: &BTreeMap<String, String>) -> bool {
    ["job", "service", "container"]
        .iter()
        .filter_map(|k| labels.get(*k))
        .any(|v| v.contains("kube-state-metrics"))
        || from_cert_manager(labels)
}

/// Whether the series are cert-manager's own (its `name` is then a
/// Certificate's, its `exported_namespace` the Certificate's namespace):
/// the scrape job says so, or the issuer labels only cert-manager's
/// certificate metrics carry, or the alert is one of the cert-manager
/// mixin's, whose `max by (name, exported_namespace, namespace, ...)`
/// drops the job label. Alert names come from the operator's rule files,
/// not from the applications being scraped.
pub fn from_cert_manager(labels: &BTreeMap<String, String>) -> bool {
    ["job", "service", "container"]
        .iter()
        .filter_map(|k| labels.get(*k))
        .any(|v| v.contains("cert-manager"))
        || labels.contains_key("issuer_name")
        || labels
            .get("alertname")
            .is_some_and(|a| a.starts_with("CertManager"))
}

/// Jobs and services that are exporters or the cluster's own scrape
/// targets: their names are never the incident's workload.
fn is_exporter(name: &str) -> bool {
    [
        "kube-state-metrics",
        "kubelet",
        "node-exporter",
        "cadvisor",
        "apiserver",
        "kube-prometheus",
        "prometheus-operator",
        "blackbox",
        "cert-manager",
    ]
    .iter()
    .any(|e| name.contains(e))
}

/// Labels some exporters pack together, unpacked: cAdvisor's Docker-era
/// container `name` (`k8s_<container>_<pod>_<namespace>_<uid>_<n>`) gives
/// the pod and its namespace. Never overwrites a label the alert has.
pub fn unpack(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    if let Some(name) = labels.get("name")
        && let Some(rest) = name.strip_prefix("k8s_")
    {
        let parts: Vec<&str> = rest.split('_').collect();
        if parts.len() >= 4 {
            out.entry("pod".into())
                .or_insert_with(|| parts[1].to_string());
            out.entry("namespace".into())
                .or_insert_with(|| parts[2].to_string());
            out.entry("container".into())
                .or_insert_with(|| parts[0].to_string());
        }
    }
    out
}

/// Names the labels may give the workload, most specific first, for
/// alerts that carry no namespace: each is looked up across the namespaces
/// the host may read. Only valid object names (a name is a name, never a
/// selector), at most eight.
pub fn candidates(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: &str| {
        let v = v.rsplit('/').next().unwrap_or(v).to_lowercase();
        if crate::capability::k8s::grant::is_rfc1123_label(&v)
            && !is_exporter(&v)
            && !out.contains(&v)
            && out.len() < 8
        {
            out.push(v);
        }
    };
    for key in CANDIDATE_LABELS {
        if key.starts_with("exported_") && !via_exporter(labels) {
            continue;
        }
        if let Some(v) = labels.get(*key) {
            add(v);
        }
    }
    if let Some(g) = guess(labels) {
        add(&g);
    }
    out
}

/// Words of a free-text title that could name a workload: good for
/// finding context, never for acting (a title is prose; "checkout slow,
/// search fine" names two services).
pub fn title_words(title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in title.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let w = w.trim_matches('-').to_lowercase();
        if w.len() >= 3
            && crate::capability::k8s::grant::is_rfc1123_label(&w)
            && !out.contains(&w)
            && out.len() < 8
        {
            out.push(w);
        }
    }
    out
}

/// Labels that often carry a workload's name, most specific first.
const CANDIDATE_LABELS: &[&str] = &[
    "deployment",
    "statefulset",
    "daemonset",
    "exported_service",
    "service_name",
    "sloth_service",
    "application",
    "app",
    "app_kubernetes_io_name",
    "service",
    "container",
    "ingress",
    "consumergroup",
    "job",
];

/// The alert's namespace: where its workload lives.
pub fn namespace(labels: &BTreeMap<String, String>) -> Option<String> {
    let exported = via_exporter(labels)
        .then(|| labels.get("exported_namespace"))
        .flatten();
    exported
        .into_iter()
        .chain(NAMESPACE_LABELS.iter().filter_map(|k| labels.get(*k)))
        .find(|v| !v.is_empty())
        .cloned()
}

/// The workload `labels` name in `view` (one namespace of the cluster),
/// with how it was found.
pub fn resolve(labels: &BTreeMap<String, String>, view: &ClusterState) -> Option<Fact> {
    let ns = namespace(labels)?;
    let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).map(String::as_str);
    let found = |kind: &str, name: &str, from: String| Fact::Workload {
        object_kind: kind.to_string(),
        namespace: ns.clone(),
        name: name.to_string(),
        resolved_from: from,
    };
    // 1. Labels that name the object and its kind.
    for (key, kind) in [
        ("deployment", "Deployment"),
        ("statefulset", "StatefulSet"),
        ("daemonset", "DaemonSet"),
    ] {
        if let Some(name) = label(key)
            && view.has(kind, &ns, name)
        {
            return Some(found(kind, name, format!("label `{key}`")));
        }
    }
    if let Some(hpa) = label("horizontalpodautoscaler")
        && let Some(h) = view
            .hpas
            .iter()
            .find(|h| h.namespace == ns && h.name == hpa)
        && view.has(&h.target_kind, &ns, &h.target_name)
    {
        return Some(found(
            &h.target_kind,
            &h.target_name,
            format!(
                "label `horizontalpodautoscaler` → its target {}",
                h.target_kind
            ),
        ));
    }
    if let Some(job) = label("job_name")
        && view.jobs.iter().any(|j| j.namespace == ns && j.name == job)
    {
        return Some(found("Job", job, "label `job_name`".into()));
    }
    // 2. A pod leads to its owner; a volume claim to the pod using it.
    if let Some(pod) = label("pod")
        && let Some(fact) = owner_of_pod(view, &ns, pod)
    {
        return Some(fact);
    }
    if let Some(claim) = label("persistentvolumeclaim")
        && let Some(pod) = view
            .pvcs
            .iter()
            .find(|c| c.namespace == ns && c.name == claim)
            .and_then(|c| c.used_by_pod.clone())
            .or_else(|| {
                // StatefulSet claims are `<template>-<pod>`.
                view.pods
                    .iter()
                    .filter(|p| p.namespace == ns)
                    .find(|p| claim.ends_with(&format!("-{}", p.name)))
                    .map(|p| p.name.clone())
            })
        && let Some(Fact::Workload {
            object_kind,
            namespace,
            name,
            resolved_from,
        }) = owner_of_pod(view, &ns, &pod)
    {
        return Some(Fact::Workload {
            object_kind,
            namespace,
            name,
            resolved_from: format!(
                "label `persistentvolumeclaim` → pod {pod}, {}",
                resolved_from.trim_start_matches("label `pod` → ")
            ),
        });
    }
    // 3. Names that usually are the workload's: the exporter's
    //    `exported_*` labels, then service-ish labels that are not an
    //    exporter's own.
    for key in [
        "exported_service",
        "exported_deployment",
        "service_name",
        "sloth_service",
        "application",
        "service",
        "app",
        "app_kubernetes_io_name",
        "container",
        "ingress",
        "job",
    ] {
        if key.starts_with("exported_") && !via_exporter(labels) {
            continue;
        }
        let Some(value) = label(key).filter(|v| !is_exporter(v)) else {
            continue;
        };
        // `job` is often "namespace/name".
        let name = value.rsplit('/').next().unwrap_or(value);
        for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
            if view.has(kind, &ns, name) {
                return Some(found(kind, name, format!("label `{key}`")));
            }
        }
        if let Some(d) = view.deployment_with_app_label(&ns, name) {
            return Some(found(
                "Deployment",
                &d,
                format!("label `{key}` = pods' `app` label"),
            ));
        }
    }
    None
}

/// The workload name the labels most likely mean, unchecked: good for
/// queries when the cluster cannot be read, never for acting.
pub fn guess(labels: &BTreeMap<String, String>) -> Option<String> {
    let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).map(String::as_str);
    ["deployment", "statefulset", "daemonset"]
        .iter()
        .find_map(|k| label(k))
        .map(str::to_string)
        .or_else(|| {
            // `<deployment>-<replicaset hash>-<suffix>`
            label("pod").and_then(|p| {
                let parts: Vec<&str> = p.rsplitn(3, '-').collect();
                match parts[..] {
                    [_, _, base] => Some(base.to_string()),
                    _ => None,
                }
            })
        })
        .or_else(|| {
            [
                "exported_service",
                "service_name",
                "sloth_service",
                "application",
                "service",
                "app",
                "app_kubernetes_io_name",
                "job",
            ]
            .iter()
            .filter_map(|k| label(k))
            .find(|v| !is_exporter(v))
            .map(|v| v.rsplit('/').next().unwrap_or(v).to_string())
        })
}

fn owner_of_pod(view: &ClusterState, ns: &str, pod: &str) -> Option<Fact> {
    let fact = |kind: &str, name: &str, how: &str| Fact::Workload {
        object_kind: kind.to_string(),
        namespace: ns.to_string(),
        name: name.to_string(),
        resolved_from: format!("label `pod` → {how}"),
    };
    if let Some(p) = view
        .pods
        .iter()
        .find(|p| p.namespace == ns && p.name == pod)
    {
        if let Some(d) = p
            .deployment
            .as_ref()
            .filter(|d| view.has("Deployment", ns, d))
        {
            return Some(fact("Deployment", d, "ReplicaSet → Deployment"));
        }
        if let (Some(kind), Some(name)) = (&p.owner_kind, &p.owner_name) {
            return Some(fact(kind, name, kind));
        }
        // A pod nothing owns is its own workload (nothing recreates it).
        return Some(fact("Pod", pod, "a pod without an owner"));
    }
    // A pod that is gone: its name still says its owner. Deployments' pods
    // are `<deployment>-<replicaset hash>-<5 chars>`, StatefulSets'
    // `<statefulset>-<ordinal>`, DaemonSets' `<daemonset>-<5 chars>`.
    if let Some((base, tail)) = pod.rsplit_once('-')
        && tail.bytes().all(|b| b.is_ascii_digit())
        && view.has("StatefulSet", ns, base)
    {
        return Some(fact("StatefulSet", base, "its name → StatefulSet"));
    }
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if let [suffix, hash, deployment] = parts[..]
        && suffix.len() == 5
        && hash.len() >= 5
        && view.has("Deployment", ns, deployment)
    {
        return Some(fact("Deployment", deployment, "its name → Deployment"));
    }
    if let Some((base, _)) = pod.rsplit_once('-')
        && view.has("DaemonSet", ns, base)
    {
        return Some(fact("DaemonSet", base, "its name → DaemonSet"));
    }
    None
}

impl ClusterState {
    /// Whether a workload of that kind exists.
    pub fn has(&self, kind: &str, ns: &str, name: &str) -> bool {
        match kind {
            "Deployment" => self
                .deployments
                .iter()
                .any(|d| d.namespace == ns && d.name == name),
            "StatefulSet" => self
                .statefulsets
                .iter()
                .any(|d| d.namespace == ns && d.name == name),
            "DaemonSet" => self
                .daemonsets
                .iter()
                .any(|d| d.namespace == ns && d.name == name),
            _ => false,
        }
    }

    /// The Deployment whose pods carry `app=<app>`.
    fn deployment_with_app_label(&self, ns: &str, app: &str) -> Option<String> {
        self.pods
            .iter()
            .filter(|p| p.namespace == ns)
            .filter(|p| {
                p.labels.get("app").map(String::as_str) == Some(app)
                    || p.labels.get("app.kubernetes.io/name").map(String::as_str) == Some(app)
            })
            .find_map(|p| p.deployment.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ClusterState {
        serde_json::from_value(serde_json::json!({
            "deployments": [{"namespace": "shop", "name": "cart", "replicas": 2, "revision": 1, "revisions": []}],
            "statefulsets": [{"namespace": "db", "name": "pg", "replicas": 3}],
            "hpas": [{"namespace": "shop", "name": "cart-hpa", "target_name": "cart", "max_replicas": 5, "current_replicas": 5}],
            "pods": [
                {"namespace": "shop", "name": "cart-7d9f-abcde", "deployment": "cart", "labels": {"app": "cart-svc"}},
                {"namespace": "db", "name": "pg-1", "owner_kind": "StatefulSet", "owner_name": "pg"}
            ]
        }))
        .expect("view")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn name_of(f: Option<Fact>) -> Option<(String, String)> {
        match f? {
            Fact::Workload {
                object_kind, name, ..
            } => Some((object_kind, name)),
            _ => None,
        }
    }

    #[test]
    fn an_applications_own_exported_namespace_chooses_nothing() {
        // Scraped with honor_labels: false, an app in `shop` exporting
        // namespace="db" shows up as exported_namespace="db".
        let l = labels(&[
            ("namespace", "shop"),
            ("exported_namespace", "db"),
            ("job", "cart"),
            ("pod", "pg-1"),
        ]);
        assert_eq!(namespace(&l).as_deref(), Some("shop"));
        // The alert is about the app that emitted it, in its namespace.
        assert_eq!(
            name_of(resolve(&l, &view())),
            Some(("Deployment".into(), "cart".into()))
        );
    }

    #[test]
    fn kube_state_metrics_labels_resolve_through_the_pod_and_exported_namespace() {
        let l = labels(&[
            ("namespace", "monitoring"),
            ("exported_namespace", "shop"),
            ("service", "kube-prometheus-stack-kube-state-metrics"),
            ("job", "kube-state-metrics"),
            ("pod", "cart-7d9f-abcde"),
        ]);
        assert_eq!(
            name_of(resolve(&l, &view())),
            Some(("Deployment".into(), "cart".into()))
        );
    }

    #[test]
    fn a_gone_pod_a_statefulset_pod_an_hpa_and_service_names_resolve() {
        let v = view();
        let gone = labels(&[("namespace", "shop"), ("pod", "cart-5c6d7-zzzzz")]);
        assert_eq!(
            name_of(resolve(&gone, &v)),
            Some(("Deployment".into(), "cart".into()))
        );
        let sts = labels(&[("namespace", "db"), ("pod", "pg-1")]);
        assert_eq!(
            name_of(resolve(&sts, &v)),
            Some(("StatefulSet".into(), "pg".into()))
        );
        let hpa = labels(&[
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "cart-hpa"),
        ]);
        assert_eq!(
            name_of(resolve(&hpa, &v)),
            Some(("Deployment".into(), "cart".into()))
        );
        let by_app = labels(&[("namespace", "shop"), ("service_name", "cart-svc")]);
        assert_eq!(
            name_of(resolve(&by_app, &v)),
            Some(("Deployment".into(), "cart".into()))
        );
        let job = labels(&[("namespace", "shop"), ("job", "shop/cart")]);
        assert_eq!(
            name_of(resolve(&job, &v)),
            Some(("Deployment".into(), "cart".into()))
        );
    }

    #[test]
    fn names_that_match_nothing_resolve_nothing() {
        let l = labels(&[
            ("namespace", "shop"),
            ("service", "kube-state-metrics"),
            ("app", "ghost"),
        ]);
        assert_eq!(resolve(&l, &view()), None);
        assert_eq!(resolve(&labels(&[("app", "cart")]), &view()), None);
    }
}

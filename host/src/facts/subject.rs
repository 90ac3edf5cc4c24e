//! What an incident is about, found before the sources run: the alert's
//! namespace, the host's own view of it (only where a context source's
//! read grant reaches), and the workload whichever label the rule set used
//! — or, for a free-text title, a workload described but never acted on.

use super::{Fact, Facts, HOST_LABEL_PREFIX, cluster, signals, workload};

/// What the incident is about, found before the sources run.
#[derive(Debug, Default)]
pub struct Subject {
    pub namespace: Option<String>,
    /// Kind and name of the workload.
    pub workload: Option<(String, String)>,
    /// Found in the cluster (else a best guess from the labels, good for
    /// queries, never for acting).
    pub verified: bool,
    /// Found in the cluster by a word of a free-text title: described
    /// (context, facts about its pods), never acted on.
    pub from_title: bool,
    view: Option<crate::capability::k8s::sim::ClusterState>,
    facts: Facts,
}

impl Subject {
    /// The alert's labels as the sources and planners see them: the
    /// sender's, without any `runwarden_*` label it sent, plus the host's.
    pub fn labels(
        &self,
        sent: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let mut out: std::collections::BTreeMap<String, String> = sent
            .iter()
            .filter(|(k, _)| !k.starts_with(HOST_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut set = |k: &str, v: &str| {
            out.insert(format!("{HOST_LABEL_PREFIX}{k}"), v.to_string());
        };
        if let Some(ns) = &self.namespace {
            set("namespace", ns);
        }
        if let Some((kind, name)) = &self.workload {
            set("workload", name);
            set("workload_kind", kind);
            set(
                "workload_verified",
                if self.verified { "true" } else { "false" },
            );
        }
        out
    }

    /// Every fact: the subject's, the cluster's about the workload, the
    /// sources' signals.
    pub fn conclude(
        self,
        labels: &std::collections::BTreeMap<String, String>,
        evidence: &[crate::analysis::EvidenceItem],
        gaps: &[crate::pipeline::context::Gap],
        now_ms: i64,
    ) -> Facts {
        let mut facts = self.facts;
        for gap in gaps {
            let r = gap.reason.to_lowercase();
            // A refused read, not an unreachable endpoint.
            if r.contains("denied") || r.contains("not granted") {
                facts.push(Fact::MissingGrant {
                    source: gap.source.clone(),
                    detail: gap.reason.clone(),
                });
            }
        }
        let own = self.workload.as_ref().map(|(_, n)| n.as_str());
        signals::derive(evidence, own, &mut facts);
        // The symptoms began when the first symptom series moved, if that
        // was before the alert fired (alerts fire after a `for:` period).
        let alert_start = facts.onset_ms;
        let earliest = facts
            .items
            .iter()
            .filter_map(|f| match f {
                Fact::MetricShift {
                    signal, onset_ms, ..
                } if matches!(signal.as_str(), "error-rate" | "latency") => *onset_ms,
                _ => None,
            })
            .filter(|t| *t < alert_start && alert_start - *t < 60 * 60 * 1000)
            .min();
        if let Some(t) = earliest {
            facts.onset_ms = t;
        }
        if let Some(v) = &self.view {
            let w = self
                .workload
                .as_ref()
                .filter(|_| self.verified || self.from_title)
                .zip(self.namespace.as_ref())
                .map(|((k, n), ns)| (k.as_str(), ns.as_str(), n.as_str()));
            cluster::derive(v, w, labels, self.namespace.as_deref(), &mut facts, now_ms);
        }
        // Log lines and event messages end up in hypotheses, escalations
        // and prompts: redacted like every other alert-derived text.
        facts.items = facts
            .items
            .into_iter()
            .map(|f| {
                serde_json::to_value(&f)
                    .ok()
                    .map(|v| crate::redact::redact_json(&v))
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or(f)
            })
            .collect();
        facts
    }
}

/// The one (namespace, kind) of a workload named `name` that the host may
/// read, if exactly one.
async fn locate_once(
    cluster: &dyn crate::capability::k8s::ClusterBackend,
    readable: &(dyn Fn(&str) -> bool + Sync),
    name: &str,
) -> Option<(String, String)> {
    let found = cluster.locate_workload(name).await.ok()?;
    let found: Vec<(String, String)> = found.into_iter().filter(|(ns, _)| readable(ns)).collect();
    match <[(String, String); 1]>::try_from(found) {
        Ok([one]) => Some(one),
        Err(_) => None,
    }
}

/// Finds what the incident is about: the alert's namespace, the host's
/// view of it (under the union of the context sources' Kubernetes read
/// grants: if no context source may read the namespace, neither does the
/// host, and the decision says so), and the workload.
pub async fn subject(
    cluster: &dyn crate::capability::k8s::ClusterBackend,
    read_grants: &[(&str, &crate::capability::k8s::K8sGrant)],
    alert_name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    alert_start_ms: i64,
) -> Subject {
    let sent: std::collections::BTreeMap<String, String> = workload::unpack(
        &labels
            .iter()
            .filter(|(k, _)| !k.starts_with(HOST_LABEL_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    let readable = |ns: &str| {
        read_grants
            .iter()
            .any(|(_, g)| crate::capability::k8s::check_read(g, ns).is_ok())
    };
    let mut s = Subject {
        namespace: workload::namespace(&sent),
        facts: Facts {
            onset_ms: alert_start_ms,
            items: vec![],
        },
        ..Subject::default()
    };
    // No namespace: a workload a label names, found in exactly one
    // namespace the host may read (verified: a sender's label chose it);
    // else one a word of the title names (context only, never acted on).
    let mut located: Option<Fact> = None;
    if s.namespace.is_none() {
        for name in workload::candidates(&sent) {
            if let Some((ns, kind)) = locate_once(cluster, &readable, &name).await {
                s.namespace = Some(ns.clone());
                located = Some(Fact::Workload {
                    object_kind: kind.clone(),
                    namespace: ns,
                    name: name.clone(),
                    resolved_from: format!(
                        "the name `{name}` in the alert's labels: the only {kind} of that name the host may read"
                    ),
                });
                break;
            }
        }
    }
    if s.namespace.is_none() && located.is_none() {
        for word in workload::title_words(alert_name) {
            if let Some((ns, kind)) = locate_once(cluster, &readable, &word).await {
                s.namespace = Some(ns);
                s.workload = Some((kind, word));
                s.from_title = true;
                break;
            }
        }
    }
    if let Some(ns) = s.namespace.clone() {
        let denials: Vec<String> = read_grants
            .iter()
            .filter_map(|(name, g)| {
                crate::capability::k8s::check_read(g, &ns)
                    .err()
                    .map(|d| format!("{name}: {}", d.0))
            })
            .collect();
        if denials.len() == read_grants.len() {
            s.facts.push(Fact::MissingGrant {
                source: "cluster".into(),
                detail: if read_grants.is_empty() {
                    format!("no context source has a Kubernetes read grant; namespace `{ns}` was not read")
                } else {
                    format!("no context source may read namespace `{ns}` ({})", denials.join("; "))
                },
            });
        } else {
            match cluster.namespace_view(&ns).await {
                Ok(v) => s.view = Some(v),
                Err(e) => s.facts.push(Fact::MissingGrant {
                    source: "cluster".into(),
                    detail: format!("reading namespace `{ns}`: {e}"),
                }),
            }
        }
    }
    if s.from_title {
        return s;
    }
    let resolved = located.or_else(|| s.view.as_ref().and_then(|v| workload::resolve(&sent, v)));
    match resolved {
        Some(Fact::Workload {
            object_kind,
            namespace,
            name,
            resolved_from,
        }) => {
            s.workload = Some((object_kind.clone(), name.clone()));
            s.verified = true;
            s.facts.push(Fact::Workload {
                object_kind,
                namespace,
                name,
                resolved_from,
            });
        }
        _ => s.workload = workload::guess(&sent).map(|n| ("Deployment".to_string(), n)),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::k8s::sim::SimulatedCluster;
    use std::collections::BTreeMap;

    fn grant() -> crate::capability::k8s::K8sGrant {
        toml::from_str("namespaces = []\nread_all_namespaces = true\noperations = [\"read\"]\n")
            .expect("grant")
    }

    fn cluster() -> SimulatedCluster {
        SimulatedCluster::from_json(
            &serde_json::json!({"deployments": [
                {"namespace": "shop", "name": "checkout", "replicas": 2, "revision": 1, "revisions": []},
                {"namespace": "shop", "name": "search", "replicas": 2, "revision": 1, "revisions": []},
                {"namespace": "kube-system", "name": "coredns", "replicas": 2, "revision": 1, "revisions": []}
            ]})
            .to_string(),
        )
        .expect("cluster")
    }

    #[tokio::test]
    async fn a_workload_named_only_in_a_title_is_described_never_verified() {
        let g = grant();
        let labels = BTreeMap::from([(
            "alertname".to_string(),
            "checkout slow, search fine".to_string(),
        )]);
        let s = subject(
            &cluster(),
            &[("k8s-changes", &g)],
            "checkout slow, search fine",
            &labels,
            0,
        )
        .await;
        assert_eq!(s.workload, Some(("Deployment".into(), "checkout".into())));
        assert!(s.from_title && !s.verified);
        let host = s.labels(&labels);
        assert_eq!(host["runwarden_workload_verified"], "false");
        let facts = s.conclude(&host, &[], &[], 0);
        assert!(facts.workload().is_none(), "{facts:?}");
        // A label naming it is the sender's word: verified.
        let labels = BTreeMap::from([("service_name".to_string(), "search".to_string())]);
        let s = subject(
            &cluster(),
            &[("k8s-changes", &g)],
            "HighLatency",
            &labels,
            0,
        )
        .await;
        assert!(s.verified && !s.from_title);
        assert_eq!(s.labels(&labels)["runwarden_namespace"], "shop");
        // Never a system namespace, whatever the name.
        let labels = BTreeMap::from([("app".to_string(), "coredns".to_string())]);
        let s = subject(&cluster(), &[("k8s-changes", &g)], "coredns", &labels, 0).await;
        assert_eq!(s.workload.map(|w| w.1), Some("coredns".into()));
        assert!(!s.verified && s.namespace.is_none(), "{:?}", s.namespace);
    }

    #[tokio::test]
    async fn a_sender_cannot_set_the_hosts_labels_and_secrets_in_facts_are_redacted() {
        let g = grant();
        let labels = BTreeMap::from([
            ("namespace".to_string(), "shop".to_string()),
            ("deployment".to_string(), "search".to_string()),
            ("runwarden_workload".to_string(), "checkout".to_string()),
            (
                "runwarden_workload_verified".to_string(),
                "true".to_string(),
            ),
        ]);
        let s = subject(
            &cluster(),
            &[("k8s-changes", &g)],
            "KubePodCrashLooping",
            &labels,
            0,
        )
        .await;
        let host = s.labels(&labels);
        assert_eq!(host["runwarden_workload"], "search");
        let token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
        let logs = crate::analysis::EvidenceItem {
            source: "loki".into(),
            kind: "log-lines".into(),
            summary: String::new(),
            body: serde_json::json!({"top_patterns": [{"pattern": "p", "count": 3, "error": true,
                "example": format!("error: config token={token} is not set")}]}),
            facts: vec![],
        };
        let facts = s.conclude(&host, &[logs], &[], 0);
        let text = serde_json::to_string(&facts).expect("json");
        assert!(text.contains("config"), "{text}");
        assert!(!text.contains(token), "{text}");
    }
}

//! The Kubernetes RBAC that the granted k8s capabilities need — and
//! nothing more.
//!
//! The agent's service account should not be able to do what no policy
//! grants: if a plugin could, the host's checks would be the only wall. So
//! the Role is derived from the effective grants, operation by operation,
//! namespace by namespace (grants name namespaces explicitly, so there is
//! never a ClusterRole), from the API calls the kube-rs backend makes for
//! each operation (`kube_backend.rs`, `kube_certificates.rs`). A security
//! reviewer can diff the output against what is deployed.

use super::grant::{K8sGrant, Namespace, Operation};
use std::collections::{BTreeMap, BTreeSet};

/// One RBAC rule: an API group, a resource, a verb.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
}

const fn p(group: &'static str, resource: &'static str, verb: &'static str) -> Permission {
    Permission {
        group,
        resource,
        verb,
    }
}

/// The API calls behind one granted operation.
pub fn permissions(op: Operation, annotate_kinds: &[String]) -> Vec<Permission> {
    match op {
        // get/list deployments, rollout history (ReplicaSets), pods,
        // events, certificates; and what the host reads for facts under a
        // read grant (`kube_view.rs`): the other workloads, jobs,
        // autoscalers, volume claims, network policies.
        Operation::Read => vec![
            p("apps", "deployments", "get"),
            p("apps", "deployments", "list"),
            p("apps", "replicasets", "list"),
            p("apps", "statefulsets", "list"),
            p("apps", "daemonsets", "list"),
            p("batch", "jobs", "list"),
            p("autoscaling", "horizontalpodautoscalers", "list"),
            p("", "persistentvolumeclaims", "list"),
            p("networking.k8s.io", "networkpolicies", "list"),
            p("", "pods", "list"),
            p("", "events", "list"),
            p("cert-manager.io", "certificates", "get"),
            p("cert-manager.io", "certificates", "list"),
        ],
        // PATCH deployments/NAME/scale after reading the deployment.
        Operation::Scale => vec![
            p("apps", "deployments", "get"),
            p("apps", "deployments/scale", "patch"),
        ],
        // Copy a ReplicaSet's template back into the deployment.
        Operation::Rollback => vec![
            p("apps", "deployments", "get"),
            p("apps", "deployments", "patch"),
            p("apps", "replicasets", "list"),
        ],
        Operation::DeletePods => vec![p("", "pods", "delete")],
        Operation::Logs => vec![p("", "pods/log", "get")],
        Operation::Annotate => annotate_kinds
            .iter()
            .filter_map(|k| annotatable(k))
            .map(|(group, resource)| p(group, resource, "patch"))
            .collect(),
        // GET, then PUT the status subresource (the `Issuing` condition).
        Operation::RenewCertificate => vec![
            p("cert-manager.io", "certificates", "get"),
            p("cert-manager.io", "certificates/status", "update"),
        ],
    }
}

/// The kinds `annotate` supports, as (API group, resource).
fn annotatable(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "Deployment" => ("apps", "deployments"),
        "StatefulSet" => ("apps", "statefulsets"),
        "Service" => ("", "services"),
        "Certificate" => ("cert-manager.io", "certificates"),
        "Ingress" => ("networking.k8s.io", "ingresses"),
        _ => return None,
    })
}

/// Every permission, per namespace, that these grants need together.
pub fn needed<'a>(
    grants: impl IntoIterator<Item = &'a K8sGrant>,
) -> BTreeMap<Namespace, BTreeSet<Permission>> {
    let mut out: BTreeMap<Namespace, BTreeSet<Permission>> = BTreeMap::new();
    for grant in grants {
        let perms: Vec<Permission> = grant
            .operations
            .iter()
            .flat_map(|op| permissions(*op, &grant.annotate_kinds))
            .collect();
        for ns in &grant.namespaces {
            out.entry(ns.clone())
                .or_default()
                .extend(perms.iter().cloned());
        }
    }
    out
}

/// The read permissions that grants reading every namespace need: one
/// ClusterRole (Kubernetes RBAC cannot say "all but the system
/// namespaces"; the host's grant check keeps those out).
pub fn cluster_wide_reads<'a>(
    grants: impl IntoIterator<Item = &'a K8sGrant>,
) -> BTreeSet<Permission> {
    let mut reads: BTreeSet<Permission> = grants
        .into_iter()
        .filter(|g| g.read_all_namespaces)
        .flat_map(|g| {
            g.operations
                .iter()
                .filter(|op| op.is_read())
                .flat_map(|op| permissions(*op, &g.annotate_kinds))
        })
        .collect();
    // Nodes are cluster-scoped: the host reads them for facts (a node not
    // ready under the workload) only with a cluster-wide read grant.
    if !reads.is_empty() {
        reads.insert(p("", "nodes", "list"));
    }
    reads
}

/// A ClusterRole and its binding for `cluster_wide_reads`, if any.
pub fn cluster_manifests(
    reads: &BTreeSet<Permission>,
    subject: &Subject,
) -> Vec<serde_json::Value> {
    if reads.is_empty() {
        return vec![];
    }
    let name = format!("{}-context-reads", subject.service_account);
    vec![
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels()},
            "rules": rules(reads),
        }),
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": subject.service_account,
                          "namespace": subject.namespace}],
        }),
    ]
}

/// Where the agent runs: its service account, and its Lease if several
/// replicas elect a leader.
#[derive(Debug, Clone)]
pub struct Subject {
    pub namespace: String,
    pub service_account: String,
    pub lease: Option<String>,
}

/// Role and RoleBinding objects, one pair per namespace, plus the Lease's.
pub fn manifests(
    needed: &BTreeMap<Namespace, BTreeSet<Permission>>,
    subject: &Subject,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let name = format!("{}-remediation", subject.service_account);
    for (ns, perms) in needed {
        out.push(role(&name, ns.as_str(), rules(perms)));
        out.push(binding(&name, ns.as_str(), subject));
    }
    if let Some(lease) = &subject.lease {
        let name = format!("{}-leader-election", subject.service_account);
        // `create` cannot be narrowed to a name (the object does not exist
        // yet); get/update can.
        let rules = vec![
            serde_json::json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "resourceNames": [lease], "verbs": ["get", "update"]}),
            serde_json::json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["create"]}),
        ];
        out.push(role(&name, &subject.namespace, rules));
        out.push(binding(&name, &subject.namespace, subject));
    }
    out
}

/// Rules grouped by (group, resource), verbs sorted: the shape people read.
fn rules(perms: &BTreeSet<Permission>) -> Vec<serde_json::Value> {
    let mut by_resource: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for perm in perms {
        by_resource
            .entry((perm.group, perm.resource))
            .or_default()
            .insert(perm.verb);
    }
    by_resource
        .into_iter()
        .map(|((group, resource), verbs)| {
            serde_json::json!({"apiGroups": [group], "resources": [resource], "verbs": verbs})
        })
        .collect()
}

fn labels() -> serde_json::Value {
    serde_json::json!({"app.kubernetes.io/name": "runwarden", "app.kubernetes.io/managed-by": "runwarden-rbac"})
}

fn role(name: &str, namespace: &str, rules: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": labels()},
        "rules": rules,
    })
}

fn binding(name: &str, namespace: &str, subject: &Subject) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": subject.service_account,
                      "namespace": subject.namespace}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(ns: &[&str], ops: &[Operation]) -> K8sGrant {
        K8sGrant {
            namespaces: ns
                .iter()
                .map(|n| Namespace::try_from(n.to_string()).expect("namespace"))
                .collect(),
            read_all_namespaces: false,
            except_namespaces: crate::capability::k8s::grant::system_namespaces(),
            operations: ops.to_vec(),
            max_replicas: 10,
            max_pods_per_action: 2,
            annotate_kinds: vec!["Deployment".into(), "Gadget".into()],
        }
    }

    fn verbs(needed: &BTreeMap<Namespace, BTreeSet<Permission>>, ns: &str) -> BTreeSet<String> {
        needed
            .iter()
            .find(|(n, _)| n.as_str() == ns)
            .map(|(_, p)| {
                p.iter()
                    .map(|p| format!("{}/{}:{}", p.group, p.resource, p.verb))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn read_only_grants_yield_no_write_verb() {
        let needed = needed(&[grant(&["payments"], &[Operation::Read])]);
        let v = verbs(&needed, "payments");
        assert!(
            v.iter()
                .all(|p| p.ends_with(":get") || p.ends_with(":list")),
            "{v:?}"
        );
    }

    #[test]
    fn each_namespace_gets_only_its_own_grants() {
        let needed = needed(&[
            grant(&["payments"], &[Operation::Read, Operation::Scale]),
            grant(&["checkout"], &[Operation::DeletePods]),
        ]);
        assert!(verbs(&needed, "payments").contains("apps/deployments/scale:patch"));
        assert!(!verbs(&needed, "payments").contains("/pods:delete"));
        assert_eq!(
            verbs(&needed, "checkout"),
            BTreeSet::from(["/pods:delete".to_string()])
        );
        assert!(verbs(&needed, "kube-system").is_empty());
    }

    #[test]
    fn annotate_covers_only_the_granted_known_kinds() {
        let needed = needed(&[grant(&["payments"], &[Operation::Annotate])]);
        assert_eq!(
            verbs(&needed, "payments"),
            BTreeSet::from(["apps/deployments:patch".to_string()])
        );
    }

    #[test]
    fn the_lease_role_is_narrowed_to_its_name_where_rbac_allows() {
        let subject = Subject {
            namespace: "runwarden".into(),
            service_account: "runwarden".into(),
            lease: Some("runwarden-leader".into()),
        };
        let objs = manifests(&BTreeMap::new(), &subject);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["rules"][0]["resourceNames"][0], "runwarden-leader");
        assert_eq!(objs[0]["metadata"]["namespace"], "runwarden");
        assert_eq!(objs[1]["subjects"][0]["namespace"], "runwarden");
    }
}

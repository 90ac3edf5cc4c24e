//! The k8s grant and its checks: plain functions on typed values.

use crate::capability::Denied;
use serde::Deserialize;

/// One kind of k8s operation, as granted in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// get/list deployments, pods, rollout history, events, certificates.
    Read,
    Scale,
    Rollback,
    /// Restart by deleting pods.
    DeletePods,
    Annotate,
    /// Ask cert-manager to re-issue a certificate now.
    RenewCertificate,
    /// Read a pod's container logs (`pods/log`). A read, granted apart
    /// from `read` because logs carry whatever a service prints.
    Logs,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Scale => "scale",
            Operation::Rollback => "rollback",
            Operation::DeletePods => "delete-pods",
            Operation::Annotate => "annotate",
            Operation::RenewCertificate => "renew-certificate",
            Operation::Logs => "logs",
        }
    }

    /// Changes nothing: allowed under `read_all_namespaces`, and in every
    /// call mode.
    pub fn is_read(self) -> bool {
        matches!(self, Operation::Read | Operation::Logs)
    }
}

/// A Kubernetes namespace name (RFC 1123 label), checked when read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

impl Namespace {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An RFC 1123 label: what a namespace's — and a Deployment's — name
/// can be.
pub fn is_rfc1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl TryFrom<String> for Namespace {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if is_rfc1123_label(&s) {
            Ok(Namespace(s))
        } else {
            Err(format!(
                "invalid namespace {s:?}: expected a lower-case RFC 1123 label (wildcards are not supported: list namespaces explicitly)"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Namespace::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// `[grants.k8s]` in a policy.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct K8sGrant {
    /// Namespaces the plugin may touch at all.
    pub namespaces: Vec<Namespace>,
    /// Reads — only reads — in every namespace except `except_namespaces`:
    /// context where the alerts point, while writes stay in `namespaces`.
    #[serde(default)]
    pub read_all_namespaces: bool,
    /// Kept out of `read_all_namespaces` besides the system namespaces,
    /// which always are. A namespace listed in `namespaces` is granted
    /// regardless.
    #[serde(default)]
    pub except_namespaces: Vec<Namespace>,
    pub operations: Vec<Operation>,
    /// Ceiling for `scale-deployment`. Required when `scale` is granted.
    #[serde(default)]
    pub max_replicas: u32,
    /// Most pods one `delete-pods` call may name.
    #[serde(default = "default_max_pods")]
    pub max_pods_per_action: u32,
    /// Object kinds `annotate` may touch, e.g. ["Certificate"].
    #[serde(default)]
    pub annotate_kinds: Vec<String>,
}

fn default_max_pods() -> u32 {
    1
}

/// Where the control plane and node leases live: not an application's
/// context, and where a plugin's reads would see cluster internals.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

pub fn system_namespaces() -> Vec<Namespace> {
    SYSTEM_NAMESPACES
        .iter()
        .map(|n| Namespace((*n).to_string()))
        .collect()
}

/// `[requests.k8s]` in a manifest: the operations the plugin needs, and
/// optionally the namespaces it is meant for.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct K8sRequest {
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub namespaces: Option<Vec<Namespace>>,
}

impl K8sGrant {
    /// Narrow the grant to what the plugin requested.
    pub fn narrow(&self, request: &K8sRequest) -> K8sGrant {
        let mut narrowed = self.clone();
        narrowed
            .operations
            .retain(|op| request.operations.contains(op));
        if let Some(wanted) = &request.namespaces {
            narrowed.namespaces.retain(|ns| wanted.contains(ns));
            narrowed.read_all_namespaces = false;
        }
        narrowed
    }

    fn allows_namespace(&self, op: Operation, namespace: &str) -> bool {
        let excepted = SYSTEM_NAMESPACES.contains(&namespace)
            || self
                .except_namespaces
                .iter()
                .any(|ns| ns.as_str() == namespace);
        self.namespaces.iter().any(|ns| ns.as_str() == namespace)
            || (op.is_read() && self.read_all_namespaces && !excepted)
    }

    fn require(&self, op: Operation, namespace: &str) -> Result<(), Denied> {
        // A namespace is a name, never a path: "kube-system/events?x=" must
        // not pass a wildcard grant and reach another namespace's URL.
        Namespace::try_from(namespace.to_string()).map_err(Denied)?;
        if !self.operations.contains(&op) {
            return Err(Denied(format!(
                "k8s operation `{}` is not granted to this plugin",
                op.name()
            )));
        }
        if !self.allows_namespace(op, namespace) {
            let granted: Vec<&str> = self.namespaces.iter().map(Namespace::as_str).collect();
            let mut granted = if granted.is_empty() {
                "none".to_string()
            } else {
                granted.join(", ")
            };
            if self.read_all_namespaces {
                let except: Vec<&str> = SYSTEM_NAMESPACES
                    .iter()
                    .copied()
                    .chain(self.except_namespaces.iter().map(Namespace::as_str))
                    .collect();
                granted.push_str(&format!(
                    "; reads in every namespace except {}",
                    except.join(", ")
                ));
            }
            return Err(Denied(format!(
                "namespace `{namespace}` is not granted for `{}` (granted: {granted})",
                op.name()
            )));
        }
        Ok(())
    }
}

pub fn check_read(grant: &K8sGrant, namespace: &str) -> Result<(), Denied> {
    grant.require(Operation::Read, namespace)
}

pub fn check_logs(grant: &K8sGrant, namespace: &str, tail_lines: u32) -> Result<(), Denied> {
    grant.require(Operation::Logs, namespace)?;
    if tail_lines == 0 || tail_lines > MAX_LOG_LINES {
        return Err(Denied(format!(
            "tail-lines {tail_lines}: between 1 and {MAX_LOG_LINES}"
        )));
    }
    Ok(())
}

/// Most lines one `pod-logs` call returns.
pub const MAX_LOG_LINES: u32 = 500;
/// Most bytes one `pod-logs` call returns.
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// Keeps the last `MAX_LOG_BYTES` of a log, cut at a line start.
pub fn clip_log(log: &str) -> String {
    if log.len() <= MAX_LOG_BYTES {
        return log.to_string();
    }
    let mut from = log.len() - MAX_LOG_BYTES;
    while !log.is_char_boundary(from) {
        from += 1;
    }
    match log[from..].find('\n') {
        Some(nl) => log[from + nl + 1..].to_string(),
        None => log[from..].to_string(),
    }
}

pub fn check_scale(grant: &K8sGrant, namespace: &str, replicas: u32) -> Result<(), Denied> {
    grant.require(Operation::Scale, namespace)?;
    if replicas > grant.max_replicas {
        return Err(Denied(format!(
            "{replicas} replicas is above the grant's max_replicas ({})",
            grant.max_replicas
        )));
    }
    Ok(())
}

pub fn check_rollback(grant: &K8sGrant, namespace: &str) -> Result<(), Denied> {
    grant.require(Operation::Rollback, namespace)
}

pub fn check_delete_pods(grant: &K8sGrant, namespace: &str, count: usize) -> Result<(), Denied> {
    grant.require(Operation::DeletePods, namespace)?;
    if count == 0 {
        return Err(Denied("delete-pods names no pods".into()));
    }
    if count > grant.max_pods_per_action as usize {
        return Err(Denied(format!(
            "{count} pods in one action is above the grant's max_pods_per_action ({})",
            grant.max_pods_per_action
        )));
    }
    Ok(())
}

pub fn check_annotate(grant: &K8sGrant, namespace: &str, kind: &str) -> Result<(), Denied> {
    grant.require(Operation::Annotate, namespace)?;
    if !grant.annotate_kinds.iter().any(|k| k == kind) {
        return Err(Denied(format!(
            "annotating kind `{kind}` is not granted (annotate_kinds: {:?})",
            grant.annotate_kinds
        )));
    }
    Ok(())
}

pub fn check_renew_certificate(grant: &K8sGrant, namespace: &str) -> Result<(), Denied> {
    grant.require(Operation::RenewCertificate, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> K8sGrant {
        K8sGrant {
            namespaces: vec![Namespace("payments".into())],
            read_all_namespaces: false,
            except_namespaces: system_namespaces(),
            operations: vec![Operation::Read, Operation::Scale, Operation::DeletePods],
            max_replicas: 10,
            max_pods_per_action: 2,
            annotate_kinds: vec![],
        }
    }

    #[test]
    fn namespace_outside_the_grant_is_denied() {
        assert!(check_read(&grant(), "payments").is_ok());
        let err = check_read(&grant(), "kube-system");
        assert!(
            matches!(err, Err(Denied(r)) if r.contains("kube-system") && r.contains("payments"))
        );
    }

    #[test]
    fn operation_not_granted_is_denied() {
        let err = check_rollback(&grant(), "payments");
        assert!(matches!(err, Err(Denied(r)) if r.contains("rollback")));
        assert!(check_annotate(&grant(), "payments", "Certificate").is_err());
        let err = check_renew_certificate(&grant(), "payments");
        assert!(matches!(err, Err(Denied(r)) if r.contains("renew-certificate")));
    }

    #[test]
    fn logs_are_granted_apart_from_reads_and_bounded() {
        let err = check_logs(&grant(), "payments", 100);
        assert!(matches!(err, Err(Denied(r)) if r.contains("`logs` is not granted")));
        let mut g = grant();
        g.operations.push(Operation::Logs);
        assert!(check_logs(&g, "payments", 100).is_ok());
        assert!(check_logs(&g, "payments", MAX_LOG_LINES + 1).is_err());
        assert!(check_logs(&g, "payments", 0).is_err());
        assert!(check_logs(&g, "kube-system", 100).is_err());
        g.read_all_namespaces = true;
        assert!(check_logs(&g, "shop", 100).is_ok());
        assert!(check_logs(&g, "kube-system", 100).is_err());
    }

    #[test]
    fn replica_ceiling_is_inclusive() {
        assert!(check_scale(&grant(), "payments", 10).is_ok());
        assert!(check_scale(&grant(), "payments", 0).is_ok());
        assert!(check_scale(&grant(), "payments", 11).is_err());
    }

    #[test]
    fn pod_count_bounds() {
        assert!(check_delete_pods(&grant(), "payments", 2).is_ok());
        assert!(check_delete_pods(&grant(), "payments", 3).is_err());
        assert!(check_delete_pods(&grant(), "payments", 0).is_err());
    }

    #[test]
    fn narrowing_intersects_operations_and_namespaces() {
        let request = K8sRequest {
            operations: vec![Operation::Read, Operation::Rollback],
            namespaces: Some(vec![Namespace("other".into())]),
        };
        let n = grant().narrow(&request);
        assert_eq!(n.operations, vec![Operation::Read]);
        assert!(n.namespaces.is_empty());
    }

    #[test]
    fn reading_everywhere_reads_only_and_keeps_out_the_system_namespaces() {
        let g = K8sGrant {
            read_all_namespaces: true,
            ..grant()
        };
        assert!(check_read(&grant(), "shop").is_err());
        assert!(check_read(&g, "shop").is_ok());
        let err = check_read(&g, "kube-system");
        assert!(
            matches!(&err, Err(Denied(r)) if r.contains("every namespace except kube-system")),
            "{err:?}"
        );
        // A path is not a namespace, whatever the wildcard.
        let err = check_read(&g, "kube-system/events?x=");
        assert!(
            matches!(&err, Err(Denied(r)) if r.contains("invalid namespace")),
            "{err:?}"
        );
        // Excepting more keeps the system namespaces out.
        let more = K8sGrant {
            except_namespaces: vec![Namespace("vault".into())],
            ..g.clone()
        };
        assert!(check_read(&more, "vault").is_err() && check_read(&more, "kube-system").is_err());
        // Writes stay where the operator named them.
        let err = check_scale(&g, "shop", 2);
        assert!(
            matches!(&err, Err(Denied(r)) if r.contains("`shop`")),
            "{err:?}"
        );
        assert!(check_scale(&g, "payments", 2).is_ok());
        // A manifest that names its namespaces narrows the wildcard away.
        let narrowed = g.narrow(&K8sRequest {
            operations: vec![Operation::Read],
            namespaces: Some(vec![Namespace("payments".into())]),
        });
        assert!(check_read(&narrowed, "shop").is_err());
        assert!(check_read(&narrowed, "payments").is_ok());
    }

    #[test]
    fn namespaces_are_validated() {
        assert!(Namespace::try_from("payments".to_string()).is_ok());
        assert!(Namespace::try_from("*".to_string()).is_err());
        assert!(Namespace::try_from("Kube_System".to_string()).is_err());
        assert!(Namespace::try_from(String::new()).is_err());
    }
}

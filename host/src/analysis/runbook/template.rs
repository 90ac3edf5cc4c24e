//! What runbook templates (`{{workload}}`, `{{detail}}`...) render to:
//! the alert's labels and what the host resolved, and — for action
//! arguments — a workload only when the host found it in the cluster.

use crate::facts::{Fact, Facts};
use std::collections::BTreeMap;

/// Template values: the alert's labels, and what the host resolved. For
/// action arguments (`acting`), the workload only when the host found it
/// in the cluster.
pub(super) fn lookup(
    labels: &BTreeMap<String, String>,
    facts: &Facts,
    key: &str,
    acting: bool,
) -> Option<String> {
    let host = |k: &str| {
        labels
            .get(&format!("{}{k}", crate::facts::HOST_LABEL_PREFIX))
            .cloned()
    };
    let verified = facts.workload().is_some();
    let find = |f: &dyn Fn(&Fact) -> Option<String>| facts.items.iter().find_map(f);
    let from_facts = match key {
        "workload" | "workload_namespace" | "workload_kind" if acting && !verified => return None,
        "workload" => host("workload"),
        "workload_namespace" => host("namespace"),
        "workload_kind" => host("workload_kind"),
        "dependency" => find(&|f| match f {
            Fact::DependencyFailure {
                dependency,
                error_class,
                ..
            } if error_class == "dns" => Some(format!("{dependency}: DNS resolution failing")),
            Fact::DependencyFailure {
                dependency,
                error_class,
                ..
            } => Some(format!("{dependency}: {error_class}")),
            _ => None,
        }),
        // The latest change before the symptoms: the one a rule matched.
        "change" => facts
            .items
            .iter()
            .filter_map(|f| match f {
                Fact::Change {
                    description,
                    minutes_before_onset,
                    ..
                } if *minutes_before_onset >= 0 => Some((*minutes_before_onset, description)),
                _ => None,
            })
            .min_by_key(|(m, _)| *m)
            .map(|(m, d)| format!("{d}, {m} min before the symptoms")),
        "pod_reason" => find(&|f| match f {
            Fact::PodCondition {
                reason, message, ..
            } => Some(match message {
                Some(m) => format!("{reason}: {m}"),
                None => reason.clone(),
            }),
            Fact::JobFailed { job, reason, .. } => Some(format!(
                "job {job}{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
            _ => None,
        }),
        "detail" => detail(facts),
        "node" => find(&|f| match f {
            Fact::NodeCondition {
                node,
                ready: false,
                reason,
                ..
            } => Some(match reason {
                Some(r) => format!("{node} ({r})"),
                None => node.clone(),
            }),
            _ => None,
        }),
        "network_policies" => find(&|f| match f {
            Fact::NetworkPolicies { names, .. } => Some(names.join(", ")),
            _ => None,
        }),
        "certificate" => find(&|f| match f {
            Fact::Certificate { name, .. } => Some(name.clone()),
            _ => None,
        }),
        "certificate_namespace" => find(&|f| match f {
            Fact::Certificate { namespace, .. } => Some(namespace.clone()),
            _ => None,
        }),
        "certificate_error" => find(&|f| match f {
            Fact::Certificate { last_error, .. } => last_error.clone(),
            _ => None,
        }),
        _ => None,
    };
    // Facts first; for display, the label of the same name otherwise.
    from_facts.or_else(|| {
        let unverified_target = acting && key.starts_with("workload");
        (!unverified_target)
            .then(|| labels.get(key).cloned())
            .flatten()
    })
}

/// The most telling thing the host saw, for an escalation to quote: the
/// workload's own error in its logs, a failing dependency, why its pods
/// fail, why a job or node failed, why a certificate cannot be issued.
fn detail(facts: &Facts) -> Option<String> {
    let by = |kind: &str| facts.of_kind(kind).map(Fact::line).next();
    let own_error = facts
        .items
        .iter()
        .filter_map(|f| match f {
            Fact::LogErrors { class, example, .. } => Some((class.as_str() == "other", example)),
            _ => None,
        })
        .min_by_key(|(other, _)| *other)
        .map(|(_, e)| format!("log: {e}"));
    let pod_message = facts.items.iter().find_map(|f| match f {
        Fact::PodCondition {
            reason,
            message: Some(m),
            ..
        } => Some(format!("{reason}: {m}")),
        _ => None,
    });
    own_error
        .or_else(|| by("dependency-failure"))
        .or(pod_message)
        .or_else(|| by("job-failed"))
        .or_else(|| by("node-condition"))
        .or_else(|| by("pod-condition"))
        .or_else(|| {
            facts.items.iter().find_map(|f| match f {
                Fact::Certificate {
                    last_error: Some(e),
                    ..
                } => Some(e.clone()),
                _ => None,
            })
        })
}

/// What a hypothesis says where the host found nothing to name.
pub(super) fn unknown(key: &str) -> Option<String> {
    match key {
        "workload" => Some("the alert's workload (not found in the cluster)".into()),
        "detail" | "pod_reason" => Some("no decisive evidence".into()),
        "change" => Some("no change found".into()),
        "dependency" => Some("unnamed".into()),
        _ => None,
    }
}

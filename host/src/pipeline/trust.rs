//! Which object an action touches, and on whose word.
//!
//! The grants bound *what* may change; these two guardrails bound *which*
//! object and *how much*, by asking who chose it. A target the alert's
//! authenticated sender named (or the operator's inventory relates to the
//! incident) may be acted on unattended; one that only a model — or a log
//! line the model read — chose waits for a human. Likewise an argument whose
//! value only evidence text or the model supports (`analysis/provenance.rs`).

use super::autonomy::AutonomyPolicy;
use super::guard::Verdict;
use crate::effects::{Effect, Target};

/// Whether every target of the action belongs to the incident: named by
/// the alert's labels (its authenticated sender named it: namespace and
/// name, or the DNS record), or listed as `related` to a workload the alert
/// names in the operator's inventory. A target anything else chose — a
/// model, or a log line the model read — waits for a human, whatever the
/// mode: grants bound *what* may change, this bounds *which* object.
pub fn scope(
    effects: &[Effect],
    alert_labels: &std::collections::BTreeMap<String, String>,
    inventory: &[super::tier::InventoryEntry],
) -> Verdict {
    // The host's own labels name the workload only when it found it in
    // the cluster from the sender's labels (`facts::Subject::labels`);
    // their other values ("true", "Deployment") name nothing.
    let host_verified = alert_labels
        .get("runwarden_workload_verified")
        .is_some_and(|v| v == "true");
    let named = |v: &str| {
        alert_labels.iter().any(|(k, l)| {
            let usable = if k.starts_with(crate::facts::HOST_LABEL_PREFIX) {
                host_verified && (k == "runwarden_namespace" || k == "runwarden_workload")
            } else {
                k != "tier"
            };
            usable && l.trim_end_matches('.') == v.trim_end_matches('.')
        })
    };
    let related: Vec<&str> = inventory
        .iter()
        .filter(|e| {
            e.namespace.as_deref().is_some_and(&named) && e.workload.as_deref().is_some_and(&named)
        })
        .flat_map(|e| e.related.iter().map(String::as_str))
        .collect();
    let outside: Vec<String> = effects
        .iter()
        .filter_map(Effect::target)
        .filter(|t| {
            let by_alert = match t {
                Target::Object(o) => named(&o.namespace) && named(&o.name),
                Target::DnsRecord { record, .. } => named(record),
            };
            let key = match t {
                Target::Object(o) => o.to_string(),
                Target::DnsRecord { record, .. } => format!("dns {record}"),
            };
            !by_alert && !related.contains(&key.as_str())
        })
        .map(|t| t.to_string())
        .collect();
    if outside.is_empty() {
        Verdict::Pass
    } else {
        Verdict::NeedsApproval(format!(
            "{} outside the incident: the alert's labels do not name it and the inventory relates it to no workload they name",
            outside.join(", ")
        ))
    }
}

/// Autonomy by provenance: a change whose arguments only evidence text or
/// the model support waits for a human (`require_trusted_provenance`).
pub fn provenance(
    policy: &AutonomyPolicy,
    effects: &[Effect],
    arguments: &[crate::analysis::provenance::ArgumentProvenance],
) -> Verdict {
    if !policy.require_trusted_provenance || effects.is_empty() {
        return Verdict::Pass;
    }
    let weak = crate::analysis::provenance::untrusted(arguments);
    if weak.is_empty() {
        return Verdict::Pass;
    }
    Verdict::NeedsApproval(format!(
        "supported only by evidence text or the model, not by the operator or an authenticated source: {}",
        weak.iter()
            .map(|a| format!("`{}` = {} ({})", a.argument, a.value, a.detail))
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::ObjectRef;

    fn policy() -> AutonomyPolicy {
        toml::from_str("mode = \"auto\"\nversion = \"v1\"\n").expect("policy parses")
    }

    fn rollback() -> Vec<Effect> {
        vec![Effect::Rollback {
            target: ObjectRef::deployment("payments", "api"),
            from_revision: 2,
            to_revision: 1,
        }]
    }

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scope_follows_the_alert_and_the_inventorys_relations() {
        let alert = labels(&[("namespace", "payments"), ("service", "api"), ("tier", "2")]);
        assert_eq!(scope(&rollback(), &alert, &[]), Verdict::Pass);
        let elsewhere = vec![Effect::Rollback {
            target: ObjectRef::deployment("checkout", "web"),
            from_revision: 7,
            to_revision: 6,
        }];
        assert!(
            matches!(scope(&elsewhere, &alert, &[]), Verdict::NeedsApproval(r) if r.contains("checkout/web outside the incident"))
        );
        let cert = vec![Effect::CertificateRenewal {
            certificate: ObjectRef {
                kind: "Certificate".into(),
                namespace: "payments".into(),
                name: "api-tls".into(),
            },
        }];
        assert!(matches!(
            scope(&cert, &alert, &[]),
            Verdict::NeedsApproval(_)
        ));
        let inventory = vec![super::super::tier::InventoryEntry {
            namespace: Some("payments".into()),
            workload: Some("api".into()),
            dns_record: None,
            tier: None,
            related: vec!["Certificate payments/api-tls".into()],
        }];
        assert_eq!(scope(&cert, &alert, &inventory), Verdict::Pass);
    }

    #[test]
    fn provenance_needs_a_trusted_source_for_every_argument_of_a_change() {
        use crate::analysis::provenance::{ArgumentProvenance, Source};
        let arg = |s: Source| ArgumentProvenance {
            argument: "name".into(),
            value: serde_json::json!("api"),
            sources: vec![s],
            detail: String::new(),
        };
        let p = policy();
        assert_eq!(
            provenance(&p, &rollback(), &[arg(Source::AlertLabel)]),
            Verdict::Pass
        );
        assert!(
            matches!(provenance(&p, &rollback(), &[arg(Source::Model)]), Verdict::NeedsApproval(r) if r.contains("`name`"))
        );
        assert_eq!(
            provenance(&p, &[], &[arg(Source::Model)]),
            Verdict::Pass,
            "nothing changes"
        );
        let mut lax = policy();
        lax.require_trusted_provenance = false;
        assert_eq!(
            provenance(&lax, &rollback(), &[arg(Source::Evidence)]),
            Verdict::Pass
        );
    }

    #[test]
    fn the_hosts_labels_name_a_target_only_when_it_verified_the_workload() {
        let resolved = labels(&[
            ("pod", "api-7d9f-x"),
            ("runwarden_namespace", "payments"),
            ("runwarden_workload", "api"),
            ("runwarden_workload_verified", "true"),
        ]);
        assert_eq!(scope(&rollback(), &resolved, &[]), Verdict::Pass);
        let guessed = labels(&[
            ("alertname", "api slow"),
            ("runwarden_namespace", "payments"),
            ("runwarden_workload", "api"),
            ("runwarden_workload_verified", "false"),
        ]);
        assert!(matches!(
            scope(&rollback(), &guessed, &[]),
            Verdict::NeedsApproval(_)
        ));
        // A value like "true" or "Deployment" names nothing.
        let odd = vec![Effect::Rollback {
            target: ObjectRef::deployment("payments", "true"),
            from_revision: 2,
            to_revision: 1,
        }];
        assert!(matches!(
            scope(&odd, &resolved, &[]),
            Verdict::NeedsApproval(_)
        ));
    }
}

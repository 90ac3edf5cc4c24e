//! A target's service tier comes from the operator, not from the alert.
//!
//! Precedence, first match wins:
//! 1. an `[[inventory]]` entry of the autonomy policy naming the object
//!    (namespace + workload, or a DNS record);
//! 2. an `[[inventory]]` entry naming only the namespace;
//! 3. the `tier_label` on the Deployment itself, read by the host from the
//!    cluster (the operator's deploy pipeline sets it, not the sender).
//!
//! Then the alert's own `tier` label may make it *stricter* (a lower
//! number: tier 1 is the most critical), never looser, and it never supplies
//! a tier where the operator gave none. Tiers are compared as numbers; a
//! non-numeric alert tier is ignored.

use crate::effects::{ObjectRef, Target};
use serde::{Deserialize, Serialize};

/// One `[[inventory]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryEntry {
    #[serde(default)]
    pub namespace: Option<String>,
    /// A Deployment (or other workload) name in `namespace`; omitted: the
    /// whole namespace.
    #[serde(default)]
    pub workload: Option<String>,
    /// A DNS record name (for `dns-record` effects).
    #[serde(default)]
    pub dns_record: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    /// Objects that belong to this workload's incidents, as `Kind
    /// namespace/name` or `dns RECORD`: an action on them stays inside an
    /// incident about the workload (`guard::scope`).
    #[serde(default)]
    pub related: Vec<String>,
}

/// A target's tier and where it came from, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedTier {
    pub target: String,
    pub tier: Option<String>,
    pub source: String,
}

fn rank(tier: &str) -> Option<u32> {
    tier.trim().parse().ok()
}

/// The operator's tier for `target`; `workload_label` is the tier label the
/// host read from the Deployment, if it read one.
pub fn operator_tier(
    inventory: &[InventoryEntry],
    target: &Target,
    workload_label: Option<&str>,
) -> Option<(String, &'static str)> {
    match target {
        Target::Object(ObjectRef {
            namespace, name, ..
        }) => {
            let ns_match = |e: &&InventoryEntry| e.namespace.as_deref() == Some(namespace.as_str());
            inventory
                .iter()
                .filter(ns_match)
                .filter(|e| e.workload.as_deref() == Some(name.as_str()))
                .find_map(|e| e.tier.clone().map(|t| (t, "inventory (workload)")))
                .or_else(|| {
                    inventory
                        .iter()
                        .filter(ns_match)
                        .filter(|e| e.workload.is_none() && e.dns_record.is_none())
                        .find_map(|e| e.tier.clone().map(|t| (t, "inventory (namespace)")))
                })
                .or_else(|| workload_label.map(|t| (t.to_string(), "workload label")))
        }
        Target::DnsRecord { record, .. } => inventory
            .iter()
            .filter(|e| {
                e.dns_record
                    .as_deref()
                    .is_some_and(|r| r.trim_end_matches('.') == record.trim_end_matches('.'))
            })
            .find_map(|e| e.tier.clone().map(|t| (t, "inventory (dns record)"))),
    }
}

/// The tier that governs `target`: the operator's, made stricter by the
/// alert's label where that is lower.
pub fn resolve(
    inventory: &[InventoryEntry],
    target: &Target,
    workload_label: Option<&str>,
    alert_tier: Option<&str>,
) -> ResolvedTier {
    let operator = operator_tier(inventory, target, workload_label);
    let (tier, source) = match (operator, alert_tier.and_then(|a| rank(a).map(|r| (a, r)))) {
        (Some((t, src)), Some((a, ar))) if rank(&t).is_none_or(|tr| ar < tr) => (
            Some(a.trim().to_string()),
            format!("alert label (stricter than {src} tier {t})"),
        ),
        (Some((t, src)), _) => (Some(t), src.to_string()),
        (None, _) => (
            None,
            "none: no inventory entry or workload label (an alert's tier label never supplies one)"
                .to_string(),
        ),
    };
    ResolvedTier {
        target: target.to_string(),
        tier,
        source,
    }
}

/// The strictest of several targets' tiers; `None` if any target has none.
pub fn strictest(tiers: &[ResolvedTier]) -> Option<String> {
    let mut best: Option<&str> = None;
    for t in tiers {
        let this = t.tier.as_deref()?;
        best = match best {
            Some(b) if rank(b).unwrap_or(0) <= rank(this).unwrap_or(0) => Some(b),
            _ => Some(this),
        };
    }
    best.map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(ns: &str, name: &str) -> Target {
        Target::Object(ObjectRef::deployment(ns, name))
    }

    fn inv() -> Vec<InventoryEntry> {
        let entry = |ns: &str, w: Option<&str>, tier: &str| InventoryEntry {
            namespace: Some(ns.into()),
            workload: w.map(Into::into),
            dns_record: None,
            tier: Some(tier.into()),
            related: vec![],
        };
        vec![
            entry("payments", Some("payment-api"), "1"),
            entry("payments", None, "2"),
        ]
    }

    #[test]
    fn inventory_beats_workload_label_and_namespace_is_a_fallback() {
        let r = resolve(&inv(), &dep("payments", "payment-api"), Some("3"), None);
        assert_eq!(r.tier.as_deref(), Some("1"));
        let r = resolve(&inv(), &dep("payments", "ledger"), Some("3"), None);
        assert_eq!(r.tier.as_deref(), Some("2"));
        let r = resolve(&inv(), &dep("checkout", "web"), Some("3"), None);
        assert_eq!(
            (r.tier.as_deref(), r.source.as_str()),
            (Some("3"), "workload label")
        );
    }

    #[test]
    fn the_alert_label_only_makes_it_stricter() {
        // The sender says tier 2 about a tier-1 workload: ignored.
        let r = resolve(&inv(), &dep("payments", "payment-api"), None, Some("2"));
        assert_eq!(r.tier.as_deref(), Some("1"));
        // The sender says tier 1 about a tier-2 workload: stricter, kept.
        let r = resolve(&inv(), &dep("payments", "ledger"), None, Some("1"));
        assert_eq!(r.tier.as_deref(), Some("1"));
        assert!(r.source.contains("alert label"));
        // No operator tier: the alert cannot supply one.
        let r = resolve(&[], &dep("checkout", "web"), None, Some("3"));
        assert_eq!(r.tier, None);
        // Garbage is ignored.
        let r = resolve(&inv(), &dep("payments", "ledger"), None, Some("zero"));
        assert_eq!(r.tier.as_deref(), Some("2"));
    }

    #[test]
    fn strictest_of_several() {
        let t = |tier: Option<&str>| ResolvedTier {
            target: String::new(),
            tier: tier.map(Into::into),
            source: String::new(),
        };
        assert_eq!(
            strictest(&[t(Some("3")), t(Some("1"))]).as_deref(),
            Some("1")
        );
        assert_eq!(strictest(&[t(Some("3")), t(None)]), None);
        assert_eq!(strictest(&[]), None);
    }
}

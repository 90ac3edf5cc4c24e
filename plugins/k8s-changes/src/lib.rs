//! Context source: recent rollouts, warning events and pod health for the
//! alert's workload, and the state of the namespace's cert-manager
//! certificates, through the k8s capability (read-only).
//!
//! The workload comes from the alert's labels: `namespace`, and `deployment`,
//! `service` or `app` (the first present). Certificates are reported for the
//! namespace whenever it has any (a cluster without cert-manager has none).

use runwarden_sdk::k8s;
use runwarden_sdk::serde_json::json;
use runwarden_sdk::time::format_utc;
use runwarden_sdk::{
    Alert, Error, Evidence, EvidenceKind, Result, SourceGuest, SourceInfo, TimeWindow, evidence,
};
use std::collections::BTreeMap;

struct K8sChanges;

impl SourceGuest for K8sChanges {
    fn describe() -> SourceInfo {
        SourceInfo {
            name: "k8s-changes".into(),
            description:
                "Recent rollouts, warning events and pod restarts of the alert's deployment".into(),
            provides: vec![
                EvidenceKind::ChangeEvent,
                EvidenceKind::K8sEvent,
                EvidenceKind::Note,
            ],
        }
    }

    fn gather(alert: Alert, window: TimeWindow) -> Result<Vec<Evidence>> {
        let ns = alert
            .label("namespace")
            .ok_or_else(|| Error::InvalidInput("alert has no `namespace` label".into()))?
            .to_string();
        let mut out: Vec<Evidence> = certificates(&ns, &window)?.into_iter().collect();
        let Some(name) = ["deployment", "service", "app"]
            .iter()
            .find_map(|k| alert.label(k))
            .map(str::to_string)
        else {
            if out.is_empty() {
                return Err(Error::InvalidInput(
                    "alert has no `deployment`, `service` or `app` label".into(),
                ));
            }
            return Ok(out);
        };

        let history = k8s::rollout_history(&ns, &name)?;
        for rev in history.iter().filter(|r| r.created_at >= window.start) {
            let before = (alert.starts_at - rev.created_at) / 60_000;
            let when = if before >= 0 {
                format!("{before} min before the alert")
            } else {
                format!("{} min after the alert", -before)
            };
            out.push(evidence(
                EvidenceKind::ChangeEvent,
                format!(
                    "deployment {ns}/{name} rolled out revision {} ({}) {when}{}",
                    rev.revision,
                    rev.images.join(", "),
                    rev.change_cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
                ),
                &json!({"namespace": ns, "deployment": name, "revision": rev.revision, "images": rev.images,
                        "created_at": rev.created_at, "change_cause": rev.change_cause, "minutes_before_alert": before}),
                Some((rev.created_at, rev.created_at)),
            ));
        }

        let pods = k8s::list_pods(&ns, None)?;
        let ours: Vec<&k8s::Pod> = pods
            .iter()
            .filter(|p| p.deployment.as_deref() == Some(name.as_str()))
            .collect();
        let pod_names: Vec<&str> = ours.iter().map(|p| p.name.as_str()).collect();
        let mut warnings: BTreeMap<String, (u32, String)> = BTreeMap::new();
        for e in k8s::list_events(&ns, None)? {
            let about_us = e.object_name == name || pod_names.contains(&e.object_name.as_str());
            if about_us && e.event_type == "Warning" && e.last_seen >= window.start {
                let entry = warnings
                    .entry(e.reason.clone())
                    .or_insert((0, e.message.clone()));
                entry.0 += e.count;
            }
        }
        if !warnings.is_empty() {
            let parts: Vec<String> = warnings
                .iter()
                .map(|(r, (n, _))| format!("{r} x{n}"))
                .collect();
            out.push(evidence(
                EvidenceKind::K8sEvent,
                format!("warning events for {ns}/{name}: {}", parts.join(", ")),
                &json!({"namespace": ns, "deployment": name,
                        "warnings": warnings.iter().map(|(r, (n, m))| json!({"reason": r, "count": n, "example": m})).collect::<Vec<_>>()}),
                Some((window.start, window.end)),
            ));
        }

        let restarts: u32 = ours.iter().map(|p| p.restarts).sum();
        let not_ready = ours.iter().filter(|p| !p.ready).count();
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &ours {
            if let Some(r) = p.last_termination_reason.as_deref() {
                *reasons.entry(r).or_default() += 1;
            }
        }
        let reason_txt: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        out.push(evidence(
            EvidenceKind::Note,
            format!(
                "{} pods of {ns}/{name}: {not_ready} not ready, {restarts} restarts{}",
                ours.len(),
                if reason_txt.is_empty() { String::new() } else { format!(", last terminations: {}", reason_txt.join(", ")) }
            ),
            &json!({"pods": ours.iter().map(|p| json!({"name": p.name, "ready": p.ready, "restarts": p.restarts,
                    "last_termination_reason": p.last_termination_reason, "memory_bytes": p.memory_bytes})).collect::<Vec<_>>()}),
            None,
        ));
        Ok(out)
    }
}

/// Certificates expiring within this many days are called out.
const CERT_WARNING_DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;

/// One line on the namespace's certificates, e.g. "certificates in payments:
/// 1 expiring within 14 days (payment-api-tls in 4 days), 0 not ready".
fn certificates(ns: &str, window: &TimeWindow) -> Result<Option<Evidence>> {
    let certs = match k8s::list_certificates(ns) {
        Ok(c) => c,
        Err(denied @ Error::Denied(_)) => return Err(denied),
        // No cert-manager in this cluster (its API is not installed).
        Err(_) => return Ok(None),
    };
    if certs.is_empty() {
        return Ok(None);
    }
    let now = window.end;
    let expiring: Vec<(&k8s::Certificate, i64)> = certs
        .iter()
        .filter_map(|c| c.not_after.map(|t| (c, t)))
        .filter(|(_, t)| *t - now <= CERT_WARNING_DAYS * DAY_MS)
        .collect();
    let not_ready: Vec<&k8s::Certificate> = certs.iter().filter(|c| !c.ready).collect();
    let mut summary = format!(
        "certificates in {ns}: {} expiring within {CERT_WARNING_DAYS} days",
        expiring.len()
    );
    if !expiring.is_empty() {
        let list: Vec<String> = expiring
            .iter()
            .map(|(c, t)| format!("{} in {} days", c.name, (t - now).div_euclid(DAY_MS)))
            .collect();
        summary.push_str(&format!(" ({})", list.join(", ")));
    }
    summary.push_str(&format!(", {} not ready", not_ready.len()));
    if !not_ready.is_empty() {
        let list: Vec<String> = not_ready
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c.name,
                    c.ready_message.as_deref().unwrap_or("no reason given")
                )
            })
            .collect();
        summary.push_str(&format!(" ({})", list.join("; ")));
    }
    let body = json!({"namespace": ns, "certificates": certs.iter().map(|c| json!({
        "name": c.name, "issuer": c.issuer, "dns_names": c.dns_names, "ready": c.ready,
        "ready_message": c.ready_message, "revision": c.revision, "issuing": c.issuing,
        "not_after": c.not_after.map(format_utc),
        "days_left": c.not_after.map(|t| (t - now).div_euclid(DAY_MS)),
    })).collect::<Vec<_>>()});
    Ok(Some(evidence(EvidenceKind::Note, summary, &body, None)))
}

runwarden_sdk::export_source!(K8sChanges);

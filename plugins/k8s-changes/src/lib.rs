//! Context source: recent rollouts, warning events and pod health for the
//! alert's workload, through the k8s capability (read-only).
//!
//! The workload comes from the alert's labels: `namespace`, and `deployment`,
//! `service` or `app` (the first present).

use runwarden_sdk::k8s;
use runwarden_sdk::serde_json::json;
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
        let name = ["deployment", "service", "app"]
            .iter()
            .find_map(|k| alert.label(k))
            .ok_or_else(|| {
                Error::InvalidInput("alert has no `deployment`, `service` or `app` label".into())
            })?
            .to_string();
        let mut out = Vec::new();

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

runwarden_sdk::export_source!(K8sChanges);

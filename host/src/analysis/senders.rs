//! Names and labels for alerts whose senders carry none.
//!
//! PagerDuty and OpsGenie deliver a free-text title and a service, no
//! namespace, no workload, no alert name a runbook knows. The operator
//! says what they mean in `runbooks/senders.toml`: by sender, service and
//! title pattern, the alert name to use (so the runbook is found) and the
//! labels to add (so the workload is). The mapping only adds: a label the
//! sender did send is never overwritten.
//!
//! ```toml
//! [[map]]
//! sender = "pagerduty"             # optional
//! service = "Payments API"         # optional: the `service` label the sender set
//! title = "(?i)5xx|error rate"     # optional: regex on the alert's name
//! alertname = "HighErrorRate"      # optional
//! labels = { namespace = "payments", service = "payment-api" }
//! ```

use crate::intake::Alert;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const SENDERS_FILE: &str = "senders.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderMaps {
    #[serde(default, rename = "map")]
    pub maps: Vec<SenderMap>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderMap {
    #[serde(default)]
    pub sender: Option<crate::intake::Sender>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default, with = "crate::analysis::runbook::opt_regex")]
    pub title: Option<Regex>,
    #[serde(default)]
    pub alertname: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SendersError {
    pub path: String,
    pub message: String,
}

impl SenderMaps {
    /// `senders.toml` in the runbook directory; none is an empty mapping.
    pub fn load(runbooks: &Path) -> Result<SenderMaps, SendersError> {
        let path = runbooks.join(SENDERS_FILE);
        if !path.exists() {
            return Ok(SenderMaps::default());
        }
        let err = |message: String| SendersError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let maps: SenderMaps = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        maps.check().map_err(err)?;
        Ok(maps)
    }

    /// Refuses an entry that would match every alert (no sender, service
    /// or title): it would relabel alerts the operator never meant.
    pub fn check(&self) -> Result<(), String> {
        match self
            .maps
            .iter()
            .position(|m| m.sender.is_none() && m.service.is_none() && m.title.is_none())
        {
            Some(i) => Err(format!(
                "map entry {} matches every alert: give it a sender, service or title",
                i + 1
            )),
            None => Ok(()),
        }
    }

    /// The alert with the first matching entry applied.
    pub fn apply(&self, alert: &Alert) -> Alert {
        let mut out = alert.clone();
        let Some(m) = self.maps.iter().find(|m| m.matches(alert)) else {
            return out;
        };
        if let Some(name) = &m.alertname {
            out.name = name.clone();
            out.labels
                .entry("alertname".into())
                .and_modify(|v| *v = name.clone())
                .or_insert_with(|| name.clone());
            out.annotations
                .entry("title".into())
                .or_insert_with(|| alert.name.clone());
        }
        for (k, v) in &m.labels {
            // The sender's own label stays; `service` from a free-text
            // sender names its service directory entry, not a workload,
            // so the operator's mapping wins there.
            if k == "service"
                && !matches!(
                    alert.sender,
                    crate::intake::Sender::Alertmanager | crate::intake::Sender::Grafana
                )
            {
                out.labels.insert(k.clone(), v.clone());
            } else {
                out.labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        out
    }
}

impl SenderMap {
    fn matches(&self, alert: &Alert) -> bool {
        self.sender.is_none_or(|s| s == alert.sender)
            && self
                .service
                .as_ref()
                .is_none_or(|s| alert.labels.get("service") == Some(s))
            && self
                .title
                .as_ref()
                .is_none_or(|re| re.is_match(&alert.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pagerduty_title_finds_its_alert_name_and_workload() {
        let maps: SenderMaps = toml::from_str(
            r#"
[[map]]
sender = "pagerduty"
service = "Payments API"
title = "(?i)5xx|error"
alertname = "HighErrorRate"
labels = { namespace = "payments", service = "payment-api", tier = "2" }
"#,
        )
        .expect("parses");
        let body = serde_json::json!({"event": {"id": "E1", "event_type": "incident.triggered",
            "occurred_at": "2026-11-27T06:30:00Z",
            "data": {"id": "P1", "title": "Payments API: elevated 5xx after release",
                     "service": {"summary": "Payments API"}}}});
        let alert = crate::intake::pagerduty::parse(body.to_string().as_bytes())
            .expect("parses")
            .remove(0);
        let mapped = maps.apply(&alert);
        assert_eq!(mapped.name, "HighErrorRate");
        assert_eq!(mapped.labels["namespace"], "payments");
        assert_eq!(mapped.labels["service"], "payment-api");
        assert_eq!(
            mapped.annotations["title"],
            "Payments API: elevated 5xx after release"
        );
        // Another service's alert is left alone.
        let mut other = alert.clone();
        other.labels.insert("service".into(), "Search".into());
        assert_eq!(maps.apply(&other).name, alert.name);
    }

    #[test]
    fn an_opsgenie_message_maps_by_entity_and_title_and_keeps_its_own_labels() {
        let maps: SenderMaps = toml::from_str(
            r#"
[[map]]
sender = "opsgenie"
service = "checkout"
title = "(?i)latency|slow"
alertname = "HighLatency"
labels = { namespace = "shop", service = "checkout-web", team = "payments" }
"#,
        )
        .expect("parses");
        let body = serde_json::json!({"action": "Create", "alert": {"alertId": "a1", "alias": "x",
            "message": "checkout p99 latency 2.4s", "entity": "checkout", "tags": ["team:web"],
            "createdAt": 1795761000000i64}});
        let alert = crate::intake::opsgenie::parse(body.to_string().as_bytes())
            .expect("parses")
            .remove(0);
        let mapped = maps.apply(&alert);
        assert_eq!(mapped.name, "HighLatency");
        assert_eq!(mapped.labels["namespace"], "shop");
        assert_eq!(mapped.labels["service"], "checkout-web");
        // The sender's own tag wins over the mapping.
        assert_eq!(mapped.labels["team"], "web");
    }

    #[test]
    fn a_mapping_that_matches_everything_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join(SENDERS_FILE),
            "[[map]]\nalertname = \"X\"\n",
        )
        .expect("write");
        let err = SenderMaps::load(dir.path()).expect_err("refused");
        assert!(err.to_string().contains("matches every alert"), "{err}");
    }

    #[test]
    fn an_entry_that_would_match_every_alert_is_refused() {
        let maps: SenderMaps =
            toml::from_str("[[map]]\nlabels = { namespace = \"shop\" }\n").expect("parses");
        assert!(maps.check().unwrap_err().contains("matches every alert"));
        let maps: SenderMaps =
            toml::from_str("[[map]]\nsender = \"pagerduty\"\nlabels = { namespace = \"shop\" }\n")
                .expect("parses");
        assert!(maps.check().is_ok());
    }
}

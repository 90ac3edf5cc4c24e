//! OpsGenie outgoing webhooks: `Create` opens an alert, `Close` resolves it;
//! other actions (acknowledge, notes) yield none. Tags of the form
//! `key:value` become labels.

use super::{Alert, IntakeError, Sender, Status, json_error};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct Envelope {
    action: String,
    alert: RawAlert,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAlert {
    #[serde(default)]
    alert_id: String,
    #[serde(default)]
    alias: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    details: BTreeMap<String, String>,
    #[serde(default)]
    created_at: Option<i64>,
}

pub fn parse(body: &[u8]) -> Result<Vec<Alert>, IntakeError> {
    Ok(parse_raw(body)?.into_iter().map(Alert::redacted).collect())
}

fn parse_raw(body: &[u8]) -> Result<Vec<Alert>, IntakeError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| json_error(Sender::Opsgenie, &e))?;
    let status = match env.action.as_str() {
        "Create" => Status::Firing,
        "Close" => Status::Resolved,
        _ => return Ok(vec![]),
    };
    let a = env.alert;
    let fingerprint = if !a.alias.is_empty() {
        a.alias
    } else {
        a.alert_id
    };
    if fingerprint.is_empty() {
        return Err(IntakeError::Invalid {
            sender: Sender::Opsgenie,
            field: "alert.alias".into(),
            reason: "neither alias nor alertId is present".into(),
        });
    }
    let mut labels = BTreeMap::new();
    for tag in &a.tags {
        if let Some((k, v)) = tag.split_once(':') {
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let name = labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| a.message.clone());
    labels
        .entry("alertname".into())
        .or_insert_with(|| name.clone());
    if !a.entity.is_empty() {
        labels.entry("service".into()).or_insert(a.entity);
    }
    if !a.priority.is_empty() {
        labels.insert("priority".into(), a.priority);
    }
    let starts_at = a
        .created_at
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now);
    let mut annotations = a.details;
    annotations.insert("summary".into(), a.message);
    Ok(vec![Alert {
        sender: Sender::Opsgenie,
        name,
        status,
        fingerprint,
        labels,
        annotations,
        starts_at,
        ends_at: None,
        generator_url: None,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = r#"{"action":"Create","alert":{"alertId":"6d0e-4f2a","message":"payment-api 5xx above 5%","tags":["namespace:payments","severity:critical","oncall"],"tinyId":"42","entity":"payment-api","alias":"payment-api-5xx","createdAt":1795762680000,"username":"System","userId":"","priority":"P1","details":{"runbook":"high-error-rate"}},"source":{"name":"","type":"api"},"integrationName":"runwarden","integrationId":"x"}"#;

    #[test]
    fn create_becomes_a_firing_alert_with_tag_labels() {
        let alerts = parse(CREATE.as_bytes()).expect("parses");
        let a = &alerts[0];
        assert_eq!(
            (a.fingerprint.as_str(), a.status),
            ("payment-api-5xx", Status::Firing)
        );
        assert_eq!(a.label("namespace"), Some("payments"));
        assert_eq!(a.label("service"), Some("payment-api"));
        assert_eq!(a.label("priority"), Some("P1"));
    }

    #[test]
    fn close_resolves_and_acknowledge_is_ignored() {
        assert_eq!(
            parse(CREATE.replace("Create", "Close").as_bytes()).map(|a| a[0].status),
            Ok(Status::Resolved)
        );
        assert_eq!(
            parse(CREATE.replace("Create", "Acknowledge").as_bytes()).map(|a| a.len()),
            Ok(0)
        );
        assert!(parse(br#"{"action":"Create","alert":{}}"#).is_err());
    }
}

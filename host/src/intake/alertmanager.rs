//! Prometheus Alertmanager webhooks (version 4) and Grafana unified alerting
//! webhooks, which use the same envelope with `version: "1"` and a few extra
//! fields.

use super::{Alert, IntakeError, Sender, Status, fingerprint_of, json_error, parse_time};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    version: String,
    #[serde(default)]
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
    alerts: Vec<RawAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
}

/// What one webhook delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub alerts: Vec<Alert>,
    pub group_key: String,
    /// Alerts the sender left out of this body (its `max_alerts`); counted so
    /// the loss is visible.
    pub truncated: u64,
}

/// Parses an Alertmanager (version "4") or Grafana (version "1") webhook body.
pub fn parse(body: &[u8]) -> Result<Delivery, IntakeError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| json_error(Sender::Alertmanager, &e))?;
    let sender = match env.version.as_str() {
        "4" => Sender::Alertmanager,
        "1" => Sender::Grafana,
        other => {
            return Err(IntakeError::Invalid {
                sender: Sender::Alertmanager,
                field: "version".into(),
                reason: format!(
                    "{other:?} is not supported (Alertmanager sends \"4\", Grafana \"1\")"
                ),
            });
        }
    };
    let alerts = convert(sender, env.alerts)?;
    Ok(Delivery {
        alerts,
        group_key: env.group_key,
        truncated: env.truncated_alerts,
    })
}

/// Raw alerts as [`Alert`]s (redacted), naming the first bad field.
fn convert(sender: Sender, raws: Vec<RawAlert>) -> Result<Vec<Alert>, IntakeError> {
    let mut alerts = Vec::with_capacity(raws.len());
    for (i, raw) in raws.into_iter().enumerate() {
        let field = |name: &str| format!("alerts[{i}].{name}");
        let status = match raw.status.as_str() {
            "firing" => Status::Firing,
            "resolved" => Status::Resolved,
            other => {
                return Err(IntakeError::Invalid {
                    sender,
                    field: field("status"),
                    reason: format!("{other:?} is neither \"firing\" nor \"resolved\""),
                });
            }
        };
        let name = raw
            .labels
            .get("alertname")
            .cloned()
            .ok_or_else(|| IntakeError::Invalid {
                sender,
                field: field("labels.alertname"),
                reason: "missing".into(),
            })?;
        let starts_at =
            parse_time(sender, &field("startsAt"), &raw.starts_at)?.ok_or_else(|| {
                IntakeError::Invalid {
                    sender,
                    field: field("startsAt"),
                    reason: "missing".into(),
                }
            })?;
        let ends_at = parse_time(sender, &field("endsAt"), &raw.ends_at)?;
        let fingerprint = if raw.fingerprint.is_empty() {
            fingerprint_of(&raw.labels)
        } else {
            raw.fingerprint
        };
        alerts.push(
            Alert {
                sender,
                name,
                status,
                fingerprint,
                labels: raw.labels,
                annotations: raw.annotations,
                starts_at,
                ends_at,
                generator_url: (!raw.generator_url.is_empty()).then_some(raw.generator_url),
            }
            .redacted(),
        );
    }
    Ok(alerts)
}

/// Alerts read from the start of a body cut at the size limit: every alert
/// that arrived whole, in order, and how many bytes were left unread. A
/// storm larger than the limit is accepted as far as it fits, never lost
/// whole. The cut is expected to fall inside the `alerts` array (it is
/// the envelope's bulk); an error other than the cut is still an error.
pub fn parse_prefix(prefix: &[u8], sender: Sender) -> Result<Vec<Alert>, IntakeError> {
    use serde::de::DeserializeSeed;
    let mut raws = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(prefix);
    match (Collect(&mut raws)).deserialize(&mut de) {
        Ok(()) => {}
        Err(e) if e.is_eof() => {}
        Err(e) => return Err(json_error(sender, &e)),
    }
    convert(sender, raws)
}

/// Deserialises an envelope keeping only its alerts, each pushed as soon
/// as it is whole (so a cut body still yields the alerts before the cut).
struct Collect<'a>(&'a mut Vec<RawAlert>);

impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Collect<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a webhook envelope")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "alerts" {
                map.next_value_seed(Each(&mut *self.0))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Each<'a>(&'a mut Vec<RawAlert>);

impl<'de> serde::de::DeserializeSeed<'de> for Each<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Each<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of alerts")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(alert) = seq.next_element::<RawAlert>()? {
            self.0.push(alert);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const FIRING: &str = r#"{
      "version": "4",
      "groupKey": "{}:{alertname=\"HighErrorRate\"}",
      "truncatedAlerts": 0,
      "status": "firing",
      "receiver": "runwarden",
      "groupLabels": {"alertname": "HighErrorRate"},
      "commonLabels": {"alertname": "HighErrorRate", "service": "payment-api"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "someFutureField": {"ignored": true},
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "namespace": "payments", "service": "payment-api", "severity": "critical"},
        "annotations": {"summary": "5xx above 5%", "runbook_url": "https://runbooks.example/high-error-rate"},
        "startsAt": "2026-11-27T02:58:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
        "fingerprint": "c1a2b3d4e5f60718"
      }]
    }"#;

    #[test]
    fn parses_a_firing_alertmanager_alert() {
        let d = parse(FIRING.as_bytes()).expect("parses");
        let a = &d.alerts[0];
        assert_eq!(a.sender, Sender::Alertmanager);
        assert_eq!(
            (a.name.as_str(), a.status),
            ("HighErrorRate", Status::Firing)
        );
        assert_eq!(a.fingerprint, "c1a2b3d4e5f60718");
        assert_eq!(a.ends_at, None, "the zero time means still firing");
        assert_eq!(a.label("namespace"), Some("payments"));
    }

    #[test]
    fn parses_grafana_and_resolved_alerts() {
        let body = FIRING
            .replace(r#""version": "4""#, r#""version": "1", "orgId": 1, "title": "[FIRING:1]", "state": "alerting", "message": "m""#)
            .replace(r#""status": "firing",
        "labels""#, r#""status": "resolved", "silenceURL": "x", "values": {"B": 7.9},
        "labels""#)
            .replace("0001-01-01T00:00:00Z", "2026-11-27T03:30:00Z");
        let d = parse(body.as_bytes()).expect("parses");
        assert_eq!(d.alerts[0].sender, Sender::Grafana);
        assert_eq!(d.alerts[0].status, Status::Resolved);
        assert!(d.alerts[0].ends_at.is_some());
    }

    #[test]
    fn computes_a_fingerprint_when_missing() {
        let body = FIRING
            .replace(r#","fingerprint": "c1a2b3d4e5f60718""#, "")
            .replace(
                r#",
        "fingerprint": "c1a2b3d4e5f60718""#,
                "",
            );
        let d = parse(body.as_bytes()).expect("parses");
        assert_eq!(d.alerts[0].fingerprint.len(), 16);
        assert_eq!(d.alerts[0].fingerprint, fingerprint_of(&d.alerts[0].labels));
    }

    #[test]
    fn bad_bodies_name_what_and_where() {
        let e = parse(b"{\"version\": \"4\", \"alerts\": [}")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("line 1, column"), "{e}");
        let e = parse(
            FIRING
                .replace("\"version\": \"4\"", "\"version\": \"3\"")
                .as_bytes(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("`version`") && e.contains("\"3\""), "{e}");
        let e = parse(
            FIRING
                .replace(
                    "\"status\": \"firing\",\n        \"labels\"",
                    "\"status\": \"burning\",\n        \"labels\"",
                )
                .as_bytes(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("alerts[0].status"), "{e}");
        let e = parse(
            FIRING
                .replace("2026-11-27T02:58:00.123Z", "yesterday")
                .as_bytes(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("alerts[0].startsAt"), "{e}");
        let e = parse(
            FIRING
                .replace(
                    "\"alertname\": \"HighErrorRate\", \"namespace\"",
                    "\"namespace\"",
                )
                .as_bytes(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("alerts[0].labels.alertname"), "{e}");
    }

    #[test]
    fn a_body_cut_at_the_limit_yields_every_whole_alert_before_the_cut() {
        let alert = |i: usize| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"NodeDown","node":"n{i}"}},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f{i}"}}"#
            )
        };
        let body = format!(
            r#"{{"receiver":"r","status":"firing","alerts":[{}],"version":"4","groupKey":"g"}}"#,
            (0..100).map(alert).collect::<Vec<_>>().join(",")
        );
        assert_eq!(
            parse_prefix(body.as_bytes(), Sender::Alertmanager)
                .unwrap()
                .len(),
            100
        );
        let cut = body.find("\"n42\"").unwrap();
        let got = parse_prefix(&body.as_bytes()[..cut], Sender::Alertmanager).unwrap();
        assert_eq!(got.len(), 42);
        assert_eq!(got[41].fingerprint, "f41");
        assert!(parse_prefix(b"{\"alerts\": [}", Sender::Alertmanager).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"alerts\": 5}",
            b"\xff\xfe",
            b"{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\"}]}",
        ] {
            assert!(parse(body).is_err());
        }
    }
}

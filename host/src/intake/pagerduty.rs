//! PagerDuty Webhooks v3, with their HMAC-SHA256 signatures.

use super::{Alert, IntakeError, Sender, Status, json_error, parse_time};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
struct Envelope {
    event: Event,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    event_type: String,
    #[serde(default)]
    occurred_at: String,
    #[serde(default)]
    data: Data,
}

#[derive(Debug, Default, Deserialize)]
struct Data {
    #[serde(default)]
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    service: Option<Reference>,
    #[serde(default)]
    priority: Option<Reference>,
}

#[derive(Debug, Default, Deserialize)]
struct Reference {
    #[serde(default)]
    summary: Option<String>,
}

/// Checks `X-PagerDuty-Signature`: one or more comma-separated `v1=<hex>`
/// values, any of which may match HMAC-SHA256(body, secret). Several appear
/// while a secret is being rotated. Comparison is constant-time.
/// Most `v1=` entries one delivery may carry (PagerDuty sends more than one
/// only while a signing secret rotates), and the longest header: a forged
/// request cannot buy one HMAC per entry.
const MAX_SIGNATURES: usize = 8;
const MAX_HEADER_BYTES: usize = 2048;

pub fn verify_signature(body: &[u8], header: &str, secret: &[u8]) -> Result<(), IntakeError> {
    use subtle::ConstantTimeEq as _;
    if header.len() > MAX_HEADER_BYTES {
        return Err(IntakeError::Signature(format!(
            "X-PagerDuty-Signature is {} bytes; at most {MAX_HEADER_BYTES}",
            header.len()
        )));
    }
    let signatures: Vec<&str> = header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .collect();
    if signatures.is_empty() {
        return Err(IntakeError::Signature(
            "no v1= signature in X-PagerDuty-Signature".into(),
        ));
    }
    if signatures.len() > MAX_SIGNATURES {
        return Err(IntakeError::Signature(format!(
            "{} v1 signatures; at most {MAX_SIGNATURES}",
            signatures.len()
        )));
    }
    // One HMAC over the body, however many entries there are.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return Err(IntakeError::Signature("unusable secret".into()));
    };
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.iter().any(|hex_sig| {
        hex::decode(hex_sig).is_ok_and(|sig| bool::from(sig.as_slice().ct_eq(expected.as_slice())))
    });
    if matches {
        Ok(())
    } else {
        Err(IntakeError::Signature(
            "no v1 signature matches the body".into(),
        ))
    }
}

/// The delivery's event id (PagerDuty's `event.id`), for replay detection.
pub fn event_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.event.id)
}

/// When the delivery's event happened (`event.occurred_at`), if it says.
pub fn occurred_at(body: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let env = serde_json::from_slice::<Envelope>(body).ok()?;
    chrono::DateTime::parse_from_rfc3339(&env.event.occurred_at)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Parses a v3 webhook. Incident triggers and resolutions become alerts;
/// other events (acknowledgements, notes) yield none.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, IntakeError> {
    Ok(parse_raw(body)?.into_iter().map(Alert::redacted).collect())
}

fn parse_raw(body: &[u8]) -> Result<Vec<Alert>, IntakeError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| json_error(Sender::Pagerduty, &e))?;
    let status = match env.event.event_type.as_str() {
        "incident.triggered" | "incident.reopened" => Status::Firing,
        "incident.resolved" => Status::Resolved,
        _ => return Ok(vec![]),
    };
    let d = env.event.data;
    if d.id.is_empty() {
        return Err(IntakeError::Invalid {
            sender: Sender::Pagerduty,
            field: "event.data.id".into(),
            reason: "missing".into(),
        });
    }
    let starts_at = parse_time(
        Sender::Pagerduty,
        "event.occurred_at",
        &env.event.occurred_at,
    )?
    .unwrap_or_else(chrono::Utc::now);
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), d.title.clone());
    if let Some(s) = d.service.and_then(|s| s.summary) {
        labels.insert("service".into(), s);
    }
    if let Some(u) = d.urgency {
        labels.insert("urgency".into(), u);
    }
    if let Some(p) = d.priority.and_then(|p| p.summary) {
        labels.insert("priority".into(), p);
    }
    let mut annotations = BTreeMap::new();
    annotations.insert("pagerduty_event_id".into(), env.event.id);
    Ok(vec![Alert {
        sender: Sender::Pagerduty,
        name: if d.title.is_empty() {
            "PagerDutyIncident".into()
        } else {
            d.title
        },
        status,
        fingerprint: d.id,
        labels,
        annotations,
        starts_at,
        ends_at: None,
        generator_url: d.html_url,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_signature_entries_is_refused_before_any_hmac() {
        let many = vec!["v1=00"; 10_000].join(",");
        let started = std::time::Instant::now();
        let r = verify_signature(b"{}", &many, b"secret");
        assert!(
            matches!(&r, Err(IntakeError::Signature(m)) if m.contains("at most")),
            "{r:?}"
        );
        let few = ["v1=00"; 9].join(",");
        let r = verify_signature(b"{}", &few, b"secret");
        assert!(
            matches!(&r, Err(IntakeError::Signature(m)) if m.contains("at most 8")),
            "{r:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    const BODY: &str = r#"{"event":{"id":"01DEN4HPBQAJ4YE4GDXMOD3BWJ","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-11-27T02:58:00.000Z","agent":null,"client":null,"data":{"id":"PGR0VU2","type":"incident","self":"https://api.pagerduty.com/incidents/PGR0VU2","html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"triggered","title":"payment-api 5xx above 5%","service":{"id":"PF9KMXH","summary":"payment-api"},"urgency":"high","priority":{"summary":"P1"}}}}"#;

    fn sign(body: &[u8], secret: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_valid_signature_among_several_is_accepted() {
        let good = sign(BODY.as_bytes(), b"s3cret");
        let header = format!("v1={}, v1={good}", "ab".repeat(32));
        assert!(verify_signature(BODY.as_bytes(), &header, b"s3cret").is_ok());
    }

    #[test]
    fn wrong_or_missing_signatures_are_refused() {
        let good = sign(BODY.as_bytes(), b"s3cret");
        assert!(verify_signature(BODY.as_bytes(), &format!("v1={good}"), b"other").is_err());
        assert!(verify_signature(b"tampered", &format!("v1={good}"), b"s3cret").is_err());
        assert!(verify_signature(BODY.as_bytes(), "", b"s3cret").is_err());
        assert!(verify_signature(BODY.as_bytes(), "v1=zz", b"s3cret").is_err());
    }

    #[test]
    fn a_trigger_becomes_a_firing_alert() {
        let alerts = parse(BODY.as_bytes()).expect("parses");
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].fingerprint, "PGR0VU2");
        assert_eq!(alerts[0].label("service"), Some("payment-api"));
        assert_eq!(alerts[0].status, Status::Firing);
    }

    #[test]
    fn other_events_yield_nothing_and_garbage_is_refused() {
        let ack = BODY.replace("incident.triggered", "incident.acknowledged");
        assert_eq!(parse(ack.as_bytes()).map(|a| a.len()), Ok(0));
        assert!(parse(b"{}").is_err());
        assert!(
            parse(b"{\"event\":{\"id\":\"x\",\"event_type\":\"incident.triggered\",\"data\":{}}}")
                .is_err()
        );
    }
}

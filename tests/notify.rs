//! Escalation notifications through the slack and pagerduty plugins, against
//! loopback servers that speak their documented formats.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::agent::*;
use common::*;
use runwarden::capability::secrets::StaticSecretStore;
use runwarden::intake::Alert;
use runwarden::pipeline::{Agent, AgentConfig};
use runwarden::sandbox::state::HostServices;
use runwarden::store::IncidentState;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn unknown_service_alert() -> Alert {
    firing_alert("HighErrorRate", "ghost-svc", "2")
}

fn agent_with_secrets(s: &Setup, secrets: &[(&str, String)]) -> Agent {
    let services = HostServices {
        cluster: s.world.cluster.clone(),
        secrets: Arc::new(StaticSecretStore(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )),
    };
    agent_with(
        s,
        services,
        AgentConfig {
            source_deadline: Duration::from_secs(3),
            ..AgentConfig::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escalation_posts_to_slack_and_pages_through_pagerduty() {
    let slack = serve_status(|_| (200, "ok".into())).await;
    // PagerDuty's stand-in keeps each event's body: the routing key must be
    // in it, placed by the host (the plugin never holds it).
    let events: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let log = events.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            log.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or_default());
            (
                axum::http::StatusCode::ACCEPTED,
                r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#,
            )
        }
    });
    let pd_origin = runwarden::server::spawn_on_loopback(app).await.unwrap();
    let pp: u16 = pd_origin.rsplit(':').next().unwrap().parse().unwrap();
    let sp = slack.port;
    let s = setup(move |name, t| match name {
        "slack.toml" => t.replace("https://hooks.slack.com", &format!("http://127.0.0.1:{sp}")),
        "pagerduty.toml" => t.replace(
            "https://events.pagerduty.com",
            &format!("http://127.0.0.1:{pp}"),
        ),
        _ => t,
    });
    let agent = agent_with_secrets(
        &s,
        &[
            (
                "slack-webhook-url",
                format!("http://127.0.0.1:{sp}/services/T000/B000/XXXX"),
            ),
            ("pagerduty-routing-key", "R0UTINGKEY".into()),
        ],
    );
    let out = agent.handle(&[unknown_service_alert()]).await.unwrap();
    assert_eq!(out.state, IncidentState::Escalated);
    let notes: Vec<serde_json::Value> = agent
        .store
        .audit(Some(&out.incident))
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "notification")
        .map(|r| r.body)
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().all(|n| n["ok"] == true), "{notes:?}");
    assert_eq!(
        slack.paths.lock().unwrap().as_slice(),
        ["/services/T000/B000/XXXX"]
    );
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["routing_key"], "R0UTINGKEY");
    assert_eq!(events[0]["event_action"], "trigger");
    let audit = serde_json::to_string(&agent.store.audit(None).unwrap()).unwrap();
    assert!(
        !audit.contains("R0UTINGKEY") && !audit.contains("B000/XXXX"),
        "secrets leaked into the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_secrets_or_grants_the_failed_notification_is_audited() {
    let s = setup(|_, t| t);
    // No secrets at all: the plugins are denied nothing by policy, but the
    // host has no value; and the real Slack origin is never reached here.
    let agent = agent_with_secrets(&s, &[]);
    let out = agent.handle(&[unknown_service_alert()]).await.unwrap();
    assert_eq!(out.state, IncidentState::Escalated);
    let notes: Vec<serde_json::Value> = agent
        .store
        .audit(Some(&out.incident))
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "notification")
        .map(|r| r.body)
        .collect();
    assert_eq!(notes.len(), 2);
    assert!(
        notes
            .iter()
            .all(|n| n["ok"] == false && n["detail"].as_str().unwrap().contains("no value")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_refuses_a_webhook_url_outside_its_grant() {
    // The secret points somewhere the policy does not grant: the host
    // refuses the request before it leaves.
    let elsewhere = serve("ok").await;
    let s = setup(|_, t| t);
    let agent = agent_with_secrets(
        &s,
        &[(
            "slack-webhook-url",
            format!("http://127.0.0.1:{}/steal", elsewhere.port),
        )],
    );
    let plugin = agent.registry.get("slack").unwrap();
    let called = plugin
        .execute(
            &agent.registry.services,
            &call("post_message", json!({"text": "hi"})),
            common::grant_only(),
        )
        .await;
    assert!(
        matches!(
            called.result,
            Err(runwarden::sandbox::fault::CallError::Plugin(
                runwarden::bindings::types::Error::Denied(_)
            ))
        ),
        "{:?}",
        called.result
    );
    assert_eq!(elsewhere.hits(), 0);
}

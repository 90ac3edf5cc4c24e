//! The redaction corpus end to end: `runwarden serve` as a process, with the
//! LLM planner pointed at a model on loopback that records every prompt,
//! takes one Alertmanager post whose labels and annotations carry every
//! secret of `tests/fixtures/secret-corpus.toml` (59 formats, some split by
//! a zero-width space, percent- or JSON-encoded). None of them may be found
//! in the API's answers, the audit trail, the database file (the
//! similar-incident index lives there), the log, or a prompt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use runwarden::redact::corpus;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIEWER: &str = "redaction-viewer-token-0123";

/// A model that records each request body and answers "no action".
async fn recording_model() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let answer = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1795760960u64, "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null, "message": {"role": "assistant",
            "content": r#"{"hypothesis":"not enough evidence","confidence":"low","actions":[],"risk_assessment":"none","evidence":[]}"#}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    });
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: String| {
            let (keep, answer) = (keep.clone(), answer.clone());
            async move {
                keep.lock().unwrap().push(body);
                axum::Json(answer)
            }
        }),
    );
    let origin = runwarden::server::spawn_on_loopback(app).await.unwrap();
    (format!("{origin}/v1"), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_of_the_corpus_reaches_the_api_the_audit_trail_the_index_the_log_or_a_prompt() {
    let corpus = corpus::parse(
        &std::fs::read_to_string(common::workspace().join("tests/fixtures/secret-corpus.toml"))
            .unwrap(),
    )
    .unwrap();
    assert!(corpus.secret.len() >= 40);

    let s = common::agent::setup(|_, t| t);
    let root = s.dir.path();
    common::copy_runbooks(&root.join("runbooks"));
    std::fs::write(
        root.join("access.toml"),
        format!("[[api_token]]\nname = \"viewer\"\nrole = \"viewer\"\ntoken = {{ value = \"{VIEWER}\" }}\n"),
    )
    .unwrap();
    let (model, prompts) = recording_model().await;
    let mut agent = common::process::serve_env(
        root,
        &["--access", "access.toml", "--insecure-local-webhooks"],
        &[
            ("RUNWARDEN_LLM_BASE_URL", Path::new(&model)),
            ("RUNWARDEN_LLM_MODEL", Path::new("test-model")),
        ],
    );

    // Every secret in an annotation, the first also under a label whose
    // name says what it is, and one in the alert's title-bearing summary.
    let mut annotations = serde_json::Map::new();
    for (i, secret) in corpus.secret.iter().enumerate() {
        annotations.insert(format!("log_{i:02}"), secret.text().into());
    }
    annotations.insert("summary".into(), corpus.secret[1].text().into());
    let post = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "runwarden", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "fingerprint": "leaky1",
            "labels": {"alertname": "HighErrorRate", "namespace": "payments", "service": "payment-api",
                       "tier": "2", "db_password": corpus.secret[0].value},
            "annotations": annotations,
            "startsAt": chrono::Utc::now().to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z"}]
    });
    let (status, body) = common::http(
        "POST",
        &format!("{}/webhooks/alertmanager", agent.base),
        &[("content-type", "application/json")],
        post.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    let auth = format!("Bearer {VIEWER}");
    let get = |path: &str| {
        let (url, auth) = (format!("{}{path}", agent.base), auth.clone());
        async move { common::http("GET", &url, &[("authorization", &auth)], vec![]).await }
    };
    let until = Instant::now() + Duration::from_secs(60);
    let incidents = loop {
        let (_, listed) = get("/api/incidents").await;
        if listed.contains("escalated") || listed.contains("resolved") {
            break listed;
        }
        assert!(Instant::now() < until, "{listed}\n{}", agent.logged());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, report) = get("/api/incidents/INC-1/report").await;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();

    let out = common::runwarden_command()
        .current_dir(root)
        .args(["--data-dir", "data", "audit", "export"])
        .output()
        .unwrap();
    let trail = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        trail.contains("alert-received") && trail.contains("\"prompt\""),
        "{trail}"
    );
    let mut database = Vec::new();
    for file in ["runwarden.db", "runwarden.db-wal"] {
        database.extend(std::fs::read(root.join("data").join(file)).unwrap_or_default());
    }
    let database = String::from_utf8_lossy(&database).into_owned();
    // Prompts travel JSON-encoded: read them as the model does.
    let prompts: Vec<String> = prompts
        .lock()
        .unwrap()
        .iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert!(!prompts.is_empty(), "the model was asked");
    assert!(prompts[0].contains("HighErrorRate"), "{}", prompts[0]);

    let sinks = [
        ("GET /api/incidents", incidents),
        ("the report", report),
        ("the audit trail", trail),
        ("the database file (index included)", database),
        ("the log", agent.logged()),
        ("the prompt", prompts.join("\n")),
    ];
    let mut leaks = Vec::new();
    for secret in &corpus.secret {
        for (sink, text) in &sinks {
            if let Some(piece) = secret.pieces().iter().find(|p| text.contains(p.as_str())) {
                leaks.push(format!(
                    "{} ({}) in {sink}: {piece}",
                    secret.format, secret.rule
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // Not vacuous: the alert did arrive, redacted.
    assert!(sinks[2].1.contains("[REDACTED"), "{}", sinks[2].1);
}

//! `runwarden mcp` driven by the official Rust MCP SDK's client (rmcp),
//! over stdio (a child process) and streamable HTTP: the granted tools are
//! listed, calls go through the guardrails, a mutation waits for a human,
//! and nothing an MCP client sends can approve or widen anything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use std::path::Path;

fn runwarden_cmd(data: &Path) -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runwarden")).configure(|cmd| {
        cmd.arg("--data-dir")
            .arg(data)
            .arg("mcp")
            .current_dir(common::workspace())
            .env(
                "RUNWARDEN_CACHE_DIR",
                common::workspace().join("target/runwarden-test-cache"),
            );
    })
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = common::runwarden_command()
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    common::output_text(&out)
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// The call's JSON answer and whether the server flagged it an error.
async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &str,
    arguments: Value,
) -> (Value, bool) {
    let result = client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap();
    let text = result.content[0].as_text().unwrap().text.clone();
    (
        serde_json::from_str(&text).unwrap(),
        result.is_error == Some(true),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_client_sees_the_granted_tools_and_cannot_bypass_the_guardrails() {
    let data = tempfile::tempdir().unwrap();
    let client =
        ().serve(TokioChildProcess::new(runwarden_cmd(data.path())).unwrap())
            .await
            .unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let find = |name: &str| tools.iter().find(|t| t.name == name).cloned();
    let scale = find("k8s-remediation.scale_deployment").expect("granted tool listed");
    assert!(
        scale.input_schema.contains_key("properties"),
        "the tool's own schema"
    );
    let hints = scale.annotations.clone().unwrap();
    assert_eq!(hints.read_only_hint, Some(false));
    let gather = find("k8s-changes.gather").expect("context source listed");
    assert_eq!(gather.annotations.unwrap().read_only_hint, Some(true));
    assert!(
        tools
            .iter()
            .all(|t| !["approve", "grant", "policy", "breaker", "mode"]
                .iter()
                .any(|w| t.name.contains(w))),
        "no tool can approve, grant or change policy: {:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );

    // Outside the grant: refused at the capability check, nothing runs.
    let (answer, is_error) = call(
        &client,
        "k8s-remediation.scale_deployment",
        json!({"namespace": "kube-system", "name": "coredns", "replicas": 0}),
    )
    .await;
    assert!(is_error, "{answer}");
    assert_eq!(answer["status"]["status"], "refused", "{answer}");
    assert_eq!(answer["status"]["step"], "capability", "{answer}");

    // Malformed arguments: refused by the tool's schema.
    let (answer, is_error) = call(
        &client,
        "k8s-remediation.rollback_deployment",
        json!({"namespace": "payments", "name": "payment-api", "approved": true}),
    )
    .await;
    assert!(is_error, "{answer}");
    assert_eq!(answer["status"]["step"], "schema", "{answer}");

    // Within the grant: an outside caller's proposal has low confidence, so
    // this policy wants a human. The plan is there; nothing has changed.
    let (answer, is_error) = call(
        &client,
        "k8s-remediation.rollback_deployment",
        json!({"namespace": "payments", "name": "payment-api"}),
    )
    .await;
    assert!(!is_error, "{answer}");
    assert_eq!(answer["status"]["status"], "waiting-approval", "{answer}");
    let approval = answer["status"]["approval"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string();
    assert!(
        answer["plan"].as_str().is_some_and(|p| !p.is_empty()),
        "{answer}"
    );

    // A read-only source answers, redacted and audited.
    let (answer, is_error) = call(
        &client,
        "k8s-changes.gather",
        json!({"alertname": "HighErrorRate", "labels": {"namespace": "payments", "service": "payment-api"}}),
    )
    .await;
    assert!(!is_error, "{answer}");
    assert!(
        answer["evidence"].as_array().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );

    let (answer, is_error) = call(&client, "nonsense", json!({})).await;
    assert!(is_error && answer["error"].as_str().unwrap().contains("unknown tool"));
    client.cancel().await.unwrap();

    // The human side: the approval is pending and bound to the call; the
    // whole session is in the audit trail, which verifies.
    let pending = cli(data.path(), &["approvals"]);
    assert!(
        pending.contains(&approval) && pending.contains("rollback_deployment"),
        "{pending}"
    );
    let trail = cli(data.path(), &["audit", "verify"]);
    assert!(trail.contains("hash chain verified"), "{trail}");
    let incidents = cli(data.path(), &["incidents"]);
    assert!(
        incidents.contains("MCP: k8s-remediation.rollback_deployment"),
        "{incidents}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_over_http_needs_an_approver_token() {
    let s = common::agent::setup(|_, t| t);
    let agent = std::sync::Arc::new(common::agent::agent(&s));
    let access = runwarden::server::Access::default()
        .with_token("dash", runwarden::server::Role::Viewer, "viewer-token-123")
        .with_token(
            "claude",
            runwarden::server::Role::Approver,
            "approver-token-123",
        );
    let origin = runwarden::server::spawn_on_loopback(runwarden::mcp::http_router(agent, access))
        .await
        .unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}});
    let post = async |token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        common::http(
            "POST",
            &format!("{origin}/mcp"),
            &headers,
            init.to_string().into_bytes(),
        )
        .await
    };
    assert_eq!(post(None).await.0, 401);
    assert_eq!(
        post(Some("viewer-token-123")).await.0,
        403,
        "a viewer cannot cause changes"
    );
    let (status, body) = post(Some("approver-token-123")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("serverInfo") || body.contains("protocolVersion"),
        "{body}"
    );
}

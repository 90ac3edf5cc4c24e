//! Deny, then grant: for each capability the same call is refused with a
//! typed denial and no side effect, then succeeds once the policy grants it.
//! Real components, real sandbox; the cluster is the simulated one and HTTP
//! goes to a server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::bindings::types::Error as PluginError;
use runwarden::capability::Verdict;
use runwarden::sandbox::fault::CallError;
use serde_json::json;
use std::sync::{Arc, Mutex};

fn denied(result: &Result<runwarden::bindings::types::Outcome, CallError>) -> Option<&str> {
    match result {
        Err(CallError::Plugin(PluginError::Denied(reason))) => Some(reason),
        _ => None,
    }
}

const PAYMENTS_SCALE: &str = r#"
[grants.k8s]
namespaces = ["payments"]
operations = ["read", "scale", "delete-pods"]
max_replicas = 6
max_pods_per_action = 2
"#;

const CHECKOUT_ONLY: &str = r#"
[grants.k8s]
namespaces = ["checkout"]
operations = ["read", "scale"]
max_replicas = 6
"#;

#[tokio::test(flavor = "multi_thread")]
async fn k8s_namespace_denied_then_granted() {
    let w = world();
    let scale = call(
        "k8s_scale",
        json!({"namespace": "payments", "name": "payment-api", "replicas": 5}),
    );

    let plugin = hostile(CHECKOUT_ONLY);
    let called = plugin
        .execute(&w.services, &scale, common::grant_only())
        .await;
    let reason = denied(&called.result).expect("typed denial");
    assert!(
        reason.contains("namespace `payments` is not granted"),
        "{reason}"
    );
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas),
        Some(3),
        "no side effect"
    );
    assert!(matches!(
        called.report.capability_calls[0].verdict,
        Verdict::Denied(_)
    ));

    let plugin = hostile(PAYMENTS_SCALE);
    let called = plugin
        .execute(&w.services, &scale, common::grant_only())
        .await;
    assert!(called.result.is_ok(), "{:?}", called.result);
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas),
        Some(5)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_replicas_above_max_denied_then_allowed_within() {
    let w = world();
    let plugin = hostile(PAYMENTS_SCALE);
    let too_many = call(
        "k8s_scale",
        json!({"namespace": "payments", "name": "payment-api", "replicas": 7}),
    );
    let reason = denied(
        &plugin
            .execute(&w.services, &too_many, common::grant_only())
            .await
            .result,
    )
    .map(str::to_string);
    assert!(reason.is_some_and(|r| r.contains("max_replicas (6)")));
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas),
        Some(3)
    );

    let ok = call(
        "k8s_scale",
        json!({"namespace": "payments", "name": "payment-api", "replicas": 6}),
    );
    assert!(
        plugin
            .execute(&w.services, &ok, common::grant_only())
            .await
            .result
            .is_ok()
    );
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas),
        Some(6)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_pods_per_action_denied_then_allowed() {
    let w = world();
    let plugin = hostile(PAYMENTS_SCALE);
    let pods = w.cluster.pod_names("payments");
    let all = call(
        "k8s_delete_pods",
        json!({"namespace": "payments", "pods": pods}),
    );
    let reason = denied(
        &plugin
            .execute(&w.services, &all, common::grant_only())
            .await
            .result,
    )
    .map(str::to_string);
    assert!(reason.is_some_and(|r| r.contains("max_pods_per_action (2)")));
    assert_eq!(w.cluster.pod_names("payments"), pods, "no pod deleted");

    let two = call(
        "k8s_delete_pods",
        json!({"namespace": "payments", "pods": &pods[..2]}),
    );
    assert!(
        plugin
            .execute(&w.services, &two, common::grant_only())
            .await
            .result
            .is_ok()
    );
    assert_ne!(w.cluster.pod_names("payments"), pods);
}

#[tokio::test(flavor = "multi_thread")]
async fn k8s_operation_not_granted_is_denied() {
    let w = world();
    let plugin = hostile("[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\"]\n");
    let scale = call(
        "k8s_scale",
        json!({"namespace": "payments", "name": "payment-api", "replicas": 4}),
    );
    let reason = denied(
        &plugin
            .execute(&w.services, &scale, common::grant_only())
            .await
            .result,
    )
    .map(str::to_string);
    assert!(reason.is_some_and(|r| r.contains("`scale` is not granted")));
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_cannot_mutate_even_with_the_grant() {
    let w = world();
    let plugin = hostile(PAYMENTS_SCALE);
    let scale = call(
        "k8s_scale",
        json!({"namespace": "payments", "name": "payment-api", "replicas": 5}),
    );
    let planned = plugin.plan(&w.services, &scale).await;
    assert!(
        matches!(&planned.result, Err(CallError::Plugin(PluginError::Denied(r))) if r.contains("read-only")),
        "{:?}",
        planned.result
    );
    assert_eq!(
        w.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.replicas),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_origin_denied_then_granted() {
    let w = world();
    let server = serve("hello").await;
    let url = format!("http://127.0.0.1:{}/x", server.port);
    let get = http_get(&url);

    let other = serve("other").await;
    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{}\"]\n",
        other.port
    ));
    let called = plugin
        .execute(&w.services, &get, common::grant_only())
        .await;
    let reason = denied(&called.result).expect("typed denial");
    assert!(
        reason.contains("the grant does not allow this origin"),
        "{reason}"
    );
    assert_eq!(server.hits(), 0, "the request never left the host");
    let recorded = &called.report.capability_calls[0];
    assert!(
        matches!(&recorded.verdict, Verdict::Denied(r) if r.contains(&format!("127.0.0.1:{}", server.port))),
        "{recorded:?}"
    );

    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{}\"]\n",
        server.port
    ));
    let called = plugin
        .execute(&w.services, &get, common::grant_only())
        .await;
    assert_eq!(
        called.result.map(|o| o.summary).ok().as_deref(),
        Some("status 200 (5 bytes)")
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_name_resolving_to_loopback_is_refused_until_named() {
    let w = world();
    let server = serve("hello").await;
    let get = call(
        "http_get",
        json!({"url": format!("http://localhost:{}/", server.port)}),
    );

    // The origin is granted, but `localhost` resolves to a loopback address
    // the policy never named: the host refuses to connect.
    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://localhost:{}\"]\n",
        server.port
    ));
    let called = plugin
        .execute(&w.services, &get, common::grant_only())
        .await;
    let reason = denied(&called.result).expect("typed denial");
    assert!(reason.contains("address the policy forbids"), "{reason}");
    assert_eq!(server.hits(), 0);
    assert!(
        matches!(&called.report.capability_calls[0].verdict, Verdict::Denied(r) if r.contains("loopback")),
        "{:?}",
        called.report.capability_calls
    );

    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://localhost:{}\"]\nallow_private_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n",
        server.port
    ));
    let called = plugin
        .execute(&w.services, &get, common::grant_only())
        .await;
    assert!(called.result.is_ok(), "{:?}", called.result);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_addresses_in_any_spelling_are_refused_without_connecting() {
    // No connection is ever attempted here: every request is refused by the
    // origin check or the address check before a socket is opened.
    let w = world();
    let plugin = hostile("[grants.http]\nallow = [\"http://metadata.invalid:80\"]\n");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
    ] {
        let called = plugin
            .execute(&w.services, &http_get(url), common::grant_only())
            .await;
        let reason = denied(&called.result).map(str::to_string);
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("the grant does not allow this origin")),
            "{url}: {:?}",
            called.result
        );
        assert!(
            matches!(called.report.capability_calls.as_slice(), [c] if matches!(c.verdict, Verdict::Denied(_))),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_denied_then_granted_and_never_recorded() {
    let w = world();
    let get = call("secret_get", json!({"name": "slack-webhook"}));

    let plugin = hostile("[grants.secrets]\nnames = [\"cloudflare-token\"]\n");
    let called = plugin
        .execute(&w.services, &get, common::grant_only())
        .await;
    assert!(denied(&called.result).is_some_and(|r| r.contains("`slack-webhook` is not granted")));

    let plugin = hostile("[grants.secrets]\nnames = [\"slack-webhook\"]\n");
    let called = plugin
        .execute(&w.services, &get, common::grant_only())
        .await;
    let expected = format!("secret has {} bytes", SECRET_VALUE.len());
    assert_eq!(
        called.result.as_ref().map(|o| o.summary.as_str()).ok(),
        Some(expected.as_str())
    );
    let report = serde_json::to_string(&called.report).expect("report serializes");
    assert!(report.contains("slack-webhook"));
    assert!(
        !report.contains(SECRET_VALUE),
        "secret value leaked into the report: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_are_bounded_per_call() {
    let w = world();
    let plugin = hostile("[limits]\nmax_log_lines = 10\ntimeout_ms = 20000\n\n[grants.log]\n");
    let called = plugin
        .execute(
            &w.services,
            &call("log_flood", json!({})),
            common::grant_only(),
        )
        .await;
    assert!(called.result.is_ok(), "{:?}", called.result);
    assert_eq!(called.report.logs.len(), 10);
    assert_eq!(called.report.logs_dropped, 100_000 - 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_hits_the_grants_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accept and hold connections without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let w = world();
    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{port}\"]\ntotal_timeout_ms = 300\n"
    ));
    let started = std::time::Instant::now();
    let called = plugin
        .execute(
            &w.services,
            &http_get(&format!("http://127.0.0.1:{port}/")),
            common::grant_only(),
        )
        .await;
    assert!(
        matches!(&called.result, Err(CallError::Plugin(PluginError::Unavailable(r))) if r.contains("timeout")),
        "{:?}",
        called.result
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    holder.abort();
}

/// An origin on loopback that answers with the Authorization header it got,
/// and remembers each one.
async fn echo_authorization() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let log = log.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            log.lock().unwrap().push(auth.clone());
            format!("you sent: {auth}")
        }
    });
    let origin = runwarden::server::spawn_on_loopback(app).await.unwrap();
    (origin, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_credentials_reach_their_origin_and_never_the_plugin() {
    let w = world();
    let (a, seen_a) = echo_authorization().await;
    let (b, seen_b) = echo_authorization().await;
    let get = |url: &str, auth: Option<&str>| {
        let mut args = json!({ "url": format!("{url}/zones") });
        if let Some(auth) = auth {
            args["authorization"] = json!(auth);
        }
        call("http_get_body", args)
    };
    let allow = format!("[grants.http]\nallow = [{a:?}, {b:?}]\n");

    // Without the binding, nothing is added.
    let plugin = hostile(&allow);
    let called = plugin
        .execute(&w.services, &get(&a, None), common::grant_only())
        .await;
    assert!(called.result.is_ok(), "{:?}", called.result);
    assert_eq!(seen_a.lock().unwrap().as_slice(), ["none"]);

    // Bound to origin A: the host adds it, over what the plugin wrote.
    let plugin = hostile(&format!(
        "{allow}[[grants.http.inject]]\norigin = {a:?}\nsecret = \"slack-webhook\"\nscheme = \"bearer\"\n"
    ));
    let called = plugin
        .execute(
            &w.services,
            &get(&a, Some("Bearer forged-by-the-plugin")),
            common::grant_only(),
        )
        .await;
    let body = called.result.map(|o| o.summary).unwrap();
    assert_eq!(
        seen_a.lock().unwrap().last().map(String::as_str),
        Some(format!("Bearer {SECRET_VALUE}").as_str()),
        "the origin got the credential, not the plugin's header"
    );
    assert!(
        !body.contains(SECRET_VALUE) && body.contains("credential removed"),
        "the echo is scrubbed before the plugin reads it: {body}"
    );
    let report = serde_json::to_string(&called.report).unwrap();
    assert!(report.contains("secret `slack-webhook` into"), "{report}");
    assert!(!report.contains(SECRET_VALUE), "{report}");

    // Another granted origin never gets it.
    let called = plugin
        .execute(&w.services, &get(&b, None), common::grant_only())
        .await;
    assert!(called.result.is_ok());
    assert_eq!(seen_b.lock().unwrap().as_slice(), ["none"]);

    // And the plugin cannot read it.
    let called = plugin
        .execute(
            &w.services,
            &call("secret_get", json!({"name": "slack-webhook"})),
            common::grant_only(),
        )
        .await;
    let reason = denied(&called.result).expect("typed denial");
    assert!(reason.contains("bound for injection"), "{reason}");
}

#[test]
fn a_secret_both_readable_and_injected_is_refused_at_load() {
    let f = fixture(
        "hostile_guests",
        "remediation-tool",
        HOSTILE_REQUESTS,
        "[grants.http]\nallow = [\"https://api.example.com\"]\n[[grants.http.inject]]\norigin = \"https://api.example.com\"\nsecret = \"slack-webhook\"\nscheme = \"bearer\"\n[grants.secrets]\nnames = [\"slack-webhook\"]\n",
    );
    let err = runwarden::policy::load_policy(&f.policy_path)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("grants.http.inject[0].secret") && err.contains("readable"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aws_key_signs_requests_to_its_origin_and_the_plugin_never_sees_it() {
    let cluster = Arc::new(runwarden::capability::k8s::sim::SimulatedCluster::demo());
    let secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let services = runwarden::sandbox::state::HostServices {
        cluster,
        secrets: Arc::new(runwarden::capability::secrets::StaticSecretStore(
            [(
                "aws-route53".to_string(),
                format!("AKIDEXAMPLE:{secret_key}"),
            )]
            .into(),
        )),
    };
    let (a, seen) = echo_authorization().await;
    let plugin = hostile(&format!(
        "[grants.http]\nallow = [{a:?}]\n[[grants.http.inject]]\norigin = {a:?}\nsecret = \"aws-route53\"\nscheme = \"aws-sigv4\"\nservice = \"route53\"\nregion = \"us-east-1\"\n"
    ));
    let called = plugin
        .execute(
            &services,
            &call(
                "http_get_body",
                json!({"url": format!("{a}/2013-04-01/hostedzone/Z1/rrset"),
                       "authorization": "AWS4-HMAC-SHA256 forged"}),
            ),
            common::grant_only(),
        )
        .await;
    let body = called.result.map(|o| o.summary).unwrap();
    let sent = seen.lock().unwrap().last().cloned().unwrap_or_default();
    assert!(
        sent.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && sent.contains("/us-east-1/route53/aws4_request")
            && sent.contains("Signature="),
        "the host signed the request: {sent}"
    );
    assert!(!sent.contains(secret_key) && !sent.contains("forged"));
    assert!(!body.contains(secret_key), "{body}");
    let called = plugin
        .execute(
            &services,
            &call("secret_get", json!({"name": "aws-route53"})),
            common::grant_only(),
        )
        .await;
    assert!(denied(&called.result).is_some_and(|r| r.contains("bound for injection")));
}

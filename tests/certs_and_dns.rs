//! The cert-manager and dns-failover plugins through the sandbox: each call
//! refused (typed denial, nothing changed) until its policy grants it, then
//! allowed. Cloudflare is a loopback server speaking its v4 API format.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::bindings::types::Error as PluginError;
use runwarden::capability::k8s::sim::SimulatedCluster;
use runwarden::capability::secrets::StaticSecretStore;
use runwarden::plugin::Plugin;
use runwarden::sandbox::fault::CallError;
use runwarden::sandbox::state::HostServices;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

fn denied<T: std::fmt::Debug>(r: &Result<T, CallError>) -> bool {
    matches!(r, Err(CallError::Plugin(PluginError::Denied(_))))
}

// ---------------------------------------------------------------- cert-manager

const CERT_REQUESTS: &str =
    "[requests.k8s]\noperations = [\"read\", \"renew-certificate\"]\n[requests.log]\n";

fn cert_plugin(operations: &str) -> (Fixture, Plugin) {
    let f = fixture(
        "cert_manager",
        "remediation-tool",
        CERT_REQUESTS,
        &format!(
            "[grants.k8s]\nnamespaces = [\"payments\"]\noperations = {operations}\n[grants.log]\n[config]\nconfirm_timeout_s = \"5\"\n"
        ),
    );
    let p = f.load().expect("loads");
    (f, p)
}

fn cert_world(issuance_fails: Option<&str>) -> (Arc<SimulatedCluster>, HostServices) {
    let state = json!({"certificates": [
        {"namespace": "payments", "name": "payment-api-tls", "secret_name": "payment-api-tls",
         "issuer": "letsencrypt-prod", "expires_in_hours": 96, "revision": 3,
         "issuance_fails": issuance_fails},
        {"namespace": "payments", "name": "admin-tls", "secret_name": "admin-tls",
         "issuer": "letsencrypt-prod", "expires_in_hours": 1500, "revision": 1}
    ]});
    let cluster = Arc::new(SimulatedCluster::from_json(&state.to_string()).expect("cluster"));
    let services = HostServices {
        cluster: cluster.clone(),
        secrets: Arc::new(StaticSecretStore::default()),
    };
    (cluster, services)
}

fn revision(cluster: &SimulatedCluster, name: &str) -> Option<u64> {
    cluster
        .snapshot()
        .certificates
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.revision)
}

#[tokio::test(flavor = "multi_thread")]
async fn renewing_a_certificate_is_denied_until_granted_then_confirmed() {
    let renew = call(
        "renew_certificate",
        json!({"namespace": "payments", "name": "payment-api-tls"}),
    );

    let (_f, read_only) = cert_plugin("[\"read\"]");
    let (cluster, services) = cert_world(None);
    // Planning only reads, so it works with `read` alone.
    let plan = read_only
        .plan(&services, &renew)
        .await
        .result
        .expect("plan");
    assert!(
        plan.summary.contains("payments/payment-api-tls"),
        "{plan:?}"
    );
    assert!(plan.changes[0].description.contains("revision 3"));
    let r = read_only
        .execute(&services, &renew, common::grant_only())
        .await
        .result;
    assert!(denied(&r), "{r:?}");
    assert_eq!(
        revision(&cluster, "payment-api-tls"),
        Some(3),
        "no side effect"
    );

    let (_f, granted) = cert_plugin("[\"read\", \"renew-certificate\"]");
    let outcome = granted
        .execute(&services, &renew, common::grant_only())
        .await
        .result
        .expect("renewed");
    assert_eq!(outcome.summary, "re-issued and confirmed 1 certificate(s)");
    assert_eq!(revision(&cluster, "payment-api-tls"), Some(4));
    let after = outcome.changes[0].description.as_str();
    let fresh = after.contains("(90 days left)") || after.contains("(89 days left)");
    assert!(after.contains("revision 4") && fresh, "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_outside_the_granted_namespaces_is_denied() {
    let (_f, plugin) = cert_plugin("[\"read\", \"renew-certificate\"]");
    let (_cluster, services) = cert_world(None);
    let r = plugin
        .execute(
            &services,
            &call(
                "renew_certificate",
                json!({"namespace": "kube-system", "name": "payment-api-tls"}),
            ),
            common::grant_only(),
        )
        .await
        .result;
    assert!(denied(&r), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_issuer_is_reported_with_its_reason() {
    let (_f, plugin) = cert_plugin("[\"read\", \"renew-certificate\"]");
    let (cluster, services) = cert_world(Some("ACME account key is deactivated"));
    let r = plugin
        .execute(
            &services,
            &call(
                "renew_certificate",
                json!({"namespace": "payments", "name": "payment-api-tls"}),
            ),
            common::grant_only(),
        )
        .await
        .result;
    let Err(CallError::Plugin(PluginError::Failed(why))) = &r else {
        panic!("{r:?}")
    };
    assert!(why.contains("ACME account key is deactivated"), "{why}");
    assert_eq!(revision(&cluster, "payment-api-tls"), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_certificates_expiring_within_the_window_are_renewed() {
    let (_f, plugin) = cert_plugin("[\"read\", \"renew-certificate\"]");
    let (cluster, services) = cert_world(None);
    let outcome = plugin
        .execute(
            &services,
            &call(
                "renew_expiring_certificates",
                json!({"namespace": "payments", "within_days": 14}),
            ),
            common::grant_only(),
        )
        .await
        .result
        .expect("renewed");
    let renewed: Vec<String> = outcome
        .changes
        .iter()
        .filter_map(|c| match &c.effect {
            runwarden::bindings::types::ChangeEffect::CertificateRenewal(o) => {
                Some(format!("{}/{}", o.namespace, o.name))
            }
            _ => None,
        })
        .collect();
    assert_eq!(renewed, ["payments/payment-api-tls"]);
    assert_eq!(revision(&cluster, "payment-api-tls"), Some(4));
    assert_eq!(
        revision(&cluster, "admin-tls"),
        Some(1),
        "not due, untouched"
    );
}

// ---------------------------------------------------------------- dns-failover

const DNS_REQUESTS: &str = "[requests.http]\n[requests.log]\n";
const TOKEN: &str = "cf-token-0123456789abcdef";
const RECORD_ID: &str = "372e67954025e0ba6aaa6d586b9e0b59";
const ZONE: &str = "5f2c1d0e9b8a7f6e5d4c3b2a19081726";

/// What the fake Cloudflare saw: method, path and query, authorization, body.
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A Cloudflare v4 stand-in holding one A record.
struct FakeCloudflare {
    origin: String,
    seen: Seen,
    content: Arc<Mutex<String>>,
}

impl FakeCloudflare {
    async fn start() -> Self {
        use axum::extract::{Request, State};
        let seen: Seen = Arc::default();
        let content = Arc::new(Mutex::new("203.0.113.10".to_string()));
        let state = (seen.clone(), content.clone());
        let record = |content: &str| {
            json!({"id": RECORD_ID, "zone_id": ZONE, "name": "pay.example.com", "type": "A",
                   "content": content, "proxied": false, "ttl": 60})
        };
        let app = axum::Router::new()
            .fallback(move |State((seen, content)): State<(Seen, Arc<Mutex<String>>)>, req: Request| async move {
                let method = req.method().to_string();
                let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let auth = req.headers().get("authorization")
                    .and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
                let body = String::from_utf8_lossy(&body).to_string();
                seen.lock().unwrap().push((method.clone(), path.clone(), auth.clone(), body.clone()));
                let ok = |result: Value| json!({"success": true, "errors": [], "messages": [], "result": result}).to_string();
                if auth != format!("Bearer {TOKEN}") {
                    return (axum::http::StatusCode::FORBIDDEN,
                        json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]}).to_string());
                }
                let prefix = format!("/client/v4/zones/{ZONE}/dns_records");
                match method.as_str() {
                    "GET" if path == format!("{prefix}?name=pay.example.com") => {
                        let c = content.lock().unwrap().clone();
                        (axum::http::StatusCode::OK, ok(json!([record(&c)])))
                    }
                    "PATCH" if path == format!("{prefix}/{RECORD_ID}") => {
                        let patch: Value = serde_json::from_str(&body).unwrap_or_default();
                        let new = patch["content"].as_str().unwrap_or_default().to_string();
                        *content.lock().unwrap() = new.clone();
                        (axum::http::StatusCode::OK, ok(record(&new)))
                    }
                    _ => (axum::http::StatusCode::NOT_FOUND,
                          json!({"success": false, "errors": [{"code": 7003, "message": "No route for that URI"}]}).to_string()),
                }
            })
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeCloudflare {
            origin,
            seen,
            content,
        }
    }

    fn content(&self) -> String {
        self.content.lock().unwrap().clone()
    }

    fn methods(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }
}

struct Dns {
    cloudflare: FakeCloudflare,
    health: TestServer,
}

impl Dns {
    async fn start(health_status: u16) -> Self {
        Dns {
            cloudflare: FakeCloudflare::start().await,
            health: serve_status(move |_| (health_status, "{}".into())).await,
        }
    }

    fn health_origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.health.port)
    }

    /// A policy granting `origins`, with the API token bound to the
    /// Cloudflare origin for injection when `token`.
    fn plugin(&self, origins: &[&str], token: bool) -> (Fixture, Plugin) {
        let allow: Vec<String> = origins.iter().map(|o| format!("{o:?}")).collect();
        let inject = if token {
            format!(
                "[[grants.http.inject]]\norigin = {:?}\nsecret = \"cloudflare-api-token\"\nscheme = \"bearer\"\n",
                self.cloudflare.origin
            )
        } else {
            String::new()
        };
        let policy = format!(
            "[grants.http]\nallow = [{}]\n{inject}[grants.log]\n\
             [config]\napi_url = \"{}/client/v4\"\nzone_id = \"{ZONE}\"\n\
             \"target.pay.example.com\" = \"198.51.100.20\"\n\
             \"health.pay.example.com\" = \"{}/healthz\"\n",
            allow.join(", "),
            self.cloudflare.origin,
            self.health_origin()
        );
        let f = fixture("dns_failover", "remediation-tool", DNS_REQUESTS, &policy);
        let p = f.load().expect("loads");
        (f, p)
    }

    fn granted(&self) -> (Fixture, Plugin) {
        let (cf, health) = (self.cloudflare.origin.clone(), self.health_origin());
        self.plugin(&[&cf, &health], true)
    }
}

fn services_with_token() -> HostServices {
    HostServices {
        cluster: Arc::new(SimulatedCluster::demo()),
        secrets: Arc::new(StaticSecretStore(
            [("cloudflare-api-token".to_string(), TOKEN.to_string())].into(),
        )),
    }
}

fn failover() -> runwarden::bindings::types::ToolCall {
    call("failover_dns_record", json!({"record": "pay.example.com"}))
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_without_the_token_grant_is_denied_then_switches_the_record() {
    let dns = Dns::start(200).await;
    let services = services_with_token();
    let (cf, health) = (dns.cloudflare.origin.clone(), dns.health_origin());

    // Without the token bound to its origin, Cloudflare refuses the
    // request (the plugin has no token to send) and nothing changes.
    let (_f, no_secret) = dns.plugin(&[&cf, &health], false);
    let r = no_secret
        .execute(&services, &failover(), common::grant_only())
        .await
        .result;
    assert!(denied(&r), "{r:?}");
    assert!(
        format!("{r:?}").contains("grants.http.inject"),
        "the refusal says where the token comes from: {r:?}"
    );
    assert!(
        !dns.cloudflare.methods().contains(&"PATCH".to_string()),
        "no change requested"
    );
    assert_eq!(dns.cloudflare.content(), "203.0.113.10");

    let (_f, granted) = dns.granted();
    let outcome = granted
        .execute(&services, &failover(), common::grant_only())
        .await
        .result
        .expect("failed over");
    assert_eq!(
        outcome.summary,
        "pay.example.com now points at 198.51.100.20 (secondary healthy: HTTP 200)"
    );
    assert_eq!(dns.cloudflare.content(), "198.51.100.20");
    let seen = dns.cloudflare.seen.lock().unwrap().clone();
    let patch = seen.iter().find(|s| s.0 == "PATCH").expect("a PATCH");
    assert_eq!(patch.2, format!("Bearer {TOKEN}"));
    let body: Value = serde_json::from_str(&patch.3).unwrap();
    assert_eq!(body["content"], "198.51.100.20");
    // The token never leaves through the outcome.
    assert!(!format!("{outcome:?}").contains(TOKEN));

    // Running again is a no-op: the record already points at the secondary.
    let again = granted
        .execute(&services, &failover(), common::grant_only())
        .await
        .result
        .expect("no-op");
    assert!(again.changes.is_empty(), "{again:?}");
    assert_eq!(
        dns.cloudflare
            .methods()
            .iter()
            .filter(|m| *m == "PATCH")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_secondary_stops_the_failover_before_any_dns_call() {
    let dns = Dns::start(503).await;
    let (_f, plugin) = dns.granted();
    let services = services_with_token();

    let plan = plugin
        .plan(&services, &failover())
        .await
        .result
        .expect("plan");
    assert!(
        plan.summary
            .starts_with("would refuse: secondary 198.51.100.20 is unhealthy"),
        "{}",
        plan.summary
    );

    let r = plugin
        .execute(&services, &failover(), common::grant_only())
        .await
        .result;
    let Err(CallError::Plugin(PluginError::Failed(why))) = &r else {
        panic!("{r:?}")
    };
    assert!(
        why.contains("failed its health check") && why.contains("not changed"),
        "{why}"
    );
    assert!(!dns.cloudflare.methods().contains(&"PATCH".to_string()));
    assert_eq!(dns.cloudflare.content(), "203.0.113.10");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_health_check_origin_outside_the_grant_is_denied() {
    let dns = Dns::start(200).await;
    let cf = dns.cloudflare.origin.clone();
    let (_f, plugin) = dns.plugin(&[&cf], true);
    let r = plugin
        .execute(&services_with_token(), &failover(), common::grant_only())
        .await
        .result;
    assert!(denied(&r), "{r:?}");
    assert_eq!(
        dns.health.hits(),
        0,
        "the ungranted origin was never contacted"
    );
    assert!(dns.cloudflare.methods().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failover_target_is_the_operators_not_the_callers() {
    let dns = Dns::start(200).await;
    let (_f, plugin) = dns.granted();
    let specs = plugin
        .describe_tools(&services_with_token())
        .await
        .result
        .expect("tools");
    // A model cannot name the target: the schema has no such argument.
    let hijack = runwarden::toolcall::validate(
        &specs,
        "failover_dns_record",
        r#"{"record": "pay.example.com", "target": "6.6.6.6"}"#,
    );
    assert!(hijack.is_err(), "{hijack:?}");
    // A record the operator configured no failover for is refused.
    let r = plugin
        .execute(
            &services_with_token(),
            &call("failover_dns_record", json!({"record": "www.example.com"})),
            common::grant_only(),
        )
        .await
        .result;
    let Err(CallError::Plugin(PluginError::InvalidInput(why))) = &r else {
        panic!("{r:?}")
    };
    assert!(why.contains("target.www.example.com"), "{why}");
    assert!(dns.cloudflare.methods().is_empty());
}

//! Shared test fixtures: built components, policies written on the fly, a
//! simulated cluster, and a loopback HTTP server that counts what reaches it.
#![allow(dead_code)]

pub mod agent;
pub mod kubeapi;
pub mod pki;
pub mod process;

use runwarden::capability::k8s::sim::SimulatedCluster;
use runwarden::capability::secrets::StaticSecretStore;
use runwarden::plugin::{self, LoadError, Plugin};
use runwarden::policy::{self, LoadedPolicy};
use runwarden::sandbox::cache::CompileCache;
use runwarden::sandbox::state::HostServices;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use wasmtime::Engine;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped runbooks (with their `shared/` rule sets) copied into
/// `to`.
pub fn copy_runbooks(to: &Path) {
    copy_tree(&workspace().join("runbooks"), to);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read") {
        let p = entry.expect("entry").path();
        let dest = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).expect("copy");
        }
    }
}

/// A component built by `scripts/build-plugins.sh`.
pub fn wasm(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from);
    let path = target
        .join("wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh (the README's test command does)",
        path.display()
    );
    path
}

/// The `runwarden` binary, run from the workspace with the shared test
/// compile cache.
/// The binary with `args`, run in the workspace: success, and stdout and
/// stderr together.
pub fn runwarden(args: &[&str]) -> (bool, String) {
    let out = runwarden_command().args(args).output().expect("runs");
    (out.status.success(), output_text(&out))
}

/// Like [`runwarden`], stdout alone (for JSON; logs go to stderr).
pub fn runwarden_stdout(args: &[&str]) -> (bool, String) {
    let out = runwarden_command().args(args).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub fn runwarden_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runwarden"));
    cmd.current_dir(workspace()).env(
        "RUNWARDEN_CACHE_DIR",
        workspace().join("target/runwarden-test-cache"),
    );
    cmd
}

/// A finished command's stdout and stderr, in that order.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port nobody listens on (for servers a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One engine per test process, like one per runwarden process.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| runwarden::sandbox::new_engine().expect("engine"))
        .clone()
}

/// Shared across test processes so each component compiles once per run.
pub fn cache() -> CompileCache {
    CompileCache::at(workspace().join("target/runwarden-test-cache"))
}

/// A policy + manifest written to a temp dir for a built component.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub policy_path: PathBuf,
}

/// Writes a manifest and a policy. `requests` and `grants` are TOML tables
/// bodies (`[requests.k8s]\n...`), `extra` goes at the end of the policy.
pub fn fixture(component: &str, kind: &str, requests: &str, policy_body: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = wasm(component);
    let bytes = std::fs::read(&wasm).expect("read wasm");
    let digest = policy::Sha256Hex::of(&bytes);
    std::fs::write(
        dir.path().join("manifest.toml"),
        format!("[plugin]\nname = \"under-test\"\nkind = \"{kind}\"\ndescription = \"test\"\n\n{requests}\n"),
    )
    .expect("write manifest");
    let policy_path = dir.path().join("under-test.toml");
    std::fs::write(
        &policy_path,
        format!(
            "[plugin]\nname = \"under-test\"\ncomponent = {:?}\nsha256 = \"{digest}\"\nmanifest = \"manifest.toml\"\n\n{policy_body}\n",
            wasm.display().to_string()
        ),
    )
    .expect("write policy");
    Fixture { dir, policy_path }
}

impl Fixture {
    pub fn policy(&self) -> LoadedPolicy {
        policy::load_policy(&self.policy_path).expect("policy loads")
    }

    pub fn load(&self) -> Result<Plugin, LoadError> {
        plugin::load(&engine(), &cache(), self.policy())
    }
}

/// The hostile guest requests every capability; policies decide.
pub const HOSTILE_REQUESTS: &str = r#"
[requests.k8s]
operations = ["read", "scale", "rollback", "delete-pods", "annotate"]
[requests.http]
[requests.secrets]
names = ["slack-webhook", "cloudflare-token"]
[requests.log]
"#;

/// Loads the hostile guest. It imports every capability, so each one the
/// test does not grant gets an empty grant (which denies every call).
pub fn hostile(policy_body: &str) -> Plugin {
    let mut body = policy_body.to_string();
    for (table, empty) in [
        (
            "[grants.k8s]",
            "[grants.k8s]\nnamespaces = []\noperations = []\n",
        ),
        ("[grants.http]", "[grants.http]\nallow = []\n"),
        ("[grants.secrets]", "[grants.secrets]\nnames = []\n"),
        ("[grants.log]", "[grants.log]\n"),
    ] {
        if !body.contains(table) {
            body.push('\n');
            body.push_str(empty);
        }
    }
    fixture(
        "hostile_guests",
        "remediation-tool",
        HOSTILE_REQUESTS,
        &body,
    )
    .load()
    .expect("hostile guest loads")
}

pub struct World {
    pub cluster: Arc<SimulatedCluster>,
    pub services: HostServices,
}

impl World {
    /// The rollout revision of payments/payment-api, the demo's service.
    pub fn payment_api_revision(&self) -> Option<u64> {
        self.cluster
            .deployment("payments", "payment-api")
            .map(|d| d.revision)
    }
}

pub const SECRET_VALUE: &str = "xoxb-4242-TOP-SECRET-value";

pub fn world() -> World {
    let cluster = Arc::new(SimulatedCluster::demo());
    let mut secrets = BTreeMap::new();
    secrets.insert("slack-webhook".to_string(), SECRET_VALUE.to_string());
    World {
        services: HostServices {
            cluster: cluster.clone(),
            secrets: Arc::new(StaticSecretStore(secrets)),
        },
        cluster,
    }
}

pub fn call(tool: &str, args: serde_json::Value) -> runwarden::bindings::types::ToolCall {
    runwarden::bindings::types::ToolCall {
        tool: tool.to_string(),
        arguments_json: args.to_string(),
    }
}

/// A loopback HTTP server answering every request with `body`, counting hits.
/// The hostile guest's `http_get` of `url`.
pub fn http_get(url: &str) -> runwarden::bindings::types::ToolCall {
    call("http_get", serde_json::json!({"url": url}))
}

pub struct TestServer {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    pub paths: Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub async fn serve(body: &'static str) -> TestServer {
    serve_with(move |_| body.to_string()).await
}

pub async fn serve_with(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> TestServer {
    serve_status(move |p| (200, respond(p))).await
}

/// Like [`serve_with`], choosing the status code too.
pub async fn serve_status(
    respond: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
) -> TestServer {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let (h, p) = (hits.clone(), paths.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (h, p, respond) = (h.clone(), p.clone(), respond.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|x| x.to_string())
                        .unwrap_or_default();
                    p.lock().expect("lock").push(pq.clone());
                    let (status, body) = respond(&pq);
                    async move {
                        // Read the request body first, as real servers do.
                        use http_body_util::BodyExt;
                        let _ = req.into_body().collect().await;
                        let mut resp = hyper::Response::new(Full::new(bytes::Bytes::from(body)));
                        *resp.status_mut() =
                            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestServer { port, hits, paths }
}

/// A minimal HTTP/1 request to a loopback server: (status, body).
/// Posts an Alertmanager webhook body to a `serve` process (loopback,
/// `--insecure-local-webhooks`).
pub async fn post_alertmanager(base: &str, body: &serde_json::Value) -> (u16, String) {
    http(
        "POST",
        &format!("{base}/webhooks/alertmanager"),
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await
}

pub async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let uri: hyper::Uri = url.parse().expect("url");
    let addr = format!(
        "{}:{}",
        uri.host().expect("host"),
        uri.port_u16().expect("port")
    );
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(
            req.body(Full::new(bytes::Bytes::from(body)))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The call mode for tests of *grant* checks: a plan with an `other`
/// effect, so each capability call is judged by the grant alone. Plan
/// binding has its own tests (`tests/effects.rs`).
pub fn grant_only() -> runwarden::capability::CallMode {
    runwarden::capability::CallMode::Bound(std::sync::Arc::new(
        runwarden::effects::binding::PlanBinding::new(vec![runwarden::effects::Effect::Other {
            description: "grant test".into(),
        }]),
    ))
}

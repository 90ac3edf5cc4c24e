//! A loopback HTTPS endpoint that speaks the Kubernetes API's wire format
//! for what the k8s capability uses: Deployments and their `scale`
//! subresource, ReplicaSets with `deployment.kubernetes.io/revision`, Pods,
//! Events, and discovery for kubectl. No kube-apiserver can run here; this
//! is the closest stand-in that still exercises the real client stacks
//! (kube-rs inside the `runwarden` binary, and Debian's `kubectl`) end to
//! end: TLS verified against a CA, a bearer token or a client certificate,
//! JSON bodies, `Status` errors. Every request is recorded so a test can
//! compare what two clients sent for the same operation.

mod objects;

pub use super::pki::Pki;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub content_type: String,
    pub body: Value,
    pub client_cert: bool,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or(&self.target)
    }
}

/// A canned failure for requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Failure {
    pub method: &'static str,
    pub path: String,
    pub code: u16,
    pub retry_after: Option<u32>,
}

#[derive(Default)]
struct State {
    /// (namespace, name) → (replicas, revision, image).
    deployments: BTreeMap<(String, String), (u32, u64, String)>,
    /// (namespace, deployment) → [(revision, image)].
    replicasets: BTreeMap<(String, String), Vec<(u64, String)>>,
    /// (namespace, pod) → deployment.
    pods: BTreeMap<(String, String), String>,
    /// (namespace, name) → (resourceVersion, spec).
    leases: BTreeMap<(String, String), (u64, Value)>,
    seen: Vec<Seen>,
    failures: Vec<Failure>,
    /// Pods whose container crash-loops after OOM kills.
    crashing: Vec<(String, String)>,
    /// Extra objects served as lists: (namespace, plural) → items.
    lists: BTreeMap<(String, String), Vec<Value>>,
}

pub struct KubeApi {
    pub url: String,
    pub token: String,
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl KubeApi {
    /// Serves on 127.0.0.1 with `pki`'s server certificate, accepting the
    /// bearer token `token` or a client certificate signed by the CA.
    pub async fn start(pki: &Pki, token: &str) -> KubeApi {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = CertificateDer::from_pem_file(pki.path("ca.crt")).expect("ca");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("verifier");
        let certs = vec![CertificateDer::from_pem_file(pki.path("server.crt")).expect("cert")];
        let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).expect("key");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::demo()));
        let api = KubeApi {
            url,
            token: token.to_string(),
            state: state.clone(),
        };
        let token = token.to_string();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        let token = token.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(req, &state, &token, client_cert).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        api
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }

    /// Back to the demo state (requests seen are kept).
    pub fn reset(&self) {
        if let Ok(mut s) = self.state.lock() {
            let demo = State::demo();
            s.deployments = demo.deployments;
            s.replicasets = demo.replicasets;
            s.pods = demo.pods;
        }
    }

    pub fn clear_seen(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.seen.clear();
        }
    }

    pub fn fail(&self, failure: Failure) {
        if let Ok(mut s) = self.state.lock() {
            s.failures.push(failure);
        }
    }

    pub fn clear_failures(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.failures.clear();
        }
    }

    pub fn replicas(&self, ns: &str, name: &str) -> Option<u32> {
        let s = self.state.lock().ok()?;
        s.deployments.get(&(ns.into(), name.into())).map(|d| d.0)
    }

    pub fn image(&self, ns: &str, name: &str) -> Option<String> {
        let s = self.state.lock().ok()?;
        s.deployments
            .get(&(ns.into(), name.into()))
            .map(|d| d.2.clone())
    }

    /// The pod's container now crash-loops: OOMKilled (exit 137), seven
    /// restarts, not ready, with a liveness warning event.
    pub fn crash_loop(&self, ns: &str, pod: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.crashing.push((ns.to_string(), pod.to_string()));
            s.lists
                .entry((ns.to_string(), "events".into()))
                .or_default()
                .push(json!({
                "metadata": {"name": format!("{pod}.1"), "namespace": ns},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns},
                "type": "Warning", "reason": "OOMKilling", "count": 7,
                "message": "Memory cgroup out of memory: Killed process 1 (java)",
                "lastTimestamp": "2026-11-27T06:29:00Z"}));
        }
    }

    /// Serves `items` as the list of `plural` in `ns` ("" for
    /// cluster-scoped kinds).
    pub fn serve_list(&self, ns: &str, plural: &str, items: Vec<Value>) {
        if let Ok(mut s) = self.state.lock() {
            s.lists.insert((ns.to_string(), plural.to_string()), items);
        }
    }

    pub fn pods(&self, ns: &str) -> Vec<String> {
        let Ok(s) = self.state.lock() else {
            return vec![];
        };
        s.pods
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// A kubeconfig for this endpoint: CA-verified, with the bearer token or
    /// the client certificate.
    pub fn kubeconfig(&self, pki: &Pki, client_cert: bool, into: &Path) {
        let user = if client_cert {
            format!(
                "    client-certificate: {}\n    client-key: {}\n",
                pki.path("client.crt").display(),
                pki.path("client.key").display()
            )
        } else {
            format!("    token: {}\n", self.token)
        };
        std::fs::write(
            into,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: payments\ncurrent-context: test\nusers:\n- name: test\n  user:\n{user}",
                self.url,
                pki.path("ca.crt").display()
            ),
        )
        .expect("kubeconfig");
    }
}

fn respond(code: u16, body: &Value) -> Response<http_body_util::Full<bytes::Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap_or_default()
}

/// Discovery, as kubectl asks for it.
fn discovery(path: &str) -> Option<Value> {
    let res = |name: &str, kind: &str, verbs: &[&str]| json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": verbs});
    match path {
        "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        "/apis" => Some(
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}),
        ),
        "/api/v1" => Some(
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            res("pods", "Pod", &["delete", "get", "list"]),
            {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            res("events", "Event", &["get", "list"])]}),
        ),
        "/apis/apps/v1" => Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
            res("deployments", "Deployment", &["get", "list", "patch", "update"]),
            {"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
             "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
            res("replicasets", "ReplicaSet", &["get", "list"])]}),
        ),
        _ => None,
    }
}

async fn handle(
    req: Request<Incoming>,
    state: &Mutex<State>,
    token: &str,
    client_cert: bool,
) -> Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt as _;
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path().to_string(), |p| p.to_string());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let authorized = client_cert
        || req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {token}"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = target.split('?').next().unwrap_or("").to_string();
    let Ok(mut s) = state.lock() else {
        return respond(500, &status(500, "InternalError", "state poisoned"));
    };
    s.seen.push(Seen {
        method: method.clone(),
        target: target.clone(),
        content_type,
        body: body.clone(),
        client_cert,
    });
    if !authorized {
        return respond(401, &status(401, "Unauthorized", "Unauthorized"));
    }
    if let Some(d) = discovery(&path) {
        return respond(200, &d);
    }
    if let Some(f) = s
        .failures
        .iter()
        .find(|f| f.method == method && f.path == path)
        .cloned()
    {
        let reason = match f.code {
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            422 => "Invalid",
            429 => "TooManyRequests",
            _ => "InternalError",
        };
        let mut r = respond(
            f.code,
            &status(
                f.code,
                reason,
                &format!("injected {} for {method} {path}", f.code),
            ),
        );
        if let Some(secs) = f.retry_after
            && let Ok(v) = secs.to_string().parse()
        {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
            match s.deployment(ns, name) {
                Some(d) => respond(200, &d),
                None => respond(
                    404,
                    &status(
                        404,
                        "NotFound",
                        &format!("deployments.apps \"{name}\" not found"),
                    ),
                ),
            }
        }
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments"]) => {
            let names: Vec<String> = s
                .deployments
                .keys()
                .filter(|(n, _)| n == ns)
                .map(|(_, d)| d.clone())
                .collect();
            let items: Vec<Value> = names.iter().filter_map(|n| s.deployment(ns, n)).collect();
            respond(
                200,
                &json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": items}),
            )
        }
        (
            m,
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                ns,
                "deployments",
                name,
                "scale",
            ],
        ) => {
            let key = (ns.to_string(), name.to_string());
            let Some(entry) = s.deployments.get_mut(&key) else {
                return respond(
                    404,
                    &status(
                        404,
                        "NotFound",
                        &format!("deployments.apps \"{name}\" not found"),
                    ),
                );
            };
            if m == "PATCH" || m == "PUT" {
                match body["spec"]["replicas"]
                    .as_u64()
                    .and_then(|r| u32::try_from(r).ok())
                {
                    Some(r) => entry.0 = r,
                    None => {
                        return respond(422, &status(422, "Invalid", "spec.replicas is required"));
                    }
                }
            }
            let r = entry.0;
            respond(
                200,
                &json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": "7"},
                "spec": {"replicas": r}, "status": {"replicas": r, "selector": format!("app={name}")}}),
            )
        }
        ("PATCH", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
            // A rollback: the pod template of an older ReplicaSet, as a JSON
            // patch (kubectl) or a merge patch.
            let image = body
                .as_array()
                .and_then(|ops| ops.iter().find(|o| o["path"] == "/spec/template"))
                .map(|o| o["value"].clone())
                .or_else(|| Some(body["spec"]["template"].clone()))
                .and_then(|t| {
                    t["spec"]["containers"][0]["image"]
                        .as_str()
                        .map(str::to_string)
                });
            let key = (ns.to_string(), name.to_string());
            let Some(image) = image else {
                return respond(422, &status(422, "Invalid", "no pod template in the patch"));
            };
            let Some(entry) = s.deployments.get_mut(&key) else {
                return respond(404, &status(404, "NotFound", "not found"));
            };
            entry.1 += 1;
            entry.2 = image.clone();
            let rev = entry.1;
            s.replicasets.entry(key).or_default().push((rev, image));
            match s.deployment(ns, name) {
                Some(d) => respond(200, &d),
                None => respond(500, &status(500, "InternalError", "vanished")),
            }
        }
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "replicasets"]) => {
            respond(200, &s.replicaset_list(ns))
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => {
            let items: Vec<Value> = s
                .pods
                .iter()
                .filter(|((n, _), _)| n == ns)
                .map(|((ns, p), d)| {
                    let crashing = s.crashing.contains(&(ns.clone(), p.clone()));
                    State::pod_in(ns, p, d, crashing)
                })
                .collect();
            respond(
                200,
                &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
            )
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match s.pods.get(&(ns.to_string(), name.to_string())) {
                Some(d) => respond(200, &State::pod(ns, name, d)),
                None => respond(
                    404,
                    &status(404, "NotFound", &format!("pods \"{name}\" not found")),
                ),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name, "log"]) => {
            if !s.pods.contains_key(&(ns.to_string(), name.to_string())) {
                return respond(
                    404,
                    &status(404, "NotFound", &format!("pods \"{name}\" not found")),
                );
            }
            // What the kubelet would stream: numbered lines, the last
            // `tailLines` of 1000, of the current or previous instance.
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_string)
            };
            let previous = param("previous").as_deref() == Some("true");
            let tail: usize = param("tailLines")
                .and_then(|t| t.parse().ok())
                .unwrap_or(1000);
            let which = if previous { "previous" } else { "current" };
            let text: String = (1000 - tail.min(1000) + 1..=1000)
                .map(|i| format!("{which} {name} line {i} password=hunter2-s3cret\n"))
                .collect();
            Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                .unwrap_or_default()
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match s.pods.remove(&(ns.to_string(), name.to_string())) {
                Some(d) => respond(200, &State::pod(ns, name, &d)),
                None => respond(
                    404,
                    &status(404, "NotFound", &format!("pods \"{name}\" not found")),
                ),
            }
        }
        (
            m,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                rest @ ..,
            ],
        ) => lease(&mut s, m, ns, rest.first().copied(), &body),
        ("GET", ["api", "v1", "namespaces", ns, "events"]) => {
            let items = s
                .lists
                .get(&(ns.to_string(), "events".to_string()))
                .cloned()
                .unwrap_or_default();
            respond(
                200,
                &json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}),
            )
        }
        // The other kinds the host reads for facts: served lists, empty
        // unless a test set them.
        ("GET", ["apis", _, _, "namespaces", ns, plural])
        | ("GET", ["api", "v1", "namespaces", ns, plural]) => {
            let items = s
                .lists
                .get(&(ns.to_string(), plural.to_string()))
                .cloned()
                .unwrap_or_default();
            respond(200, &json!({"metadata": {}, "items": items}))
        }
        ("GET", ["apis", _, _, plural]) | ("GET", ["api", "v1", plural]) => {
            let items = s
                .lists
                .get(&(String::new(), plural.to_string()))
                .cloned()
                .unwrap_or_default();
            respond(200, &json!({"metadata": {}, "items": items}))
        }
        _ => respond(
            404,
            &status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({method} {path})"),
            ),
        ),
    }
}

fn lease_json(ns: &str, name: &str, version: u64, spec: &Value) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name, "namespace": ns, "resourceVersion": version.to_string()},
           "spec": spec})
}

/// Leases as the API server keeps them: create refuses an existing name,
/// replace refuses a stale resourceVersion (409), so of two writers racing
/// on one version exactly one wins.
fn lease(
    s: &mut State,
    method: &str,
    ns: &str,
    name: Option<&str>,
    body: &Value,
) -> Response<http_body_util::Full<bytes::Bytes>> {
    let body_name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
    match (method, name) {
        ("GET", Some(name)) => match s.leases.get(&(ns.to_string(), name.to_string())) {
            Some((v, spec)) => respond(200, &lease_json(ns, name, *v, spec)),
            None => respond(
                404,
                &status(
                    404,
                    "NotFound",
                    &format!("leases.coordination.k8s.io \"{name}\" not found"),
                ),
            ),
        },
        ("POST", None) => {
            let key = (ns.to_string(), body_name.clone());
            if s.leases.contains_key(&key) {
                return respond(
                    409,
                    &status(
                        409,
                        "AlreadyExists",
                        &format!("leases.coordination.k8s.io \"{body_name}\" already exists"),
                    ),
                );
            }
            s.leases.insert(key, (1, body["spec"].clone()));
            respond(201, &lease_json(ns, &body_name, 1, &body["spec"]))
        }
        ("PUT", Some(name)) => {
            let key = (ns.to_string(), name.to_string());
            let sent: u64 = body["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            match s.leases.get_mut(&key) {
                Some((v, spec)) if *v == sent => {
                    *v += 1;
                    *spec = body["spec"].clone();
                    let (v, spec) = (*v, spec.clone());
                    respond(200, &lease_json(ns, name, v, &spec))
                }
                Some(_) => respond(
                    409,
                    &status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ),
                ),
                None => respond(404, &status(404, "NotFound", "not found")),
            }
        }
        _ => respond(405, &status(405, "MethodNotAllowed", "not supported")),
    }
}

/// The binary as an operator runs a remediation with `--cluster kube`:
/// `plugin call k8s-remediation TOOL --skip-autonomy --params PARAMS`, as
/// alice, with this kubeconfig and its own data directory.
pub fn remediate(kubeconfig: &Path, data: &Path, tool: &str, params: &str) -> (bool, String) {
    let out = super::runwarden_command()
        .env("KUBECONFIG", kubeconfig)
        .env("USER", "alice")
        .args(["--cluster", "kube", "--data-dir"])
        .arg(data)
        .args([
            "plugin",
            "call",
            "k8s-remediation",
            tool,
            "--skip-autonomy",
            "--params",
            params,
        ])
        .output()
        .expect("runwarden runs");
    (out.status.success(), super::output_text(&out))
}

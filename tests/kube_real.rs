//! The Kubernetes scenarios of `tests/kube_wire.rs` against a *real*
//! kube-apiserver and etcd, wherever their binaries exist: set
//! `KUBEBUILDER_ASSETS` to a folder holding `kube-apiserver` and `etcd` (the
//! controller-runtime envtest convention; `setup-envtest use -p path` prints
//! one). The test command runs this suite only then, and otherwise says
//! "not run: no API server" — it never passes in silence.
//!
//! An envtest API server runs no controllers: the test creates the
//! ReplicaSets and Pods a Deployment controller would, with their revision
//! annotations and owner references, then drives the `runwarden` binary
//! with `--cluster kube` and reads the result back with `kubectl`.
//!
//! None of this could run where it was written (no kube-apiserver package is
//! reachable there); see README "Kubernetes: what is real here".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::kubeapi::remediate;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "runwarden-envtest-token-0123456789";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn assets() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("KUBEBUILDER_ASSETS")?);
    (dir.join("kube-apiserver").is_file() && dir.join("etcd").is_file()).then_some(dir)
}

/// etcd and kube-apiserver on loopback, with a static admin token.
struct ApiServer {
    _etcd: Killed,
    _apiserver: Killed,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(assets: &Path) -> ApiServer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (client, peer, secure) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let etcd = Killed(
        Command::new(assets.join("etcd"))
            .arg(format!("--data-dir={}", d.join("etcd").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg("--unsafe-no-fsync=true")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("etcd.log")).unwrap())
            .spawn()
            .expect("etcd"),
    );
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    openssl(&["genrsa", "-out", "sa.key", "2048"]);
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    std::fs::write(
        d.join("tokens.csv"),
        format!("{TOKEN},runwarden,runwarden,system:masters\n"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("certs")).unwrap();
    let apiserver = Killed(
        Command::new(assets.join("kube-apiserver"))
            .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!("--secure-port={secure}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!(
                "--token-auth-file={}",
                d.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg(format!(
                "--service-account-issuer=https://127.0.0.1:{secure}"
            ))
            .arg(format!(
                "--service-account-key-file={}",
                d.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                d.join("sa.key").display()
            ))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--disable-admission-plugins=ServiceAccount")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("apiserver.log")).unwrap())
            .spawn()
            .expect("kube-apiserver"),
    );
    // The API server writes its own serving certificate into --cert-dir.
    let ca = d.join("certs/apiserver.crt");
    let kubeconfig = d.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: https://127.0.0.1:{secure}\n    certificate-authority: {}\ncontexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: runwarden\ncurrent-context: envtest\nusers:\n- name: runwarden\n  user:\n    token: {TOKEN}\n",
            ca.display()
        ),
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = ca.is_file() && kubectl(&kubeconfig, &["get", "--raw", "/readyz"]).0;
        if ready {
            break;
        }
        assert!(
            Instant::now() < until,
            "kube-apiserver not ready: {}",
            std::fs::read_to_string(d.join("apiserver.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    ApiServer {
        _etcd: etcd,
        _apiserver: apiserver,
        kubeconfig,
        _dir: dir,
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("kubectl");
    (out.status.success(), common::output_text(&out))
}

fn create(kubeconfig: &Path, object: &serde_json::Value) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.json");
    std::fs::write(&file, object.to_string()).unwrap();
    let (ok, out) = kubectl(
        kubeconfig,
        &["create", "-f", file.to_str().unwrap(), "-o", "json"],
    );
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

/// payment-api as a Deployment controller would leave it: revision 2 of
/// two ReplicaSets, and its pods.
fn fixtures(kubeconfig: &Path) {
    create(
        kubeconfig,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}}),
    );
    let template = |image: &str, hash: &str| {
        serde_json::json!({"metadata": {"labels": {"app": "payment-api", "pod-template-hash": hash}},
                           "spec": {"containers": [{"name": "app", "image": image}]}})
    };
    let d = create(
        kubeconfig,
        &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "payment-api", "namespace": "payments", "labels": {"app": "payment-api", "tier": "2"},
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "payment-api"}},
                     "template": {"metadata": {"labels": {"app": "payment-api"}},
                                  "spec": {"containers": [{"name": "app", "image": "registry.example/payment-api:1.42.0"}]}}}}),
    );
    let uid = d["metadata"]["uid"].as_str().unwrap().to_string();
    let mut current_rs_uid = String::new();
    for (rev, image, hash) in [
        (1, "registry.example/payment-api:1.41.0", "r1"),
        (2, "registry.example/payment-api:1.42.0", "r2"),
    ] {
        let rs = create(
            kubeconfig,
            &serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("payment-api-{hash}"), "namespace": "payments",
                             "annotations": {"deployment.kubernetes.io/revision": rev.to_string()},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "payment-api",
                                                  "uid": uid, "controller": true}]},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "payment-api", "pod-template-hash": hash}},
                         "template": template(image, hash)}}),
        );
        current_rs_uid = rs["metadata"]["uid"].as_str().unwrap().to_string();
    }
    for pod in ["payment-api-r2-a1", "payment-api-r2-b2"] {
        create(
            kubeconfig,
            &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": "payments", "labels": {"app": "payment-api"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "payment-api-r2",
                                                  "uid": current_rs_uid, "controller": true}]},
                "spec": {"containers": [{"name": "app", "image": "registry.example/payment-api:1.42.0"}]}}),
        );
    }
}

/// One field of payment-api, read back with kubectl.
fn deployment_field(kubeconfig: &Path, jsonpath: &str) -> String {
    let (ok, out) = kubectl(
        kubeconfig,
        &[
            "get",
            "deploy",
            "payment-api",
            "-n",
            "payments",
            "-o",
            &format!("jsonpath={{{jsonpath}}}"),
        ],
    );
    assert!(ok, "{out}");
    out.trim().to_string()
}

#[test]
#[ignore = "needs a real kube-apiserver and etcd: set KUBEBUILDER_ASSETS (scripts/test.sh runs it then, and says 'not run: no API server' otherwise)"]
fn the_binary_scales_rolls_back_and_restarts_on_a_real_api_server() {
    let Some(assets) = assets() else {
        panic!(
            "not run: no API server (KUBEBUILDER_ASSETS must name a folder with kube-apiserver and etcd)"
        );
    };
    let api = start(&assets);
    let k = api.kubeconfig.as_path();
    fixtures(k);
    let data = tempfile::tempdir().unwrap();

    let (ok, out) = remediate(
        k,
        &data.path().join("a"),
        "scale_deployment",
        r#"{"namespace":"payments","name":"payment-api","replicas":5}"#,
    );
    assert!(ok, "{out}");
    assert_eq!(deployment_field(k, ".spec.replicas"), "5");

    let (ok, out) = remediate(
        k,
        &data.path().join("b"),
        "rollback_deployment",
        r#"{"namespace":"payments","name":"payment-api"}"#,
    );
    assert!(ok, "{out}");
    assert_eq!(
        deployment_field(k, ".spec.template.spec.containers[0].image"),
        "registry.example/payment-api:1.41.0"
    );

    let (ok, out) = remediate(
        k,
        &data.path().join("c"),
        "restart_pods",
        r#"{"namespace":"payments","name":"payment-api","max_pods":1}"#,
    );
    assert!(ok, "{out}");
    let (_, pods) = kubectl(k, &["get", "pods", "-n", "payments", "-o", "name"]);
    assert_eq!(pods.lines().count(), 1, "one of two pods deleted: {pods}");

    // RBAC: a token the API server does not know is refused, typed.
    let stranger = data.path().join("stranger.kubeconfig");
    std::fs::write(
        &stranger,
        std::fs::read_to_string(k)
            .unwrap()
            .replace(TOKEN, "unknown-token-0123456789"),
    )
    .unwrap();
    let (ok, out) = remediate(
        &stranger,
        &data.path().join("d"),
        "scale_deployment",
        r#"{"namespace":"payments","name":"payment-api","replicas":4}"#,
    );
    assert!(!ok && out.contains("plugin returned denied"), "{out}");
}

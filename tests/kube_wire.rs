//! `runwarden --cluster kube` as a process, through the real client stack
//! (kube-rs, rustls, hyper) against a loopback HTTPS endpoint speaking the
//! Kubernetes API's wire format (`tests/common/kubeapi.rs`), with a real
//! kubeconfig: CA-verified TLS with a bearer token, and with a client
//! certificate. Debian's `kubectl` is the reference client: for scale,
//! rollback and pod deletion it must send the same mutating request
//! runwarden sends. Failures a real API server answers with (403 with a
//! `Status` body, 404, 409, 422, 429 with Retry-After, 500) must reach the
//! plugin as the matching typed error.
//!
//! Against a real kube-apiserver, see `tests/kube_real.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::kubeapi::{Failure, KubeApi, Pki, Seen, remediate};
use std::path::Path;

const TOKEN: &str = "runwarden-test-token-0123456789";

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .args(args)
        .output()
        .expect("kubectl runs (Debian's kubernetes-client)");
    (out.status.success(), common::output_text(&out))
}

/// The one mutating request among `seen`.
fn mutation(seen: &[Seen]) -> Seen {
    let writes: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s.method.as_str(), "PATCH" | "PUT" | "POST" | "DELETE"))
        .collect();
    assert_eq!(writes.len(), 1, "{seen:#?}");
    writes[0].clone()
}

/// A JSON value without what Go's encoder adds for zero values
/// (`"creationTimestamp": null`, `"resources": {}`): what an API server
/// treats the same.
fn semantic(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null() && !v.as_object().is_some_and(|o| o.is_empty()))
                .map(|(k, v)| (k.clone(), semantic(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

/// What each client sent, for the record (the closing note quotes it).
fn side_by_side(what: &str, ours: &Seen, theirs: &Seen) {
    println!(
        "{what}\n  runwarden: {} {} {} {}\n  kubectl:   {} {} {} {}",
        ours.method,
        ours.target,
        ours.content_type,
        ours.body,
        theirs.method,
        theirs.target,
        theirs.content_type,
        theirs.body
    );
}

fn call(tool: &str, params: &str) -> Vec<String> {
    [
        "plugin",
        "call",
        "k8s-remediation",
        tool,
        "--skip-autonomy",
        "--params",
        params,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_talks_to_a_tls_api_server_like_kubectl_does() {
    let pki = Pki::new();
    let api = KubeApi::start(&pki, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let token_config = dir.path().join("token.kubeconfig");
    let cert_config = dir.path().join("cert.kubeconfig");
    api.kubeconfig(&pki, false, &token_config);
    api.kubeconfig(&pki, true, &cert_config);

    // Scale, with a bearer token: no panic, the request kubectl would send.
    let (ok, out) = remediate(
        &token_config,
        &dir.path().join("data1"),
        "scale_deployment",
        r#"{"namespace":"payments","name":"payment-api","replicas":5}"#,
    );
    assert!(ok, "{out}");
    assert_eq!(api.replicas("payments", "payment-api"), Some(5), "{out}");
    let ours = mutation(&api.seen());
    assert!(!ours.client_cert);
    api.clear_seen();
    let (ok, out) = kubectl(
        &token_config,
        dir.path(),
        &[
            "scale",
            "deployment/payment-api",
            "--replicas=4",
            "-n",
            "payments",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(api.replicas("payments", "payment-api"), Some(4));
    let theirs = mutation(&api.seen());
    let mut ours_at_4 = ours.clone();
    ours_at_4.body["spec"]["replicas"] = serde_json::json!(4);
    assert_eq!(
        (
            &ours_at_4.method,
            ours_at_4.path(),
            &ours_at_4.content_type,
            &ours_at_4.body
        ),
        (
            &theirs.method,
            theirs.path(),
            &theirs.content_type,
            &theirs.body
        ),
        "scale: runwarden {ours:?} vs kubectl {theirs:?}"
    );
    side_by_side("scale", &ours, &theirs);

    // Delete one pod, with a client certificate.
    api.clear_seen();
    let pods = api.pods("payments");
    let (ok, out) = remediate(
        &cert_config,
        &dir.path().join("data2"),
        "restart_pods",
        r#"{"namespace":"payments","name":"payment-api","max_pods":1}"#,
    );
    assert!(ok, "{out}");
    let ours = mutation(&api.seen());
    assert!(ours.client_cert, "authenticated by its certificate");
    assert_eq!(api.pods("payments").len(), pods.len() - 1);
    api.clear_seen();
    let victim = api.pods("payments")[0].clone();
    let (ok, out) = kubectl(
        &cert_config,
        dir.path(),
        &["delete", "pod", &victim, "-n", "payments", "--wait=false"],
    );
    assert!(ok, "{out}");
    let theirs = mutation(&api.seen());
    assert_eq!(
        (&ours.method, &ours.content_type, &ours.body),
        (&theirs.method, &theirs.content_type, &theirs.body),
        "delete: runwarden {ours:?} vs kubectl {theirs:?}"
    );
    assert!(theirs.path().ends_with(&format!("/pods/{victim}")));
    side_by_side("delete pod", &ours, &theirs);

    // Roll back: both as `kubectl rollout undo` does it, from the same state.
    api.reset();
    api.clear_seen();
    let (ok, out) = remediate(
        &token_config,
        &dir.path().join("data3"),
        "rollback_deployment",
        r#"{"namespace":"payments","name":"payment-api"}"#,
    );
    assert!(ok, "{out}");
    assert_eq!(
        api.image("payments", "payment-api").as_deref(),
        Some("registry.example/payment-api:1.41.0")
    );
    let ours = mutation(&api.seen());
    api.reset();
    api.clear_seen();
    let (ok, out) = kubectl(
        &token_config,
        dir.path(),
        &[
            "rollout",
            "undo",
            "deployment/payment-api",
            "-n",
            "payments",
        ],
    );
    assert!(ok, "{out}");
    let theirs = mutation(&api.seen());
    assert_eq!(
        (&ours.method, ours.path(), &ours.content_type),
        (&theirs.method, theirs.path(), &theirs.content_type),
        "rollback: runwarden {ours:?} vs kubectl {theirs:?}"
    );
    let ops = |s: &Seen| -> Vec<String> {
        s.body
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| format!("{} {}", o["op"], o["path"]))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ops(&ours), ops(&theirs));
    assert_eq!(
        semantic(&ours.body),
        semantic(&theirs.body),
        "the same template and annotations"
    );
    side_by_side("rollout undo", &ours, &theirs);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_server_failures_reach_the_plugin_as_typed_errors() {
    let pki = Pki::new();
    let api = KubeApi::start(&pki, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    api.kubeconfig(&pki, false, &config);
    let scale = "/apis/apps/v1/namespaces/payments/deployments/payment-api/scale";
    for (code, retry, typed) in [
        (403, None, "denied"),
        (404, None, "failed"),
        (409, None, "unavailable"),
        (422, None, "invalid-input"),
        (429, Some(3), "unavailable"),
        (500, None, "unavailable"),
    ] {
        api.clear_failures();
        api.fail(Failure {
            method: "PATCH",
            path: scale.into(),
            code,
            retry_after: retry,
        });
        let (ok, out) = remediate(
            &config,
            &dir.path().join(format!("data{code}")),
            "scale_deployment",
            r#"{"namespace":"payments","name":"payment-api","replicas":6}"#,
        );
        assert!(!ok, "{code}: {out}");
        // The API server's own message travels with it (a 404 is said as
        // "not found: …").
        let said = if code == 404 {
            "not found".to_string()
        } else {
            format!("injected {code}")
        };
        assert!(
            out.contains(&format!("plugin returned {typed}")) && out.contains(&said),
            "{code} should reach the plugin as `{typed}`: {out}"
        );
        assert_eq!(
            api.replicas("payments", "payment-api"),
            Some(3),
            "{code}: nothing changed"
        );
    }
}

/// `runwarden plugin call k8s-read pod_logs` with the policies in `dir`.
fn read_logs(kubeconfig: &Path, policies: &Path, data: &Path) -> (bool, String) {
    let out = common::runwarden_command()
        .env("KUBECONFIG", kubeconfig)
        .arg("--policies")
        .arg(policies)
        .args(["--cluster", "kube", "--data-dir"])
        .arg(data)
        .args([
            "plugin",
            "call",
            "k8s-read",
            "pod_logs",
            "--params",
            r#"{"namespace":"payments","pod":"payment-api-7d9f-a1","previous":true,"tail_lines":50}"#,
        ])
        .output()
        .expect("runwarden runs");
    (out.status.success(), common::output_text(&out))
}

/// The shipped k8s-read policy, its paths made absolute, `edit`ed.
fn k8s_read_policy(into: &Path, edit: impl Fn(String) -> String) {
    let root = common::workspace();
    let text = std::fs::read_to_string(root.join("policies/k8s-read.toml"))
        .unwrap()
        .replace("\"../", &format!("\"{}/", root.display()));
    std::fs::create_dir_all(into).unwrap();
    std::fs::write(into.join("k8s-read.toml"), edit(text)).unwrap();
    std::fs::copy(
        root.join("policies/autonomy.toml"),
        into.join("autonomy.toml"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_logs_are_refused_without_the_logs_grant_then_read_like_kubectl_logs() {
    let pki = Pki::new();
    let api = KubeApi::start(&pki, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    api.kubeconfig(&pki, false, &config);

    // Reads granted, logs not: a typed denial, and no request for a log.
    let reads_only = dir.path().join("reads-only");
    k8s_read_policy(&reads_only, |t| {
        t.replace(
            r#"operations = ["read", "logs"]"#,
            r#"operations = ["read"]"#,
        )
    });
    let (ok, out) = read_logs(&config, &reads_only, &dir.path().join("d1"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("plugin returned denied") && out.contains("`logs` is not granted"),
        "{out}"
    );
    assert!(
        !api.seen().iter().any(|s| s.path().ends_with("/log")),
        "nothing reached the cluster"
    );

    // Granted: the previous container's last 50 lines, asked for the way
    // `kubectl logs --previous --tail=50` asks.
    let granted = dir.path().join("granted");
    k8s_read_policy(&granted, |t| t);
    let (ok, out) = read_logs(&config, &granted, &dir.path().join("d2"));
    assert!(ok, "{out}");
    assert!(out.contains("50 lines of the previous log"), "{out}");
    assert!(
        out.contains("previous payment-api-7d9f-a1 line 1000"),
        "{out}"
    );
    assert!(!out.contains("line 950 "), "only the tail: {out}");
    let ours = api
        .seen()
        .into_iter()
        .find(|s| s.path().ends_with("/log"))
        .expect("a log request");
    api.clear_seen();
    let (ok, theirs_out) = kubectl(
        &config,
        dir.path(),
        &[
            "logs",
            "payment-api-7d9f-a1",
            "-n",
            "payments",
            "--previous",
            "--tail=50",
        ],
    );
    assert!(ok, "{theirs_out}");
    let theirs = api
        .seen()
        .into_iter()
        .find(|s| s.path().ends_with("/log"))
        .expect("kubectl's log request");
    println!("runwarden: {}\nkubectl:   {}", ours.target, theirs.target);
    assert_eq!(ours.method, theirs.method);
    assert_eq!(ours.path(), theirs.path());
    for param in ["previous=true", "tailLines=50"] {
        assert!(ours.target.contains(param), "{}", ours.target);
        assert!(theirs.target.contains(param), "{}", theirs.target);
    }
    assert_eq!(theirs_out.lines().count(), 50);
}

async fn readyz(base: &str) -> (u16, String) {
    common::http("GET", &format!("{base}/readyz"), &[], vec![]).await
}

async fn wait_ready(base: &str, within: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + within;
    while std::time::Instant::now() < until {
        if readyz(base).await.0 == 200 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_elect_one_leader_through_the_api_and_fail_over() {
    let pki = Pki::new();
    let api = KubeApi::start(&pki, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    api.kubeconfig(&pki, false, &config);
    let replica = |identity: &str| {
        let s = common::agent::setup(|_, t| t);
        std::fs::create_dir_all(s.dir.path().join("runbooks")).unwrap();
        let agent = common::process::serve_env(
            s.dir.path(),
            &[
                "--cluster",
                "kube",
                "--lease",
                "payments/runwarden-leader",
                "--identity",
                identity,
            ],
            &[("KUBECONFIG", config.as_path())],
        );
        (s, agent)
    };
    let (_sa, mut a) = replica("a");
    assert!(
        wait_ready(&a.base, std::time::Duration::from_secs(20)).await,
        "a never led: {:?}\n{:#?}",
        a.stderr,
        api.seen()
            .iter()
            .filter(|s| s.path().contains("lease"))
            .take(6)
            .collect::<Vec<_>>()
    );
    let (_sb, mut b) = replica("b");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (status, body) = readyz(&b.base).await;
    assert_eq!(status, 503, "b must stand by while a leads: {body}");
    assert!(body.contains("standby"), "{body}");
    let writes: Vec<Seen> = api
        .seen()
        .into_iter()
        .filter(|s| s.path().contains("/leases"))
        .filter(|s| s.method == "PUT" || s.method == "POST")
        .collect();
    assert!(!writes.is_empty());
    assert!(
        writes
            .iter()
            .filter(|w| w.method == "PUT")
            .all(|w| w.body["metadata"]["resourceVersion"].is_string()),
        "every renewal is conditional on the version read: {writes:#?}"
    );

    // The leader dies without a word; the standby takes over once the
    // lease (15 s) runs out.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    assert!(
        wait_ready(&b.base, std::time::Duration::from_secs(40)).await,
        "b never took over: {:?}",
        b.stderr
    );
    b.child.kill().unwrap();
    b.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_pod_the_service_account_files_are_used() {
    let pki = Pki::new();
    let api = KubeApi::start(&pki, TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), TOKEN).unwrap();
    std::fs::copy(pki.path("ca.crt"), sa.join("ca.crt")).unwrap();
    std::fs::write(sa.join("namespace"), "payments").unwrap();
    let port = api.url.rsplit(':').next().unwrap().to_string();
    // kube-rs reads the service account from a fixed path: give this one
    // process a private /run with the files a kubelet would mount there.
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && cp {}/* /run/secrets/kubernetes.io/serviceaccount/ && exec \"$0\" \"$@\"",
        sa.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_runwarden"))
        .args(["--cluster", "kube", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(args(&call(
            "scale_deployment",
            r#"{"namespace":"payments","name":"payment-api","replicas":2}"#,
        )))
        .current_dir(common::workspace())
        .env_remove("KUBECONFIG")
        .env("HOME", dir.path())
        .env("USER", "alice")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", &port)
        .env(
            "RUNWARDEN_CACHE_DIR",
            common::workspace().join("target/runwarden-test-cache"),
        )
        .output()
        .expect("unshare runs (util-linux)");
    let text = common::output_text(&out);
    assert!(
        out.status.success(),
        "needs `unshare -m` (root, as the test command runs): {text}"
    );
    assert_eq!(api.replicas("payments", "payment-api"), Some(2), "{text}");
    assert!(
        api.seen().iter().all(|s| !s.client_cert),
        "authenticated by the service account's token"
    );
}

/// The host's facts come from a real client's reads of object status: a
/// kube-state-metrics alert naming only a pod resolves, through the pod's
/// owner references, to its Deployment; the container's waiting reason,
/// last termination (OOMKilled, exit 137) and restarts, the autoscaler at
/// its maximum (autoscaling/v2) and the pod's warning events reach the
/// report; and the runbook escalates a memory limit too low instead of
/// restarting a crash loop.
#[tokio::test(flavor = "multi_thread")]
async fn facts_come_from_object_status_read_through_the_client_stack() {
    let pki = Pki::new();
    let api = KubeApi::start(&pki, TOKEN).await;
    api.crash_loop("payments", "payment-api-7d9f-a1");
    api.serve_list(
        "payments",
        "horizontalpodautoscalers",
        vec![serde_json::json!({
            "metadata": {"name": "payment-api", "namespace": "payments"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "payment-api", "apiVersion": "apps/v1"},
                     "minReplicas": 2, "maxReplicas": 3,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
            "status": {"currentReplicas": 3, "desiredReplicas": 3,
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 95}}}]}
        })],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    api.kubeconfig(&pki, false, &config);
    let s = common::agent::setup(|_, t| t);
    let root = s.dir.path();
    common::copy_runbooks(&root.join("runbooks"));
    std::fs::write(
        root.join("access.toml"),
        "[[api_token]]\nname = \"t\"\nrole = \"viewer\"\ntoken = { value = \"facts-viewer-token-0123\" }\n",
    )
    .unwrap();
    let mut agent = common::process::serve_env(
        root,
        &[
            "--cluster",
            "kube",
            "--access",
            "access.toml",
            "--insecure-local-webhooks",
        ],
        &[("KUBECONFIG", config.as_path())],
    );
    let alert = serde_json::json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "fingerprint": "crash1",
            "labels": {"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": "payment-api-7d9f-a1",
                       "container": "app", "job": "kube-state-metrics", "service": "kube-prometheus-stack-kube-state-metrics"},
            "annotations": {}, "startsAt": chrono::Utc::now().to_rfc3339(), "endsAt": "0001-01-01T00:00:00Z"}]});
    let (status, body) = common::post_alertmanager(&agent.base, &alert).await;
    assert_eq!(status, 202, "{body}");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let (status, body) = common::http(
            "GET",
            &format!("{}/api/incidents/INC-1/report", agent.base),
            &[("authorization", "Bearer facts-viewer-token-0123")],
            vec![],
        )
        .await;
        if status == 200 && body.contains("Facts the host observed") {
            break body;
        }
        assert!(
            std::time::Instant::now() < until,
            "{status} {body}\n{}",
            agent.logged()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for want in [
        "workload Deployment payments/payment-api (from label `pod` → ReplicaSet → Deployment)",
        "CrashLoopBackOff",
        "OOMKilled",
        "exit code 137",
        "autoscaler 2..3, at its maximum",
        "OOMKilling: Memory cgroup out of memory",
        "memory limit is too low",
    ] {
        assert!(report.contains(want), "{want:?} not in:\n{report}");
    }
    // Every read the facts needed went through the API, none wrote.
    let seen = api.seen();
    for path in [
        "/pods",
        "/horizontalpodautoscalers",
        "/statefulsets",
        "/jobs",
        "/events",
    ] {
        assert!(
            seen.iter().any(|s| s.path().ends_with(path)),
            "{path} never read"
        );
    }
    assert!(
        seen.iter()
            .all(|s| s.method == "GET" || s.path().contains("/leases")),
        "{:?}",
        seen.iter()
            .filter(|s| s.method != "GET")
            .collect::<Vec<_>>()
    );
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
}

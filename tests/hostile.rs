//! Hostile guests: each misbehaviour is contained, reported with its reason,
//! leaves no side effect, and the host serves the next call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::capability::Capability;
use runwarden::plugin::LoadError;
use runwarden::policy::PolicyError;
use runwarden::sandbox::fault::{CallError, PluginFault};
use serde_json::json;
use std::time::Instant;

const LIMITED: &str =
    "[limits]\nmemory_mib = 32\ntimeout_ms = 300\nmax_output_kib = 256\n\n[grants.log]\n";

async fn fault_then_recover(tool: &str) -> PluginFault {
    let w = world();
    let plugin = hostile(LIMITED);
    let called = plugin
        .execute(&w.services, &call(tool, json!({})), common::grant_only())
        .await;
    let fault = match called.result {
        Err(CallError::Fault(f)) => f,
        other => panic!("{tool}: expected a plugin fault, got {other:?}"),
    };
    let next = plugin
        .execute(&w.services, &call("ok", json!({})), common::grant_only())
        .await;
    assert_eq!(
        next.result.map(|o| o.summary).ok().as_deref(),
        Some("fine"),
        "the host serves the next call"
    );
    fault
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_hits_the_deadline() {
    let started = Instant::now();
    let fault = fault_then_recover("spin").await;
    assert_eq!(fault, PluginFault::Timeout { limit_ms: 300 });
    assert!(
        started.elapsed().as_secs() < 10,
        "stopped promptly: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_budget() {
    assert_eq!(
        fault_then_recover("memory_bomb").await,
        PluginFault::MemoryLimit { limit_mib: 32 }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_overflow_is_contained() {
    assert_eq!(
        fault_then_recover("stack_overflow").await,
        PluginFault::StackOverflow
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_stack_overflow_traps_cleanly() {
    let fault = fault_then_recover("shadow_stack_overflow").await;
    assert!(
        matches!(&fault, PluginFault::Trap { reason } if reason.contains("out of bounds")),
        "{fault:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_is_reported_with_its_reason() {
    let fault = fault_then_recover("trap").await;
    assert!(
        matches!(&fault, PluginFault::Trap { reason } if reason.contains("unreachable")),
        "{fault:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_output_is_refused() {
    let fault = fault_then_recover("huge_output").await;
    assert!(
        matches!(fault, PluginFault::OutputTooLarge { limit: 262_144, .. }),
        "{fault:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ungranted_import_refuses_to_load() {
    // The hostile guest imports k8s, http and secrets; this policy grants log only.
    let err = fixture(
        "hostile_guests",
        "remediation-tool",
        HOSTILE_REQUESTS,
        "[grants.log]\n",
    )
    .load()
    .err();
    let Some(LoadError::UngrantedImports { imports, .. }) = &err else {
        panic!("expected refusal, got {err:?}")
    };
    let caps: Vec<_> = imports.iter().filter_map(|i| i.capability).collect();
    for cap in [Capability::K8s, Capability::Http, Capability::Secrets] {
        assert!(caps.contains(&cap), "{cap} missing from {imports:?}");
    }
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("runwarden:plugin/k8s@0.2.0"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_the_manifest_never_requested_is_not_linked() {
    // The operator grants k8s, but the manifest does not request it: the
    // effective grant lacks k8s and the component (which imports it) is refused.
    let requests = "[requests.log]\n[requests.http]\n[requests.secrets]\nnames = []\n";
    let policy = "[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\"]\n[grants.log]\n[grants.http]\nallow = []\n[grants.secrets]\nnames = []\n";
    let err = fixture("hostile_guests", "remediation-tool", requests, policy)
        .load()
        .err();
    assert!(
        matches!(&err, Some(LoadError::UngrantedImports { imports, .. }) if imports.iter().any(|i| i.capability == Some(Capability::K8s))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_that_do_not_match_the_pin_refuse_to_load() {
    let f = fixture(
        "k8s_remediation",
        "remediation-tool",
        "[requests.log]\n",
        "[grants.log]\n",
    );
    let tampered = f.dir.path().join("tampered.wasm");
    let mut bytes = std::fs::read(wasm("k8s_remediation")).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&tampered, &bytes).expect("write");
    let text = std::fs::read_to_string(&f.policy_path).expect("policy");
    let text = text.replace(
        &format!("{:?}", wasm("k8s_remediation").display().to_string()),
        &format!("{:?}", tampered.display().to_string()),
    );
    std::fs::write(&f.policy_path, text).expect("policy");
    let err = runwarden::policy::load_policy(&f.policy_path);
    assert!(
        matches!(err, Err(PolicyError::DigestMismatch { .. })),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_of_the_wrong_world_refuses_to_load() {
    let err = fixture(
        "prometheus",
        "remediation-tool",
        "[requests.http]\n",
        "[grants.http]\nallow = []\n",
    )
    .load()
    .err();
    assert!(matches!(err, Some(LoadError::WrongWorld { .. })), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_faults_do_not_disturb_good_calls() {
    let w = world();
    let plugin = std::sync::Arc::new(hostile(LIMITED));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (plugin, services) = (plugin.clone(), w.services.clone());
        let tool = if i % 2 == 0 { "spin" } else { "ok" };
        tasks.push(tokio::spawn(async move {
            (
                tool,
                plugin
                    .execute(&services, &call(tool, json!({})), common::grant_only())
                    .await
                    .result,
            )
        }));
    }
    for t in tasks {
        let (tool, result) = t.await.expect("task");
        match tool {
            "spin" => assert!(matches!(
                result,
                Err(CallError::Fault(PluginFault::Timeout { .. }))
            )),
            _ => assert!(result.is_ok(), "{result:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_host_calls_is_stopped_by_the_deadline() {
    let w = world();
    let plugin = hostile(&format!(
        "{LIMITED}[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\"]\n"
    ));
    let called = plugin
        .execute(
            &w.services,
            &call("k8s_flood", json!({})),
            common::grant_only(),
        )
        .await;
    assert!(
        matches!(
            called.result,
            Err(CallError::Fault(PluginFault::Timeout { .. }))
        ),
        "{:?}",
        called.result
    );
    let next = plugin
        .execute(&w.services, &call("ok", json!({})), common::grant_only())
        .await;
    assert!(next.result.is_ok(), "the host serves the next call");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_component_bytes_refuse_to_load_with_a_reason() {
    let f = fixture(
        "k8s_remediation",
        "remediation-tool",
        "[requests.log]\n",
        "[grants.log]\n",
    );
    let junk = f.dir.path().join("junk.wasm");
    // A wasm header followed by garbage, pinned correctly: the pin is not
    // what stops it, validation is.
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(&junk, &bytes).unwrap();
    let text = std::fs::read_to_string(&f.policy_path)
        .unwrap()
        .replace(
            &format!("{:?}", wasm("k8s_remediation").display().to_string()),
            &format!("{:?}", junk.display().to_string()),
        )
        .lines()
        .map(|l| {
            if l.starts_with("sha256") {
                format!("sha256 = \"{}\"", runwarden::policy::Sha256Hex::of(&bytes))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&f.policy_path, text).unwrap();
    let err = f.load().err();
    assert!(
        matches!(&err, Some(LoadError::Compile { reason, .. }) if !reason.is_empty()),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_an_ungranted_host_is_not_followed() {
    let w = world();
    let target = serve("secret metadata").await;
    let location = format!("http://127.0.0.1:{}/latest/meta-data", target.port);
    let app = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, location)],
                "",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{port}\"]\n"
    ));
    let called = plugin
        .execute(
            &w.services,
            &http_get(&format!("http://127.0.0.1:{port}/")),
            common::grant_only(),
        )
        .await;
    assert_eq!(
        called.result.map(|o| o.summary).ok().as_deref(),
        Some("status 302 (0 bytes)"),
        "the guest sees the redirect; the host does not follow it"
    );
    assert_eq!(target.hits(), 0, "the ungranted target was never contacted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_socket_is_denied_even_with_http_granted_for_that_address() {
    let w = world();
    // A listener that counts connections: none may arrive.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // Even with wasi:http granted to exactly this origin, a raw socket
    // bypassing it is refused.
    let plugin = hostile(&format!(
        "[grants.http]\nallow = [\"http://127.0.0.1:{port}\"]\n"
    ));
    let called = plugin
        .execute(
            &w.services,
            &call("tcp_connect", json!({"port": port})),
            common::grant_only(),
        )
        .await;
    let err = called
        .result
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("socket: ") && err.contains("access-denied"),
        "socket creation denied: {err}"
    );
    assert!(listener.accept().is_err(), "nothing connected");
    let next = plugin
        .execute(&w.services, &call("ok", json!({})), common::grant_only())
        .await;
    assert!(next.result.is_ok());
}

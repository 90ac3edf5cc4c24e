//! The publisher's and the reviewer's tools through the `runwarden` binary:
//! keygen → sign → verify, the refusals a security reviewer relies on
//! (unsigned, wrongly signed, manifest grown after signing, other bytes),
//! and `plugin diff` as a CI gate that fails when capabilities grow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

fn runwarden(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_runwarden"))
        .args(args)
        .current_dir(dir)
        .env(
            "RUNWARDEN_CACHE_DIR",
            common::workspace().join("target/runwarden-test-cache"),
        )
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A publisher key pair; returns the `[[publisher]]` snippet for the host.
fn keygen(dir: &Path, publisher: &str) -> String {
    let keys = dir.join("keys");
    let (code, out) = runwarden(
        dir,
        &[
            "plugin",
            "keygen",
            "--publisher",
            publisher,
            "--out-dir",
            keys.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let snippet = &out[out.find("[[publisher]]").expect("snippet")..];
    snippet.to_string()
}

const OPS: &str = r#"["read", "scale", "rollback", "delete-pods"]"#;

/// A policy directory for k8s-remediation that requires publisher `acme`.
fn policy_dir(dir: &Path, max_replicas: u32) {
    let wasm = common::wasm("k8s_remediation");
    let digest = runwarden::policy::Sha256Hex::of(&std::fs::read(&wasm).unwrap());
    std::fs::copy(&wasm, dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        dir.join("manifest.toml"),
        format!("[plugin]\nname = \"k8s-remediation\"\nkind = \"remediation-tool\"\ndescription = \"d\"\n\n[requests.k8s]\noperations = {OPS}\n\n[requests.log]\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/k8s-remediation.toml"),
        format!(
            "[plugin]\nname = \"k8s-remediation\"\ncomponent = \"../plugin.wasm\"\nsha256 = \"{digest}\"\nmanifest = \"../manifest.toml\"\nrequire_publisher = \"acme\"\n\n\
             [grants.k8s]\nnamespaces = [\"payments\"]\noperations = {OPS}\nmax_replicas = {max_replicas}\n\n[grants.log]\n"
        ),
    )
    .unwrap();
    // What every agent loads beside the plugin policies (`policy check`
    // validates them too).
    std::fs::write(
        dir.join("policies/autonomy.toml"),
        "mode = \"approve\"\nversion = \"1\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
}

fn sign(dir: &Path, key: &str) -> (i32, String) {
    runwarden(
        dir,
        &[
            "plugin",
            "sign",
            "--key",
            key,
            "--publisher",
            "acme",
            "plugin.wasm",
            "manifest.toml",
        ],
    )
}

#[test]
fn only_a_trusted_signature_over_these_bytes_and_requests_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    policy_dir(dir, 10);
    let trusted = keygen(dir, "acme");
    std::fs::write(dir.join("policies/trusted-publishers.toml"), &trusted).unwrap();
    let policy = "policies/k8s-remediation.toml";

    // Unsigned.
    let (code, out) = runwarden(dir, &["plugin", "verify", policy]);
    assert_ne!(code, 0);
    assert!(out.contains("no signature at"), "{out}");
    let (code, out) = runwarden(dir, &["--policies", "policies", "policy", "check"]);
    assert_ne!(code, 0, "an unsigned plugin does not load: {out}");

    // Signed by the trusted key.
    let (code, out) = sign(dir, "keys/acme.ed25519");
    assert_eq!(code, 0, "{out}");
    let (code, out) = runwarden(dir, &["plugin", "verify", policy]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signed by `acme`"), "{out}");
    let (code, out) = runwarden(dir, &["--policies", "policies", "policy", "check"]);
    assert_eq!(code, 0, "{out}");

    // The manifest asks for more after signing.
    let grown = std::fs::read_to_string(dir.join("manifest.toml"))
        .unwrap()
        .replace(r#""delete-pods"]"#, r#""delete-pods", "annotate"]"#);
    std::fs::write(dir.join("manifest.toml"), &grown).unwrap();
    let (code, out) = runwarden(dir, &["plugin", "verify", policy]);
    assert_ne!(code, 0);
    assert!(
        out.contains("did not sign") && out.contains("k8s.operations: added annotate"),
        "{out}"
    );

    // Someone else re-signs the grown manifest under acme's name.
    keygen(dir, "mallory");
    let (code, _) = sign(dir, "keys/mallory.ed25519");
    assert_eq!(code, 0);
    let (code, out) = runwarden(dir, &["plugin", "verify", policy]);
    assert_ne!(code, 0);
    assert!(out.contains("no signature by `acme` verifies"), "{out}");
}

#[test]
fn a_signature_for_other_bytes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    policy_dir(dir, 10);
    std::fs::write(
        dir.join("policies/trusted-publishers.toml"),
        keygen(dir, "acme"),
    )
    .unwrap();
    // Sign a different component, then put its signature beside ours.
    std::fs::copy(common::wasm("slack"), dir.join("other.wasm")).unwrap();
    let (code, out) = runwarden(
        dir,
        &[
            "plugin",
            "sign",
            "--key",
            "keys/acme.ed25519",
            "--publisher",
            "acme",
            "other.wasm",
            "manifest.toml",
            "--out",
            "plugin.wasm.sig.json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = runwarden(dir, &["plugin", "verify", "policies/k8s-remediation.toml"]);
    assert_ne!(code, 0);
    assert!(out.contains("is for component sha256"), "{out}");
}

#[test]
fn diff_shows_what_grew_and_fails_the_gate_only_then() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    for (d, replicas) in [(&old, 10), (&new, 50)] {
        std::fs::create_dir_all(d).unwrap();
        policy_dir(d, replicas);
    }
    let (o, n) = (
        old.join("policies/k8s-remediation.toml"),
        new.join("policies/k8s-remediation.toml"),
    );
    let (code, out) = runwarden(
        tmp.path(),
        &["plugin", "diff", o.to_str().unwrap(), n.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("+ granted k8s.max_replicas: 10 -> 50"),
        "{out}"
    );

    let (code, out) = runwarden(
        tmp.path(),
        &[
            "plugin",
            "diff",
            n.to_str().unwrap(),
            o.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "narrowing passes the gate: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["grows"], false);
    assert_eq!(v["changes"][0]["what"], "granted k8s.max_replicas");

    // Two components: the tools and imports of slack vs pagerduty.
    let (code, out) = runwarden(
        tmp.path(),
        &[
            "plugin",
            "diff",
            common::wasm("slack").to_str().unwrap(),
            common::wasm("pagerduty").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("+ tool: added trigger_incident (mutate, low risk)"),
        "{out}"
    );
    assert!(out.contains("- tool: removed post_message"), "{out}");
}

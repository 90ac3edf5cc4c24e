//! Publisher signatures over a plugin's bytes *and* its capability request.
//!
//! A publisher signs an in-toto statement whose subject is the component's
//! sha256 and whose predicate is the manifest's `[requests]`, wrapped in a
//! DSSE envelope — the format cosign and sigstore produce and verify, so key
//! management can move to them without changing what is signed. The host
//! holds the trusted publishers' ed25519 keys (`trusted-publishers.toml` in
//! the policy directory); a policy with `require_publisher` refuses to load
//! unless its component carries a valid signature by that publisher over
//! exactly these bytes and exactly this request. A manifest edited to ask
//! for more after signing is refused, naming what grew.

use super::Manifest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The trusted publishers' keys, in the policy directory.
pub const TRUST_FILE: &str = "trusted-publishers.toml";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://runwarden.dev/plugin-capabilities/v1";

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("no signature at {0}: the policy requires a signed plugin")]
    Missing(PathBuf),
    #[error("the signature envelope is malformed: {0}")]
    Malformed(String),
    #[error("publisher `{0}` is not in {TRUST_FILE}")]
    UnknownPublisher(String),
    #[error("no signature by `{0}` verifies with its trusted key")]
    BadSignature(String),
    #[error("signed by `{signed}`, but the policy requires `{required}`")]
    OtherPublisher { signed: String, required: String },
    #[error("the signature is for component sha256 {signed}, but the component is {actual}")]
    OtherBytes { signed: String, actual: String },
    #[error("the signature is for plugin `{signed}`, not `{actual}`")]
    OtherPlugin { signed: String, actual: String },
    #[error(
        "the manifest requests capabilities the publisher did not sign: {}",
        .0.join("; ")
    )]
    CapabilitiesGrew(Vec<String>),
    #[error("the manifest's requests differ from what was signed: {}", .0.join("; "))]
    CapabilitiesChanged(Vec<String>),
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> SignatureError {
    SignatureError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default, rename = "publisher")]
    publishers: Vec<TrustedPublisher>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustedPublisher {
    name: String,
    /// Base64 of the 32-byte ed25519 public key.
    ed25519: String,
}

/// Publisher name → trusted keys.
#[derive(Debug, Default, Clone)]
pub struct Trust(BTreeMap<String, Vec<VerifyingKey>>);

impl Trust {
    pub fn load(path: &Path) -> Result<Trust, SignatureError> {
        let text = crate::files::read_text(path).map_err(|e| file_err(path, e.reason()))?;
        let file: TrustFile =
            toml::from_str(&text).map_err(|e| file_err(path, e.to_string().trim_end()))?;
        let mut trust = Trust::default();
        for p in file.publishers {
            let key = decode_public_key(&p.ed25519)
                .map_err(|e| file_err(path, format!("publisher `{}`: {e}", p.name)))?;
            trust.0.entry(p.name).or_default().push(key);
        }
        Ok(trust)
    }

    pub fn with(mut self, publisher: &str, key: VerifyingKey) -> Self {
        self.0.entry(publisher.to_string()).or_default().push(key);
        self
    }
}

pub fn decode_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an ed25519 key: {e}"))
}

/// A private key file holds base64 of the 32-byte seed.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SignatureError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    let bytes = B64
        .decode(text.trim())
        .map_err(|e| file_err(path, format!("not base64: {e}")))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| file_err(path, "an ed25519 private key is a 32-byte seed"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A fresh key pair: (private seed base64, public key base64).
pub fn generate_key() -> Result<(String, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok((B64.encode(seed), B64.encode(key.verifying_key().to_bytes())))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the statement's JSON.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The publisher's name.
    pub keyid: String,
    pub sig: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    statement_type: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Predicate {
    publisher: String,
    plugin: String,
    kind: super::PluginKind,
    /// The manifest's `[requests]`, as JSON.
    requests: serde_json::Value,
}

/// DSSE's pre-authentication encoding: what the signature covers.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn requests_json(manifest: &Manifest) -> serde_json::Value {
    serde_json::to_value(&manifest.requests).unwrap_or(serde_json::Value::Null)
}

/// Signs a component and its manifest's requests as `publisher`.
pub fn sign(component: &[u8], manifest: &Manifest, publisher: &str, key: &SigningKey) -> Envelope {
    let statement = Statement {
        statement_type: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: manifest.plugin.name.to_string(),
            digest: [(
                "sha256".to_string(),
                super::Sha256Hex::of(component).to_string(),
            )]
            .into(),
        }],
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            publisher: publisher.to_string(),
            plugin: manifest.plugin.name.to_string(),
            kind: manifest.plugin.kind,
            requests: requests_json(manifest),
        },
    };
    let payload = serde_json::to_vec(&statement).unwrap_or_default();
    let sig: Signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: B64.encode(&payload),
        signatures: vec![EnvelopeSignature {
            keyid: publisher.to_string(),
            sig: B64.encode(sig.to_bytes()),
        }],
    }
}

/// What a valid signature says.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub publisher: String,
    pub sha256: String,
}

/// Checks an envelope against the component, the manifest and the trust
/// store, for a policy that requires `publisher`.
pub fn verify(
    envelope: &[u8],
    component: &[u8],
    manifest: &Manifest,
    publisher: &str,
    trust: &Trust,
) -> Result<Verified, SignatureError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(SignatureError::Malformed(format!(
            "payloadType {:?}, expected {PAYLOAD_TYPE}",
            env.payload_type
        )));
    }
    let payload = B64
        .decode(&env.payload)
        .map_err(|e| SignatureError::Malformed(format!("payload is not base64: {e}")))?;
    let keys = trust
        .0
        .get(publisher)
        .ok_or_else(|| SignatureError::UnknownPublisher(publisher.to_string()))?;
    let signed_bytes = pae(&env.payload_type, &payload);
    let valid = env
        .signatures
        .iter()
        .filter(|s| s.keyid == publisher)
        .filter_map(|s| B64.decode(&s.sig).ok())
        .filter_map(|s| Signature::from_slice(&s).ok())
        .any(|sig| keys.iter().any(|k| k.verify(&signed_bytes, &sig).is_ok()));
    if !valid {
        return Err(SignatureError::BadSignature(publisher.to_string()));
    }
    // Only now is the payload trusted enough to read.
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| SignatureError::Malformed(format!("statement: {e}")))?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(SignatureError::Malformed(
            "not a runwarden plugin-capabilities statement".into(),
        ));
    }
    if statement.predicate.publisher != publisher {
        return Err(SignatureError::OtherPublisher {
            signed: statement.predicate.publisher,
            required: publisher.to_string(),
        });
    }
    let actual = super::Sha256Hex::of(component).to_string();
    let signed = statement
        .subject
        .first()
        .and_then(|s| s.digest.get("sha256"))
        .cloned()
        .unwrap_or_default();
    if signed != actual {
        return Err(SignatureError::OtherBytes { signed, actual });
    }
    if statement.predicate.plugin != manifest.plugin.name.as_str() {
        return Err(SignatureError::OtherPlugin {
            signed: statement.predicate.plugin,
            actual: manifest.plugin.name.to_string(),
        });
    }
    let now = requests_json(manifest);
    if now != statement.predicate.requests {
        let changes = crate::review::json_changes(&statement.predicate.requests, &now);
        let grew: Vec<String> = changes
            .iter()
            .filter(|c| c.grows)
            .map(ToString::to_string)
            .collect();
        return Err(if grew.is_empty() {
            SignatureError::CapabilitiesChanged(changes.iter().map(ToString::to_string).collect())
        } else {
            SignatureError::CapabilitiesGrew(grew)
        });
    }
    Ok(Verified {
        publisher: publisher.to_string(),
        sha256: actual,
    })
}

/// The signature file of a component: `<component>.sig.json`.
pub fn signature_path_for(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_os_string();
    name.push(".sig.json");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(ops: &str) -> Manifest {
        toml::from_str(&format!(
            "[plugin]\nname = \"restart\"\nkind = \"remediation-tool\"\ndescription = \"d\"\n[requests.k8s]\noperations = {ops}\n"
        ))
        .unwrap()
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn signed() -> (Vec<u8>, Trust) {
        let env = sign(b"wasm bytes", &manifest(r#"["read"]"#), "acme", &key(1));
        let trust = Trust::default().with("acme", key(1).verifying_key());
        (serde_json::to_vec(&env).unwrap(), trust)
    }

    #[test]
    fn a_good_signature_verifies() {
        let (env, trust) = signed();
        let v = verify(
            &env,
            b"wasm bytes",
            &manifest(r#"["read"]"#),
            "acme",
            &trust,
        )
        .unwrap();
        assert_eq!(v.publisher, "acme");
    }

    #[test]
    fn each_kind_of_mismatch_is_named() {
        let (env, trust) = signed();
        let m = manifest(r#"["read"]"#);
        let err = |r: Result<Verified, SignatureError>| r.unwrap_err().to_string();
        assert!(
            err(verify(&env, b"other bytes", &m, "acme", &trust))
                .contains("is for component sha256")
        );
        assert!(err(verify(&env, b"wasm bytes", &m, "other", &trust)).contains("not in"));
        let wrong_key = Trust::default().with("acme", key(2).verifying_key());
        assert!(err(verify(&env, b"wasm bytes", &m, "acme", &wrong_key)).contains("verifies"));
        let grown = manifest(r#"["read", "delete-pods"]"#);
        let e = err(verify(&env, b"wasm bytes", &grown, "acme", &trust));
        assert!(
            e.contains("did not sign") && e.contains("delete-pods"),
            "{e}"
        );
        let fewer = manifest("[]");
        assert!(err(verify(&env, b"wasm bytes", &fewer, "acme", &trust)).contains("differ"));
        assert!(err(verify(b"{", b"wasm bytes", &m, "acme", &trust)).contains("malformed"));
    }

    #[test]
    fn a_payload_edited_after_signing_does_not_verify() {
        let (env, trust) = signed();
        let mut env: Envelope = serde_json::from_slice(&env).unwrap();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&B64.decode(&env.payload).unwrap()).unwrap();
        payload["predicate"]["requests"]["k8s"]["operations"] =
            serde_json::json!(["read", "scale"]);
        env.payload = B64.encode(serde_json::to_vec(&payload).unwrap());
        let m = manifest(r#"["read", "scale"]"#);
        let r = verify(
            &serde_json::to_vec(&env).unwrap(),
            b"wasm bytes",
            &m,
            "acme",
            &trust,
        );
        assert!(matches!(r, Err(SignatureError::BadSignature(_))), "{r:?}");
    }

    #[test]
    fn generated_keys_round_trip() {
        let (private, public) = generate_key().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, &private).unwrap();
        let k = read_signing_key(&path).unwrap();
        assert_eq!(k.verifying_key(), decode_public_key(&public).unwrap());
    }
}

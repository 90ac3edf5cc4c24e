//! Reading policy and manifest files, and refusing anything that does not check.

use super::{Manifest, PolicyFile, Sha256Hex};
use crate::capability::Grants;
use std::path::{Path, PathBuf};

/// The autonomy policy's file name in the policy directory; not a plugin policy.
pub const AUTONOMY_FILE: &str = "autonomy.toml";

/// Why a policy could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A missing, special (FIFO, device, directory) or over-large file.
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    /// The TOML did not parse or a value did not validate; `message` comes
    /// from the TOML parser and names the line, column and field.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{policy}: {source}; refusing to load")]
    Signature {
        policy: PathBuf,
        #[source]
        source: super::signing::SignatureError,
    },
    #[error(
        "{policy}: component {component} has sha256 {actual}, but the policy pins {expected}; refusing to load"
    )]
    DigestMismatch {
        policy: PathBuf,
        component: PathBuf,
        expected: Sha256Hex,
        actual: Sha256Hex,
    },
}

/// A policy with its manifest and the component bytes it pins, all checked.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub path: PathBuf,
    pub file: PolicyFile,
    pub manifest: Manifest,
    pub component_path: PathBuf,
    /// The component's bytes, already checked against the pinned digest.
    pub component: Vec<u8>,
    /// What the plugin may actually use: requested AND granted.
    pub effective: Grants,
    /// The publisher whose signature was verified, when the policy requires one.
    pub signed_by: Option<super::signing::Verified>,
}

impl LoadedPolicy {
    pub fn name(&self) -> &str {
        self.file.plugin.name.as_str()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PolicyError> {
    Ok(crate::files::read_bytes(
        path,
        crate::files::MAX_COMPONENT_BYTES,
    )?)
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PolicyError> {
    let text = crate::files::read_text(path)?;
    toml::from_str(&text).map_err(|e| PolicyError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Parses a policy file without touching the component (for reviewers).
pub fn parse_policy(path: &Path) -> Result<PolicyFile, PolicyError> {
    parse_toml(path)
}

/// Parses a manifest file.
pub fn parse_manifest(path: &Path) -> Result<Manifest, PolicyError> {
    parse_toml(path)
}

/// Loads one policy: parses it and its manifest, checks that they agree,
/// reads the component and checks its digest.
pub fn load_policy(path: &Path) -> Result<LoadedPolicy, PolicyError> {
    let file = parse_policy(path)?;
    if let Some(http) = &file.grants.http {
        crate::capability::credentials::check(http, file.grants.secrets.as_ref()).map_err(
            |(field, reason)| PolicyError::Invalid {
                path: path.to_path_buf(),
                field,
                reason,
            },
        )?;
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let manifest_path = base.join(&file.plugin.manifest);
    let manifest = parse_manifest(&manifest_path)?;
    if manifest.plugin.name != file.plugin.name {
        return Err(PolicyError::Invalid {
            path: path.to_path_buf(),
            field: "plugin.name".into(),
            reason: format!(
                "policy is for `{}` but the manifest {} declares `{}`",
                file.plugin.name,
                manifest_path.display(),
                manifest.plugin.name
            ),
        });
    }
    let component_path = base.join(&file.plugin.component);
    let component = read(&component_path)?;
    let actual = Sha256Hex::of(&component);
    if actual != file.plugin.sha256 {
        return Err(PolicyError::DigestMismatch {
            policy: path.to_path_buf(),
            component: component_path,
            expected: file.plugin.sha256.clone(),
            actual,
        });
    }
    let signed_by = match &file.plugin.require_publisher {
        Some(publisher) => Some(check_signature(
            path,
            base,
            &file,
            &component_path,
            &component,
            &manifest,
            publisher,
        )?),
        None => None,
    };
    let effective = file.grants.effective(&manifest.requests);
    Ok(LoadedPolicy {
        path: path.to_path_buf(),
        file,
        manifest,
        component_path,
        component,
        effective,
        signed_by,
    })
}

/// A policy that requires a publisher: the signature beside the component
/// must verify against the policy directory's trusted publishers.
fn check_signature(
    path: &Path,
    base: &Path,
    file: &PolicyFile,
    component_path: &Path,
    component: &[u8],
    manifest: &Manifest,
    publisher: &str,
) -> Result<super::signing::Verified, PolicyError> {
    use super::signing::{self, SignatureError, Trust};
    let fail = |source: SignatureError| PolicyError::Signature {
        policy: path.to_path_buf(),
        source,
    };
    let trust_path = base.join(signing::TRUST_FILE);
    let trust = Trust::load(&trust_path).map_err(fail)?;
    let sig_path = file.plugin.signature.as_ref().map_or_else(
        || signing::signature_path_for(component_path),
        |s| base.join(s),
    );
    let envelope =
        std::fs::read(&sig_path).map_err(|_| fail(SignatureError::Missing(sig_path.clone())))?;
    signing::verify(&envelope, component, manifest, publisher, &trust).map_err(fail)
}

/// Verifies a policy's signature on its own (`runwarden plugin verify`):
/// loading checks it; this says who signed.
pub fn verify_policy(path: &Path) -> Result<super::signing::Verified, PolicyError> {
    load_policy(path)?
        .signed_by
        .ok_or_else(|| PolicyError::Invalid {
            path: path.to_path_buf(),
            field: "plugin.require_publisher".into(),
            reason: "the policy does not require a publisher; nothing to verify".into(),
        })
}

/// The `*.toml` files of a directory, in name order.
pub fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Loads every `*.toml` policy in a directory, in name order. Returns the
/// policies that loaded and the errors of those that did not, so a checker
/// can report them all at once.
pub fn load_dir(dir: &Path) -> Result<(Vec<LoadedPolicy>, Vec<PolicyError>), PolicyError> {
    let paths: Vec<PathBuf> = toml_files(dir)
        .map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .into_iter()
        // The autonomy policy and the trusted keys live beside the plugin
        // policies.
        .filter(|p| {
            p.file_name()
                .is_none_or(|n| n != AUTONOMY_FILE && n != super::signing::TRUST_FILE)
        })
        .collect();
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match load_policy(&path) {
            Ok(p) => {
                if loaded
                    .iter()
                    .any(|l: &LoadedPolicy| l.file.plugin.name == p.file.plugin.name)
                {
                    errors.push(PolicyError::Invalid {
                        path: path.clone(),
                        field: "plugin.name".into(),
                        reason: format!("another policy already defines `{}`", p.name()),
                    });
                } else {
                    loaded.push(p);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Ok((loaded, errors))
}

impl LoadedPolicy {
    /// A policy for looking at a bare component: every capability linked with
    /// an empty grant, so any call it makes is denied.
    pub fn for_inspection(component: Vec<u8>, kind: super::PluginKind) -> Self {
        use crate::capability::{http, k8s, log, secrets};
        let name = super::PluginName::try_from("inspected".to_string())
            .unwrap_or_else(|_| unreachable!("valid literal"));
        let empty = Grants {
            k8s: Some(k8s::K8sGrant {
                namespaces: vec![],
                read_all_namespaces: false,
                except_namespaces: vec![],
                operations: vec![],
                max_replicas: 0,
                max_pods_per_action: 0,
                annotate_kinds: vec![],
            }),
            http: Some(http::HttpGrant {
                allow: vec![],
                allow_private_cidrs: vec![],
                connect_timeout_ms: 1,
                total_timeout_ms: 1,
                inject: vec![],
            }),
            secrets: Some(secrets::SecretsGrant::default()),
            log: Some(log::LogGrant::default()),
        };
        LoadedPolicy {
            path: PathBuf::new(),
            file: PolicyFile {
                plugin: super::PluginRef {
                    name: name.clone(),
                    component: PathBuf::new(),
                    sha256: Sha256Hex::of(&component),
                    manifest: PathBuf::new(),
                    require_publisher: None,
                    signature: None,
                },
                limits: super::Limits::default(),
                grants: empty.clone(),
                config: Default::default(),
            },
            manifest: Manifest {
                plugin: super::ManifestPlugin {
                    name,
                    kind,
                    description: String::new(),
                },
                requests: Default::default(),
            },
            component_path: PathBuf::new(),
            component,
            effective: empty,
            signed_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).ok();
        p
    }

    fn fixture(dir: &Path, policy_extra: &str) -> PathBuf {
        write(dir, "demo.wasm", "not really wasm");
        let digest = Sha256Hex::of(b"not really wasm");
        write(
            dir,
            "manifest.toml",
            "[plugin]\nname = \"demo\"\nkind = \"remediation-tool\"\ndescription = \"d\"\n\n[requests.k8s]\noperations = [\"read\", \"scale\"]\n",
        );
        write(
            dir,
            "demo.toml",
            &format!(
                "[plugin]\nname = \"demo\"\ncomponent = \"demo.wasm\"\nsha256 = \"{digest}\"\nmanifest = \"manifest.toml\"\n{policy_extra}"
            ),
        )
    }

    #[test]
    fn loads_a_valid_policy_and_intersects_grants() -> Result<(), PolicyError> {
        let dir = tempfile::tempdir().map_err(|source| PolicyError::Io {
            path: "tmp".into(),
            source,
        })?;
        let path = fixture(
            dir.path(),
            "\n[grants.k8s]\nnamespaces = [\"payments\"]\noperations = [\"read\", \"scale\", \"rollback\"]\nmax_replicas = 10\n",
        );
        let p = load_policy(&path)?;
        let k8s = p.effective.k8s.as_ref().map(|g| g.operations.clone());
        use crate::capability::k8s::Operation::*;
        assert_eq!(
            k8s,
            Some(vec![Read, Scale]),
            "rollback was granted but not requested"
        );
        Ok(())
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = fixture(
            dir.path(),
            "\n[grants.k8s]\nnamespaces = [\"a\"]\noperations = [\"read\"]\nmax_replicas = 3\nallow_everything = true\n",
        );
        let err = load_policy(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("demo.toml"), "{err}");
        assert!(err.contains("line 11"), "{err}");
        assert!(err.contains("unknown field `allow_everything`"), "{err}");
    }

    #[test]
    fn bad_values_are_reported_with_their_line() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = fixture(dir.path(), "\n[limits]\nmemory_mib = 0\n");
        let err = load_policy(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("line 8") && err.contains("out of range"),
            "{err}"
        );
        let path = fixture(
            dir.path(),
            "\n[grants.k8s]\nnamespaces = [\"Not_A_Namespace\"]\noperations = [\"read\"]\nmax_replicas = 3\n",
        );
        let err = load_policy(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("line 8") && err.contains("Not_A_Namespace"),
            "{err}"
        );
        let path = fixture(
            dir.path(),
            "\n[grants.k8s]\nnamespaces = [\"a\"]\noperations = [\"read\", \"drain-node\"]\nmax_replicas = 3\n",
        );
        let err = load_policy(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("line 9") && err.contains("drain-node"),
            "{err}"
        );
    }

    #[test]
    fn digest_mismatch_refuses_to_load() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = fixture(dir.path(), "");
        write(dir.path(), "demo.wasm", "tampered bytes");
        let err = load_policy(&path);
        assert!(
            matches!(err, Err(PolicyError::DigestMismatch { .. })),
            "{err:?}"
        );
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("refusing to load"), "{msg}");
    }

    #[test]
    fn manifest_for_another_plugin_is_refused() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = fixture(dir.path(), "");
        write(
            dir.path(),
            "manifest.toml",
            "[plugin]\nname = \"other\"\nkind = \"context-source\"\ndescription = \"x\"\n",
        );
        let err = load_policy(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("manifest") && err.contains("`other`"), "{err}");
    }
}

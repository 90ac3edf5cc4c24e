//! `runwarden plugin keygen | sign | verify | diff`: the publisher's and the
//! reviewer's side of the supply chain.

use super::Cli;
use anyhow::Context;
use runwarden::policy::load::{parse_manifest, verify_policy};
use runwarden::policy::signing;
use runwarden::{inspect, review};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status of `plugin diff` when what the plugin can do grew.
pub const GREW: u8 = 3;

pub fn keygen(publisher: &str, out_dir: &Path) -> anyhow::Result<ExitCode> {
    let (private, public) = signing::generate_key().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(out_dir)?;
    let key_path = out_dir.join(format!("{publisher}.ed25519"));
    write_private(&key_path, &private)?;
    println!("private key: {} (keep it secret)", key_path.display());
    println!(
        "\nadd to the host's policies/{}:\n\n[[publisher]]\nname = {publisher:?}\ned25519 = {public:?}",
        signing::TRUST_FILE
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub fn sign(
    key: &Path,
    publisher: &str,
    component: &Path,
    manifest: &Path,
    out: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let key = signing::read_signing_key(key)?;
    let bytes =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let manifest = parse_manifest(manifest)?;
    let envelope = signing::sign(&bytes, &manifest, publisher, &key);
    let out = out
        .cloned()
        .unwrap_or_else(|| signing::signature_path_for(component));
    std::fs::write(&out, serde_json::to_string_pretty(&envelope)?)?;
    println!(
        "signed {} ({}) and its requests as `{publisher}` -> {}",
        manifest.plugin.name,
        runwarden::policy::Sha256Hex::of(&bytes),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(policy: &Path) -> anyhow::Result<ExitCode> {
    match verify_policy(policy) {
        Ok(v) => {
            println!(
                "ok: {} is signed by `{}` over sha256 {} and exactly its manifest's requests",
                policy.display(),
                v.publisher,
                v.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("refused: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn diff(cli: &Cli, old: &Path, new: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let engine = runwarden::sandbox::new_engine()?;
    let cache = cli.cache();
    let a = inspect::inspect(&engine, &cache, old).await?;
    let b = inspect::inspect(&engine, &cache, new).await?;
    let changes = review::diff(&a, &b);
    let grew = changes.iter().any(|c| c.grows);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"grows": grew, "changes": changes}))?
        );
    } else {
        print!("{}", review::render(&changes));
    }
    Ok(if grew {
        ExitCode::from(GREW)
    } else {
        ExitCode::SUCCESS
    })
}

//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes far longer than loading its
//! native code, so compiled artifacts are kept in a cache directory, keyed by
//! the sha256 of the wasm bytes and the engine's compatibility hash (wasmtime
//! version, target, settings). Loading native code is `unsafe` in wasmtime:
//! this cache only ever loads files this process's code wrote, into a
//! directory it created with owner-only permissions. Treat the directory like
//! the binary itself: whoever can write it can run code as runwarden.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot compile component: {0}")]
    Compile(String),
}

/// Feeds `Hash` output into sha256, to turn the engine's compatibility hash
/// into a stable key.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Hex key of the engine's compatibility hash.
pub fn engine_key(engine: &Engine) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..16])
}

/// Where compiled artifacts go; `None` disables the cache.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
}

impl CompileCache {
    pub fn disabled() -> Self {
        CompileCache { dir: None }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        CompileCache {
            dir: Some(dir.into()),
        }
    }

    fn path_for(&self, engine: &Engine, wasm_sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{wasm_sha256}-{}.cwasm", engine_key(engine))))
    }

    /// Loads the compiled component from the cache, or compiles and stores it.
    /// Cache I/O problems are logged and fall back to compiling.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &str,
    ) -> Result<(Component, Origin), CacheError> {
        let path = self.path_for(engine, wasm_sha256);
        if let Some(path) = &path
            && path.exists()
        {
            // SAFETY: the file was written by `store` below from
            // `Component::serialize` of this engine configuration (the
            // compatibility hash is in the name), into a directory created
            // owner-only by this process.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(c) => return Ok((c, Origin::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e}")
                }
            }
        }
        let component =
            Component::new(engine, wasm).map_err(|e| CacheError::Compile(format!("{e:#}")))?;
        if let Some(path) = &path {
            store(path, &component);
        }
        Ok((component, Origin::Compiled))
    }
}

fn store(path: &Path, component: &Component) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), "cannot write compile cache: {e}");
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// sha256 of bytes as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(component (core module (func (export "f"))))"#;

    #[test]
    fn the_second_load_comes_from_the_cache() -> Result<(), Box<dyn std::error::Error>> {
        let engine = crate::sandbox::new_engine()?;
        let dir = tempfile::tempdir()?;
        let cache = CompileCache::at(dir.path().join("cache"));
        let wasm = wat::parse_str(WAT)?;
        let digest = sha256_hex(&wasm);
        assert_eq!(cache.load(&engine, &wasm, &digest)?.1, Origin::Compiled);
        assert_eq!(cache.load(&engine, &wasm, &digest)?.1, Origin::Cached);
        let entries = std::fs::read_dir(dir.path().join("cache"))?.count();
        assert_eq!(entries, 1, "one artifact, no temp files left");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cache"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "cache dir is owner-only");
        Ok(())
    }

    #[test]
    fn a_corrupt_entry_is_ignored_and_recompiled() -> Result<(), Box<dyn std::error::Error>> {
        let engine = crate::sandbox::new_engine()?;
        let dir = tempfile::tempdir()?;
        let cache = CompileCache::at(dir.path());
        let wasm = wat::parse_str(WAT)?;
        let digest = sha256_hex(&wasm);
        cache.load(&engine, &wasm, &digest)?;
        for entry in std::fs::read_dir(dir.path())? {
            std::fs::write(entry?.path(), b"garbage")?;
        }
        assert_eq!(cache.load(&engine, &wasm, &digest)?.1, Origin::Compiled);
        Ok(())
    }
}

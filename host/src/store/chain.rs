//! What makes the audit chain tamper-evident against someone who can write
//! the database: a key and an anchor that both live outside it.
//!
//! - **The key.** Each record's hash is an HMAC-SHA256 under a key read from
//!   a file (`--audit-key-file`, a mounted Secret in Kubernetes; by default
//!   `audit.key` in the data directory, created 0600 on first use). Without
//!   the key, an edited record cannot be given a valid hash, and neither can
//!   a whole chain re-hashed after an edit.
//! - **The anchor.** After every committed append the store writes
//!   `SEQ HASH` to `audit.head`, an append-only file beside the database,
//!   and logs it. A chain that is shorter than its anchored head (the last
//!   record or any suffix deleted, the table dropped, the database file
//!   emptied or replaced) is detected, which no check inside the database
//!   alone can do. A head copied from the log can be checked too
//!   (`audit verify --head SEQ:HASH`).
//!
//! What neither can detect: someone holding the key and the anchor file
//! rewriting both. SECURITY.md lists the tamper kinds and what catches each.

use super::StoreError;
use hmac::{Hmac, Mac};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The key file's default name in the data directory.
pub const KEY_FILE: &str = "audit.key";
/// The anchor file's name in the data directory.
pub const HEAD_FILE: &str = "audit.head";
/// The shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 16;
/// How much of the anchor file's end is read for its newest head.
const HEAD_TAIL_BYTES: u64 = 64 * 1024;

/// The chain's key and, for a store on disk, its anchor file.
#[derive(Clone)]
pub struct Chain {
    key: Vec<u8>,
    head_file: Option<PathBuf>,
    /// Whether a missing anchor file with records in the chain is a break.
    /// True beside SQLite (the anchor is written next to the database);
    /// false for a shared PostgreSQL store, whose other replicas anchor in
    /// their own data directories (check a head from the log there).
    anchor_required: bool,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("key", &"[hidden]")
            .field("head_file", &self.head_file)
            .field("anchor_required", &self.anchor_required)
            .finish()
    }
}

/// A chain head: how many records there are and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    /// `SEQ:HASH` (as logged and printed) or `SEQ HASH` (as in the file).
    fn from_str(s: &str) -> Result<Self, String> {
        let (seq, hash) = s
            .trim()
            .split_once([':', ' '])
            .ok_or_else(|| format!("{s:?}: expected SEQ:HASH"))?;
        let seq = seq
            .parse::<u64>()
            .map_err(|e| format!("{s:?}: the sequence number: {e}"))?;
        let hash = hash.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{s:?}: the hash must be 64 hex digits"));
        }
        Ok(Head {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl Chain {
    pub fn new(key: Vec<u8>, head_file: Option<PathBuf>) -> Self {
        let anchor_required = head_file.is_some();
        Chain {
            key,
            head_file,
            anchor_required,
        }
    }

    /// A chain whose anchor file may be missing here (a replica of a
    /// shared store that has not appended yet).
    pub fn anchor_optional(mut self) -> Self {
        self.anchor_required = false;
        self
    }

    pub fn anchor_required(&self) -> bool {
        self.anchor_required
    }

    /// A random key and no anchor: in-memory stores, whose chain lives and
    /// dies with the process.
    pub fn ephemeral() -> Self {
        let mut key = vec![0u8; 32];
        // A failed draw still leaves a per-process key of zeros: the chain
        // is then unkeyed, which an in-memory store can afford.
        let _ = getrandom::fill(&mut key);
        Chain::new(key, None)
    }

    /// The chain of a store whose data directory is `dir`: the key from
    /// `key_file`, else `dir/audit.key` (created when `create` and missing),
    /// anchored in `dir/audit.head`.
    pub fn for_dir(dir: &Path, key_file: Option<&Path>, create: bool) -> Result<Self, StoreError> {
        let key = match key_file {
            Some(file) => read_key(file)?,
            None => {
                let file = dir.join(KEY_FILE);
                if create && !file.exists() {
                    create_key(&file)?;
                }
                read_key(&file)?
            }
        };
        Ok(Chain::new(key, Some(dir.join(HEAD_FILE))))
    }

    /// The hash of a record's content and its link to the previous record.
    pub fn hash(
        &self,
        seq: u64,
        at: &str,
        incident: Option<&str>,
        kind: &str,
        body: &str,
        prev_hash: &str,
    ) -> String {
        // `new_from_slice` accepts any key length for HMAC.
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        for part in [
            seq.to_string().as_str(),
            at,
            incident.unwrap_or(""),
            kind,
            body,
            prev_hash,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Records a committed head outside the database: the anchor file and
    /// the log. Called after the append's commit, so the anchor may lag the
    /// database (after a crash) but is never ahead of it.
    pub fn anchor(&self, head: &Head) -> Result<(), StoreError> {
        tracing::debug!(target: "runwarden::audit", head = %head, "audit chain head");
        let Some(file) = &self.head_file else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| StoreError::Db(format!("audit anchor {}: {e}", file.display())))?;
        f.write_all(format!("{} {}\n", head.seq, head.hash).as_bytes())
            .map_err(|e| StoreError::Db(format!("audit anchor {}: {e}", file.display())))
    }

    /// Where the anchor is kept, if anywhere.
    pub fn head_file(&self) -> Option<&Path> {
        self.head_file.as_deref()
    }

    /// The newest head in the anchor file: `Ok(None)` when the store is
    /// not anchored or the file does not exist.
    pub fn anchored_head(&self) -> Result<Option<Head>, StoreError> {
        let Some(file) = &self.head_file else {
            return Ok(None);
        };
        let mut f = match std::fs::File::open(file) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Db(format!("{}: {e}", file.display()))),
        };
        let io = |e: std::io::Error| StoreError::Db(format!("{}: {e}", file.display()));
        let len = f.metadata().map_err(io)?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(HEAD_TAIL_BYTES)))
            .map_err(io)?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).map_err(io)?;
        // Appends from several writers may interleave: the newest head is
        // the highest sequence. A torn last line (a crash mid-write) is
        // skipped.
        Ok(String::from_utf8_lossy(&tail)
            .lines()
            .filter_map(|l| l.parse::<Head>().ok())
            .max_by_key(|h| h.seq))
    }
}

fn read_key(file: &Path) -> Result<Vec<u8>, StoreError> {
    let bytes = crate::files::read_bytes(file, 4096)
        .map_err(|e| StoreError::Db(format!("audit key: {e}")))?;
    let key = bytes.trim_ascii().to_vec();
    if key.len() < MIN_KEY_BYTES {
        return Err(StoreError::Db(format!(
            "audit key {}: {} bytes; at least {MIN_KEY_BYTES} are needed",
            file.display(),
            key.len()
        )));
    }
    Ok(key)
}

/// 32 random bytes, hex, readable by the owner only. Two processes racing
/// to create it: the loser reads the winner's.
fn create_key(file: &Path) -> Result<(), StoreError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| StoreError::Db(format!("audit key: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(mut f) => f
            .write_all(format!("{}\n", hex::encode(key)).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| StoreError::Db(format!("audit key {}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(format!("audit key {}: {e}", file.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_key_gives_a_different_hash() {
        let a = Chain::new(b"0123456789abcdef".to_vec(), None);
        let b = Chain::new(b"0123456789abcdeF".to_vec(), None);
        let h = |c: &Chain| c.hash(1, "t", None, "k", "{}", super::super::audit::GENESIS);
        assert_eq!(h(&a), h(&a));
        assert_ne!(h(&a), h(&b));
    }

    #[test]
    fn the_newest_head_wins_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::for_dir(dir.path(), None, true).unwrap();
        assert_eq!(chain.anchored_head().unwrap(), None);
        let h = |seq| Head {
            seq,
            hash: format!("{seq:064x}"),
        };
        for seq in [1, 3, 2] {
            chain.anchor(&h(seq)).unwrap();
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(HEAD_FILE))
            .unwrap();
        f.write_all(b"9 00ab").unwrap();
        assert_eq!(chain.anchored_head().unwrap(), Some(h(3)));
    }

    #[test]
    fn keys_are_created_once_and_short_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Chain::for_dir(dir.path(), None, false).is_err());
        let a = Chain::for_dir(dir.path(), None, true).unwrap();
        let b = Chain::for_dir(dir.path(), None, true).unwrap();
        assert_eq!(a.key, b.key);
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abc\n").unwrap();
        let e = Chain::for_dir(dir.path(), Some(&short), false).unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
    }

    #[test]
    fn heads_parse_from_the_log_and_the_file() {
        let hash = "ab".repeat(32);
        assert_eq!(
            format!("7:{hash}").parse::<Head>().unwrap(),
            Head {
                seq: 7,
                hash: hash.clone()
            }
        );
        assert!(format!("7 {hash}").parse::<Head>().is_ok());
        assert!("7:abc".parse::<Head>().is_err());
        assert!("x:abc".parse::<Head>().is_err());
    }
}

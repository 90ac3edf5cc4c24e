//! Reading the operator's files: policies, manifests, components, runbooks,
//! the access file, keys.
//!
//! Opening a FIFO for reading blocks until a writer appears, and a device
//! or a huge file can hold the agent's start-up forever. So each path is
//! looked at before it is opened: only a regular file (after symlinks) no
//! larger than the limit for its kind is read.

use std::io::Read as _;
use std::path::Path;

/// Text files (TOML, keys, tokens).
pub const MAX_TEXT_BYTES: u64 = 4 << 20;
/// WebAssembly components (componentize-py's are ~18 MB).
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Why a file was not read. The message names neither Rust types nor the
/// OS error twice.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: is {what}, not a regular file")]
    NotAFile { path: String, what: &'static str },
    #[error("{path}: {size} bytes is over the {limit}-byte limit for this kind of file")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not UTF-8 text")]
    NotText { path: String },
}

impl FileError {
    /// What is wrong, without the path (for callers that name it already).
    pub fn reason(&self) -> String {
        match self {
            FileError::Unreadable { reason, .. } => reason.clone(),
            FileError::NotAFile { what, .. } => format!("is {what}, not a regular file"),
            FileError::TooLarge { size, limit, .. } => {
                format!("{size} bytes is over the {limit}-byte limit for this kind of file")
            }
            FileError::NotText { .. } => "not UTF-8 text".into(),
        }
    }
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The OS's reason without Rust's "(os error N)" suffix.
fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// A directory that could not be listed.
pub fn unreadable_dir(path: &Path, e: &std::io::Error) -> FileError {
    FileError::Unreadable {
        path: path.display().to_string(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "no such directory".into(),
            _ => reason(e),
        },
    }
}

/// The bytes of a regular file of at most `limit` bytes.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| FileError::Unreadable {
        path: shown.clone(),
        reason: reason(&e),
    })?;
    if !meta.is_file() {
        return Err(FileError::NotAFile {
            path: shown,
            what: kind_of(&meta),
        });
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge {
            path: shown,
            size: meta.len(),
            limit,
        });
    }
    let file = std::fs::File::open(path).map_err(|e| FileError::Unreadable {
        path: shown.clone(),
        reason: reason(&e),
    })?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may have grown since the look: read no more than the limit.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Unreadable {
            path: shown.clone(),
            reason: reason(&e),
        })?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: shown,
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// A regular text file of at most [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path) -> Result<String, FileError> {
    let bytes = read_bytes(path, MAX_TEXT_BYTES)?;
    String::from_utf8(bytes).map_err(|_| FileError::NotText {
        path: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_without_opening_them() {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let fifo = dir.path().join("policy.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Would block forever if it were opened.
            let e = read_text(&fifo)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("is a FIFO, not a regular file"), "{e}");
        }
        let e = read_text(Path::new("/dev/zero"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("a device")));
        let e = read_text(dir.path()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("a directory")));
        let e = read_text(&dir.path().join("absent.toml"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!(
                "{}: no such file",
                dir.path().join("absent.toml").display()
            ))
        );
    }

    #[test]
    fn large_files_are_refused() {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let big = dir.path().join("big.toml");
        if std::fs::write(&big, vec![b'a'; 2048]).is_ok() {
            let e = read_bytes(&big, 1024).err().map(|e| e.to_string());
            assert!(e.is_some_and(|e| e.contains("over the 1024-byte limit")));
            assert!(read_bytes(&big, 4096).is_ok());
        }
    }
}

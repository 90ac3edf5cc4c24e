//! `runwarden serve` as a process, the way an operator runs it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Agent {
    pub child: Child,
    pub base: String,
    /// What it logged until it listened.
    pub stderr: Vec<String>,
    /// What it logged since (kept as it comes).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Agent {
    /// Everything logged after start-up so far, one string.
    pub fn logged(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

/// Starts `runwarden serve` and waits until it listens. The caller kills
/// and waits for it; a failing test leaves it to the test harness's exit.
pub fn serve(root: &Path) -> Agent {
    serve_with(
        root,
        &["--access", "access.toml", "--insecure-local-webhooks"],
    )
}

/// `runwarden serve` in `root` (its `policies`, `runbooks`, `data`) with
/// these extra arguments.
pub fn serve_with(root: &Path, extra: &[&str]) -> Agent {
    serve_env(root, extra, &[])
}

/// Like [`serve_with`], with environment variables (e.g. `KUBECONFIG`).
#[allow(clippy::zombie_processes)]
pub fn serve_env(root: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Agent {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runwarden"))
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .args([
            "--policies",
            "policies",
            "--runbooks",
            "runbooks",
            "--data-dir",
            "data",
        ])
        .args(["--cache-dir"])
        .arg(super::workspace().join("target/runwarden-test-cache"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(if extra.contains(&"--group-wait-ms") {
            &[][..]
        } else {
            &["--group-wait-ms", "0"][..]
        })
        .args(extra)
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runwarden serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("serve exited: {stderr:?}"))
            .unwrap();
        stderr.push(line.clone());
        if let Some(rest) = line.strip_prefix("runwarden serving on ") {
            let base = rest.split_whitespace().next().unwrap().to_string();
            // Keep draining stderr so the child never blocks on a full pipe.
            let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let keep = log.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if let Ok(mut l) = keep.lock() {
                        l.push(line);
                    }
                }
            });
            return Agent {
                child,
                base,
                stderr,
                log,
            };
        }
    }
}

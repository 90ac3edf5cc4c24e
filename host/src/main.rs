//! The `runwarden` command line. Errors become readable messages here;
//! everything below returns typed errors.

mod cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // `runwarden rbac | head` must end quietly, as other Unix tools do,
    // not panic in `println!` on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal at start-up,
    // before any thread of ours exists to observe it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Both of rustls's crypto providers end up enabled through the
    // dependency graph (kube, reqwest); with two and none installed, rustls
    // panics at the first TLS connection. Install one, explicitly, first.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let args = cli::Cli::parse_args();
    runwarden::telemetry::init_logs(args.log_format(), args.is_server());
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            std::process::ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause once: library errors often name
/// their source in their own message already.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

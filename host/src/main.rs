//! The `runwarden` command line. Errors become readable messages here;
//! everything below returns typed errors.

mod cli;

use clap::Parser;

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
    let args = cli::Cli::parse();
    runwarden::telemetry::init_logs(args.log_format());
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

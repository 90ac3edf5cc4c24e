//! `runwarden policy check`: validate every policy without running anything.

use super::Cli;
use clap::Subcommand;
use runwarden::pipeline::autonomy::AutonomyPolicy;
use runwarden::registry::Registry;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate everything the agent loads: every plugin policy and manifest
    /// (digests, signatures, imports against the effective grants), the
    /// autonomy policy, the runbooks (and that each action names a loaded
    /// plugin's tool), and the access file if given. Runs no plugin code
    /// beyond each tool plugin's read-only `describe`. Exit 1 on any error.
    Check {
        /// The access file `serve --access` would read.
        #[arg(long)]
        access: Option<std::path::PathBuf>,
    },
}

pub async fn run(cli: &Cli, cmd: &PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { access } => {
            let engine = runwarden::sandbox::new_engine()?;
            let (services, _) = cli.services().await?;
            let (registry, problems) =
                Registry::load(engine, &cli.cache(), &cli.policies, services)?;
            for p in registry.plugins() {
                let caps: Vec<String> = p
                    .policy
                    .effective
                    .names()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                println!(
                    "ok      {:<20} {:<16} grants: {}",
                    p.name(),
                    p.kind().to_string(),
                    if caps.is_empty() {
                        "none".into()
                    } else {
                        caps.join(", ")
                    }
                );
            }
            let mut errors: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let plugins_ok = registry.plugins().count();
            let autonomy_path = cli.policies.join(runwarden::policy::load::AUTONOMY_FILE);
            match AutonomyPolicy::load(&autonomy_path) {
                Ok(a) => println!(
                    "ok      {:<20} mode {:?}, version {}, {} rule(s)",
                    "autonomy",
                    a.mode,
                    a.version,
                    a.actions.len()
                ),
                Err(e) => errors.push(e.to_string()),
            }
            match runwarden::analysis::runbook::load_dir(&cli.runbooks) {
                Ok(runbooks) => {
                    let wrong =
                        runwarden::pipeline::check_runbook_actions(&registry, &runbooks).await;
                    println!(
                        "{:<7} {:<20} {} runbook(s) in {}",
                        if wrong.is_empty() { "ok" } else { "error" },
                        "runbooks",
                        runbooks.len(),
                        cli.runbooks.display()
                    );
                    errors.extend(wrong);
                }
                Err(e) => errors.push(e.to_string()),
            }
            match runwarden::analysis::senders::SenderMaps::load(&cli.runbooks) {
                Ok(m) => println!(
                    "ok      {:<20} {} mapping(s) for free-text senders",
                    "senders",
                    m.maps.len()
                ),
                Err(e) => errors.push(e.to_string()),
            }
            if let Some(path) = access {
                match runwarden::server::Access::load(path) {
                    Ok(_) => println!("ok      {:<20} {}", "access", path.display()),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            for e in &errors {
                println!("error   {e}");
            }
            println!("{plugins_ok} plugin policies ok; {} error(s)", errors.len());
            Ok(if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

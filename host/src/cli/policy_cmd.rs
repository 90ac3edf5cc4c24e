//! `runwarden policy check`: validate every policy without running anything.

use super::Cli;
use clap::Subcommand;
use runwarden::registry::Registry;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Parse every policy and manifest, check digests, compile components and
    /// check their imports against the effective grants. Runs no plugin code.
    Check,
}

pub async fn run(cli: &Cli, cmd: &PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check => {
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
            for e in &problems {
                println!("error   {e}");
            }
            println!(
                "{} policies ok, {} with errors",
                registry.plugins().count(),
                problems.len()
            );
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

//! `runwarden bench`: the benchmarks of BENCHMARKS.md in one run.

use super::Cli;
use runwarden::bench::{self, Row};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Interleaved rounds per comparison.
    #[arg(long, default_value_t = 40)]
    rounds: usize,
    /// Calls per arm per round.
    #[arg(long, default_value_t = 25)]
    per_round: usize,
    /// Cold/warm start pairs.
    #[arg(long, default_value_t = 3)]
    cold_rounds: usize,
    /// Context sources gathered at once in the fan-out benchmark.
    #[arg(long, default_value_t = 8)]
    fan_out_sources: usize,
    /// Intake: requests per arm and run, alerts per request, connections.
    #[arg(long, default_value_t = 300)]
    intake_requests: usize,
    #[arg(long, default_value_t = 100)]
    intake_batch: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Alerts in the intake storm.
    #[arg(long, default_value_t = 100_000)]
    storm: usize,
    /// Skip the intake benchmark (it needs Debian's prometheus-alertmanager).
    #[arg(long)]
    no_intake: bool,
    /// Plugins held for the idle-memory benchmark.
    #[arg(long, default_value_t = 20)]
    idle_plugins: usize,
    #[arg(long)]
    json: bool,
}

pub async fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let cache = cli.cache();
    let mut rows: Vec<Row> = Vec::new();
    // First, while the process holds nothing else: resident memory of idle
    // plugins.
    rows.extend(
        bench::startup::idle_memory(&cli.policies, &cache, args.idle_plugins)
            .map_err(anyhow::Error::msg)?,
    );
    let setup = bench::toolcall::setup(&cli.policies, &cache).map_err(anyhow::Error::msg)?;
    // Warm up: compile caches, page in the code.
    bench::toolcall::tool_call(&setup, 2, 10)
        .await
        .map_err(anyhow::Error::msg)?;
    rows.extend(
        bench::toolcall::tool_call(&setup, args.rounds, args.per_round)
            .await
            .map_err(anyhow::Error::msg)?,
    );
    rows.extend(
        bench::toolcall::instantiation(&setup, args.rounds, args.per_round)
            .await
            .map_err(anyhow::Error::msg)?,
    );
    rows.extend(
        bench::pipeline::fan_out(
            &cli.policies,
            &cache,
            args.fan_out_sources,
            std::time::Duration::from_millis(50),
            args.rounds.min(20),
        )
        .await
        .map_err(anyhow::Error::msg)?,
    );
    let base = runwarden::replay::ReplayBase {
        data_dir: None,
        policies: &cli.policies,
        runbooks: &cli.runbooks,
        cache: &cache,
        llm: None,
    };
    rows.extend(
        bench::pipeline::alert_to_decision(std::path::Path::new("scenarios"), &base)
            .await
            .map_err(anyhow::Error::msg)?,
    );
    rows.extend(
        bench::investigation::step_overhead(
            &cli.policies,
            &cli.runbooks,
            &cache,
            args.rounds.min(20),
            args.per_round,
        )
        .await
        .map_err(anyhow::Error::msg)?,
    );
    if !args.no_intake {
        let agent = std::sync::Arc::new(
            cli.open_agent(runwarden::pipeline::AgentConfig::default())
                .await?,
        );
        let load = bench::intake::Load {
            connections: args.connections,
            requests: args.intake_requests,
            batch: args.intake_batch,
        };
        rows.extend(
            bench::intake::intake(agent, &load, args.storm)
                .await
                .map_err(anyhow::Error::msg)?,
        );
    }
    rows.extend(
        bench::startup::cold_start(&cli.policies, args.cold_rounds).map_err(anyhow::Error::msg)?,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", bench::render(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

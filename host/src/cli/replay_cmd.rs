//! `runwarden replay DIR...`: with `--data-dir`, each scenario's store is
//! kept under `DIR/<scenario>` for `report` and `audit verify` afterwards.

use super::Cli;
use runwarden::replay::{self, ReplayBase};
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(cli: &Cli, dirs: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let scenario_dirs = replay::discover(dirs)?;
    let cache = cli.cache();
    let base = ReplayBase {
        policies: &cli.policies,
        runbooks: &cli.runbooks,
        cache: &cache,
        llm: runwarden::analysis::llm::LlmConfig::from_env().map_err(anyhow::Error::msg)?,
        data_dir: cli.data_dir_given.then_some(cli.data_dir.as_path()),
    };
    let bar = (scenario_dirs.len() > 3 && !json).then(|| {
        let bar = indicatif::ProgressBar::new(scenario_dirs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for dir in &scenario_dirs {
        if let Some(bar) = &bar {
            bar.set_message(dir.display().to_string());
        }
        match replay::run(dir, &base).await {
            Ok(r) => results.push(r),
            Err(e) => errors.push(e.to_string()),
        }
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"results": results, "errors": errors})
            )?
        );
    } else {
        print!("{}", replay::table(&results));
        for e in &errors {
            println!("ERROR {e}");
        }
        let passed = results.iter().filter(|r| r.passed()).count();
        let unsafe_total: usize = results.iter().map(|r| r.unsafe_actions.len()).sum();
        println!(
            "\n{passed} passed, {} failed; {unsafe_total} unsafe actions",
            results.len() - passed + errors.len()
        );
    }
    let ok = errors.is_empty() && results.iter().all(|r| r.passed());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

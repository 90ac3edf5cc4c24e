//! Benchmarks 3 and 7: starting with and without the compile cache, and the
//! resident memory of many loaded, idle plugins.

use super::Row;
use crate::registry::Registry;
use crate::sandbox::cache::CompileCache;
use crate::sandbox::state::HostServices;
use std::path::Path;
use std::time::{Duration, Instant};

fn services() -> HostServices {
    super::sim_services().1
}

fn load_all(policies: &Path, cache: &CompileCache) -> Result<(Duration, usize), String> {
    let engine = crate::sandbox::new_engine().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let (registry, problems) =
        Registry::load(engine, cache, policies, services()).map_err(|e| e.to_string())?;
    let elapsed = t.elapsed();
    if let Some(p) = problems.first() {
        return Err(p.to_string());
    }
    Ok((elapsed, registry.plugins().count()))
}

/// Benchmark 3: every first-party plugin compiled vs loaded from the cache.
pub fn cold_start(policies: &Path, rounds: usize) -> Result<Vec<Row>, String> {
    let mut cold = super::Samples::default();
    let mut warm = super::Samples::default();
    let mut count = 0;
    for _ in 0..rounds {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cache = CompileCache::at(dir.path());
        let (c, n) = load_all(policies, &cache)?;
        let (w, _) = load_all(policies, &cache)?;
        cold.0.push(c);
        warm.0.push(w);
        count = n;
    }
    let bench = "3 cold start";
    let cold = Row::new(bench, &format!("compile {count} plugins"), &cold);
    let warm = Row::new(bench, &format!("{count} plugins from cache"), &warm).against(&cold);
    let speedup = warm.ratio.map(|r| 1.0 / r).unwrap_or(0.0);
    let warm = warm.target(
        &format!(">= 10x faster (got {speedup:.0}x)"),
        speedup >= 10.0,
    );
    Ok(vec![cold, warm])
}

/// Resident set size of this process, from /proc (Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Benchmark 7: resident memory with `n` plugins loaded and idle (the
/// first-party policies loaded again and again until `n` are held).
pub fn idle_memory(policies: &Path, cache: &CompileCache, n: usize) -> Result<Vec<Row>, String> {
    let before = rss_bytes().unwrap_or(0);
    // One engine for the process, as `runwarden serve` has.
    let engine = crate::sandbox::new_engine().map_err(|e| e.to_string())?;
    let mut held = Vec::new();
    let mut loaded = 0;
    while loaded < n {
        let (registry, _) = Registry::load(engine.clone(), cache, policies, services())
            .map_err(|e| e.to_string())?;
        loaded += registry.plugins().count();
        held.push(registry);
    }
    let after = rss_bytes().unwrap_or(0);
    drop(held);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let row = Row {
        benchmark: "7 idle memory".into(),
        arm: format!("process RSS, {loaded} plugins loaded"),
        median_us: 0.0,
        p99_us: 0.0,
        ratio: None,
        baseline: None,
        target: Some(format!(
            "<= 100 MiB (RSS {:.1} MiB; {:.1} MiB before loading)",
            mib(after),
            mib(before)
        )),
        met: Some(mib(after) <= 100.0),
    };
    Ok(vec![row])
}

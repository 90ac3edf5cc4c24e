//! `runwarden bench`: the performance questions of BENCHMARKS.md, each
//! answered as a ratio between arms measured in the same run.
//!
//! These machines are noisy, so absolute times drift between runs; arms of
//! one comparison run interleaved (round-robin, many rounds), and the table
//! reports medians, p99 and the ratio to the baseline arm.

pub mod intake;
pub mod investigation;
pub mod pipeline;
pub mod startup;
pub mod toolcall;

use crate::capability::k8s::sim::SimulatedCluster;
use crate::capability::secrets::StaticSecretStore;
use crate::sandbox::state::HostServices;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The demo's simulated cluster and no secrets: what every benchmark runs on.
pub fn sim_services() -> (Arc<SimulatedCluster>, HostServices) {
    let cluster = Arc::new(SimulatedCluster::demo());
    let services = HostServices {
        cluster: cluster.clone(),
        secrets: Arc::new(StaticSecretStore::default()),
    };
    (cluster, services)
}

/// Per-call samples of one arm.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    pub fn quantile(&self, q: f64) -> Duration {
        let v = self.sorted();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i.min(v.len() - 1)]
    }

    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub benchmark: String,
    pub arm: String,
    pub median_us: f64,
    pub p99_us: f64,
    /// Median over the baseline arm's median, if this arm has a baseline.
    pub ratio: Option<f64>,
    pub baseline: Option<String>,
    /// The target, in words, and whether this run met it.
    pub target: Option<String>,
    pub met: Option<bool>,
}

impl Row {
    pub fn new(benchmark: &str, arm: &str, s: &Samples) -> Row {
        Row {
            benchmark: benchmark.into(),
            arm: arm.into(),
            median_us: micros(s.median()),
            p99_us: micros(s.quantile(0.99)),
            ratio: None,
            baseline: None,
            target: None,
            met: None,
        }
    }

    pub fn against(mut self, baseline: &Row) -> Row {
        if baseline.median_us > 0.0 {
            self.ratio = Some(self.median_us / baseline.median_us);
            self.baseline = Some(baseline.arm.clone());
        }
        self
    }

    pub fn target(mut self, text: &str, met: bool) -> Row {
        self.target = Some(text.into());
        self.met = Some(met);
        self
    }
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The table for people.
pub fn render(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<18} {:<36} {:>12} {:>12} {:>30}  target",
        "benchmark", "arm", "median", "p99", "ratio"
    );
    for r in rows {
        let ratio = match (&r.ratio, &r.baseline) {
            (Some(x), Some(b)) => format!("{x:.2}x {b}"),
            _ => String::new(),
        };
        let target = match (&r.target, r.met) {
            (Some(t), Some(true)) => format!("{t} (met)"),
            (Some(t), Some(false)) => format!("{t} (MISSED)"),
            (Some(t), None) => t.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "{:<18} {:<36} {:>10.1}us {:>10.1}us {:>30}  {target}",
            r.benchmark, r.arm, r.median_us, r.p99_us, ratio
        );
    }
    o
}

/// Round-robin over arms: `rounds` rounds of `per_round` calls each, so
/// every arm sees the same machine conditions.
pub async fn interleave<const N: usize>(
    rounds: usize,
    per_round: usize,
    mut arms: [&mut (dyn ArmRunner + Send); N],
) -> Result<[Samples; N], String> {
    let mut out: [Samples; N] = std::array::from_fn(|_| Samples::default());
    for _ in 0..rounds {
        for (i, arm) in arms.iter_mut().enumerate() {
            for _ in 0..per_round {
                let t = std::time::Instant::now();
                arm.once().await?;
                out[i].0.push(t.elapsed());
            }
        }
    }
    Ok(out)
}

/// One arm of a comparison: one call per `once`.
#[async_trait::async_trait]
pub trait ArmRunner {
    async fn once(&mut self) -> Result<(), String>;
}

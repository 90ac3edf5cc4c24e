//! The sandbox: one wasmtime engine shared by every plugin, tuned for many
//! short, isolated calls.
//!
//! - **Fresh store per call**, from an `InstancePre`: nothing survives from
//!   one incident to the next, and instantiation is cheap (pooling
//!   allocator, copy-on-write memory images).
//! - **CPU**: epoch interruption. A ticker thread advances the epoch every
//!   [`EPOCH_TICK`]; each store traps once its deadline has passed. Epochs are
//!   cheap and safe against malicious guests (fuel is for determinism).
//! - **Memory**: a [`limits::MemoryBudget`] counts every linear memory and
//!   table of the instance against one budget (a component can have several
//!   memories; per-memory limits would multiply the budget).
//! - **Compiled code** is cached on disk keyed by the wasm's sha256 and the
//!   engine's compatibility hash ([`cache`]).

pub mod cache;
pub mod fault;
pub mod limits;
pub mod state;

use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Largest single linear memory any plugin may have; policy budgets are
/// enforced below this by the limiter.
const MAX_MEMORY_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
}

/// Builds the engine every plugin runs on and starts its epoch ticker.
pub fn new_engine() -> Result<Engine, SandboxError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Guest stack overflow must trap inside the fiber's stack.
    config.max_wasm_stack(512 * 1024);
    config.async_stack_size(2 * 1024 * 1024);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(512)
        .total_memories(256)
        .total_tables(512)
        .max_memories_per_component(8)
        .max_memories_per_module(4)
        .max_memory_size(MAX_MEMORY_BYTES)
        .total_stacks(256);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(|e| SandboxError::Engine(e.to_string()))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("runwarden-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| {
            tracing::error!(
                "cannot start the epoch ticker: {e}; calls will hit their deadline at once"
            )
        });
}

/// Epoch ticks for a wall-clock deadline (at least one).
pub fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1);
    u64::try_from(timeout.as_millis() / tick)
        .unwrap_or(u64::MAX)
        .max(1)
        + 1
}

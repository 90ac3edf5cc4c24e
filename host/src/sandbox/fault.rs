//! Plugin faults: why the sandbox stopped a call.

use crate::bindings::types::Error as PluginError;

/// The sandbox stopped the plugin. The host keeps serving; the next call gets
/// a fresh instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum PluginFault {
    #[error("deadline of {limit_ms} ms exceeded")]
    Timeout { limit_ms: u64 },
    #[error("memory limit of {limit_mib} MiB exhausted")]
    MemoryLimit { limit_mib: u64 },
    #[error("stack overflow")]
    StackOverflow,
    #[error("trapped: {reason}")]
    Trap { reason: String },
    #[error("output of {bytes} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge { bytes: usize, limit: usize },
    #[error("invalid output: {reason}")]
    InvalidOutput { reason: String },
    #[error("cannot instantiate: {reason}")]
    Instantiate { reason: String },
}

impl PluginFault {
    /// The fault's name, as serialised: a metric label, a log field.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFault::Timeout { .. } => "timeout",
            PluginFault::MemoryLimit { .. } => "memory-limit",
            PluginFault::StackOverflow => "stack-overflow",
            PluginFault::Trap { .. } => "trap",
            PluginFault::OutputTooLarge { .. } => "output-too-large",
            PluginFault::InvalidOutput { .. } => "invalid-output",
            PluginFault::Instantiate { .. } => "instantiate",
        }
    }
}

/// Why a call did not return a result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin ran and returned a typed error (which may be a policy
    /// denial it received from a capability).
    #[error("plugin returned {}", describe(.0))]
    Plugin(PluginError),
    #[error("plugin fault: {0}")]
    Fault(PluginFault),
}

fn describe(e: &PluginError) -> String {
    match e {
        PluginError::Denied(r) => format!("denied: {r}"),
        PluginError::InvalidInput(r) => format!("invalid-input: {r}"),
        PluginError::Unavailable(r) => format!("unavailable: {r}"),
        PluginError::Failed(r) => format!("failed: {r}"),
    }
}

/// Turns a wasmtime error from a call into the fault it represents.
pub fn classify(err: &wasmtime::Error, memory_refused: bool, limit_mib: u64) -> PluginFault {
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginFault::Timeout { limit_ms: 0 },
        Some(wasmtime::Trap::StackOverflow) => PluginFault::StackOverflow,
        Some(_) if memory_refused => PluginFault::MemoryLimit { limit_mib },
        Some(trap) => PluginFault::Trap {
            reason: trap.to_string(),
        },
        None if memory_refused => PluginFault::MemoryLimit { limit_mib },
        None => PluginFault::Trap {
            reason: format!("{err:#}")
                .lines()
                .next()
                .unwrap_or("unknown")
                .to_string(),
        },
    }
}

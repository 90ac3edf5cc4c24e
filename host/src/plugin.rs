//! A loaded plugin and the calls into it.
//!
//! Loading checks everything that can be checked without running the plugin:
//! the policy (already digest-checked), that the component exports the world
//! its manifest declares, and that it imports nothing outside its effective
//! grant. Then it links only the granted capabilities and prepares an
//! `InstancePre`. Every call gets a fresh `Store` with the policy's limits;
//! whatever the guest does, the call ends with a result, a typed plugin
//! error, or a [`PluginFault`].

use crate::bindings::source::ContextSourcePre;
use crate::bindings::tool::RemediationToolPre;
use crate::bindings::types::{
    ActionPlan, Alert, Evidence, Outcome, SourceInfo, TimeWindow, ToolCall, ToolSpec,
};
use crate::bindings::v0_1;
use crate::bindings::{config, k8s, log, secrets, types};
use crate::capability::log::LogLine;
use crate::capability::{CallMode, CapabilityCall, Grants, UngrantedImport, check_imports};
use crate::legacy::Conv;
use crate::policy::{Contract, Limits, LoadedPolicy, PluginKind};
use crate::sandbox::cache::{CompileCache, Origin, sha256_hex};
use crate::sandbox::deadline_ticks;
use crate::sandbox::fault::{CallError, PluginFault, classify};
use crate::sandbox::state::{HostServices, PluginState};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{plugin}`: {reason}")]
    Compile { plugin: String, reason: String },
    #[error("plugin `{plugin}` refused: it {}", .imports.iter().map(ToString::to_string).collect::<Vec<_>>().join("; and it "))]
    UngrantedImports {
        plugin: String,
        imports: Vec<UngrantedImport>,
    },
    #[error(
        "plugin `{plugin}` is declared a {kind} but does not export `{expected}` at a contract version this host links (0.2.0, 0.1.0); exports: {found}"
    )]
    WrongWorld {
        plugin: String,
        kind: PluginKind,
        expected: &'static str,
        found: String,
    },
    #[error("plugin `{plugin}`: cannot link: {reason}")]
    Link { plugin: String, reason: String },
}

enum Prepared {
    Tool(RemediationToolPre<PluginState>),
    Source(ContextSourcePre<PluginState>),
    ToolV01(v0_1::tool::RemediationToolPre<PluginState>),
    SourceV01(v0_1::source::ContextSourcePre<PluginState>),
}

/// A component's imports and exports, by name.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Interfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Interfaces {
    pub fn of(engine: &Engine, component: &Component) -> Self {
        let ty = component.component_type();
        Interfaces {
            imports: ty
                .imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        }
    }
}

/// A plugin ready to be called.
pub struct Plugin {
    pub policy: LoadedPolicy,
    pub interfaces: Interfaces,
    pub compiled: Origin,
    pub sha256: String,
    /// The contract version the component was built against.
    pub contract: Contract,
    engine: Engine,
    prepared: Prepared,
    config: std::sync::Arc<std::collections::BTreeMap<String, String>>,
}

/// What the host observed during one call, besides its result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallReport {
    pub capability_calls: Vec<CapabilityCall>,
    pub logs: Vec<LogLine>,
    pub logs_dropped: u64,
    pub stderr: String,
    pub memory_bytes: usize,
    #[serde(serialize_with = "as_micros")]
    pub elapsed: Duration,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_micros())
}

/// The outcome of one call: its result and what happened on the way.
#[derive(Debug)]
pub struct Called<T> {
    pub result: Result<T, CallError>,
    pub report: CallReport,
}

/// Loads a plugin whose policy has been loaded (and digest-checked).
pub fn load(
    engine: &Engine,
    cache: &CompileCache,
    policy: LoadedPolicy,
) -> Result<Plugin, LoadError> {
    let name = policy.name().to_string();
    let sha256 = sha256_hex(&policy.component);
    let (component, compiled) = cache
        .load(engine, &policy.component, &sha256)
        .map_err(|e| LoadError::Compile {
            plugin: name.clone(),
            reason: e.to_string(),
        })?;
    let interfaces = Interfaces::of(engine, &component);

    let kind = policy.manifest.plugin.kind;
    let Some(contract) = kind.contract_of(&interfaces.exports) else {
        return Err(LoadError::WrongWorld {
            plugin: name,
            kind,
            expected: kind.export_name(),
            found: interfaces.exports.join(", "),
        });
    };
    let ungranted = check_imports(
        interfaces.imports.iter().map(String::as_str),
        &policy.effective,
    );
    if !ungranted.is_empty() {
        return Err(LoadError::UngrantedImports {
            plugin: name,
            imports: ungranted,
        });
    }

    let link_err = |e: wasmtime::Error| LoadError::Link {
        plugin: name.clone(),
        reason: format!("{e:#}"),
    };
    let linker = granted_linker(engine, &policy.effective).map_err(link_err)?;
    let pre = linker.instantiate_pre(&component).map_err(link_err)?;
    let prepared = match (kind, contract) {
        (PluginKind::RemediationTool, Contract::V0_2) => {
            Prepared::Tool(RemediationToolPre::new(pre).map_err(link_err)?)
        }
        (PluginKind::ContextSource, Contract::V0_2) => {
            Prepared::Source(ContextSourcePre::new(pre).map_err(link_err)?)
        }
        (PluginKind::RemediationTool, Contract::V0_1) => {
            Prepared::ToolV01(v0_1::tool::RemediationToolPre::new(pre).map_err(link_err)?)
        }
        (PluginKind::ContextSource, Contract::V0_1) => {
            Prepared::SourceV01(v0_1::source::ContextSourcePre::new(pre).map_err(link_err)?)
        }
    };
    let config = std::sync::Arc::new(policy.file.config.clone());
    Ok(Plugin {
        config,
        policy,
        interfaces,
        compiled,
        sha256,
        contract,
        engine: engine.clone(),
        prepared,
    })
}

/// A linker with WASI (nothing preopened, no sockets) and exactly the
/// capabilities in `grants`, under every contract version the host links.
pub fn granted_linker(engine: &Engine, grants: &Grants) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    types::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
    config::add_to_linker::<PluginState, HasSelf<_>>(&mut linker, |s| &mut s.config)?;
    if grants.k8s.is_some() {
        k8s::add_to_linker::<PluginState, HasSelf<_>>(&mut linker, |s| &mut s.k8s)?;
    }
    if grants.secrets.is_some() {
        secrets::add_to_linker::<PluginState, HasSelf<_>>(&mut linker, |s| &mut s.secrets)?;
    }
    if grants.log.is_some() {
        log::add_to_linker::<PluginState, HasSelf<_>>(&mut linker, |s| &mut s.log)?;
    }
    if grants.http.is_some() {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    }
    crate::legacy::add_to_linker(&mut linker, grants)?;
    Ok(linker)
}

impl types::Host for PluginState {}

/// Rough size of a call's result, to enforce `max_output_kib`.
pub trait OutputSize {
    fn output_size(&self) -> usize;
}

impl OutputSize for Vec<Evidence> {
    fn output_size(&self) -> usize {
        self.iter()
            .map(|e| e.summary.len() + e.body_json.len() + 32)
            .sum()
    }
}
impl OutputSize for Vec<ToolSpec> {
    fn output_size(&self) -> usize {
        self.iter()
            .map(|t| t.name.len() + t.description.len() + t.parameters_schema.len() + 8)
            .sum()
    }
}
impl OutputSize for SourceInfo {
    fn output_size(&self) -> usize {
        self.name.len() + self.description.len() + self.provides.len()
    }
}
fn changes_size(changes: &[types::Change]) -> usize {
    changes
        .iter()
        .map(|c| {
            c.description.len() + 64 + crate::effects::Effect::from(&c.effect).describe().len()
        })
        .sum()
}
impl OutputSize for ActionPlan {
    fn output_size(&self) -> usize {
        self.summary.len() + changes_size(&self.changes)
    }
}
impl OutputSize for Outcome {
    fn output_size(&self) -> usize {
        self.summary.len() + self.detail_json.len() + changes_size(&self.changes)
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        self.policy.name()
    }

    pub fn kind(&self) -> PluginKind {
        self.policy.manifest.plugin.kind
    }

    pub fn limits(&self) -> &Limits {
        &self.policy.file.limits
    }

    fn new_store(&self, services: &HostServices, mode: CallMode) -> Store<PluginState> {
        let limits = self.limits();
        let state = PluginState::new(
            services,
            &self.policy.effective,
            self.config.clone(),
            mode,
            limits.memory_bytes(),
            usize::try_from(limits.max_log_lines.0).unwrap_or(usize::MAX),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.budget);
        store.set_epoch_deadline(deadline_ticks(limits.timeout()));
        store.epoch_deadline_trap();
        store
    }

    /// Runs `call` against a fresh instance under the policy's limits.
    async fn run<T, F>(
        &self,
        function: &'static str,
        services: &HostServices,
        mode: CallMode,
        call: F,
    ) -> Called<T>
    where
        T: OutputSize,
        F: AsyncFnOnce(
            &mut Store<PluginState>,
            &Prepared,
        ) -> wasmtime::Result<Result<T, types::Error>>,
    {
        let started = Instant::now();
        let limits = *self.limits();
        let mut store = self.new_store(services, mode);
        let outcome =
            tokio::time::timeout(limits.timeout(), call(&mut store, &self.prepared)).await;
        let state = store.data_mut();
        let limit_mib = limits.memory_mib.0;
        let result = match outcome {
            Err(_elapsed) => Err(CallError::Fault(PluginFault::Timeout {
                limit_ms: limits.timeout_ms.0,
            })),
            Ok(Err(trap)) => Err(CallError::Fault(
                match classify(&trap, state.budget.refused, limit_mib) {
                    PluginFault::Timeout { .. } => PluginFault::Timeout {
                        limit_ms: limits.timeout_ms.0,
                    },
                    other => other,
                },
            )),
            Ok(Ok(Err(plugin_error))) => Err(CallError::Plugin(plugin_error)),
            Ok(Ok(Ok(value))) => {
                let bytes = value.output_size();
                let limit = limits.max_output_bytes();
                if bytes > limit {
                    Err(CallError::Fault(PluginFault::OutputTooLarge {
                        bytes,
                        limit,
                    }))
                } else {
                    Ok(value)
                }
            }
        };
        let report = CallReport {
            capability_calls: state.recorder.take(),
            logs: std::mem::take(&mut state.log.lines),
            logs_dropped: state.log.dropped,
            stderr: String::from_utf8_lossy(&state.stderr.contents()).into_owned(),
            memory_bytes: state.budget.used_bytes(),
            elapsed: started.elapsed(),
        };
        if let Err(e) = &result {
            tracing::debug!(plugin = self.name(), function, "call failed: {e}");
        }
        crate::telemetry::plugin_call(
            self.name(),
            function,
            report.elapsed,
            result.as_ref().map(|_| ()),
        );
        Called { result, report }
    }

    fn wrong_kind<T>(&self, wanted: PluginKind) -> Called<T> {
        Called {
            result: Err(CallError::Fault(PluginFault::Instantiate {
                reason: format!("`{}` is a {}, not a {wanted}", self.name(), self.kind()),
            })),
            report: CallReport::default(),
        }
    }

    /// The tools a remediation plugin offers.
    pub async fn describe_tools(&self, services: &HostServices) -> Called<Vec<ToolSpec>> {
        if self.kind() != PluginKind::RemediationTool {
            return self.wrong_kind(PluginKind::RemediationTool);
        }
        self.run(
            "describe",
            services,
            CallMode::ReadOnly,
            async |store, prepared| match prepared {
                Prepared::Tool(pre) => {
                    let tool = pre.instantiate_async(&mut *store).await?;
                    tool.runwarden_plugin_tool()
                        .call_describe(&mut *store)
                        .await
                        .map(Ok)
                }
                Prepared::ToolV01(pre) => {
                    let tool = pre.instantiate_async(&mut *store).await?;
                    let specs = tool
                        .runwarden_plugin_tool()
                        .call_describe(&mut *store)
                        .await?;
                    Ok(Ok(specs.conv()))
                }
                _ => Err(not_a(PluginKind::RemediationTool)),
            },
        )
        .await
    }

    /// What a tool call would change, with mutations denied.
    pub async fn plan(&self, services: &HostServices, call: &ToolCall) -> Called<ActionPlan> {
        if self.kind() != PluginKind::RemediationTool {
            return self.wrong_kind(PluginKind::RemediationTool);
        }
        self.run(
            "plan",
            services,
            CallMode::ReadOnly,
            async |store, prepared| match prepared {
                Prepared::Tool(pre) => {
                    let tool = pre.instantiate_async(&mut *store).await?;
                    tool.runwarden_plugin_tool()
                        .call_plan(&mut *store, call)
                        .await
                }
                Prepared::ToolV01(pre) => {
                    let tool = pre.instantiate_async(&mut *store).await?;
                    let plan = tool
                        .runwarden_plugin_tool()
                        .call_plan(&mut *store, &call.clone().conv())
                        .await?;
                    Ok(plan.conv())
                }
                _ => Err(not_a(PluginKind::RemediationTool)),
            },
        )
        .await
    }

    /// Runs a tool call for real, in `mode`: bound to the effects of the plan
    /// the guardrails judged, or read-only for a tool declared `read`.
    pub async fn execute(
        &self,
        services: &HostServices,
        call: &ToolCall,
        mode: CallMode,
    ) -> Called<Outcome> {
        if self.kind() != PluginKind::RemediationTool {
            return self.wrong_kind(PluginKind::RemediationTool);
        }
        self.run(
            "execute",
            services,
            mode,
            async |store, prepared| match prepared {
                Prepared::Tool(pre) => {
                    let tool = pre.instantiate_async(&mut *store).await?;
                    tool.runwarden_plugin_tool()
                        .call_execute(&mut *store, call)
                        .await
                }
                Prepared::ToolV01(pre) => {
                    let tool = pre.instantiate_async(&mut *store).await?;
                    let outcome = tool
                        .runwarden_plugin_tool()
                        .call_execute(&mut *store, &call.clone().conv())
                        .await?;
                    Ok(outcome.conv())
                }
                _ => Err(not_a(PluginKind::RemediationTool)),
            },
        )
        .await
    }

    /// What a context source says about itself.
    pub async fn describe_source(&self, services: &HostServices) -> Called<SourceInfo> {
        if self.kind() != PluginKind::ContextSource {
            return self.wrong_kind(PluginKind::ContextSource);
        }
        self.run(
            "describe",
            services,
            CallMode::ReadOnly,
            async |store, prepared| match prepared {
                Prepared::Source(pre) => {
                    let source = pre.instantiate_async(&mut *store).await?;
                    source
                        .runwarden_plugin_source()
                        .call_describe(&mut *store)
                        .await
                        .map(Ok)
                }
                Prepared::SourceV01(pre) => {
                    let source = pre.instantiate_async(&mut *store).await?;
                    let info = source
                        .runwarden_plugin_source()
                        .call_describe(&mut *store)
                        .await?;
                    Ok(Ok(info.conv()))
                }
                _ => Err(not_a(PluginKind::ContextSource)),
            },
        )
        .await
    }

    /// Gathers evidence for an alert, read-only.
    pub async fn gather(
        &self,
        services: &HostServices,
        alert: &Alert,
        window: TimeWindow,
    ) -> Called<Vec<Evidence>> {
        if self.kind() != PluginKind::ContextSource {
            return self.wrong_kind(PluginKind::ContextSource);
        }
        self.run(
            "gather",
            services,
            CallMode::ReadOnly,
            async |store, prepared| match prepared {
                Prepared::Source(pre) => {
                    let source = pre.instantiate_async(&mut *store).await?;
                    source
                        .runwarden_plugin_source()
                        .call_gather(&mut *store, alert, window)
                        .await
                }
                Prepared::SourceV01(pre) => {
                    let source = pre.instantiate_async(&mut *store).await?;
                    let found = source
                        .runwarden_plugin_source()
                        .call_gather(&mut *store, &alert.clone().conv(), window.conv())
                        .await?;
                    Ok(found.conv())
                }
                _ => Err(not_a(PluginKind::ContextSource)),
            },
        )
        .await
    }
}

fn not_a(kind: PluginKind) -> wasmtime::Error {
    wasmtime::format_err!("not a {kind}")
}

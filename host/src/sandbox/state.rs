//! The per-call store state: WASI with nothing granted, plus each capability.

use super::limits::MemoryBudget;
use crate::capability::config::PluginConfig;
use crate::capability::http::{HttpCapability, HttpGrant};
use crate::capability::k8s::{ClusterBackend, K8sCapability, K8sGrant};
use crate::capability::log::LogCapability;
use crate::capability::secrets::{SecretStore, SecretsCapability};
use crate::capability::{CallMode, Grants, Recorder};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What the host shares with every call: the backends behind capabilities.
#[derive(Clone)]
pub struct HostServices {
    pub cluster: Arc<dyn ClusterBackend>,
    pub secrets: Arc<dyn SecretStore>,
}

/// Captured stdout/stderr per call, bounded.
const STDIO_CAPACITY: usize = 64 * 1024;

pub struct PluginState {
    table: ResourceTable,
    wasi: WasiCtx,
    http_ctx: WasiHttpCtx,
    pub http: HttpCapability,
    pub k8s: K8sCapability,
    pub secrets: SecretsCapability,
    pub log: LogCapability,
    pub config: PluginConfig,
    pub budget: MemoryBudget,
    pub recorder: Recorder,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
}

impl PluginState {
    /// State for one call. Capabilities outside `grants` get an empty grant,
    /// which denies everything; they are not linked either.
    pub fn new(
        services: &HostServices,
        grants: &Grants,
        config: Arc<BTreeMap<String, String>>,
        mode: CallMode,
        memory_bytes: usize,
        max_log_lines: usize,
    ) -> Self {
        let recorder = Recorder::default();
        let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
        // No preopens, no environment, no arguments, no network: WASI's
        // defaults with nothing granted. Clocks and randomness are allowed.
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let wasi = builder.build();
        PluginState {
            table: ResourceTable::new(),
            wasi,
            http_ctx: WasiHttpCtx::new(),
            http: HttpCapability {
                grant: Arc::new(grants.http.clone().unwrap_or_else(empty_http)),
                mode: mode.clone(),
                recorder: recorder.clone(),
                secrets: services.secrets.clone(),
            },
            k8s: K8sCapability {
                grant: grants.k8s.clone().unwrap_or_else(empty_k8s),
                backend: services.cluster.clone(),
                mode,
                recorder: recorder.clone(),
            },
            secrets: SecretsCapability {
                grant: grants.secrets.clone().unwrap_or_default(),
                injected: grants
                    .http
                    .iter()
                    .flat_map(|h| h.inject.iter())
                    .map(|i| (i.secret.clone(), i.origin.to_string()))
                    .collect(),
                store: services.secrets.clone(),
                recorder: recorder.clone(),
            },
            log: LogCapability::new(max_log_lines),
            config: PluginConfig(config),
            budget: MemoryBudget::new(memory_bytes),
            recorder,
            stdout,
            stderr,
        }
    }
}

fn empty_http() -> HttpGrant {
    HttpGrant {
        allow: vec![],
        allow_private_cidrs: vec![],
        connect_timeout_ms: 1,
        total_timeout_ms: 1,
        inject: vec![],
    }
}

fn empty_k8s() -> K8sGrant {
    K8sGrant {
        namespaces: vec![],
        read_all_namespaces: false,
        except_namespaces: vec![],
        operations: vec![],
        max_replicas: 0,
        max_pods_per_action: 0,
        annotate_kinds: vec![],
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

//! Benchmarks 1 and 2: one sandboxed tool call, and how instances are made.
//!
//! The call is k8s-remediation's `scale_deployment` on the simulated cluster
//! (the plugin reads the deployment, then scales it: two host calls).
//!
//! - **runwarden**: `Plugin::execute` — fresh store with the policy's limits
//!   and memory budget, epoch deadline, wall-clock timeout, capability
//!   checks on every host call, call report, output cap — then one audit
//!   append (SQLite WAL, with and without fsync).
//! - **bare wasmtime**: the same component and the same host functions on a
//!   default engine (on-demand allocator, no epochs): a fresh store from an
//!   `InstancePre`, call, drop. A permissive grant stands in for "no
//!   policy" (the checks are a few comparisons either way).
//! - **native**: the same two simulated-cluster calls from Rust.

use super::{ArmRunner, Row, interleave};
use crate::bindings::tool::{RemediationTool, RemediationToolPre};
use crate::bindings::types::ToolCall;
use crate::capability::k8s::sim::SimulatedCluster;
use crate::capability::k8s::{ClusterBackend, K8sGrant, Namespace};
use crate::capability::{CallMode, Grants};
use crate::plugin::{Plugin, granted_linker};
use crate::sandbox::state::{HostServices, PluginState};
use crate::store::Store as _;
use crate::store::sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub struct Setup {
    pub plugin: Plugin,
    pub services: HostServices,
    pub cluster: Arc<SimulatedCluster>,
}

/// Loads k8s-remediation from the policy directory.
pub fn setup(
    policies: &Path,
    cache: &crate::sandbox::cache::CompileCache,
) -> Result<Setup, String> {
    let engine = crate::sandbox::new_engine().map_err(|e| e.to_string())?;
    let policy = crate::policy::load_policy(&policies.join("k8s-remediation.toml"))
        .map_err(|e| e.to_string())?;
    let plugin = crate::plugin::load(&engine, cache, policy).map_err(|e| e.to_string())?;
    let (cluster, services) = super::sim_services();
    Ok(Setup {
        plugin,
        services,
        cluster,
    })
}

fn scale_call(replicas: u32) -> ToolCall {
    ToolCall {
        tool: "scale_deployment".into(),
        arguments_json: format!(
            r#"{{"namespace":"payments","name":"payment-api","replicas":{replicas}}}"#
        ),
    }
}

/// The plan both replica counts are bound to, as the pipeline binds a real
/// call: the host checks every scale against it.
fn flip_plan() -> CallMode {
    let effect = |from, to| crate::effects::Effect::Scale {
        target: crate::effects::ObjectRef::deployment("payments", "payment-api"),
        from,
        to,
    };
    CallMode::Bound(Arc::new(crate::effects::binding::PlanBinding::new(vec![
        effect(4, 3),
        effect(3, 4),
    ])))
}

/// Alternates between two replica counts so every call changes something.
struct Flip(bool);

impl Flip {
    fn next(&mut self) -> u32 {
        self.0 = !self.0;
        if self.0 { 4 } else { 3 }
    }
}

struct Runwarden<'a> {
    setup: &'a Setup,
    store: Option<SqliteStore>,
    flip: Flip,
}

#[async_trait::async_trait]
impl ArmRunner for Runwarden<'_> {
    async fn once(&mut self) -> Result<(), String> {
        let call = scale_call(self.flip.next());
        let out = self
            .setup
            .plugin
            .execute(&self.setup.services, &call, flip_plan())
            .await;
        let outcome = out.result.map_err(|e| e.to_string())?;
        if let Some(store) = &self.store {
            store
                .append_audit(
                    Some("INC-BENCH"),
                    "execution",
                    &serde_json::json!({"summary": outcome.summary}),
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The audit append alone, as the runwarden arm makes it: shows what the
/// append costs on its own next to what it adds to a call.
struct AuditOnly {
    store: SqliteStore,
}

#[async_trait::async_trait]
impl ArmRunner for AuditOnly {
    async fn once(&mut self) -> Result<(), String> {
        self.store
            .append_audit(
                Some("INC-BENCH"),
                "execution",
                &serde_json::json!({"summary": "scaled deployment payments/payment-api to 4 replicas"}),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A plain engine and linker with the plugin's host functions.
pub struct Bare {
    engine: Engine,
    component: Component,
    linker: Linker<PluginState>,
    pre: RemediationToolPre<PluginState>,
    services: HostServices,
    grants: Grants,
    flip: Flip,
    from_component: bool,
}

impl Bare {
    pub fn new(
        wasm: &[u8],
        services: &HostServices,
        pooling: bool,
        from_component: bool,
    ) -> Result<Bare, String> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        if pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(
                PoolingAllocationConfig::default(),
            ));
        }
        let engine = Engine::new(&config).map_err(|e| e.to_string())?;
        let component = Component::new(&engine, wasm).map_err(|e| e.to_string())?;
        let grants = permissive();
        let linker = granted_linker(&engine, &grants).map_err(|e| e.to_string())?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(RemediationToolPre::new)
            .map_err(|e| e.to_string())?;
        Ok(Bare {
            engine,
            component,
            linker,
            pre,
            services: services.clone(),
            grants,
            flip: Flip(false),
            from_component,
        })
    }
}

fn permissive() -> Grants {
    Grants {
        k8s: Some(K8sGrant {
            read_all_namespaces: false,
            except_namespaces: vec![],
            namespaces: Namespace::try_from("payments".to_string())
                .into_iter()
                .collect(),
            operations: vec![
                crate::capability::k8s::Operation::Read,
                crate::capability::k8s::Operation::Scale,
            ],
            max_replicas: u32::MAX,
            max_pods_per_action: u32::MAX,
            annotate_kinds: vec![],
        }),
        http: None,
        secrets: None,
        log: Some(Default::default()),
    }
}

#[async_trait::async_trait]
impl ArmRunner for Bare {
    async fn once(&mut self) -> Result<(), String> {
        let state = PluginState::new(
            &self.services,
            &self.grants,
            Arc::default(),
            flip_plan(),
            usize::MAX,
            usize::MAX,
        );
        let mut store = Store::new(&self.engine, state);
        let tool = if self.from_component {
            RemediationTool::instantiate_async(&mut store, &self.component, &self.linker)
                .await
                .map_err(|e| e.to_string())?
        } else {
            self.pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| e.to_string())?
        };
        let call = scale_call(self.flip.next());
        tool.runwarden_plugin_tool()
            .call_execute(&mut store, &call)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{e:?}"))?;
        Ok(())
    }
}

struct Native {
    cluster: Arc<SimulatedCluster>,
    flip: Flip,
}

#[async_trait::async_trait]
impl ArmRunner for Native {
    async fn once(&mut self) -> Result<(), String> {
        let replicas = self.flip.next();
        self.cluster
            .get_deployment("payments", "payment-api")
            .await
            .map_err(|e| e.to_string())?;
        self.cluster
            .scale_deployment("payments", "payment-api", replicas)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

fn audit_store(dir: &Path, fsync: bool) -> Result<SqliteStore, String> {
    let store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    if !fsync {
        store
            .execute_raw("PRAGMA synchronous = OFF")
            .map_err(|e| e.to_string())?;
    }
    Ok(store)
}

/// Benchmark 1: one tool call end to end, four arms.
pub async fn tool_call(setup: &Setup, rounds: usize, per_round: usize) -> Result<Vec<Row>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (fsync_dir, nosync_dir, alone_dir) = (
        dir.path().join("fsync"),
        dir.path().join("nosync"),
        dir.path().join("alone"),
    );
    for d in [&fsync_dir, &nosync_dir, &alone_dir] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let mut with_fsync = Runwarden {
        setup,
        store: Some(audit_store(&fsync_dir, true)?),
        flip: Flip(false),
    };
    let mut without_fsync = Runwarden {
        setup,
        store: Some(audit_store(&nosync_dir, false)?),
        flip: Flip(false),
    };
    let mut no_audit = Runwarden {
        setup,
        store: None,
        flip: Flip(false),
    };
    let mut audit_only = AuditOnly {
        store: audit_store(&alone_dir, false)?,
    };
    let wasm = &setup.plugin.policy.component;
    let mut bare = Bare::new(wasm, &setup.services, true, false)?;
    let mut bare_default = Bare::new(wasm, &setup.services, false, false)?;
    let mut native = Native {
        cluster: setup.cluster.clone(),
        flip: Flip(false),
    };
    let [a, b, c, d, e, f, g] = interleave(
        rounds,
        per_round,
        [
            &mut without_fsync,
            &mut with_fsync,
            &mut bare,
            &mut native,
            &mut no_audit,
            &mut bare_default,
            &mut audit_only,
        ],
    )
    .await?;
    let bench = "1 tool call";
    // The baseline uses the allocator runwarden uses (pooling, InstancePre):
    // the stricter comparison.
    let bare_row = Row::new(bench, "bare wasmtime (pooling, pre)", &c);
    let nosync = Row::new(bench, "runwarden + audit (no fsync)", &a).against(&bare_row);
    let met_ratio = nosync.ratio.is_some_and(|r| r <= 1.5);
    let met_abs = nosync.median_us <= 25.0;
    let nosync = nosync.target("<= 1.5x bare and <= 25us", met_ratio && met_abs);
    let fsync = Row::new(bench, "runwarden + audit (fsync)", &b).against(&bare_row);
    let native = Row::new(bench, "native Rust (same sim calls)", &d).against(&bare_row);
    let no_audit = Row::new(bench, "runwarden, no audit", &e).against(&bare_row);
    let bare_default = Row::new(bench, "bare wasmtime (defaults, pre)", &f).against(&bare_row);
    let audit_only = Row::new(bench, "audit append alone (no fsync)", &g);
    Ok(vec![
        nosync,
        fsync,
        no_audit,
        bare_row,
        bare_default,
        native,
        audit_only,
    ])
}

/// Benchmark 2: pooling vs on-demand, `InstancePre` vs the component.
pub async fn instantiation(
    setup: &Setup,
    rounds: usize,
    per_round: usize,
) -> Result<Vec<Row>, String> {
    let wasm = &setup.plugin.policy.component;
    let mut pool_pre = Bare::new(wasm, &setup.services, true, false)?;
    let mut pool_comp = Bare::new(wasm, &setup.services, true, true)?;
    let mut od_pre = Bare::new(wasm, &setup.services, false, false)?;
    let mut od_comp = Bare::new(wasm, &setup.services, false, true)?;
    let [a, b, c, d] = interleave(
        rounds,
        per_round,
        [&mut pool_pre, &mut pool_comp, &mut od_pre, &mut od_comp],
    )
    .await?;
    let bench = "2 instantiation";
    let base = Row::new(bench, "pooling + InstancePre", &a);
    Ok(vec![
        Row::new(bench, "pooling + Component", &b).against(&base),
        Row::new(bench, "on-demand + InstancePre", &c).against(&base),
        Row::new(bench, "on-demand + Component", &d).against(&base),
        base,
    ])
}

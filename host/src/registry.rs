//! The set of plugins a runwarden process serves, loaded from a policy
//! directory. A plugin that fails to load is reported and left out; the
//! others keep working.

use crate::capability::k8s::sim::SimulatedCluster;
use crate::capability::secrets::StaticSecretStore;
use crate::plugin::{LoadError, Plugin};
use crate::policy::{self, PluginKind};
use crate::sandbox::cache::CompileCache;
use crate::sandbox::state::HostServices;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use wasmtime::Engine;

/// Why a plugin is not in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

pub struct Registry {
    pub engine: Engine,
    pub services: HostServices,
    plugins: BTreeMap<String, Plugin>,
}

impl Registry {
    /// Loads every policy in `dir`. Returns the registry and the reasons the
    /// plugins that did not load were refused.
    pub fn load(
        engine: Engine,
        cache: &CompileCache,
        dir: &Path,
        services: HostServices,
    ) -> Result<(Registry, Vec<RegistryError>), policy::PolicyError> {
        let (policies, errors) = policy::load_dir(dir)?;
        let mut problems: Vec<RegistryError> =
            errors.into_iter().map(RegistryError::from).collect();
        let mut plugins = BTreeMap::new();
        for p in policies {
            match crate::plugin::load(&engine, cache, p) {
                Ok(plugin) => {
                    plugins.insert(plugin.name().to_string(), plugin);
                }
                Err(e) => problems.push(e.into()),
            }
        }
        Ok((
            Registry {
                engine,
                services,
                plugins,
            },
            problems,
        ))
    }

    pub fn get(&self, name: &str) -> Option<&Plugin> {
        self.plugins.get(name)
    }

    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values()
    }

    pub fn of_kind(&self, kind: PluginKind) -> impl Iterator<Item = &Plugin> {
        self.plugins.values().filter(move |p| p.kind() == kind)
    }
}

/// Services for calls that must not reach anything real (inspection).
pub fn inert_services() -> HostServices {
    HostServices {
        cluster: Arc::new(SimulatedCluster::new(Default::default())),
        secrets: Arc::new(StaticSecretStore::default()),
    }
}

//! `config`: the operator's non-secret settings for one plugin (`[config]` in
//! its policy). Not a capability in the grant sense — it can only read what
//! the operator wrote for this plugin — so it is always linked.

use crate::bindings::config::Host;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct PluginConfig(pub Arc<BTreeMap<String, String>>);

impl Host for PluginConfig {
    async fn get(&mut self, key: String) -> Option<String> {
        self.0.get(&key).cloned()
    }
}

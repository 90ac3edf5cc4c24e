//! What start-up and `/readyz` check before trusting the loaded policies:
//! secrets a plugin will need (read or injected) have values, and every
//! runbook action names a loaded tool.

use super::Agent;
use crate::analysis::runbook::Runbook;
use crate::registry::Registry;
use std::collections::BTreeMap;

/// The secrets granted to loaded plugins that have no value: each such
/// plugin will fail when it needs one (a notifier, a DNS API token).
pub fn missing_secrets(
    registry: &Registry,
    secrets: &dyn crate::capability::secrets::SecretStore,
) -> Vec<String> {
    registry
        .plugins()
        .flat_map(|p| {
            let effective = &p.policy.effective;
            // Read by the plugin, or placed by the host into its requests.
            let read = effective
                .secrets
                .iter()
                .flat_map(|g| g.names.iter().map(|n| (n.clone(), String::new())));
            let injected = effective.http.iter().flat_map(|h| {
                h.inject
                    .iter()
                    .map(|i| (i.secret.clone(), format!(" (injected into {})", i.origin)))
            });
            read.chain(injected)
                .filter(|(n, _)| secrets.get(n).is_none())
                .map(|(n, how)| {
                    format!(
                        "plugin `{}` is granted secret `{n}`{how}, which has no value (set RUNWARDEN_SECRET_{})",
                        p.name(),
                        n.to_ascii_uppercase().replace(['-', '.'], "_")
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Agent {
    /// See [`check_runbook_actions`].
    pub async fn check_runbook_actions(&self) -> Vec<String> {
        check_runbook_actions(&self.registry, &self.runbooks).await
    }
}

/// Every runbook action must name a loaded remediation plugin and one of
/// its tools, or the rule can never act. Calls each tool plugin's
/// `describe` (read-only, sandboxed). Returns one message per problem,
/// naming the runbook's alert and rule.
pub async fn check_runbook_actions(
    registry: &Registry,
    runbooks: &BTreeMap<String, Runbook>,
) -> Vec<String> {
    {
        let mut problems = Vec::new();
        let mut tools: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
        for rb in runbooks.values() {
            for rule in &rb.rules {
                let Some(action) = &rule.action else { continue };
                let at = format!("runbook {} rule `{}`", rb.alert, rule.name);
                if !tools.contains_key(&action.plugin) {
                    let known = match registry.get(&action.plugin) {
                        Some(p) => p
                            .describe_tools(&registry.services)
                            .await
                            .result
                            .ok()
                            .map(|specs| specs.into_iter().map(|s| s.name).collect()),
                        None => None,
                    };
                    tools.insert(action.plugin.clone(), known);
                }
                match tools.get(&action.plugin) {
                    Some(Some(names)) if names.contains(&action.tool) => {}
                    Some(Some(names)) => problems.push(format!(
                        "{at}: plugin `{}` has no tool `{}` (it offers: {})",
                        action.plugin,
                        action.tool,
                        names.join(", ")
                    )),
                    _ => problems.push(format!(
                        "{at}: plugin `{}` is not loaded (no policy grants it, or it failed to load)",
                        action.plugin
                    )),
                }
            }
        }
        problems
    }
}

//! Escalation: telling people when the agent stops.
//!
//! Notifications are tool calls the host makes itself, with arguments it
//! builds from the incident — not proposals from a planner — so they skip
//! the autonomy rules but still go through the sandbox and the notifier
//! plugin's capability grants. A failed notification is audited; it never
//! hides the escalation itself.

use super::Agent;
use crate::store::StoreError;

impl Agent {
    /// Sends every configured escalation notification for an incident.
    pub async fn escalate(
        &self,
        incident: &str,
        title: &str,
        service: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let vars = [
            ("incident", incident),
            ("title", title),
            ("reason", reason),
            ("service", service),
        ];
        let lookup = |k: &str| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        for target in &self.autonomy.escalation {
            let args = serde_json::Value::Object(
                target
                    .arguments
                    .iter()
                    .map(|(k, v)| (k.clone(), crate::text::toml_to_json(v, &lookup)))
                    .collect(),
            );
            let record = |ok: bool, detail: String| {
                self.audit(incident, "notification", serde_json::json!({"plugin": target.plugin, "tool": target.tool, "ok": ok, "detail": detail}))
            };
            let Some(plugin) = self.registry.get(&target.plugin) else {
                record(false, format!("plugin `{}` is not loaded", target.plugin))?;
                continue;
            };
            let specs = match plugin.describe_tools(&self.registry.services).await.result {
                Ok(s) => s,
                Err(e) => {
                    record(false, e.to_string())?;
                    continue;
                }
            };
            let call = match crate::toolcall::validate(&specs, &target.tool, &args.to_string()) {
                Ok((call, _)) => call,
                Err(e) => {
                    record(false, e.to_string())?;
                    continue;
                }
            };
            match plugin.execute(&self.registry.services, &call).await.result {
                Ok(o) => record(true, o.summary)?,
                Err(e) => record(false, e.to_string())?,
            }
        }
        Ok(())
    }
}

//! Escalation: telling people when the agent stops.
//!
//! Notifications are tool calls the host makes itself, with arguments it
//! builds from the incident — not proposals from a planner — so they skip
//! the autonomy rules but still go through the sandbox, the notifier
//! plugin's capability grants and its plan (execution is bound to it). A failed notification is audited; it never
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
            // Planned like any action, and executed bound to that plan: a
            // notifier posts where its plan said, nowhere else.
            let planned = match super::planned::plan_call(
                plugin,
                &self.registry.services,
                &target.tool,
                &args,
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    record(false, e.to_string())?;
                    continue;
                }
            };
            match plugin
                .execute(&self.registry.services, &planned.call, planned.call_mode())
                .await
                .result
            {
                Ok(o) => record(true, o.summary)?,
                Err(e) => record(false, e.to_string())?,
            }
        }
        Ok(())
    }
}

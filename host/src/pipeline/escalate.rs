//! Escalation: telling people when the agent stops.
//!
//! Notifications are tool calls the host makes itself, with arguments it
//! builds from the incident — not proposals from a planner — so they skip
//! the autonomy rules but still go through the sandbox, the notifier
//! plugin's capability grants and its plan (execution is bound to it). A failed notification is audited; it never
//! hides the escalation itself.

//!
//! A storm must not page a person fifty times: at most
//! [`PagingBudget::max_pages`] escalations page per window; the next one
//! sends a single summary page instead, and the rest of the window's
//! escalations are audited as withheld (they stay in `/api/incidents`).

use super::Agent;
use crate::store::StoreError;
use std::time::Duration;

/// How many escalations may page per window.
#[derive(Debug, Clone, Copy)]
pub struct PagingBudget {
    pub max_pages: usize,
    pub window: Duration,
}

impl Default for PagingBudget {
    fn default() -> Self {
        PagingBudget {
            max_pages: 5,
            window: Duration::from_secs(10 * 60),
        }
    }
}

/// When escalations paged (and whether this window's summary went out).
#[derive(Debug, Default)]
pub struct PageLog {
    paged_ms: std::collections::VecDeque<i64>,
    summary_sent_ms: Option<i64>,
}

/// What the budget allows for one escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    Page,
    /// Over budget, first time this window: one page summarising the storm.
    Summary {
        paged: usize,
    },
    /// Over budget, summary already sent: audited, not paged.
    Withheld,
}

impl PageLog {
    /// Decides and records one escalation at `now_ms`.
    pub fn admit(&mut self, budget: PagingBudget, now_ms: i64) -> Paging {
        let window = i64::try_from(budget.window.as_millis()).unwrap_or(i64::MAX);
        while self
            .paged_ms
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= window)
        {
            self.paged_ms.pop_front();
        }
        if self
            .summary_sent_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= window)
        {
            self.summary_sent_ms = None;
        }
        if self.paged_ms.len() < budget.max_pages {
            self.paged_ms.push_back(now_ms);
            return Paging::Page;
        }
        if self.summary_sent_ms.is_none() {
            self.summary_sent_ms = Some(now_ms);
            return Paging::Summary {
                paged: self.paged_ms.len(),
            };
        }
        Paging::Withheld
    }
}

impl Agent {
    /// Sends every configured escalation notification for an incident,
    /// within the paging budget.
    pub async fn escalate(
        &self,
        incident: &str,
        title: &str,
        service: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let paging = self
            .pages
            .lock()
            .map(|mut log| log.admit(self.config.paging, super::now_ms()))
            .unwrap_or(Paging::Page);
        let budget = self.config.paging;
        let summary;
        let (title, reason) = match paging {
            Paging::Page => (title, reason),
            Paging::Summary { paged } => {
                summary = (
                    format!(
                        "Alert storm: paging budget reached ({paged} pages in {} min)",
                        budget.window.as_secs() / 60
                    ),
                    format!(
                        "{paged} incidents paged in the last {} min; this one ({title}) and any further escalations in this window are not paged separately: see `runwarden incidents` or /api/incidents",
                        budget.window.as_secs() / 60
                    ),
                );
                (summary.0.as_str(), summary.1.as_str())
            }
            Paging::Withheld => {
                self.audit(
                    incident,
                    "notification",
                    serde_json::json!({"plugin": "-", "tool": "-", "ok": true, "withheld": true,
                        "detail": format!("not paged: the paging budget ({} per {} min) is spent and its summary page went out", budget.max_pages, budget.window.as_secs() / 60)}),
                )?;
                return Ok(());
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_pages_up_to_the_budget_then_once_more_then_not_until_the_window_passes() {
        let budget = PagingBudget {
            max_pages: 3,
            window: Duration::from_secs(600),
        };
        let mut log = PageLog::default();
        let got: Vec<Paging> = (0..6).map(|i| log.admit(budget, i * 1000)).collect();
        assert_eq!(
            got,
            [
                Paging::Page,
                Paging::Page,
                Paging::Page,
                Paging::Summary { paged: 3 },
                Paging::Withheld,
                Paging::Withheld
            ]
        );
        assert_eq!(log.admit(budget, 700_000), Paging::Page);
    }
}

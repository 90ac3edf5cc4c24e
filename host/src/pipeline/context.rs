//! Context: every granted source in parallel, each with its own deadline.
//!
//! A slow or failing source becomes a recorded gap, never a failed incident.
//! The host adds two built-in sources: similar past incidents (full-text
//! search over the store) and the runbook for the alert.

use crate::analysis::EvidenceItem;
use crate::analysis::runbook::Runbook;
use crate::bindings::types::TimeWindow;
use crate::intake::Alert;
use crate::policy::PluginKind;
use crate::registry::Registry;
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A source that gave nothing usable, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceTiming {
    pub source: String,
    pub millis: u128,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Context {
    pub evidence: Vec<EvidenceItem>,
    pub gaps: Vec<Gap>,
    pub timings: Vec<SourceTiming>,
    pub runbook: Option<String>,
    pub similar: Vec<String>,
    /// What the host concluded from the cluster and the evidence.
    pub facts: crate::facts::Facts,
    /// The alert's labels as sources and planners saw them: the sender's,
    /// with the host's `runwarden_*` labels (namespace, workload).
    pub labels: BTreeMap<String, String>,
}

/// Runs every context source against the alert, concurrently.
pub async fn gather(
    registry: &Registry,
    store: &dyn Store,
    runbooks: &BTreeMap<String, Runbook>,
    incident_id: &str,
    alert: &Alert,
    window: TimeWindow,
    deadline: Duration,
) -> Context {
    // What the incident is about, read by the host under the context
    // sources' read grants, before the sources run: they query by it.
    let read_grants: Vec<(&str, &crate::capability::k8s::K8sGrant)> = registry
        .of_kind(PluginKind::ContextSource)
        .filter_map(|p| p.policy.effective.k8s.as_ref().map(|g| (p.name(), g)))
        .filter(|(_, g)| {
            g.operations
                .contains(&crate::capability::k8s::Operation::Read)
        })
        .collect();
    let subject = crate::facts::subject(
        registry.services.cluster.as_ref(),
        &read_grants,
        &alert.name,
        &alert.labels,
        alert.starts_at.timestamp_millis(),
    )
    .await;
    let mut alert = alert.clone();
    alert.labels = subject.labels(&alert.labels);
    let alert = &alert;
    let wit_alert = alert.to_wit();
    let sources: Vec<_> = registry.of_kind(PluginKind::ContextSource).collect();
    let calls = sources.iter().map(|source| {
        let wit_alert = &wit_alert;
        async move {
            let started = Instant::now();
            let called = tokio::time::timeout(
                deadline,
                source.gather(&registry.services, wit_alert, window),
            )
            .await;
            let took = started.elapsed().as_millis();
            (source.name().to_string(), took, called)
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut ctx = Context {
        labels: alert.labels.clone(),
        ..Context::default()
    };
    for (name, millis, called) in results {
        ctx.timings.push(SourceTiming {
            source: name.clone(),
            millis,
        });
        match called {
            Err(_) => ctx.gaps.push(Gap {
                source: name,
                reason: format!("no answer within {} ms", deadline.as_millis()),
            }),
            Ok(c) => match c.result {
                Ok(items) => ctx
                    .evidence
                    .extend(items.iter().map(|e| EvidenceItem::from_wit(&name, e))),
                Err(e) => ctx.gaps.push(Gap {
                    source: name,
                    reason: e.to_string(),
                }),
            },
        }
    }

    ctx.facts = subject.conclude(
        &alert.labels,
        &ctx.evidence,
        &ctx.gaps,
        crate::pipeline::now_ms(),
    );

    // Built-in: the runbook, by name, alias, runbook_url or matchers.
    match crate::analysis::runbook::find(
        runbooks,
        &alert.name,
        &alert.labels,
        alert.annotations.get("runbook_url").map(String::as_str),
    ) {
        Some((rb, how)) => {
            ctx.runbook = Some(rb.alert.clone());
            ctx.evidence.push(EvidenceItem {
                source: "runbook".into(),
                kind: "note".into(),
                summary: format!("runbook: {} (found by {how})", rb.title),
                body: serde_json::json!({"alert": rb.alert, "guidance": rb.guidance, "found_by": how}),
                facts: vec![],
            });
        }
        None => ctx.gaps.push(Gap {
            source: "runbook".into(),
            reason: format!("no runbook for {}", alert.name),
        }),
    }

    // Built-in: similar past incidents.
    let query = format!(
        "{} {}",
        alert.name,
        alert.labels.values().cloned().collect::<Vec<_>>().join(" ")
    );
    match store.similar(&query, incident_id, 3) {
        Ok(found) => {
            for inc in found {
                ctx.similar.push(inc.id.clone());
                ctx.evidence.push(EvidenceItem {
                    source: "similar-incidents".into(),
                    kind: "note".into(),
                    summary: format!("similar past incident {}: {}", inc.id, inc.summary),
                    body: serde_json::json!({"id": inc.id, "state": inc.state}),
                    facts: vec![],
                });
            }
        }
        Err(e) => ctx.gaps.push(Gap {
            source: "similar-incidents".into(),
            reason: e.to_string(),
        }),
    }
    ctx
}

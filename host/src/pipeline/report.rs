//! The post-incident report, rendered from the incident and its audit trail.

use crate::store::{AuditRecord, IncidentRecord};
use std::fmt::Write as _;

/// One audit record as a line of the timeline (`None` for passing guard checks).
pub fn line(r: &AuditRecord) -> Option<String> {
    let b = &r.body;
    let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
    Some(match r.kind.as_str() {
        "alert" => {
            let alerts = b["alerts"].as_array()?;
            let names: Vec<String> = alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} ({})",
                        a["name"].as_str().unwrap_or("?"),
                        a["status"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!("alert: {}", names.join(", "))
        }
        "context" => {
            let n = b["evidence"].as_array().map_or(0, Vec::len);
            let gaps: Vec<String> = b["gaps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["source"].as_str().map(str::to_string))
                .collect();
            format!(
                "context: {n} evidence items{}",
                if gaps.is_empty() {
                    String::new()
                } else {
                    format!("; gaps: {}", gaps.join(", "))
                }
            )
        }
        "facts" => {
            let lines: Vec<&str> = b["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .collect();
            format!("facts: {}", lines.join("; "))
        }
        "decision" => format!(
            "decision ({}, {} confidence): {}",
            s("decided_by"),
            s("confidence"),
            s("hypothesis")
        ),
        "guard" => {
            let v = &b["verdict"];
            let verdict = v["verdict"].as_str().unwrap_or("?");
            if verdict == "pass" {
                return None;
            }
            format!(
                "guard {} on {}: {verdict}: {}",
                s("step"),
                s("tool"),
                v["reason"].as_str().unwrap_or("")
            )
        }
        "plan" => format!(
            "plan {}: {}",
            s("tool"),
            if b["error"].is_null() {
                s("summary")
            } else {
                s("error")
            }
        ),
        "approval-requested" => format!(
            "approval {} requested for {}: {}",
            s("id"),
            s("tool"),
            s("reason")
        ),
        "approval" => format!("approval {}: {} by {}", s("id"), s("decision"), s("by")),
        "intent" => format!("intent: {} {}", s("tool"), b["arguments"]),
        "execution" => {
            if b["ok"].as_bool() == Some(true) {
                format!(
                    "executed {}: {}",
                    s("tool"),
                    b["result"]["summary"].as_str().unwrap_or("")
                )
            } else {
                format!("execution of {} failed: {}", s("tool"), s("error"))
            }
        }
        "verification" => {
            if b["recovered"].as_bool() == Some(true) {
                format!("verified recovery after {} check(s)", b["checks"])
            } else {
                format!("NOT recovered: {}", s("reason"))
            }
        }
        "escalation" => format!("escalated: {}", s("reason")),
        "prompt" => format!("prompt sent to model {}", s("model")),
        "investigation-step" => format!(
            "model investigated: {} {} -> {}{}",
            s("function"),
            s("arguments"),
            match b["refused"].as_str() {
                Some(why) => format!("refused: {why}"),
                None => format!("{} chars", b["result_chars"]),
            },
            match b["result"].as_str() {
                Some(r) if b["refused"].is_null() => {
                    format!(" «{}»", crate::text::clip(&r.replace('\n', " "), 160))
                }
                _ => String::new(),
            }
        ),
        "investigation-end" => format!(
            "investigation ended ({}): {} tool call(s), {} token(s){}, {} ms{}",
            s("ended"),
            b["steps"],
            b["tokens"],
            b["cost_usd"]
                .as_f64()
                .map(|c| format!(" (${c:.4})"))
                .unwrap_or_default(),
            b["elapsed_ms"],
            b["budget"]
                .as_str()
                .map(|w| format!("; budget reached: {w}"))
                .unwrap_or_default()
        ),
        "model-answer" => {
            let rejected = b["rejected"].as_array().map_or(0, Vec::len);
            match b["failure"].as_object() {
                Some(_) => format!(
                    "model {} gave no usable answer: {}",
                    s("model"),
                    b["failure"]
                ),
                None if rejected > 0 => format!(
                    "model {} answered; {rejected} proposal(s) rejected: {}",
                    s("model"),
                    b["rejected"]
                ),
                None => format!("model {} answered", s("model")),
            }
        }
        "notification" if b["withheld"].as_bool() == Some(true) => {
            format!("not paged: {}", s("detail"))
        }
        "notification" => format!(
            "notified via {}.{}: {}{}",
            s("plugin"),
            s("tool"),
            if b["ok"].as_bool() == Some(true) {
                ""
            } else {
                "FAILED: "
            },
            s("detail")
        ),
        "planner-fallback" => format!("fell back to the runbook planner: {}", s("reason")),
        "recurrence-of" => format!("recurrence of {}", s("previous")),
        "incident-state" => format!("incident is {}", s("state")),
        "approval-state" => format!("approval {} is {}", s("approval"), s("state")),
        "report" => format!("report stored (sha256 {})", s("sha256")),
        other => other.to_string(),
    })
}

/// What an action would change, each target's tier, and where each
/// argument came from: what a reviewer needs to judge it.
fn render_plan(o: &mut String, b: &serde_json::Value) {
    let _ = writeln!(
        o,
        "\n### {}: {}\n",
        b["tool"].as_str().unwrap_or("?"),
        b["summary"].as_str().unwrap_or("")
    );
    for e in b["effects"].as_array().into_iter().flatten() {
        if let Ok(effect) = serde_json::from_value::<crate::effects::Effect>(e.clone()) {
            let _ = writeln!(o, "- effect: {}", effect.describe());
        }
    }
    for t in b["tiers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "- tier of {}: {} ({})",
            t["target"].as_str().unwrap_or("?"),
            t["tier"].as_str().unwrap_or("none"),
            t["source"].as_str().unwrap_or("?")
        );
    }
    let args: Vec<&serde_json::Value> = b["provenance"].as_array().into_iter().flatten().collect();
    if !args.is_empty() {
        let _ = writeln!(o, "\n| argument | value | from | |\n|---|---|---|---|");
        for a in args {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                a["argument"].as_str().unwrap_or("?"),
                a["value"],
                a["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                a["detail"].as_str().unwrap_or("")
            );
        }
    }
}

/// Markdown for one incident.
pub fn render(incident: &IncidentRecord, audit: &[AuditRecord]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {}: {}\n", incident.id, incident.title);
    let duration = incident.closed_at.map(|c| c - incident.opened_at);
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| Service | {} (namespace {}) |",
        incident.service.as_deref().unwrap_or("?"),
        incident.namespace.as_deref().unwrap_or("?")
    );
    let _ = writeln!(o, "| State | {:?} |", incident.state);
    let _ = writeln!(o, "| Opened | {} |", incident.opened_at.to_rfc3339());
    let _ = writeln!(
        o,
        "| Duration | {} |",
        duration.map_or("ongoing".into(), |d| format!(
            "{:.1} s",
            d.num_milliseconds() as f64 / 1000.0
        ))
    );
    let find = |kind: &str| audit.iter().find(|r| r.kind == kind);
    let alert = find("alert");
    let impact = alert
        .and_then(|a| a.body["alerts"][0]["annotations"]["summary"].as_str())
        .unwrap_or("see the alert");
    let _ = writeln!(o, "| Impact | {impact} |");
    let _ = writeln!(
        o,
        "| Detection | {} |",
        alert.map_or("?".into(), |a| format!("alert at {}", a.at.to_rfc3339()))
    );
    let resolution = audit
        .iter()
        .rev()
        .find(|r| r.kind == "execution" && r.body["ok"].as_bool() == Some(true))
        .and_then(|r| r.body["result"]["summary"].as_str())
        .unwrap_or("no automated action");
    let _ = writeln!(o, "| Resolution | {resolution} |\n");

    if let Some(d) = find("decision") {
        let _ = writeln!(
            o,
            "## Root cause\n\n{} (confidence {}, {}).\n",
            d.body["hypothesis"].as_str().unwrap_or("?"),
            d.body["confidence"].as_str().unwrap_or("?"),
            d.body["decided_by"].as_str().unwrap_or("?")
        );
        let ev: Vec<&str> = d.body["evidence"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .collect();
        if !ev.is_empty() {
            let _ = writeln!(o, "What decided it:\n");
            for e in ev {
                let _ = writeln!(o, "- {e}");
            }
            let _ = writeln!(o);
        }
    }
    if let Some(f) = find("facts") {
        let lines: Vec<&str> = f.body["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
            .collect();
        if !lines.is_empty() {
            let _ = writeln!(o, "Facts the host observed:\n");
            for l in lines {
                let _ = writeln!(o, "- {l}");
            }
            let _ = writeln!(o);
        }
    }
    let _ = writeln!(o, "## Timeline\n");
    for r in audit {
        if let Some(text) = line(r) {
            let _ = writeln!(o, "- `{}` {text}", r.at.format("%H:%M:%S%.3f"));
        }
    }
    let _ = writeln!(o, "\n## Actions\n");
    let guards: Vec<&AuditRecord> = audit.iter().filter(|r| r.kind == "guard").collect();
    if guards.is_empty() {
        let _ = writeln!(o, "None proposed.");
    } else {
        let _ = writeln!(o, "| tool | step | verdict |\n|---|---|---|");
        for g in guards {
            let v = &g.body["verdict"];
            let _ = writeln!(
                o,
                "| {} | {} | {} {} |",
                g.body["tool"].as_str().unwrap_or("?"),
                g.body["step"].as_str().unwrap_or("?"),
                v["verdict"].as_str().unwrap_or("?"),
                v["reason"].as_str().unwrap_or("")
            );
        }
    }
    for plan in audit
        .iter()
        .filter(|r| r.kind == "plan" && r.body["error"].is_null())
    {
        render_plan(&mut o, &plan.body);
    }
    let _ = writeln!(o, "\n## Action items\n");
    let recovered = audit
        .iter()
        .any(|r| r.kind == "verification" && r.body["recovered"].as_bool() == Some(true));
    if recovered {
        let _ = writeln!(
            o,
            "- [ ] Find and fix the root cause before rolling forward again."
        );
        let _ = writeln!(
            o,
            "- [ ] Add a test or alert that catches this before production."
        );
    } else {
        let _ = writeln!(
            o,
            "- [ ] A human owns this incident: the agent did not see recovery."
        );
    }
    let gaps: Vec<String> = find("context")
        .map(|c| {
            c.body["gaps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| {
                    Some(format!(
                        "{}: {}",
                        g["source"].as_str()?,
                        g["reason"].as_str()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for g in gaps {
        let _ = writeln!(o, "- [ ] Context gap — {g}");
    }
    o
}

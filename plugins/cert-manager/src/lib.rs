//! cert-manager tools: find certificates that expire soon, ask cert-manager
//! to re-issue them, and confirm the new certificate before reporting success.
//!
//! Re-issuance is asynchronous in cert-manager, so `execute` does not stop at
//! the request: it reads the certificate again until its revision grows and
//! it is Ready (success), issuance ends without a new revision (the issuer
//! refused: failure, with cert-manager's reason), or `confirm_timeout_s`
//! (policy config, default 120) passes.

use runwarden_sdk::k8s::{self, Certificate};
use runwarden_sdk::serde_json::json;
use runwarden_sdk::time::{format_utc, now_ms, sleep_ms};
use runwarden_sdk::{
    ActionPlan, Change, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest,
    ToolSpec, config, effects, log_info, tool_spec,
};

struct CertManager;

const DAY_MS: i64 = 86_400_000;
const POLL_MS: u64 = 2_000;
/// Most certificates one `renew_expiring_certificates` call touches.
const MAX_BATCH: u64 = 20;

impl ToolGuest for CertManager {
    fn describe() -> Vec<ToolSpec> {
        let one = json!({
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1, "description": "Certificate name"}
            },
            "required": ["namespace", "name"],
            "additionalProperties": false
        });
        let batch = json!({
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "within_days": {"type": "integer", "minimum": 1, "maximum": 90,
                                "description": "renew certificates expiring within this many days"},
                "max": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH,
                        "description": "renew at most this many (default 5)"}
            },
            "required": ["namespace", "within_days"],
            "additionalProperties": false
        });
        let status = json!({
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1, "description": "one Certificate; all in the namespace if left out"}
            },
            "required": ["namespace"],
            "additionalProperties": false
        });
        vec![
            tool_spec(
                "certificate_status",
                "Read Certificates' status: ready (and why not), expiry, renewal time, issuer, issuing.",
                status,
                Effect::Read,
                Risk::Low,
                true,
            ),
            tool_spec(
                "renew_certificate",
                "Ask cert-manager to re-issue one certificate now, and wait for the new certificate.",
                one,
                Effect::Mutate,
                Risk::Low,
                false,
            ),
            tool_spec(
                "renew_expiring_certificates",
                "Re-issue every certificate in a namespace that expires within N days, confirming each.",
                batch,
                Effect::Mutate,
                Risk::Medium,
                false,
            ),
        ]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        if call.tool == "certificate_status" {
            return Ok(ActionPlan {
                summary: "read certificate status".into(),
                changes: vec![],
            });
        }
        let targets = targets(&call)?;
        let now = now_ms();
        let changes: Vec<Change> = targets
            .iter()
            .map(|c| renewal(c, format!("re-issue {} ({})", target(c), validity(c, now))))
            .collect();
        let summary = if targets.is_empty() {
            "no certificate to re-issue".to_string()
        } else {
            format!(
                "re-issue {}",
                targets.iter().map(target).collect::<Vec<_>>().join(", ")
            )
        };
        Ok(ActionPlan { summary, changes })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        if call.tool == "certificate_status" {
            return status(&call);
        }
        let targets = targets(&call)?;
        let deadline = now_ms() + confirm_timeout_ms()?;
        let mut changes = Vec::new();
        let mut done: Vec<String> = Vec::new();
        let mut failures = Vec::new();
        for before in &targets {
            match renew_and_confirm(before, deadline) {
                Ok(after) => {
                    done.push(target(before));
                    changes.push(renewal(
                        before,
                        format!(
                            "re-issued {}: {} -> {}",
                            target(before),
                            validity(before, now_ms()),
                            validity(&after, now_ms())
                        ),
                    ))
                }
                // A policy refusal is the answer for the whole call.
                Err(denied @ Error::Denied(_)) => return Err(denied),
                Err(e) => failures.push(format!("{}: {}", target(before), e.message())),
            }
        }
        if !failures.is_empty() {
            return Err(Error::Failed(format!(
                "{}{}",
                failures.join("; "),
                if done.is_empty() {
                    String::new()
                } else {
                    format!(" (re-issued: {})", done.join(", "))
                }
            )));
        }
        let summary = if changes.is_empty() {
            "no certificate needed re-issuing".to_string()
        } else {
            format!("re-issued and confirmed {} certificate(s)", changes.len())
        };
        Ok(Outcome {
            summary,
            detail_json: json!({"renewed": done}).to_string(),
            changes,
        })
    }
}

/// `certificate_status`: what `kubectl describe certificate` shows first.
fn status(call: &ToolCall) -> Result<Outcome> {
    let p = Params::of(call)?;
    let ns = p.str("namespace")?;
    let certs = match p.opt_str("name")? {
        Some(name) => vec![k8s::get_certificate(ns, name)?],
        None => k8s::list_certificates(ns)?,
    };
    let now = now_ms();
    let shown: Vec<_> = certs
        .iter()
        .take(MAX_BATCH as usize)
        .map(|c| {
            json!({"name": c.name, "ready": c.ready, "ready_message": c.ready_message,
                   "validity": validity(c, now), "not_after": c.not_after.map(format_utc),
                   "renewal_time": c.renewal_time.map(format_utc), "issuer": c.issuer,
                   "issuing": c.issuing, "revision": c.revision, "secret": c.secret_name,
                   "dns_names": c.dns_names})
        })
        .collect();
    let not_ready = certs.iter().filter(|c| !c.ready).count();
    Ok(Outcome {
        summary: format!(
            "{} certificate(s) in {ns}, {not_ready} not ready",
            certs.len()
        ),
        changes: vec![],
        detail_json: json!({"certificates": shown}).to_string(),
    })
}

/// The certificates a call is about.
fn targets(call: &ToolCall) -> Result<Vec<Certificate>> {
    let p = Params::of(call)?;
    let ns = p.str("namespace")?;
    match call.tool.as_str() {
        "renew_certificate" => Ok(vec![k8s::get_certificate(ns, p.str("name")?)?]),
        "renew_expiring_certificates" => {
            let within = i64::try_from(p.u64("within_days")?).unwrap_or(i64::MAX);
            let max = p.opt_u64("max")?.unwrap_or(5).min(MAX_BATCH);
            let cutoff = now_ms().saturating_add(within.saturating_mul(DAY_MS));
            let mut expiring: Vec<Certificate> = k8s::list_certificates(ns)?
                .into_iter()
                .filter(|c| c.not_after.is_some_and(|t| t <= cutoff))
                .collect();
            expiring.sort_by_key(|c| c.not_after);
            expiring.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            Ok(expiring)
        }
        other => Err(Error::InvalidInput(format!("unknown tool `{other}`"))),
    }
}

/// Requests re-issuance, then waits for cert-manager's verdict.
fn renew_and_confirm(before: &Certificate, deadline: i64) -> Result<Certificate> {
    let old_revision = before.revision.unwrap_or(0);
    k8s::renew_certificate(&before.namespace, &before.name)?;
    log_info(
        "re-issuance requested",
        &[("certificate", &target(before)), ("issuer", &before.issuer)],
    );
    loop {
        let now = k8s::get_certificate(&before.namespace, &before.name)?;
        if now.revision.unwrap_or(0) > old_revision && now.ready {
            return Ok(now);
        }
        // Issuance over without a new revision: the issuer refused.
        if !now.issuing && now.revision.unwrap_or(0) <= old_revision {
            return Err(Error::Failed(format!(
                "issuer {} did not issue a new certificate: {}",
                before.issuer,
                now.ready_message.as_deref().unwrap_or("no reason given")
            )));
        }
        if now_ms() >= deadline {
            return Err(Error::Unavailable(format!(
                "no new certificate before the confirmation deadline (revision still {})",
                now.revision.unwrap_or(0)
            )));
        }
        sleep_ms(POLL_MS);
    }
}

fn confirm_timeout_ms() -> Result<i64> {
    match config::get("confirm_timeout_s") {
        None => Ok(120_000),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .map(|s| s * 1000)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "config confirm_timeout_s = {s:?}: expected whole seconds, 1..=3600"
                ))
            }),
    }
}

fn renewal(c: &Certificate, description: String) -> Change {
    let mut change = effects::renew_certificate(&c.namespace, &c.name);
    change.description = description;
    change
}

fn target(c: &Certificate) -> String {
    format!("certificate {}/{}", c.namespace, c.name)
}

fn validity(c: &Certificate, now: i64) -> String {
    let revision = c
        .revision
        .map(|r| format!("revision {r}, "))
        .unwrap_or_default();
    match c.not_after {
        Some(t) => format!(
            "{revision}expires {} ({} days left)",
            format_utc(t),
            (t - now).div_euclid(DAY_MS)
        ),
        None => format!("{revision}not issued yet"),
    }
}

runwarden_sdk::export_tool!(CertManager);

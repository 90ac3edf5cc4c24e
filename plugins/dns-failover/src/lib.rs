//! DNS failover through the Cloudflare API (v4).
//!
//! The tool's only argument is the record's name. Where it fails over to, and
//! how the secondary is checked, is the operator's: `[config]` in the policy
//! holds `target.<record>` (the address or host name the record should point
//! at) and `health.<record>` (a URL that must answer 2xx first). So neither a
//! model nor a prompt can point a record anywhere the operator did not write
//! down. The API token (`cloudflare-api-token`) is the host's: the policy
//! binds it to Cloudflare's origin and the host adds it to each request, so
//! this plugin never holds it; the host also lets requests reach only the
//! origins the policy grants.
//!
//! Execution: health-check the secondary (refuse if unhealthy, changing
//! nothing) → find the one record of that name → PATCH its content → confirm
//! Cloudflare's answer carries the new content.

use runwarden_sdk::http::{self, encode_query_value};
use runwarden_sdk::serde_json::{Value, json};
use runwarden_sdk::{
    ActionPlan, Change, Effect, Error, Outcome, Params, Result, Risk, ToolCall, ToolGuest,
    ToolSpec, config, effects, log_info, tool_spec,
};

struct DnsFailover;

const TOKEN: &str = "cloudflare-api-token";
const DEFAULT_API: &str = "https://api.cloudflare.com/client/v4";

impl ToolGuest for DnsFailover {
    fn describe() -> Vec<ToolSpec> {
        let schema = json!({
            "type": "object",
            "properties": {
                "record": {"type": "string", "minLength": 1, "maxLength": 253,
                           "pattern": "^[A-Za-z0-9_.-]+$",
                           "description": "fully qualified record name, e.g. api.example.com"}
            },
            "required": ["record"],
            "additionalProperties": false
        });
        vec![tool_spec(
            "failover_dns_record",
            "Point a DNS record at its operator-configured failover target, after the target's health check passes.",
            schema,
            Effect::Mutate,
            Risk::Medium,
            true,
        )]
    }

    fn plan(call: ToolCall) -> Result<ActionPlan> {
        let failover = Failover::of(&call)?;
        let api = Cloudflare::from_config()?;
        let record = api.find(&failover)?;
        let health = failover.check_health();
        let summary = match (&health, record.content == failover.target) {
            (_, true) => format!("{} already points at {}", failover.record, failover.target),
            (Ok(status), false) => format!(
                "point {} at {} (secondary healthy: HTTP {status})",
                failover.record, failover.target
            ),
            (Err(e), false) => format!(
                "would refuse: secondary {} is unhealthy ({})",
                failover.target,
                e.reason()
            ),
        };
        let changes = if record.content == failover.target {
            vec![]
        } else {
            api.changes(&failover, &record)
        };
        Ok(ActionPlan { summary, changes })
    }

    fn execute(call: ToolCall) -> Result<Outcome> {
        let failover = Failover::of(&call)?;
        let status = failover.check_health().map_err(|e| match e {
            Error::Denied(_) => e,
            other => Error::Failed(format!(
                "secondary {} failed its health check, record {} not changed: {}",
                failover.target,
                failover.record,
                other.reason()
            )),
        })?;
        let api = Cloudflare::from_config()?;
        let record = api.find(&failover)?;
        if record.content == failover.target {
            return Ok(Outcome {
                summary: format!("{} already points at {}", failover.record, failover.target),
                changes: vec![],
                detail_json: json!({"record_id": record.id}).to_string(),
            });
        }
        let updated = api.point_at(&record, &failover.target)?;
        if updated.content != failover.target {
            return Err(Error::Failed(format!(
                "Cloudflare accepted the change but the record now reads {:?}",
                updated.content
            )));
        }
        log_info(
            "DNS record failed over",
            &[("record", &failover.record), ("to", &failover.target)],
        );
        Ok(Outcome {
            summary: format!(
                "{} now points at {} (secondary healthy: HTTP {status})",
                failover.record, failover.target
            ),
            changes: api.changes(&failover, &record),
            detail_json: json!({"record_id": record.id, "type": record.kind,
                                "before": record.content, "after": updated.content})
            .to_string(),
        })
    }
}

/// What the operator configured for one record.
struct Failover {
    record: String,
    target: String,
    health_url: String,
}

impl Failover {
    fn of(call: &ToolCall) -> Result<Self> {
        let record = Params::of(call)?.str("record")?.to_ascii_lowercase();
        let setting = |key: String| {
            config::get(&key).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "no failover is configured for {record}: the policy's [config] needs `{key}`"
                ))
            })
        };
        Ok(Failover {
            target: setting(format!("target.{record}"))?,
            health_url: setting(format!("health.{record}"))?,
            record,
        })
    }

    /// The secondary's health check: HTTP status if 2xx.
    fn check_health(&self) -> Result<u16> {
        http::get(&self.health_url, &[])?
            .success()
            .map(|r| r.status)
    }
}

struct DnsRecord {
    id: String,
    kind: String,
    content: String,
}

impl DnsRecord {
    fn from_json(v: &Value) -> Result<Self> {
        let field = |k: &str| {
            v[k].as_str().map(str::to_string).ok_or_else(|| {
                Error::Failed(format!("Cloudflare returned a DNS record without `{k}`"))
            })
        };
        let id = field("id")?;
        // The id goes into a URL path.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Failed(format!(
                "Cloudflare returned a DNS record id {id:?} that is not an id"
            )));
        }
        Ok(DnsRecord {
            id,
            kind: field("type")?,
            content: field("content")?,
        })
    }
}

/// The few Cloudflare v4 calls we need.
///
/// The API token is not the plugin's: the operator's policy binds it to the
/// Cloudflare origin (`[[grants.http.inject]]`) and the host adds it to each
/// request, so this code never holds it.
struct Cloudflare {
    zone: String,
    zone_url: String,
}

impl Cloudflare {
    fn from_config() -> Result<Self> {
        let api = config::get("api_url").unwrap_or_else(|| DEFAULT_API.to_string());
        let zone = config::get("zone_id")
            .ok_or_else(|| Error::InvalidInput("the policy's [config] needs `zone_id`".into()))?;
        if !zone.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::InvalidInput(format!(
                "config zone_id {zone:?} is not a Cloudflare zone id"
            )));
        }
        Ok(Cloudflare {
            zone_url: format!("{}/zones/{zone}", api.trim_end_matches('/')),
            zone,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(Value::to_string);
        let resp = http::request(
            method,
            &format!("{}{path}", self.zone_url),
            &[("content-type", "application/json")],
            body.as_deref().map(str::as_bytes),
            http::DEFAULT_MAX_BODY,
        )?;
        let answer = resp.json().unwrap_or(Value::Null);
        if answer["success"] != true || !(200..300).contains(&resp.status) {
            let errors: Vec<String> = answer["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|e| format!("{} {}", e["code"], e["message"].as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let why = format!(
                "Cloudflare answered HTTP {}: {}",
                resp.status,
                if errors.is_empty() {
                    "no error detail".into()
                } else {
                    errors.join("; ")
                }
            );
            return Err(if resp.status >= 500 || resp.status == 429 {
                Error::Unavailable(why)
            } else if resp.status == 401 || resp.status == 403 {
                Error::Denied(format!(
                    "{why} (the host adds the API token the policy binds to this origin: `[[grants.http.inject]]` with secret `{TOKEN}`)"
                ))
            } else {
                Error::Failed(why)
            });
        }
        Ok(answer["result"].clone())
    }

    /// The one A, AAAA or CNAME record of that name.
    fn find(&self, failover: &Failover) -> Result<DnsRecord> {
        let result = self.call(
            "GET",
            &format!("/dns_records?name={}", encode_query_value(&failover.record)),
            None,
        )?;
        let mut records: Vec<DnsRecord> = result
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|r| matches!(r["type"].as_str(), Some("A" | "AAAA" | "CNAME")))
                    .map(DnsRecord::from_json)
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        if records.len() > 1 {
            return Err(Error::Failed(format!(
                "{} records are named {}; failover switches exactly one",
                records.len(),
                failover.record
            )));
        }
        records.pop().ok_or_else(|| {
            Error::Failed(format!(
                "no A, AAAA or CNAME record named {} in the zone",
                failover.record
            ))
        })
    }

    /// The typed effects of pointing `record` at the failover target: the
    /// DNS change itself, and the one PATCH that makes it.
    fn changes(&self, failover: &Failover, record: &DnsRecord) -> Vec<Change> {
        let url = format!("{}/dns_records/{}", self.zone_url, record.id);
        let mut changes = vec![effects::dns_record(
            &self.zone,
            &failover.record,
            Some(&record.content),
            &failover.target,
        )];
        if let Some(origin) = effects::origin_of(&url) {
            changes.push(effects::http_request(
                "PATCH",
                &origin,
                &effects::path_of(&url),
            ));
        }
        changes
    }

    fn point_at(&self, record: &DnsRecord, target: &str) -> Result<DnsRecord> {
        let body = json!({"content": target, "comment": "failed over by runwarden"});
        let result = self.call("PATCH", &format!("/dns_records/{}", record.id), Some(&body))?;
        DnsRecord::from_json(&result)
    }
}

runwarden_sdk::export_tool!(DnsFailover);

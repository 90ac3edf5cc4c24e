//! `runwarden mcp`: the granted tools and context sources, for any MCP
//! client, through the same guardrails as the agent's own decisions.
//!
//! What an MCP client can reach is what the policies already granted:
//! remediation tools as `PLUGIN.TOOL` (their JSON Schemas; `readOnlyHint`
//! only where the host enforces it — a tool declared `read` executes with
//! every mutation denied — and `destructiveHint` for a mutating tool that
//! says it cannot be undone), and each context
//! source as a read-only `PLUGIN.gather`. A tool call is not executed
//! here: it goes to [`Agent::run_requested`], which audits it, runs the
//! guardrails (schema, capability, autonomy, blast radius, cooldown,
//! breaker), asks a human when the policy says so, and reports. There is no
//! tool that grants, approves or changes policy: an MCP client — and a
//! model behind it — cannot widen its own permissions.

use crate::analysis::EvidenceItem;
use crate::bindings::types::{Effect, TimeWindow};
use crate::pipeline::Agent;
use crate::policy::PluginKind;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;

/// The MCP face of one agent. `client` names the caller in the audit
/// trail (the access token's name over HTTP, `stdio` locally).
#[derive(Clone)]
pub struct McpServer {
    agent: Arc<Agent>,
    client: String,
}

/// What a tool name resolves to.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Tool { plugin: &'a str, tool: &'a str },
    Gather { plugin: &'a str },
}

fn parse(name: &str) -> Option<Target<'_>> {
    let (plugin, rest) = name.split_once('.')?;
    if plugin.is_empty() || rest.is_empty() || rest.contains('.') {
        return None;
    }
    Some(if rest == "gather" {
        Target::Gather { plugin }
    } else {
        Target::Tool { plugin, tool: rest }
    })
}

fn object(v: Value) -> Arc<serde_json::Map<String, Value>> {
    Arc::new(match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    })
}

fn gather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "alertname": {"type": "string", "description": "the alert to gather context for"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "alert labels, e.g. namespace and service"},
            "lookback_minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60}
        },
        "required": ["alertname"],
        "additionalProperties": false
    })
}

fn text_result(value: &Value, is_error: bool) -> CallToolResponse {
    let content = vec![ContentBlock::text(
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )];
    if is_error {
        CallToolResult::error(content).into()
    } else {
        CallToolResult::success(content).into()
    }
}

impl McpServer {
    pub fn new(agent: Arc<Agent>, client: impl Into<String>) -> Self {
        McpServer {
            agent,
            client: client.into(),
        }
    }

    /// Every granted tool and source, as MCP tools.
    pub async fn tools(&self) -> Vec<Tool> {
        let mut tools = Vec::new();
        let services = &self.agent.registry.services;
        for plugin in self.agent.registry.plugins() {
            match plugin.kind() {
                PluginKind::RemediationTool => {
                    let Ok(specs) = plugin.describe_tools(services).await.result else {
                        continue;
                    };
                    for spec in specs {
                        let schema = serde_json::from_str(&spec.parameters_schema)
                            .unwrap_or_else(|_| json!({"type": "object"}));
                        // Enforced: a `read` tool executes read-only.
                        let read = spec.effect == Effect::Read;
                        tools.push(
                            Tool::new(
                                format!("{}.{}", plugin.name(), spec.name),
                                format!(
                                    "{} (runs through runwarden's guardrails; may wait for a human's approval)",
                                    spec.description
                                ),
                                object(schema),
                            )
                            .with_annotations(
                                ToolAnnotations::new()
                                    .read_only(read)
                                    .destructive(!read && !spec.reversible)
                                    .open_world(true),
                            ),
                        );
                    }
                }
                PluginKind::ContextSource => tools.push(
                    Tool::new(
                        format!("{}.gather", plugin.name()),
                        format!(
                            "Evidence from the `{}` context source for an alert (read-only, redacted).",
                            plugin.name()
                        ),
                        object(gather_schema()),
                    )
                    .with_annotations(ToolAnnotations::new().read_only(true).open_world(true)),
                ),
            }
        }
        tools
    }

    /// Runs one call for `client`; the answer is JSON text, `is_error` when
    /// nothing useful happened (refused, failed, unknown tool).
    pub async fn call(&self, client: &str, name: &str, arguments: Value) -> (Value, bool) {
        let Some(target) = parse(name) else {
            return (
                json!({"error": format!("unknown tool `{name}`: tools are PLUGIN.TOOL or PLUGIN.gather")}),
                true,
            );
        };
        match target {
            Target::Tool { plugin, tool } => {
                match self
                    .agent
                    .run_requested(client, plugin, tool, arguments)
                    .await
                {
                    Ok(r) => {
                        use crate::pipeline::act::ActionStatus as S;
                        let failed =
                            matches!(r.outcome.status, S::Refused { .. } | S::Failed { .. });
                        (
                            json!({"incident": r.incident, "status": r.outcome.status,
                                   "summary": r.outcome.summary(), "plan": r.outcome.plan,
                                   "result": r.outcome.result, "detail": r.outcome.detail}),
                            failed,
                        )
                    }
                    Err(e) => (json!({"error": e.to_string()}), true),
                }
            }
            Target::Gather { plugin } => self.gather(client, plugin, arguments).await,
        }
    }

    async fn gather(&self, client: &str, plugin_name: &str, arguments: Value) -> (Value, bool) {
        let Some(plugin) = self
            .agent
            .registry
            .get(plugin_name)
            .filter(|p| p.kind() == PluginKind::ContextSource)
        else {
            return (
                json!({"error": format!("no context source `{plugin_name}`")}),
                true,
            );
        };
        let request: GatherRequest = match serde_json::from_value(arguments) {
            Ok(r) => r,
            Err(e) => return (json!({"error": format!("arguments: {e}")}), true),
        };
        let minutes = i64::from(request.lookback_minutes.clamp(1, 1440));
        let now = chrono::Utc::now();
        let alert = crate::intake::Alert {
            sender: crate::intake::Sender::Mcp,
            name: request.alertname.clone(),
            status: crate::intake::Status::Firing,
            fingerprint: "mcp-gather".into(),
            labels: request
                .labels
                .into_iter()
                .chain([("alertname".to_string(), request.alertname)])
                .collect(),
            annotations: Default::default(),
            starts_at: now,
            ends_at: None,
            generator_url: None,
        };
        let window = TimeWindow {
            start: now.timestamp_millis() - minutes * 60_000,
            end: now.timestamp_millis(),
        };
        let called = plugin
            .gather(&self.agent.registry.services, &alert.to_wit(), window)
            .await;
        let answer = match called.result {
            Ok(items) => {
                let evidence: Vec<EvidenceItem> = items
                    .iter()
                    .map(|e| {
                        crate::pipeline::redact_evidence(&EvidenceItem::from_wit(plugin_name, e))
                    })
                    .collect();
                (json!({"evidence": evidence}), false)
            }
            Err(e) => (json!({"error": e.to_string()}), true),
        };
        let audited = self.agent.store.append_audit(
            None,
            "mcp-gather",
            &crate::redact::redact_json(&json!({"client": client, "source": plugin_name,
                "alert": alert.name, "labels": alert.labels, "ok": !answer.1})),
        );
        if let Err(e) = audited {
            return (
                json!({"error": format!("not audited, not answered: {e}")}),
                true,
            );
        }
        answer
    }
}

/// The authenticated caller of an HTTP request (set by [`serve_http`]'s
/// access check).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// Streamable HTTP at `/mcp`. Every request needs an access token with the
/// approver role: an MCP caller can cause changes (within the guardrails),
/// but approving stays a separate, human step on the API.
pub fn http_router(agent: Arc<Agent>, access: crate::server::Access) -> axum::Router {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let server = McpServer::new(agent, "mcp:http");
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let access = Arc::new(access);
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |mut req: axum::extract::Request, next: axum::middleware::Next| {
                let access = access.clone();
                async move {
                    use axum::response::IntoResponse;
                    let authorization = req
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    match access.authorize(authorization, crate::server::Role::Approver) {
                        Ok(name) => {
                            req.extensions_mut().insert(Caller(name));
                            next.run(req).await
                        }
                        Err(refusal) => {
                            let status = match refusal {
                                crate::server::access::Refusal::Unauthenticated(_) => {
                                    http::StatusCode::UNAUTHORIZED
                                }
                                crate::server::access::Refusal::Forbidden(_) => {
                                    http::StatusCode::FORBIDDEN
                                }
                            };
                            (status, axum::Json(json!({"error": refusal.to_string()})))
                                .into_response()
                        }
                    }
                }
            },
        ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GatherRequest {
    alertname: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_lookback")]
    lookback_minutes: u32,
}

fn default_lookback() -> u32 {
    60
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "runwarden's granted remediation tools (PLUGIN.TOOL) and context sources (PLUGIN.gather). \
             Every call is audited and goes through the operator's guardrails; mutating calls may \
             wait for a human's approval, which no MCP call can give.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools().await))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Over HTTP, the caller is the access token's name.
        let client = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .map_or_else(|| self.client.clone(), |c| format!("mcp:{}", c.0));
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let (answer, is_error) = self.call(&client, &request.name, arguments).await;
        Ok(text_result(&answer, is_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_plugin_and_tool() {
        assert_eq!(
            parse("k8s-remediation.scale_deployment"),
            Some(Target::Tool {
                plugin: "k8s-remediation",
                tool: "scale_deployment"
            })
        );
        assert_eq!(
            parse("prometheus.gather"),
            Some(Target::Gather {
                plugin: "prometheus"
            })
        );
        for bad in ["", "scale", ".x", "x.", "a.b.c"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}

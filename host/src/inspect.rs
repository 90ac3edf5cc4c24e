//! `runwarden plugin inspect`: what a security reviewer needs on one screen.
//!
//! Works on a policy (the plugin as it would run: digest check, requested vs
//! granted capabilities, limits) or on a bare component (what it imports and
//! declares, run with every capability linked to an empty grant, so nothing
//! it calls can succeed).

use crate::bindings::types::{Effect, Risk, ToolSpec};
use crate::capability::{Capability, Grants, Requests};
use crate::plugin::{self, Interfaces};
use crate::policy::{self, Limits, LoadedPolicy, PluginKind};
use crate::registry::inert_services;
use crate::sandbox::cache::{CompileCache, sha256_hex};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use wasmtime::Engine;

#[derive(Debug, Serialize)]
pub struct Report {
    pub name: Option<String>,
    pub kind: Option<PluginKind>,
    pub component: String,
    pub sha256: String,
    pub pinned: Option<String>,
    pub policy: Option<String>,
    pub limits: Option<Limits>,
    pub interfaces: Interfaces,
    /// The contract version the component was built against.
    pub contract: Option<crate::policy::Contract>,
    pub tools: Vec<ToolRow>,
    pub source: Option<SourceRow>,
    pub requested: Option<Requests>,
    pub granted: Option<Grants>,
    pub effective: Option<Grants>,
    /// The operator's `[config]` for the plugin (non-secret settings: a
    /// failover target, a base URL).
    pub config: std::collections::BTreeMap<String, String>,
    /// Whether the policy requires a publisher's signature, and the verdict.
    pub signature: Option<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ToolRow {
    pub name: String,
    pub description: String,
    pub effect: &'static str,
    pub risk: &'static str,
    pub reversible: bool,
    pub parameters: serde_json::Value,
    /// What the host enforces for this tool, whatever it declares.
    pub enforced: String,
}

#[derive(Debug, Serialize)]
pub struct SourceRow {
    pub name: String,
    pub description: String,
    pub provides: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Compile(String),
}

fn tool_row(t: ToolSpec) -> ToolRow {
    ToolRow {
        parameters: serde_json::from_str(&t.parameters_schema)
            .unwrap_or(serde_json::Value::String(t.parameters_schema)),
        name: t.name,
        description: t.description,
        effect: match t.effect {
            Effect::Read => "read",
            Effect::Mutate => "mutate",
        },
        risk: match t.risk {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        },
        reversible: t.reversible,
        enforced: String::new(),
    }
}

/// What the host will enforce when `tool` executes: the declaration `read`
/// is held to (every mutation denied); a mutating tool of 0.2.0 is bound to
/// the typed effects of its plan, within the grant; a 0.1.0 tool's changes
/// are untyped, so it always waits for a human and only the grant binds it.
pub fn enforcement(
    tool: &ToolRow,
    contract: Option<crate::policy::Contract>,
    effective: Option<&Grants>,
) -> String {
    if tool.effect == "read" {
        return "executes read-only: every mutating call denied (the declaration is enforced)"
            .into();
    }
    let within = effective.map_or("the grant".to_string(), mutations_granted);
    match contract {
        Some(crate::policy::Contract::V0_1) => format!(
            "0.1.0: changes untyped (`other`): always waits for a human; then only {within} binds it"
        ),
        _ => format!("bound to its plan's typed effects, within {within}"),
    }
}

/// The mutations an effective grant allows, in one line.
fn mutations_granted(g: &Grants) -> String {
    let mut parts = Vec::new();
    if let Some(k) = &g.k8s {
        let ops: Vec<&str> = k
            .operations
            .iter()
            .filter(|o| !o.is_read())
            .map(|o| o.name())
            .collect();
        if !ops.is_empty() {
            let ns: Vec<&str> = k.namespaces.iter().map(|n| n.as_str()).collect();
            let mut line = format!("k8s {} in {}", ops.join(", "), ns.join(", "));
            if ops.contains(&"scale") {
                line.push_str(&format!(", at most {} replicas", k.max_replicas));
            }
            if ops.contains(&"delete-pods") {
                line.push_str(&format!(", at most {} pods a call", k.max_pods_per_action));
            }
            parts.push(line);
        }
        if k.read_all_namespaces {
            let except: Vec<&str> = crate::capability::k8s::grant::SYSTEM_NAMESPACES
                .iter()
                .copied()
                .chain(k.except_namespaces.iter().map(|n| n.as_str()))
                .collect();
            parts.push(format!(
                "k8s reads in every namespace except {}",
                except.join(", ")
            ));
        }
    }
    if let Some(h) = &g.http {
        parts.push(format!(
            "http requests to {}",
            serde_json::to_value(&h.allow)
                .map(|v| v.to_string())
                .unwrap_or_default()
        ));
    }
    if parts.is_empty() {
        "a grant that allows no mutation".into()
    } else {
        parts.join("; ")
    }
}

/// Inspects a policy file (`.toml`) or a bare component (anything else).
pub async fn inspect(
    engine: &Engine,
    cache: &CompileCache,
    path: &Path,
) -> Result<Report, InspectError> {
    if path.extension().is_some_and(|e| e == "toml") {
        inspect_policy(engine, cache, path).await
    } else {
        inspect_component(engine, cache, path).await
    }
}

async fn inspect_policy(
    engine: &Engine,
    cache: &CompileCache,
    path: &Path,
) -> Result<Report, InspectError> {
    let file = policy::load::parse_policy(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let component_path = base.join(&file.plugin.component);
    let manifest = policy::load::parse_manifest(&base.join(&file.plugin.manifest))?;
    let bytes = std::fs::read(&component_path).map_err(|source| InspectError::Io {
        path: component_path.display().to_string(),
        source,
    })?;
    let sha256 = sha256_hex(&bytes);
    let mut report = describe_bytes(engine, cache, &bytes, Some(manifest.plugin.kind)).await?;
    report.component = component_path.display().to_string();
    report.name = Some(file.plugin.name.to_string());
    report.kind = Some(manifest.plugin.kind);
    report.pinned = Some(file.plugin.sha256.to_string());
    if file.plugin.sha256.as_str() != sha256 {
        report.problems.push(format!(
            "digest mismatch: the component is {sha256} but the policy pins {}; it will not load",
            file.plugin.sha256
        ));
    }
    report.policy = Some(path.display().to_string());
    report.limits = Some(file.limits);
    let effective = file.grants.effective(&manifest.requests);
    for bad in crate::capability::check_imports(
        report.interfaces.imports.iter().map(String::as_str),
        &effective,
    ) {
        report.problems.push(format!("will not load: it {bad}"));
    }
    for cap in effective.names() {
        let used = report
            .interfaces
            .imports
            .iter()
            .any(|i| Capability::of_import(i) == Some(cap));
        if !used {
            report.problems.push(format!(
                "note: `{cap}` is granted but the component does not import it"
            ));
        }
    }
    for t in &mut report.tools {
        t.enforced = enforcement(t, report.contract, Some(&effective));
    }
    report.signature = Some(match &file.plugin.require_publisher {
        None => "not required by this policy (the sha256 pin alone decides)".into(),
        Some(publisher) => match policy::load::load_policy(path) {
            Ok(loaded) => match loaded.signed_by {
                Some(v) => format!(
                    "required: {publisher}; verified (signed by {} over these bytes and the manifest's requests)",
                    v.publisher
                ),
                None => format!("required: {publisher}; not verified"),
            },
            Err(e) => format!("required: {publisher}; FAILS: {e}"),
        },
    });
    report.config = file.config.clone();
    report.requested = Some(manifest.requests);
    report.granted = Some(file.grants);
    report.effective = Some(effective);
    Ok(report)
}

async fn inspect_component(
    engine: &Engine,
    cache: &CompileCache,
    path: &Path,
) -> Result<Report, InspectError> {
    let bytes = std::fs::read(path).map_err(|source| InspectError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut report = describe_bytes(engine, cache, &bytes, None).await?;
    report.component = path.display().to_string();
    Ok(report)
}

/// Compiles the bytes, lists interfaces, and asks the plugin to describe
/// itself with every capability linked to an empty (deny-all) grant.
async fn describe_bytes(
    engine: &Engine,
    cache: &CompileCache,
    bytes: &[u8],
    kind: Option<PluginKind>,
) -> Result<Report, InspectError> {
    let sha256 = sha256_hex(bytes);
    let (component, _) = cache
        .load(engine, bytes, &sha256)
        .map_err(|e| InspectError::Compile(e.to_string()))?;
    let interfaces = Interfaces::of(engine, &component);
    let kind = kind.or_else(|| {
        [PluginKind::RemediationTool, PluginKind::ContextSource]
            .into_iter()
            .find(|k| k.contract_of(&interfaces.exports).is_some())
    });
    let mut report = Report {
        name: None,
        kind,
        component: String::new(),
        sha256: sha256.clone(),
        pinned: None,
        policy: None,
        limits: None,
        contract: kind.and_then(|k| k.contract_of(&interfaces.exports)),
        interfaces,
        tools: vec![],
        source: None,
        requested: None,
        granted: None,
        effective: None,
        config: Default::default(),
        signature: None,
        problems: vec![],
    };
    let Some(kind) = kind else {
        report
            .problems
            .push("exports neither runwarden:plugin/tool nor runwarden:plugin/source".into());
        return Ok(report);
    };
    let inert = LoadedPolicy::for_inspection(bytes.to_vec(), kind);
    match plugin::load(engine, cache, inert) {
        Ok(p) => {
            let services = inert_services();
            match kind {
                PluginKind::RemediationTool => match p.describe_tools(&services).await.result {
                    Ok(tools) => {
                        report.tools = tools.into_iter().map(tool_row).collect();
                        for t in &mut report.tools {
                            t.enforced = enforcement(t, report.contract, None);
                        }
                    }
                    Err(e) => report.problems.push(format!("describe failed: {e}")),
                },
                PluginKind::ContextSource => match p.describe_source(&services).await.result {
                    Ok(info) => {
                        report.source = Some(SourceRow {
                            name: info.name,
                            description: info.description,
                            provides: info.provides.iter().map(|k| format!("{k:?}")).collect(),
                        })
                    }
                    Err(e) => report.problems.push(format!("describe failed: {e}")),
                },
            }
        }
        Err(e) => report
            .problems
            .push(format!("cannot instantiate for describe: {e}")),
    }
    Ok(report)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn caps_line(v: &impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k} {}", v))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "yes (nothing to configure)".to_string())
}

/// Renders the report for a terminal.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "plugin      {} ({})",
        r.name.as_deref().unwrap_or("-"),
        r.kind.map_or("unknown".into(), |k| k.to_string())
    );
    let _ = writeln!(o, "component   {}", r.component);
    if let Some(c) = r.contract {
        let _ = writeln!(o, "contract    runwarden:plugin@{c}");
    }
    let pin = match &r.pinned {
        Some(p) if *p == r.sha256 => " (matches the policy's pin)".to_string(),
        Some(_) => " (DOES NOT MATCH the policy's pin)".to_string(),
        None => " (no policy: not pinned)".to_string(),
    };
    let _ = writeln!(o, "sha256      {}{pin}", r.sha256);
    if let Some(p) = &r.policy {
        let _ = writeln!(o, "policy      {p}");
    }
    if let Some(sig) = &r.signature {
        let _ = writeln!(o, "signature   {sig}");
    }
    if let Some(l) = &r.limits {
        let _ = writeln!(
            o,
            "limits      memory {} MiB (all memories) | deadline {} ms | output {} KiB | log lines {}",
            l.memory_mib.0, l.timeout_ms.0, l.max_output_kib.0, l.max_log_lines.0
        );
    }
    let _ = writeln!(o, "\nexports");
    for e in &r.interfaces.exports {
        let _ = writeln!(o, "  {e}");
    }
    let _ = writeln!(o, "imports");
    for i in &r.interfaces.imports {
        let note = match Capability::of_import(i) {
            Some(cap) => {
                let state = match &r.effective {
                    Some(eff) if eff.has(cap) => "granted",
                    Some(_) => "NOT GRANTED",
                    None => "needs a grant",
                };
                format!("capability {cap}: {state}")
            }
            None if i.starts_with("runwarden:plugin/") => {
                "always provided (types, own config)".to_string()
            }
            None if i.starts_with("wasi:sockets/") => {
                "linked, every socket and lookup denied (network only via wasi:http)".to_string()
            }
            None => "WASI base (no files, env or args)".to_string(),
        };
        let _ = writeln!(o, "  {i:<42} {note}");
    }
    if !r.tools.is_empty() {
        let _ = writeln!(
            o,
            "\ntools       {:<22} {:<7} {:<7} {:<11} parameters (* required)",
            "", "effect", "risk", "reversible"
        );
        for t in &r.tools {
            let required: Vec<String> = t.parameters["required"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let params: Vec<String> = t.parameters["properties"]
                .as_object()
                .map(|m| {
                    m.keys()
                        .map(|k| {
                            if required.contains(k) {
                                format!("{k}*")
                            } else {
                                k.clone()
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {:<32} {:<7} {:<7} {:<11} {}",
                t.name,
                t.effect,
                t.risk,
                yes_no(t.reversible),
                params.join(", ")
            );
            let _ = writeln!(
                o,
                "    declared {}; host enforces: {}",
                t.effect, t.enforced
            );
        }
    }
    if let Some(s) = &r.source {
        let _ = writeln!(
            o,
            "\nsource      {}: {}\n  provides  {}",
            s.name,
            s.description,
            s.provides.join(", ")
        );
    }
    if let (Some(req), Some(granted), Some(eff)) = (&r.requested, &r.granted, &r.effective) {
        let _ = writeln!(o, "\ncapabilities");
        for cap in Capability::ALL {
            let pick = |v: serde_json::Value| v.get(cap.name()).cloned().filter(|v| !v.is_null());
            let rq = pick(serde_json::to_value(req).unwrap_or_default());
            let gr = pick(serde_json::to_value(granted).unwrap_or_default());
            let ef = pick(serde_json::to_value(eff).unwrap_or_default());
            if rq.is_none() && gr.is_none() {
                continue;
            }
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .map_or("-".to_string(), |v| caps_line(v).replace('\n', "; "))
            };
            let requested = match (&rq, cap) {
                // The author asks for HTTP; which origins is the operator's.
                (Some(v), Capability::Http)
                    if v.as_object()
                        .is_some_and(|m| m.values().all(|x| x.is_null())) =>
                {
                    "yes (which origins is the operator's grant)".to_string()
                }
                _ => show(&rq),
            };
            let _ = writeln!(o, "  {cap}");
            let _ = writeln!(
                o,
                "    requested  {requested}   (author's manifest: a declaration)"
            );
            let _ = writeln!(o, "    granted    {}   (operator's policy)", show(&gr));
            let _ = writeln!(
                o,
                "    effective  {}   (what the host enforces)",
                if ef.is_some() {
                    show(&ef)
                } else {
                    "NONE (not both requested and granted)".into()
                }
            );
            if cap == Capability::Http
                && let Some(h) = eff.http.as_ref()
            {
                for origin in &h.allow {
                    let _ = writeln!(o, "    origin     {origin}");
                }
                for i in &h.inject {
                    let _ = writeln!(
                        o,
                        "    credential secret `{}` placed by the host into requests to {} ({}); the plugin cannot read it",
                        i.secret,
                        i.origin,
                        serde_json::to_value(i.scheme)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    );
                }
                if h.allow_private_cidrs.is_empty() {
                    let _ = writeln!(
                        o,
                        "    addresses  loopback, private, link-local and metadata addresses refused (no exception)"
                    );
                } else {
                    for net in &h.allow_private_cidrs {
                        let _ = writeln!(o, "    exception  names may resolve into {net}");
                    }
                }
            }
        }
    }
    if !r.config.is_empty() {
        let _ = writeln!(
            o,
            "\nconfig      (operator's settings for the plugin, read through `config`)"
        );
        for (k, v) in &r.config {
            let _ = writeln!(o, "  {k} = {v:?}");
        }
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o, "\nfindings");
        for p in &r.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    o
}

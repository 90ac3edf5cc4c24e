//! What a plugin hands back: tool specs (whose JSON Schemas the host
//! compiles), arguments checked against them, evidence bodies. A plugin is
//! untrusted, so none of this may panic.
#![no_main]
use runwarden::analysis::EvidenceItem;
use runwarden::bindings::types::{Effect, Evidence, EvidenceKind, Risk, ToolSpec};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // schema \0 arguments \0 evidence body
    let mut parts = text.splitn(3, '\0');
    let schema = parts.next().unwrap_or_default().to_string();
    let args = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_string();
    let specs = [ToolSpec {
        name: "t".into(),
        description: String::new(),
        parameters_schema: schema,
        effect: Effect::Mutate,
        risk: Risk::High,
        reversible: false,
    }];
    let _ = runwarden::toolcall::validate(&specs, "t", args);
    let e = Evidence {
        kind: EvidenceKind::Note,
        summary: text.chars().take(200).collect(),
        body_json: body,
        observed_from: None,
        observed_to: None,
    };
    let item = EvidenceItem::from_wit("fuzz", &e);
    let _ = runwarden::pipeline::redact::redact_json(&item.body);
    let _ = runwarden::pipeline::redact::redact(&item.summary);
});

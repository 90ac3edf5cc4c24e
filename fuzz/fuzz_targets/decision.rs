//! A model's answer: parsed into a decision, every proposal validated
//! against the offered tools' schemas, or refused with a reason.
#![no_main]
use runwarden::analysis::llm::{ToolOffer, interpret};
use runwarden::bindings::types::{Effect, Risk, ToolSpec};
use std::sync::OnceLock;

fn tools() -> &'static [ToolOffer] {
    static T: OnceLock<Vec<ToolOffer>> = OnceLock::new();
    T.get_or_init(|| {
        vec![ToolOffer {
            plugin: "k8s-remediation".into(),
            spec: ToolSpec {
                name: "scale_deployment".into(),
                description: "scale".into(),
                parameters_schema: r#"{"type":"object","properties":{"namespace":{"type":"string"},"name":{"type":"string"},"replicas":{"type":"integer","minimum":0}},"required":["namespace","name","replicas"],"additionalProperties":false}"#.into(),
                effect: Effect::Mutate,
                risk: Risk::Medium,
                reversible: true,
            },
        }]
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = interpret("fuzz", &text, tools(), 64 * 1024);
});

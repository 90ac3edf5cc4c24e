//! Operator and author files: plugin policies, manifests, runbooks, the
//! access file, trusted publishers. Each must parse or say why.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<runwarden::policy::PolicyFile>(text);
    let _ = toml::from_str::<runwarden::policy::Manifest>(text);
    let _ = toml::from_str::<runwarden::pipeline::autonomy::AutonomyPolicy>(text);
    let _ = runwarden::analysis::runbook::parse(text);
    let _ = runwarden::server::Access::parse(text, std::path::Path::new("/nonexistent"));
    let _ = runwarden::policy::signing::decode_public_key(text);
});

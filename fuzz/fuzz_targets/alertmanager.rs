//! Alertmanager / Grafana webhook bodies: parse errors, never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = runwarden::intake::alertmanager::parse(data);
});

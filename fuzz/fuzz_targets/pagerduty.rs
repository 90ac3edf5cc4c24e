//! PagerDuty v3 bodies and signature headers.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = runwarden::intake::pagerduty::parse(data);
    // The first line is the header, the rest the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let header = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = runwarden::intake::pagerduty::verify_signature(body, &header, b"secret");
});

//! OpsGenie webhook bodies.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = runwarden::intake::opsgenie::parse(data);
});

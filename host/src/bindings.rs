//! Host-side bindings for the plugin worlds in `wit/`.
//!
//! The `remediation-tool` world generates the shared imports (types, k8s,
//! secrets, log); `context-source` reuses them with `with`, so both worlds
//! speak the same Rust types. wasi:http comes from wasmtime-wasi-http.

pub mod tool {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "runwarden:plugin/remediation-tool",
        imports: { default: async },
        exports: { default: async },
        additional_derives: [serde::Serialize],
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub mod source {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "runwarden:plugin/context-source",
        imports: { default: async },
        exports: { default: async },
        with: {
            "runwarden:plugin/types": super::tool::runwarden::plugin::types,
            "runwarden:plugin/k8s": super::tool::runwarden::plugin::k8s,
            "runwarden:plugin/secrets": super::tool::runwarden::plugin::secrets,
            "runwarden:plugin/log": super::tool::runwarden::plugin::log,
            "runwarden:plugin/config": super::tool::runwarden::plugin::config,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use tool::runwarden::plugin::{config, k8s, log, secrets, types};

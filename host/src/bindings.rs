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

/// `runwarden:plugin@0.1.0`, the contract before typed effects. Components
/// built against it keep loading: the host links these interfaces next to
/// the 0.2.0 ones and forwards every call to the same capability code
/// (`legacy.rs`), converting records on the way.
pub mod v0_1 {
    pub mod tool {
        wasmtime::component::bindgen!({
            path: "../wit/v0.1.0",
            world: "runwarden:plugin/remediation-tool",
            imports: { default: async },
            exports: { default: async },
            with: {
                "wasi:http": wasmtime_wasi_http::p2::bindings::http,
                "wasi:io": wasmtime_wasi::p2::bindings::io,
                "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            },
        });
    }

    pub mod source {
        wasmtime::component::bindgen!({
            path: "../wit/v0.1.0",
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
}

//! Generated bindings for the two plugin worlds.
//!
//! Both worlds share the `runwarden:plugin` and `wasi:http` imports; the second
//! `generate!` reuses the first one's import modules (`with`) so a plugin sees
//! one `Error`, one `Alert`, one `k8s` module whichever world it exports.
//! A component only imports the interfaces it actually calls, so a plugin that
//! never touches `k8s` does not ask for the k8s capability.

/// The `context-source` world: export [`source::Guest`] with
/// [`crate::export_source!`].
pub mod source {
    wit_bindgen::generate!({
        path: "../wit",
        world: "runwarden:plugin/context-source",
        pub_export_macro: true,
        export_macro_name: "export_source",
        default_bindings_module: "runwarden_sdk::bindings::source",
        generate_all,
    });
}

/// The `remediation-tool` world: export [`tool::Guest`] with
/// [`crate::export_tool!`].
pub mod tool {
    wit_bindgen::generate!({
        path: "../wit",
        world: "runwarden:plugin/remediation-tool",
        pub_export_macro: true,
        export_macro_name: "export_tool",
        default_bindings_module: "runwarden_sdk::bindings::tool",
        with: {
            "runwarden:plugin/types@0.2.0": super::source::runwarden::plugin::types,
            "runwarden:plugin/k8s@0.2.0": super::source::runwarden::plugin::k8s,
            "runwarden:plugin/secrets@0.2.0": super::source::runwarden::plugin::secrets,
            "runwarden:plugin/log@0.2.0": super::source::runwarden::plugin::log,
            "runwarden:plugin/config@0.2.0": super::source::runwarden::plugin::config,
            "wasi:http/types@0.2.12": super::source::wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": super::source::wasi::http::outgoing_handler,
            "wasi:io/poll@0.2.12": super::source::wasi::io::poll,
            "wasi:io/error@0.2.12": super::source::wasi::io::error,
            "wasi:io/streams@0.2.12": super::source::wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": super::source::wasi::clocks::monotonic_clock,
        },
    });
}

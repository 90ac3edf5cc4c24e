//! runwarden: an on-call incident-response agent whose tools and context
//! sources are WebAssembly components, each granted only what its policy
//! allows. See `ARCHITECTURE.md` for the parts and how an alert flows.

pub mod analysis;
pub mod bench;
pub mod bindings;
pub mod capability;
pub mod effects;
pub mod facts;
pub mod files;
pub mod incident;
pub mod inspect;
pub mod intake;
pub mod leader;
pub mod legacy;
pub mod mcp;
pub mod pipeline;
pub mod plugin;
pub mod policy;
pub mod redact;
pub mod registry;
pub mod replay;
pub mod review;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod toolcall;

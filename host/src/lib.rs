//! The Platos provider host.
//!
//! It loads provider plugins (sandboxed WebAssembly components behind the
//! `platos:provider` WIT contract) and calls them under hard limits.
//!
//! - [`provider`]: the provider contract's domain types.
//! - [`policy`]: pure rules (names, allowed hosts, imports, manifests).
//! - [`outbound`]: the SSRF-safe sender of plugin-described requests.
//! - [`runtime`]: the wasmtime host, plugins and their registry.
//! - [`health`]: health probes through the plugins, in deduplicated rounds.
//! - [`bundled`]: the plugins embedded in this binary.

pub mod bundled;
pub mod health;
pub mod outbound;
pub mod policy;
pub mod provider;
pub mod runtime;

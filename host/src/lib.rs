//! The Platos provider host.
//!
//! It loads provider plugins (sandboxed WebAssembly components behind the
//! `platos:provider` WIT contract) and calls them under hard limits.
//!
//! - [`provider`]: the provider contract's domain types.
//! - [`policy`]: pure rules (names, allowed hosts, imports, manifests).
//! - [`outbound`]: the SSRF-safe sender of plugin-described requests.
//! - [`forward`]: relaying a request the host authorized and sent by lease.
//! - [`runtime`]: the wasmtime host, plugins and their registry.
//! - [`exchange`]: token exchange and the in-memory access-token cache.
//! - [`health`]: health probes through the plugins, in deduplicated rounds.
//! - [`metering`]: budget reservations of forwards, settled to what they cost.
//! - [`bundled`]: the plugins embedded in this binary.
//! - [`scope`]: `org/project/env` scopes.
//! - [`private_fs`]: owner-only files and directories (0600/0700) whatever the umask.
//! - [`crypto`]: the master keys and AES-256-GCM sealing of stored values.
//! - [`store`]: scoped, encrypted variables and provider-key metadata (sled).
//! - [`selfhost`]: the `.env` / process-environment import of a self-hosted host.
//! - [`resolution`]: which key a turn spends, leases, explain, the model picker.
//! - [`audit`]: the audit trail: one record per change and per use of a key, never a value.
//! - [`api`]: the HTTP API, tokens, OpenAPI, metrics and the providers page.

pub mod api;
pub mod audit;
pub mod bundled;
pub mod crypto;
pub mod embedding;
pub mod envexample;
pub mod exchange;
pub mod forward;
pub mod harness;
pub mod health;
pub mod metering;
pub mod outbound;
pub mod policy;
pub mod private_fs;
pub mod provider;
pub mod resolution;
pub mod runtime;
pub mod scope;
pub mod selfhost;
pub mod store;

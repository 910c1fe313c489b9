//! Policy: small pure functions with no I/O, each with its own unit tests.
//!
//! - [`names`]: what slugs and environment variable names may look like.
//! - [`addresses`]: which IP addresses outbound requests may reach.
//! - [`hosts`]: allowed-host patterns and the outbound request check.
//! - [`imports`]: which component imports a plugin may have.
//! - [`manifest`]: the rules a manifest must follow to load;
//!   [`manifest_additions`]: those of what contract 0.2.0 added (clients, aliases).
//! - [`ownership`]: which plugin owns which variable name; the host's reserved names.
//! - [`plugin_policy`]: the operator's plugin policy file (name grants).
//! - [`variants`]: numbered key variants and which variables feed a key's env bag.
//! - [`hints`]: near-miss variable names (`OPENAI_KEY` → `OPENAI_API_KEY`).
//! - [`models`]: the class of a discovered model.
//! - [`verdicts`]: verdict classes and health badges.
//! - [`redaction`]: the secrets of a call, found in any encoding and redacted.
//! - [`auth_shape`]: where a request may carry the call's secrets.
//! - [`caller_auth`]: a caller's own auth is removed, never kept beside a plugin's.
//! - [`wire_url`]: a request URL in the form the HTTP client sends it.
//! - [`bounds`]: size caps on plugin output and the messages that quote it.
//! - [`spend`]: the price a request is charged at, the most it can cost, what it cost.

pub mod addresses;
pub mod auth_shape;
pub mod bounds;
pub mod caller_auth;
pub mod client_env;
pub mod hints;
pub mod hosts;
pub mod imports;
pub mod manifest;
pub mod manifest_additions;
pub mod models;
pub mod names;
pub mod ownership;
pub mod plugin_policy;
pub mod redaction;
pub mod spend;
pub mod variants;
pub mod verdicts;
pub mod wire_url;

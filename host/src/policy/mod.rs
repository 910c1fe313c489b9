//! Policy: small pure functions with no I/O, each with its own unit tests.
//!
//! - [`names`]: what slugs and environment variable names may look like.
//! - [`hosts`]: allowed-host patterns and the outbound request check.
//! - [`imports`]: which component imports a plugin may have.
//! - [`manifest`]: the rules a manifest must follow to load.

pub mod hosts;
pub mod imports;
pub mod manifest;
pub mod names;

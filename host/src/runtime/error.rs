//! Typed errors of the runtime. Each names the plugin (slug and version, or
//! where it was loaded from) and the part that failed; none carries a secret.

use std::path::PathBuf;
use std::time::Duration;

use super::wit::Unsupported;
use crate::policy::bounds::listed;
use crate::policy::hosts::OutboundRefusal;
use crate::provider::ProviderError;

/// Why a plugin did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component for this engine.
    #[error("plugin {origin} is not a valid WebAssembly component: {message}")]
    Compile {
        /// Where the plugin came from.
        origin: String,
        /// The compiler's message.
        message: String,
    },
    /// The component imports something the sandbox does not grant.
    #[error(
        "plugin {origin} imports what the sandbox does not grant: {}; a plugin may import only WASI 0.2 (io, clocks, random, cli, filesystem, sockets), which the host links deny-all",
        listed(imports).join(", ")
    )]
    DisallowedImports {
        /// Where the plugin came from.
        origin: String,
        /// Every disallowed import.
        imports: Vec<String>,
    },
    /// The component exports no provider API this host supports.
    #[error(
        "plugin {origin} exports no supported provider API (found exports: {}); this host supports {}",
        listed(found).join(", "),
        supported.join(", ")
    )]
    UnsupportedApi {
        /// Where the plugin came from.
        origin: String,
        /// What it exports.
        found: Vec<String>,
        /// What the host supports.
        supported: Vec<String>,
    },
    /// Linking against the sandbox failed.
    #[error("plugin {origin} cannot be linked: {message}")]
    Link {
        /// Where the plugin came from.
        origin: String,
        /// wasmtime's message.
        message: String,
    },
    /// Calling `manifest()` failed. The call's error names the plugin by
    /// where it came from (its manifest is not known yet), so the message
    /// says it once.
    #[error("{call}")]
    Manifest {
        /// Where the plugin came from.
        origin: String,
        /// The call's error.
        call: CallError,
    },
    /// The manifest breaks the host's rules.
    #[error("plugin {plugin} (from {origin}) has an invalid manifest:\n  - {}", listed(problems).join("\n  - "))]
    InvalidManifest {
        /// `slug@version` as the manifest says.
        plugin: String,
        /// Where the plugin came from.
        origin: String,
        /// Every broken rule.
        problems: Vec<String>,
    },
    /// The manifest declares variable names the plugin does not own.
    #[error(
        "plugin {plugin} (from {origin}) declares variables it does not own:\n  - {}",
        problems.join("\n  - ")
    )]
    NameOwnership {
        /// `slug@version` as the manifest says.
        plugin: String,
        /// Where the plugin came from.
        origin: String,
        /// Every offending name, with its owner.
        problems: Vec<String>,
    },
    /// The plugin's bytes are not the ones the operator's policy pins (or
    /// the policy requires a pin and has none for it).
    #[error(
        "plugin {plugin} (from {origin}) has sha256 {found}, {}",
        match expected {
            Some(expected) => format!("but the plugin policy pins {expected}: these are not the bytes the operator approved"),
            None => "but the plugin policy requires a pin (require_pins = true) and has none for it: add `sha256` under its [plugins.<slug>] table".to_owned(),
        }
    )]
    HashPin {
        /// `slug@version` as the manifest says.
        plugin: String,
        /// Where the plugin came from.
        origin: String,
        /// The sha256 of its bytes.
        found: String,
        /// The pinned sha256; `None` when the plugin has no pin.
        expected: Option<String>,
    },
    /// Two plugins declare one slug.
    #[error("two plugins declare the slug {slug:?}: {first} and {second}; remove or rename one")]
    DuplicateSlug {
        /// The slug.
        slug: String,
        /// Where the first came from.
        first: String,
        /// Where the second came from.
        second: String,
    },
}

impl LoadError {
    /// A short stable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::Read { .. } => "unreadable",
            LoadError::Compile { .. } => "not_a_component",
            LoadError::DisallowedImports { .. } => "disallowed_imports",
            LoadError::UnsupportedApi { .. } => "unsupported_api",
            LoadError::Link { .. } => "link_failed",
            LoadError::Manifest { .. } => "manifest_call_failed",
            LoadError::InvalidManifest { .. } => "invalid_manifest",
            LoadError::NameOwnership { .. } => "name_ownership",
            LoadError::HashPin { expected: Some(_), .. } => "hash_mismatch",
            LoadError::HashPin { expected: None, .. } => "hash_not_pinned",
            LoadError::DuplicateSlug { .. } => "duplicate_slug",
        }
    }

    /// Where the refused plugin came from.
    pub fn origin(&self) -> String {
        match self {
            LoadError::Read { path, .. } => path.display().to_string(),
            LoadError::Compile { origin, .. }
            | LoadError::DisallowedImports { origin, .. }
            | LoadError::UnsupportedApi { origin, .. }
            | LoadError::Link { origin, .. }
            | LoadError::Manifest { origin, .. }
            | LoadError::InvalidManifest { origin, .. }
            | LoadError::NameOwnership { origin, .. }
            | LoadError::HashPin { origin, .. } => origin.clone(),
            LoadError::DuplicateSlug { second, .. } => second.clone(),
        }
    }
}

/// Why one call into a plugin failed.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {function} {kind}")]
pub struct CallError {
    /// `slug@version`.
    pub plugin: String,
    /// The WIT function called.
    pub function: &'static str,
    /// What went wrong.
    pub kind: CallErrorKind,
}

/// What went wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum CallErrorKind {
    /// The CPU budget ran out.
    #[error("exceeded its CPU budget of {0:?}")]
    CpuLimit(Duration),
    /// Linear memory growth beyond the cap was refused.
    #[error("exceeded its memory cap of {limit} bytes (wanted {wanted})")]
    MemoryLimit {
        /// The cap.
        limit: usize,
        /// What it asked for.
        wanted: usize,
    },
    /// The wall-clock timeout passed.
    #[error("did not finish within {0:?}")]
    Timeout(Duration),
    /// The result was larger than allowed.
    #[error("returned {size} bytes, more than the limit of {limit}")]
    OutputTooLarge {
        /// What it returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The result carried more model ids than allowed.
    #[error("returned {count} model ids, more than the limit of {limit}")]
    TooManyModels {
        /// How many it returned.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The request put a secret where the declared auth shape does not:
    /// refused, never sent. Places name variables, never values.
    #[error(
        "described a request that puts a secret where its declared auth shape ({expected}) does not: {}; the host refuses to send it",
        listed(places).join("; ")
    )]
    SecretOutOfPlace {
        /// Where the shape allows secrets, in words.
        expected: String,
        /// Every place a secret was found outside the shape.
        places: Vec<String>,
    },
    /// The guest trapped or panicked.
    #[error("trapped: {0}")]
    Trap(String),
    /// The plugin returned its own error.
    #[error("failed: {0}")]
    Provider(ProviderError),
    /// The request the plugin described may not be sent.
    #[error("described a request the host refuses to send: {0}")]
    Refused(OutboundRefusal),
    /// The plugin's contract version lacks the function; nothing was called.
    #[error("{0}")]
    Unsupported(Unsupported),
}

impl CallErrorKind {
    /// A short stable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CallErrorKind::CpuLimit(_) => "cpu_limit",
            CallErrorKind::MemoryLimit { .. } => "memory_limit",
            CallErrorKind::Timeout(_) => "timeout",
            CallErrorKind::OutputTooLarge { .. } => "output_too_large",
            CallErrorKind::TooManyModels { .. } => "too_many_models",
            CallErrorKind::SecretOutOfPlace { .. } => "secret_out_of_place",
            CallErrorKind::Trap(_) => "trap",
            CallErrorKind::Provider(_) => "plugin_error",
            CallErrorKind::Refused(_) => "refused_request",
            CallErrorKind::Unsupported(_) => "unsupported_by_contract",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_problem_list_is_cut_with_a_count() {
        let error = LoadError::InvalidManifest {
            plugin: "acme@1.0.0".into(),
            origin: "test".into(),
            problems: vec!["a default model has an empty id".to_owned(); 500_000],
        };
        let message = error.to_string();
        assert!(message.len() < 2_000, "{} bytes", message.len());
        assert!(message.ends_with("\n  - ... and 499980 more"), "{message}");
        assert_eq!(message.matches("empty id").count(), crate::policy::bounds::MAX_LISTED_ITEMS);
    }

    #[test]
    fn new_kinds_have_stable_codes() {
        let too_many = CallErrorKind::TooManyModels { count: 5, limit: 4 };
        assert_eq!(too_many.code(), "too_many_models");
        let out_of_place = CallErrorKind::SecretOutOfPlace {
            expected: "`Authorization: Bearer <K>`".into(),
            places: vec!["K in the body".into()],
        };
        assert_eq!(out_of_place.code(), "secret_out_of_place");
        assert!(
            out_of_place
                .to_string()
                .contains("(`Authorization: Bearer <K>`) does not: K in the body")
        );
    }
}

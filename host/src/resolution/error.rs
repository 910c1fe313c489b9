//! Why a resolve, an authorize or a lease failed ([`ResolveError`],
//! [`LeaseError`]), with the near misses a resolve names. None carries a
//! value.

use serde::Serialize;

use super::leases::{LeaseTooLarge, TokenRefusal};
use crate::exchange::ExchangeError;
use crate::policy::client_env::UnknownClient;
use crate::runtime::CallError;
use crate::store::{StoreError, UnixMillis};

/// A scope variable that looks like a misspelt expected name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NearMiss {
    /// The name set in the scope.
    pub found: String,
    /// The name it probably should be.
    pub did_you_mean: String,
}

/// Why a resolve failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No plugin has that slug.
    #[error("no provider {provider:?} is loaded; loaded: {}", known.join(", "))]
    UnknownProvider {
        /// The slug asked for.
        provider: String,
        /// The loaded slugs.
        known: Vec<String>,
    },
    /// No key of the provider is linked in the scope.
    #[error(
        "no {provider} key is linked in {scope}: set {}{}",
        expected.join(" or "),
        hint_text(near_misses)
    )]
    NoKeyLinked {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The variable names that would link one.
        expected: Vec<String>,
        /// Variables set in the scope that look like misspellings.
        near_misses: Vec<NearMiss>,
    },
    /// A strict pin that no longer exists.
    #[error("the pinned key {pinned} of {provider} no longer exists in {scope} (strict: no fallback); linked keys: {}", if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    PinnedKeyMissing {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The pin.
        pinned: String,
        /// The keys that exist.
        available: Vec<String>,
    },
    /// A strict pin to a key that is disabled.
    #[error("the pinned key {pinned} of {provider} is disabled in {scope} (strict: no fallback); enable it (PATCH .../providers/{provider}/keys/{pinned} with {{\"status\": \"active\"}}) or pin an active key: {}", if active.is_empty() { "none".to_owned() } else { active.join(", ") })]
    PinnedKeyDisabled {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The pin.
        pinned: String,
        /// The active keys.
        active: Vec<String>,
    },
    /// A strict pin to a key with nothing left of its budget.
    #[error("the pinned key {pinned} of {provider} has nothing left of its budget in {scope} (strict: no fallback); raise its budget (PUT .../providers/{provider}/keys/{pinned}/budget) or pin another active key: {}", if others.is_empty() { "none".to_owned() } else { others.join(", ") })]
    PinnedKeyAtCap {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The pin.
        pinned: String,
        /// The other active keys.
        others: Vec<String>,
    },
    /// The provider has keys in the scope, and every one is disabled.
    #[error("every {provider} key in {scope} is disabled ({}): enable one (PATCH .../providers/{provider}/keys/{{key}} with {{\"status\": \"active\"}}) or set a new one", disabled.join(", "))]
    AllKeysDisabled {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The disabled keys.
        disabled: Vec<String>,
    },
    /// A key asked for by id (a probe) does not exist.
    #[error("{provider} has no key {key_id} in {scope}; its keys: {}", if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    KeyNotFound {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The key asked for.
        key_id: String,
        /// The keys that exist.
        available: Vec<String>,
    },
    /// A variable the key needs is not set and has no default.
    #[error("{provider} key {key_id} in {scope} needs {missing}, which is not set")]
    MissingVariable {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The key.
        key_id: String,
        /// The variable (variant name first).
        missing: String,
    },
    /// The request named a client the manifest does not list.
    #[error(transparent)]
    UnknownClient(#[from] UnknownClient),
    /// The key's env bag has more variables set than a lease holds.
    #[error("{provider} key {key_id} in {scope}: {source}")]
    LeaseTooLarge {
        /// The provider.
        provider: String,
        /// The scope.
        scope: String,
        /// The key.
        key_id: String,
        /// How many variables.
        source: LeaseTooLarge,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hint_text(near_misses: &[NearMiss]) -> String {
    if near_misses.is_empty() {
        return String::new();
    }
    let hints: Vec<String> = near_misses
        .iter()
        .map(|miss| format!("{} → did you mean {}?", miss.found, miss.did_you_mean))
        .collect();
    format!(" (found {})", hints.join("; "))
}

impl ResolveError {
    /// A stable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::UnknownProvider { .. } => "unknown_provider",
            ResolveError::NoKeyLinked { .. } => "no_key_linked",
            ResolveError::PinnedKeyMissing { .. } => "pinned_key_missing",
            ResolveError::PinnedKeyDisabled { .. } => "pinned_key_disabled",
            ResolveError::PinnedKeyAtCap { .. } => "pinned_key_at_cap",
            ResolveError::AllKeysDisabled { .. } => "all_keys_disabled",
            ResolveError::KeyNotFound { .. } => "key_not_found",
            ResolveError::MissingVariable { .. } => "missing_variable",
            ResolveError::UnknownClient(_) => "unknown_client",
            ResolveError::LeaseTooLarge { .. } => "lease_too_large",
            ResolveError::Store(_) => "store_error",
        }
    }
}

/// Why authorize-by-lease failed. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Not a lease of this scope: malformed, altered, made under another
    /// master key, of another scope, or of a provider no longer loaded.
    #[error("no live lease with this id in this scope; resolve again")]
    Unknown,
    /// A lease of this scope whose time is over.
    #[error("the lease expired at {at} (Unix ms); resolve again")]
    Expired {
        /// When, Unix milliseconds.
        at: UnixMillis,
    },
    /// A lease of this scope released before its end.
    #[error("the lease was released; resolve again")]
    Released,
    /// The lease's key was disabled or unlinked after the lease was taken: a
    /// disabled key is never spent.
    #[error(
        "the lease's key {key_id} of {provider} is {state} in this scope; resolve again for an active key"
    )]
    KeyInactive {
        /// The provider.
        provider: String,
        /// The key.
        key_id: String,
        /// `disabled`, or `no longer set`.
        state: &'static str,
    },
    /// A leased value version is no longer kept (replaced more than the
    /// grace period ago).
    #[error(
        "the lease holds version {version} of {name}, which is no longer kept (it was replaced more than the store's grace period ago); resolve again"
    )]
    VersionGone {
        /// The scope variable.
        name: String,
        /// The version.
        version: u64,
    },
    /// The plugin failed or refused.
    #[error(transparent)]
    Plugin(#[from] CallError),
    /// The key's token exchange gave no access token.
    #[error(transparent)]
    TokenExchange(ExchangeError),
    /// The store failed reading the leased values.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TokenRefusal> for LeaseError {
    fn from(refusal: TokenRefusal) -> Self {
        match refusal {
            TokenRefusal::Invalid => LeaseError::Unknown,
            TokenRefusal::Expired { at } => LeaseError::Expired { at },
        }
    }
}

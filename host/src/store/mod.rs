//! Scoped, encrypted environment variables and provider-key metadata.
//!
//! [`SecretStore`] is the narrow, async interface every caller uses;
//! [`SledStore`] implements its blocking form ([`BlockingSecretStore`]) on an
//! embedded sled database under `<data_dir>/store`, wrapped in [`Blocking`].
//! Another backend (a PostgreSQL shared by several hosts) implements the same
//! trait without touching callers. See `docs/store.md` for the design.
//!
//! - Variables are scoped ([`Scope`]), encrypted ([`crate::crypto`]) and
//!   versioned: each write makes a new version; the version it replaces stays
//!   readable for a grace period so a turn holding it can finish.
//! - Provider-key rows carry metadata only (label, variant, status, health,
//!   last use) and follow the variables: setting `OPENAI_API_KEY_2` links a
//!   row, unsetting it unlinks it ([`links`]).
//! - Values never appear in `Debug`, errors or logs.

pub mod audit;
mod audit_file;
mod audit_import;
mod audit_postgres;
mod backend;
mod blocking;
pub mod budgets;
pub mod copy;
pub mod links;
mod postgres_store;
pub mod probe_claims;
pub mod rules;
mod sled_db;
mod sled_store;
pub mod tokens;
mod tokens_postgres;
mod tokens_sled;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use audit::{AuditAction, AuditActor, AuditOutcome, AuditQuery, AuditRecord, AuditTrail};
pub use audit_file::{AUDIT_DIR, FileAudit, SYNC_INTERVAL, SegmentLimits};
pub use audit_postgres::PostgresAudit;
pub use backend::{OpenedStore, StoreBackend, UnknownBackend};
pub use blocking::Blocking;
pub use budgets::{
    Budget, BudgetExceeded, BudgetStatus, BudgetTarget, Period, RESERVATION_ID_LEN, Reservation,
    SpendWindows, Windows,
};
pub use copy::{CopyError, DumpCounts, StoreDump, copy_audit, copy_store};
pub use links::{KeyLink, ProviderVars, carried_row, key_var, variant_name, variant_of};
pub use postgres_store::{DEFAULT_POOL_SIZE, PostgresStore};
pub use probe_claims::{ProbeClaim, ProbeSlot, ProbeTag};
pub use sled_store::{DEFAULT_GRACE, STORE_DIR, SledStore, StoreOptions};
pub use tokens::TokenRecords;
pub use tokens_postgres::PostgresTokens;
pub use tokens_sled::{SledTokens, TOKENS_DIR};

use crate::crypto::{CryptoError, ENCRYPTION_KEY_PREVIOUS_VAR, ENCRYPTION_KEY_VAR, KeyId, Keyring};
use crate::policy::bounds;
use crate::provider::{MicroUsd, Verdict};
use crate::scope::Scope;

/// Milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// The length of a lease's random id, in bytes: what a lease release
/// records ([`SecretStore::release_lease`]).
pub const LEASE_ID_LEN: usize = 16;

/// The largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The most replaced versions of one variable kept in their grace period;
/// beyond it the oldest is dropped early. It bounds the metadata row of a
/// variable rewritten in a tight loop; a variable rewritten this often within
/// one grace period is not a credential a turn should be holding.
pub const MAX_RETIRED_VERSIONS: usize = 32;

/// Names the store refuses to hold: the master keys belong to the host's
/// environment, not to a scope.
pub const RESERVED_NAMES: [&str; 2] =
    [crate::crypto::ENCRYPTION_KEY_VAR, crate::crypto::ENCRYPTION_KEY_PREVIOUS_VAR];

/// The current time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as UnixMillis)
}

/// Who wrote a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VarSource {
    /// The self-host import (the `.env` file or the process environment).
    /// Such a variable is managed there: API writes to it are refused.
    SelfHost,
    /// The HTTP API.
    Api,
    /// The command line (`platos-host env set|unset`).
    Cli,
}

impl VarSource {
    /// Whether this writer manages variables by hand (API or CLI), and so may
    /// not overwrite what the self-host import manages.
    pub fn is_manual(self) -> bool {
        self != VarSource::SelfHost
    }
}

impl fmt::Display for VarSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VarSource::SelfHost => "self-host",
            VarSource::Api => "api",
            VarSource::Cli => "cli",
        })
    }
}

/// A variable without its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VarInfo {
    /// The variable's name.
    pub name: String,
    /// The current value's version (1 for the first write).
    pub version: u64,
    /// When the current value was written.
    #[schema(value_type = u64)]
    pub updated_at: UnixMillis,
    /// Who wrote it.
    pub source: VarSource,
}

/// A decrypted value and its version. `Debug` redacts the value; it has no
/// `Serialize`.
#[derive(Debug, Clone)]
pub struct VarValue {
    /// The value's version.
    pub version: u64,
    /// The value.
    pub value: SecretString,
}

/// Whether a provider key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    /// Usable; a candidate for the scope default.
    Active,
    /// Turned off by an operator: kept, but never the scope default.
    Disabled,
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
        })
    }
}

/// The kind of a health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HealthVerdict {
    /// The key works.
    Healthy,
    /// The provider refused the key.
    InvalidCredential,
    /// Out of quota or rate limited.
    QuotaLimited,
    /// The provider could not be reached.
    Unreachable,
    /// The provider failed on its side.
    Degraded,
}

impl fmt::Display for HealthVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthVerdict::Healthy => "healthy",
            HealthVerdict::InvalidCredential => "invalid-credential",
            HealthVerdict::QuotaLimited => "quota-limited",
            HealthVerdict::Unreachable => "unreachable",
            HealthVerdict::Degraded => "degraded",
        })
    }
}

/// The last health check of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthRecord {
    /// The verdict.
    pub verdict: HealthVerdict,
    /// The verdict's message (redacted by the runtime; at most
    /// [`MAX_RECORD_MESSAGE_CHARS`](crate::policy::bounds::MAX_RECORD_MESSAGE_CHARS)).
    pub message: String,
    /// When the check ran.
    #[schema(value_type = u64)]
    pub checked_at: UnixMillis,
    /// How long the probe took, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// The model ids a healthy probe listed (the picker shows them), as
    /// many as fit
    /// [`MAX_RECORD_MODEL_BYTES`](crate::policy::bounds::MAX_RECORD_MODEL_BYTES).
    #[serde(default)]
    pub models: Vec<String>,
}

impl HealthRecord {
    /// A record of `verdict`, checked at `checked_at`, within the record's
    /// size bounds.
    pub fn from_verdict(verdict: &Verdict, checked_at: UnixMillis) -> Self {
        let kind = match verdict {
            Verdict::Healthy { .. } => HealthVerdict::Healthy,
            Verdict::InvalidCredential { .. } => HealthVerdict::InvalidCredential,
            Verdict::QuotaLimited { .. } => HealthVerdict::QuotaLimited,
            Verdict::Unreachable { .. } => HealthVerdict::Unreachable,
            Verdict::Degraded { .. } => HealthVerdict::Degraded,
        };
        let models = match verdict {
            Verdict::Healthy { models, .. } => bounds::record_models(models),
            _ => Vec::new(),
        };
        HealthRecord {
            verdict: kind,
            message: bounds::truncate_chars(verdict.message(), bounds::MAX_RECORD_MESSAGE_CHARS),
            checked_at,
            latency_ms: 0,
            models,
        }
    }
}

/// A provider key's metadata, keyed `(scope, provider, env_var)`. Never the
/// secret: that is the variable `env_var` of the same scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderKey {
    /// The provider's slug.
    pub provider: String,
    /// The variable holding the key; also the key's name within the provider.
    pub env_var: String,
    /// 1 for the base variable, `n` for `{base}_{n}`.
    pub variant: u32,
    /// A name for people; the variable name until changed.
    pub label: String,
    /// When the row was linked.
    pub created_at: UnixMillis,
    /// When a turn last used the key.
    pub last_used_at: Option<UnixMillis>,
    /// Whether it may be used.
    pub status: KeyStatus,
    /// The last health check.
    pub health: Option<HealthRecord>,
    /// When an operator made it the scope default (`None`: never, or
    /// withdrawn). Rows written before this field read as `None`.
    #[serde(default)]
    pub chosen_default_at: Option<UnixMillis>,
}

/// The scope default among `keys` for `provider`: the active key an
/// operator chose last, else its lowest active variant. A disabled choice
/// falls back the same way, and choosing never needs to touch other rows.
pub fn default_key<'a>(keys: &'a [ProviderKey], provider: &str) -> Option<&'a ProviderKey> {
    let active =
        || keys.iter().filter(|key| key.provider == provider && key.status == KeyStatus::Active);
    active()
        .filter(|key| key.chosen_default_at.is_some())
        .max_by_key(|key| (key.chosen_default_at, std::cmp::Reverse(key.variant)))
        .or_else(|| active().min_by_key(|key| key.variant))
}

/// A change to a provider key's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUpdate {
    /// A turn used the key.
    Used {
        /// When.
        at: UnixMillis,
    },
    /// A health check ran.
    Health(HealthRecord),
    /// An operator changed its status.
    Status(KeyStatus),
    /// An operator renamed it.
    Label(String),
    /// An operator made it the scope default (`Some(when)`) or withdrew
    /// that choice (`None`).
    ChosenDefault(Option<UnixMillis>),
}

impl KeyUpdate {
    /// Applies the update to `row`: the one rule every backend follows.
    pub fn apply(&self, row: &mut ProviderKey) {
        match self {
            KeyUpdate::Used { at } => {
                row.last_used_at = Some(row.last_used_at.map_or(*at, |last| last.max(*at)))
            }
            KeyUpdate::Health(record) => row.health = Some(record.clone()),
            KeyUpdate::Status(status) => row.status = *status,
            KeyUpdate::Label(label) => row.label.clone_from(label),
            KeyUpdate::ChosenDefault(at) => row.chosen_default_at = *at,
        }
    }

    /// Whether the update is an operator's change, durable before the call
    /// returns; last use and health are written in batches.
    pub fn is_durable(&self) -> bool {
        match self {
            KeyUpdate::Used { .. } | KeyUpdate::Health(_) => false,
            KeyUpdate::Status(_) | KeyUpdate::Label(_) | KeyUpdate::ChosenDefault(_) => true,
        }
    }
}

/// What a self-host import changed. Names only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Variables written (new, changed, or taken over from the API).
    pub set: Vec<String>,
    /// Variables whose value was already current.
    pub unchanged: Vec<String>,
    /// Self-host variables unset because they are gone from the source.
    pub removed: Vec<String>,
}

/// What a re-link of provider-key rows changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Rows created for set variables that had none.
    pub linked: usize,
    /// Rows removed because their variable is unset or no longer a key.
    pub unlinked: usize,
}

/// The progress of a [`SecretStore::rewrap`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RewrapProgress {
    /// Records looked at so far.
    pub done: u64,
    /// Records in the store when the rewrap started (more may be written meanwhile).
    pub total: u64,
    /// Records re-encrypted under the current key.
    pub rewrapped: u64,
    /// Records already under the current key, or gone meanwhile.
    pub skipped: u64,
    /// Records that could not be decrypted with any key held.
    pub failed: u64,
}

/// A record a rewrap could not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewrapFailure {
    /// `org/project/env`.
    pub scope: String,
    /// The variable.
    pub name: String,
    /// The value version.
    pub version: u64,
    /// Why, without the value.
    pub error: String,
}

/// The outcome of a [`SecretStore::rewrap`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RewrapReport {
    /// The final counts.
    pub progress: RewrapProgress,
    /// The records that failed (their old versions stay as they were).
    pub failures: Vec<RewrapFailure>,
}

/// Why a store operation failed. Never carries a value or a key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The name breaks the variable-name rule.
    #[error(
        "invalid variable name `{0}`: expected an uppercase letter, then uppercase letters, digits or `_` (at most {max} characters)",
        max = crate::policy::names::MAX_ENV_VAR_LEN
    )]
    InvalidName(String),
    /// The name is one of [`RESERVED_NAMES`].
    #[error("`{0}` is the host's master key and cannot be stored in a scope")]
    ReservedName(String),
    /// The value is larger than [`MAX_VALUE_LEN`].
    #[error("the value of {name} is {len} bytes; the limit is {max} bytes", max = MAX_VALUE_LEN)]
    ValueTooLarge {
        /// The variable.
        name: String,
        /// The value's length.
        len: usize,
    },
    /// An API write to a variable the self-host configuration manages.
    #[error(
        "{name} in scope {scope} is managed by the self-host configuration (.env file or process environment); change it there and reload"
    )]
    ManagedBySelfHost {
        /// `org/project/env`.
        scope: String,
        /// The variable.
        name: String,
    },
    /// A value could not be encrypted or decrypted.
    #[error("{name} version {version} in scope {scope}: {source}")]
    Crypto {
        /// `org/project/env`.
        scope: String,
        /// The variable.
        name: String,
        /// The value version.
        version: u64,
        /// What went wrong.
        source: CryptoError,
    },
    /// Stored metadata is unreadable or inconsistent.
    #[error("the store is inconsistent: {0}")]
    Corrupt(String),
    /// The store was written by a newer host.
    #[error("the store has format {found}; this host understands format {expected}")]
    Format {
        /// The store's format.
        found: u32,
        /// This host's format.
        expected: u32,
    },
    /// The master key does not match the store: the keyring holds neither
    /// the key the store's key-check record is sealed under nor (for a store
    /// written before key checks) the key of any stored value. Names no key
    /// and no key id.
    #[error(
        "{held} the store in {path}: it was written under another key. Start with {ENCRYPTION_KEY_VAR} set to the store's key; to change keys, set the new key as {ENCRYPTION_KEY_VAR} and the store's key as {ENCRYPTION_KEY_PREVIOUS_VAR}, then run `platos-host rewrap`",
        held = if *previous_set {
            format!("neither {ENCRYPTION_KEY_VAR} nor {ENCRYPTION_KEY_PREVIOUS_VAR} matches")
        } else {
            format!("the master key ({ENCRYPTION_KEY_VAR}) does not match")
        }
    )]
    KeyMismatch {
        /// The store's directory.
        path: std::path::PathBuf,
        /// Whether the keyring had a previous key too.
        previous_set: bool,
    },
    /// The storage backend cannot be reached right now (a database that is
    /// down, restarting or out of connections); the same request may
    /// succeed once it is back, and nothing was changed.
    #[error("the store cannot be reached ({0}); the host reconnects by itself, retry shortly")]
    Unavailable(String),
    /// The storage backend failed.
    #[error("storage error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A stable code for programs, tests and logs.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidName(_) => "invalid_name",
            StoreError::ReservedName(_) => "reserved_name",
            StoreError::ValueTooLarge { .. } => "value_too_large",
            StoreError::ManagedBySelfHost { .. } => "managed_by_self_host",
            StoreError::Crypto { .. } => "crypto_error",
            StoreError::Corrupt(_) => "store_corrupt",
            StoreError::Format { .. } => "store_format",
            StoreError::KeyMismatch { .. } => "key_mismatch",
            StoreError::Unavailable(_) => "store_unavailable",
            StoreError::Backend(_) => "storage_error",
        }
    }

    /// Wraps a backend error.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }
}

/// Checks a name for writing: the variable-name rule, and not reserved.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    if !crate::policy::names::is_valid_env_var_name(name) {
        return Err(StoreError::InvalidName(
            name.chars().take(crate::policy::names::MAX_ENV_VAR_LEN).collect(),
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(StoreError::ReservedName(name.to_owned()));
    }
    Ok(())
}

/// The store of scoped, encrypted variables and provider-key metadata.
///
/// Every write method returns only once the change is durable, except the
/// [`KeyUpdate::Used`] and [`KeyUpdate::Health`] updates, which are persisted
/// by the next write, [`SecretStore::flush`] or the backend's periodic flush.
/// A backend whose calls block implements [`BlockingSecretStore`] and is
/// wrapped in [`Blocking`].
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// Writes a new version of `name` in `scope`. The version it replaces
    /// stays readable for the grace period. If `name` is a provider key
    /// variable, its provider-key row is linked. A manual
    /// ([`VarSource::is_manual`]) write to a variable the self-host import
    /// manages is refused.
    async fn set_var(
        &self,
        scope: &Scope,
        name: &str,
        value: &SecretString,
        source: VarSource,
    ) -> Result<VarInfo, StoreError>;

    /// Unsets `name` in `scope`; its last value stays readable (by version)
    /// for the grace period, and its provider-key rows are unlinked. `false`
    /// if it was not set. A manual unset of a self-host variable is refused.
    async fn unset_var(
        &self,
        scope: &Scope,
        name: &str,
        source: VarSource,
    ) -> Result<bool, StoreError>;

    /// The variables set in `scope`, by name, without values.
    async fn list_vars(&self, scope: &Scope) -> Result<Vec<VarInfo>, StoreError>;

    /// The current value of `name` in `scope`, decrypted.
    async fn get_var(&self, scope: &Scope, name: &str) -> Result<Option<VarValue>, StoreError>;

    /// The current values of `names` in `scope`, decrypted, in the order of
    /// `names` (`None` for a name that is not set): one round trip for an
    /// env bag.
    async fn get_vars(
        &self,
        scope: &Scope,
        names: &[&str],
    ) -> Result<Vec<Option<VarValue>>, StoreError>;

    /// Version `version` of `name` in `scope`, if it is the current one or
    /// was replaced less than the grace period ago.
    async fn get_var_version(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Option<VarValue>, StoreError>;

    /// Deletes every replaced version whose grace period is over, every
    /// lease release whose lease has ended ([`SecretStore::release_lease`]),
    /// every reservation that expired ([`SecretStore::reserve`]) and the
    /// probe claims of every slot that ended ([`SecretStore::claim_probe`]).
    /// Returns how many of the four were deleted.
    async fn purge_expired(&self) -> Result<usize, StoreError>;

    /// Records that the lease with random id `id`, ending at `expires_at`
    /// (Unix ms), was released early, so that [`SecretStore::lease_released`]
    /// answers `true` for `(id, expires_at)` on every host using this store.
    /// The contract every backend keeps:
    ///
    /// - durable before it returns (a release acknowledged to an agent is
    ///   never lost: the lease would authorize again);
    /// - `Ok(true)` if this call recorded it, `Ok(false)` if `(id,
    ///   expires_at)` was already recorded (a second release; concurrent
    ///   releases of one lease: exactly one gets `true`);
    /// - kept at least until `expires_at` whatever the clock says, and
    ///   dropped by [`SecretStore::purge_expired`] once `expires_at <= now`;
    ///   an `expires_at` already past may be recorded or not, since
    ///   authorize refuses that lease as expired anyway;
    /// - `id` is 16 random bytes, never the token; the record holds nothing
    ///   else (no scope, no provider).
    async fn release_lease(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Whether a release of `(id, expires_at)` is recorded
    /// ([`SecretStore::release_lease`]); a write acknowledged by any host
    /// using this store is seen. The same id with another `expires_at` is
    /// another lease (it cannot happen: both come from one MAC-protected
    /// token).
    async fn lease_released(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Claims the health probe of the credential `tag` in `slot` until
    /// `until` (Unix ms), for one of the hosts sharing this store
    /// ([`probe_claims`]). The contract every backend keeps:
    ///
    /// - [`ProbeClaim::Claimed`] if no claim of `(tag, slot)` is recorded,
    ///   or one is that is not done and whose `until` is at or before `now`
    ///   (its claimant died: the caller takes it over); the claim is then
    ///   the caller's, until `until`. Of concurrent claims of one
    ///   credential, on any hosts, exactly one gets it;
    /// - [`ProbeClaim::Held`] with the other claim's `until` while it is
    ///   not done and `until > now`;
    /// - [`ProbeClaim::Done`] once [`SecretStore::probe_done`] recorded
    ///   `(tag, slot)`;
    /// - each slot is separate; a slot's claims are kept until it ends and
    ///   dropped by [`SecretStore::purge_expired`] once `slot.ends_at <= now`.
    ///
    /// A claim holds the tag (keyed, [`crate::crypto::Keyring::probe_tag`])
    /// and times only: no scope, provider or key.
    async fn claim_probe(
        &self,
        tag: &ProbeTag,
        slot: ProbeSlot,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<ProbeClaim, StoreError>;

    /// Records that the credential `tag` was probed in `slot` and its
    /// verdict is on its key rows: every later claim of it in the slot gets
    /// [`ProbeClaim::Done`].
    async fn probe_done(&self, tag: &ProbeTag, slot: ProbeSlot) -> Result<(), StoreError>;

    /// Sets (`Some`) or removes (`None`) the budget of `target`, durably.
    /// Spend and reservations are kept either way.
    async fn set_budget(
        &self,
        target: &BudgetTarget,
        budget: Option<Budget>,
    ) -> Result<(), StoreError>;

    /// The budget of `target` and what counts against it at `now`: its
    /// spend in the windows `now` falls in ([`Windows`]) and the live
    /// reservations (`expires_at > now`) counted against it (for a scope,
    /// those of every key of it).
    async fn budget_status(
        &self,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError>;

    /// Reserves `reservation.amount` against every target of
    /// [`BudgetTarget::counted_in`] (the key and its scope), atomically. It
    /// is recorded if, for each of them with a budget, the spend in the
    /// budget's window at `now`, the live reservations and the amount
    /// together stay within the limit ([`BudgetStatus::refusal`]); else
    /// nothing is recorded, and the first target it does not fit is the
    /// answer. Without any budget it is recorded too (so it shows as
    /// reserved). Concurrent reserves, on every host sharing this store,
    /// never together exceed a cap. A reservation with the id of a recorded
    /// one replaces it. Durable before it returns.
    async fn reserve(
        &self,
        reservation: &Reservation,
        now: UnixMillis,
    ) -> Result<Result<(), BudgetExceeded>, StoreError>;

    /// Settles reservation `id` of `key`: removes it (`true` if it was
    /// still recorded) and adds `cost` to the spend of every target of
    /// `key.counted_in()` in the windows of `now`, whether or not the
    /// reservation was still there (a settle after its expiry still counts:
    /// nothing acknowledged is lost). Durable before it returns.
    async fn settle(
        &self,
        id: &[u8; RESERVATION_ID_LEN],
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Removes reservation `id` without spending; `false` if it was not
    /// recorded (settled, cancelled, purged or never made).
    async fn cancel_reservation(&self, id: &[u8; RESERVATION_ID_LEN]) -> Result<bool, StoreError>;

    /// Adds `cost` to the spend of every target of `key.counted_in()` in
    /// the windows of `now`, without a reservation (usage an agent reports),
    /// durably.
    async fn record_spend(
        &self,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// The keyring values are sealed with. The resolver derives its lease
    /// MAC keys from it, so every host with the same master key verifies
    /// every host's leases.
    fn keyring(&self) -> &Keyring;

    /// Makes `vars` the self-host variables of `scope`, in one atomic change:
    /// each is written with [`VarSource::SelfHost`] unless its value is already
    /// current (self-host wins over API values of the same name), and every
    /// other self-host variable of `scope` is unset.
    async fn import_self_host(
        &self,
        scope: &Scope,
        vars: &[(String, SecretString)],
    ) -> Result<ImportReport, StoreError>;

    /// The provider-key rows of `scope`, by provider then variant.
    async fn list_provider_keys(&self, scope: &Scope) -> Result<Vec<ProviderKey>, StoreError>;

    /// Every provider-key row of every scope (for health rounds).
    async fn list_all_provider_keys(&self) -> Result<Vec<(Scope, ProviderKey)>, StoreError>;

    /// Updates the metadata of one provider key. `false` if there is no such row.
    async fn update_provider_key(
        &self,
        scope: &Scope,
        provider: &str,
        env_var: &str,
        update: KeyUpdate,
    ) -> Result<bool, StoreError>;

    /// Replaces the variable-to-provider mapping and re-links every scope's
    /// provider-key rows to it: rows for set key variables that lack one are
    /// created; rows whose variable is unset, or is no longer the key variable
    /// of a provider the mapping knows, are removed. Rows of providers the
    /// mapping does not know stay, dormant (a plugin that failed to load keeps
    /// its keys' labels and history).
    async fn set_provider_vars(&self, vars: ProviderVars) -> Result<SyncReport, StoreError>;

    /// Re-encrypts every stored value under the current key, while reads and
    /// writes go on. Records already under the current key are skipped, so an
    /// interrupted rewrap can simply be run again. `progress` is called now
    /// and then and at the end. A finished rewrap makes the current key the
    /// store's key: opening the store with the previous key alone is then
    /// refused ([`StoreError::KeyMismatch`]).
    async fn rewrap(
        &self,
        progress: &mut (dyn for<'report> FnMut(&'report RewrapProgress) + Send),
    ) -> Result<RewrapReport, StoreError>;

    /// How many stored values each key encrypts. After a complete rewrap only
    /// the current key appears, and the previous key can be retired.
    async fn key_usage(&self) -> Result<BTreeMap<KeyId, u64>, StoreError>;

    /// Makes every write so far durable, including the [`KeyUpdate::Used`]
    /// and [`KeyUpdate::Health`] updates.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Everything the store holds, values still sealed, in one consistent
    /// snapshot where the backend has them ([`copy`]). Held in memory whole.
    async fn export_sealed(&self) -> Result<StoreDump, StoreError>;

    /// Writes `dump` into this store as it is (sealed records, versions,
    /// times, the key-check record), durably. Meant for an empty store
    /// ([`copy_store`] checks that first): a record already there with the
    /// same key is replaced.
    async fn import_sealed(&self, dump: &StoreDump) -> Result<(), StoreError>;

    /// The scope default key of `provider` in `scope` ([`default_key`]).
    async fn default_provider_key(
        &self,
        scope: &Scope,
        provider: &str,
    ) -> Result<Option<ProviderKey>, StoreError> {
        let keys = self.list_provider_keys(scope).await?;
        Ok(default_key(&keys, provider).cloned())
    }
}

/// The synchronous form of [`SecretStore`], for a backend whose calls block
/// the thread (sled: a durable write waits for the disk). [`Blocking`] turns
/// it into a [`SecretStore`]. Each method has the contract of the
/// [`SecretStore`] method of the same name.
pub trait BlockingSecretStore: Send + Sync + 'static {
    /// Writes a new version of `name` in `scope`. The version it replaces
    /// stays readable for the grace period. If `name` is a provider key
    /// variable, its provider-key row is linked. A manual ([`VarSource::is_manual`]) write to
    /// a variable the self-host import manages is refused.
    fn set_var(
        &self,
        scope: &Scope,
        name: &str,
        value: &SecretString,
        source: VarSource,
    ) -> Result<VarInfo, StoreError>;

    /// Unsets `name` in `scope`; its last value stays readable (by version)
    /// for the grace period, and its provider-key rows are unlinked. `false`
    /// if it was not set. A manual unset of a self-host variable
    /// is refused.
    fn unset_var(&self, scope: &Scope, name: &str, source: VarSource) -> Result<bool, StoreError>;

    /// The variables set in `scope`, by name, without values.
    fn list_vars(&self, scope: &Scope) -> Result<Vec<VarInfo>, StoreError>;

    /// The current value of `name` in `scope`, decrypted.
    fn get_var(&self, scope: &Scope, name: &str) -> Result<Option<VarValue>, StoreError>;

    /// Version `version` of `name` in `scope`, if it is the current one or
    /// was replaced less than the grace period ago.
    fn get_var_version(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Option<VarValue>, StoreError>;

    /// Deletes every replaced version whose grace period is over, every
    /// lease release whose lease has ended, every expired reservation and
    /// the probe claims of every ended slot. Returns how many of the four
    /// were deleted.
    fn purge_expired(&self) -> Result<usize, StoreError>;

    /// Records the early release of lease `id` ending at `expires_at`,
    /// durably; `false` if already recorded ([`SecretStore::release_lease`]).
    fn release_lease(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Whether a release of `(id, expires_at)` is recorded
    /// ([`SecretStore::lease_released`]).
    fn lease_released(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Claims the probe of `tag` in `slot` until `until`
    /// ([`SecretStore::claim_probe`]).
    fn claim_probe(
        &self,
        tag: &ProbeTag,
        slot: ProbeSlot,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<ProbeClaim, StoreError>;

    /// Marks the probe of `tag` in `slot` done ([`SecretStore::probe_done`]).
    fn probe_done(&self, tag: &ProbeTag, slot: ProbeSlot) -> Result<(), StoreError>;

    /// Sets or removes the budget of `target`, durably
    /// ([`SecretStore::set_budget`]).
    fn set_budget(&self, target: &BudgetTarget, budget: Option<Budget>) -> Result<(), StoreError>;

    /// The budget of `target` and what counts against it at `now`
    /// ([`SecretStore::budget_status`]).
    fn budget_status(
        &self,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError>;

    /// Reserves against the key's and its scope's budgets, atomically
    /// ([`SecretStore::reserve`]).
    fn reserve(
        &self,
        reservation: &Reservation,
        now: UnixMillis,
    ) -> Result<Result<(), BudgetExceeded>, StoreError>;

    /// Removes reservation `id` and always counts `cost`, durably
    /// ([`SecretStore::settle`]).
    fn settle(
        &self,
        id: &[u8; RESERVATION_ID_LEN],
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;

    /// Removes reservation `id` without spending
    /// ([`SecretStore::cancel_reservation`]).
    fn cancel_reservation(&self, id: &[u8; RESERVATION_ID_LEN]) -> Result<bool, StoreError>;

    /// Counts `cost` without a reservation, durably
    /// ([`SecretStore::record_spend`]).
    fn record_spend(
        &self,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// The keyring values are sealed with.
    fn keyring(&self) -> &Keyring;

    /// Makes `vars` the self-host variables of `scope`, in one atomic change:
    /// each is written with [`VarSource::SelfHost`] unless its value is already
    /// current (self-host wins over API values of the same name), and every
    /// other self-host variable of `scope` is unset.
    fn import_self_host(
        &self,
        scope: &Scope,
        vars: &[(String, SecretString)],
    ) -> Result<ImportReport, StoreError>;

    /// The provider-key rows of `scope`, by provider then variant.
    fn list_provider_keys(&self, scope: &Scope) -> Result<Vec<ProviderKey>, StoreError>;

    /// Every provider-key row of every scope (for health rounds).
    fn list_all_provider_keys(&self) -> Result<Vec<(Scope, ProviderKey)>, StoreError>;

    /// Updates the metadata of one provider key. `false` if there is no such row.
    fn update_provider_key(
        &self,
        scope: &Scope,
        provider: &str,
        env_var: &str,
        update: KeyUpdate,
    ) -> Result<bool, StoreError>;

    /// Replaces the variable-to-provider mapping and re-links every scope's
    /// provider-key rows to it: rows for set key variables that lack one are
    /// created; rows whose variable is unset, or is no longer the key variable
    /// of a provider the mapping knows, are removed. Rows of providers the
    /// mapping does not know stay, dormant (a plugin that failed to load keeps
    /// its keys' labels and history).
    fn set_provider_vars(&self, vars: ProviderVars) -> Result<SyncReport, StoreError>;

    /// Re-encrypts every stored value under the current key, while reads and
    /// writes go on. Records already under the current key are skipped, so an
    /// interrupted rewrap can simply be run again. `progress` is called now
    /// and then and at the end. A finished rewrap makes the current key the
    /// store's key: opening the store with the previous key alone is then
    /// refused ([`StoreError::KeyMismatch`]).
    fn rewrap(&self, progress: &mut dyn FnMut(&RewrapProgress))
    -> Result<RewrapReport, StoreError>;

    /// How many stored values each key encrypts. After a complete rewrap only
    /// the current key appears, and the previous key can be retired.
    fn key_usage(&self) -> Result<BTreeMap<KeyId, u64>, StoreError>;

    /// The current values of `names` in `scope`, decrypted, in the order
    /// of `names` (`None` for a name that is not set).
    fn get_vars(&self, scope: &Scope, names: &[&str]) -> Result<Vec<Option<VarValue>>, StoreError> {
        names.iter().map(|name| self.get_var(scope, name)).collect()
    }

    /// Makes every write so far durable, including the [`KeyUpdate::Used`]
    /// and [`KeyUpdate::Health`] updates.
    fn flush(&self) -> Result<(), StoreError>;

    /// Everything the store holds, values still sealed
    /// ([`SecretStore::export_sealed`]).
    fn export_sealed(&self) -> Result<StoreDump, StoreError>;

    /// Writes `dump` into this store as it is, durably
    /// ([`SecretStore::import_sealed`]).
    fn import_sealed(&self, dump: &StoreDump) -> Result<(), StoreError>;
}

//! Which key an agent turn spends, with which env bag.
//!
//! [`Resolver::resolve`] picks the pinned key, or the scope default (the
//! active key an operator chose, else the lowest active variant); a pin that no longer exists or is disabled falls
//! back to the default with a warning (or, with `strict`, fails naming the
//! pin and why: never a different key spent silently, never a disabled key
//! spent at all). [`choose_key`] is that rule, shared by resolve and explain.
//! The answer holds a [`lease`] on the value versions it read, so a rotation
//! does not pull a credential from under a turn in flight; the lease is a
//! MAC-protected token the agent holds ([`leases`]), so the host keeps
//! nothing per lease and any host with the same master key honours it. [`catalog`] builds the model picker.

pub mod catalog;
mod error;
pub mod leases;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use self::error::{LeaseError, NearMiss, ResolveError};
use self::leases::{Lease, LeasedVar};
use crate::exchange::{ExchangeError, TokenBroker};
use crate::outbound::Outbound;
use crate::policy::client_env::{ClientBag, EnvWarning, choose_client, client_form};
use crate::policy::hints::near_misses;
use crate::policy::hosts::AllowedHosts;
use crate::policy::redaction::Redactor;
use crate::policy::variants::{value_sources, variant_of};
use crate::policy::verdicts::{Badge, badge};
use crate::provider::{
    ClientInfo, Credentials, EnvVarRole, HttpRequest, Manifest, MicroUsd, Verdict,
};
use crate::runtime::{Plugin, PluginRegistry};
use crate::scope::{KeyLocation, Scope};
use crate::store::{
    BudgetTarget, KeyStatus, KeyUpdate, ProviderKey, SecretStore, StoreError, UnixMillis, VarInfo,
    VarSource, default_key, key_var, now_millis,
};

/// How resolution behaves.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// How long a lease holds its value versions unless released. The store's
    /// grace period for replaced values must be at least this long
    /// ([`leases::check_lease_ttl`]).
    pub lease_ttl: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        // A lease must not outlive the store's grace period for the
        // versions it holds: the defaults are one and the same.
        ResolverConfig { lease_ttl: crate::store::DEFAULT_GRACE }
    }
}

/// What an agent asks for.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    /// The scope of the turn.
    pub scope: Scope,
    /// The provider's slug.
    pub provider: String,
    /// A pinned key (its variable name, e.g. `ANTHROPIC_API_KEY_2`).
    pub pinned_key: Option<String>,
    /// Fail instead of falling back when the pin no longer exists.
    pub strict: bool,
    /// The client library whose names and forms the env bag takes (one of
    /// the manifest's `clients`); `None` for the manifest's default client.
    pub client: Option<String>,
}

/// How the key was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChosenBy {
    /// The pinned key.
    Pinned,
    /// No pin: the scope default.
    ScopeDefault,
    /// The pin no longer exists: the scope default instead.
    FallbackPinMissing,
    /// The pinned key is disabled: the scope default instead.
    FallbackPinDisabled,
    /// The pinned key has nothing left of its budget: the scope default instead.
    FallbackPinAtCap,
}

impl ChosenBy {
    /// The name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenBy::Pinned => "pinned",
            ChosenBy::ScopeDefault => "scope-default",
            ChosenBy::FallbackPinMissing => "fallback-pin-missing",
            ChosenBy::FallbackPinDisabled => "fallback-pin-disabled",
            ChosenBy::FallbackPinAtCap => "fallback-pin-at-cap",
        }
    }

    /// Why the pin was not honoured, for a fallback.
    pub fn pin_problem(self) -> Option<PinProblem> {
        match self {
            ChosenBy::Pinned | ChosenBy::ScopeDefault => None,
            ChosenBy::FallbackPinMissing => Some(PinProblem::Missing),
            ChosenBy::FallbackPinDisabled => Some(PinProblem::Disabled),
            ChosenBy::FallbackPinAtCap => Some(PinProblem::AtCap),
        }
    }
}

/// Who set the pin a resolve or an explain went by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PinnedBy {
    /// The request's own `pinned_key`.
    Request,
    /// The calling token's default pin for the provider.
    Token,
}

impl PinnedBy {
    /// The name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PinnedBy::Request => "request",
            PinnedBy::Token => "token",
        }
    }
}

/// A request's own pin, before the calling token's is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPin<'a> {
    /// The request names no pin (the field is absent): the token's pin for
    /// the provider applies, if it has one.
    Unset,
    /// The request asks for no pin at all (`null` or `""`): the scope
    /// default, whatever the token pins.
    NoPin,
    /// The request pins this key id.
    Key(&'a str),
}

impl<'a> RequestPin<'a> {
    /// The pin of a request field: absent (`None`), explicitly none
    /// (`Some(None)`, or an empty string), or a key id.
    pub fn of(field: Option<Option<&'a str>>) -> Self {
        match field {
            None => RequestPin::Unset,
            Some(None | Some("")) => RequestPin::NoPin,
            Some(Some(key)) => RequestPin::Key(key),
        }
    }
}

/// The pin in effect, and who set it: the request's own pin beats the
/// token's; a request that asks for no pin gets none; a request silent on
/// pins gets the token's pin for the provider, if there is one.
pub fn effective_pin<'a>(
    request_pin: RequestPin<'a>,
    token_pin: Option<&'a str>,
) -> (Option<&'a str>, Option<PinnedBy>) {
    match (request_pin, token_pin) {
        (RequestPin::Key(key), _) => (Some(key), Some(PinnedBy::Request)),
        (RequestPin::NoPin, _) | (RequestPin::Unset, None) => (None, None),
        (RequestPin::Unset, Some(key)) => (Some(key), Some(PinnedBy::Token)),
    }
}

/// Why a pin cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinProblem {
    /// No key of the provider has the pinned id.
    Missing,
    /// The pinned key exists but is disabled.
    Disabled,
    /// The pinned key is active but has nothing left of its budget.
    AtCap,
}

/// What the resolution rule chooses among one provider's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// Spend this key.
    Key {
        /// The key.
        key: &'a ProviderKey,
        /// Why this one.
        chosen_by: ChosenBy,
    },
    /// `strict`, and the pin cannot be honoured.
    PinRefused(PinProblem),
    /// The provider has no active key: none at all, or every one disabled.
    NoActiveKey,
}

/// The resolution rule: `provider`'s pinned key if it exists, is active
/// and is not `pin_at_cap` (nothing left of its budget); else, unless
/// `strict`, the scope default ([`default_key`]: the operator's choice, else
/// the lowest active variant). A pin at its cap that is the scope default
/// itself stays chosen: there is nothing to fall back to, and spending it
/// fails with `budget_exceeded`. `keys` are one scope's keys.
pub fn choose_key<'a>(
    keys: &'a [ProviderKey],
    provider: &str,
    pin: Option<&str>,
    strict: bool,
    pin_at_cap: bool,
) -> Choice<'a> {
    let default = default_key(keys, provider);
    let fallback = |chosen_by| match default {
        Some(key) => Choice::Key { key, chosen_by },
        None => Choice::NoActiveKey,
    };
    let Some(pin) = pin else {
        return fallback(ChosenBy::ScopeDefault);
    };
    let problem = match keys.iter().find(|key| key.provider == provider && key.env_var == pin) {
        Some(key) if key.status == KeyStatus::Active && !pin_at_cap => {
            return Choice::Key { key, chosen_by: ChosenBy::Pinned };
        }
        Some(key) if key.status == KeyStatus::Active => {
            if !strict && default.is_some_and(|default| std::ptr::eq(default, key)) {
                return Choice::Key { key, chosen_by: ChosenBy::Pinned };
            }
            PinProblem::AtCap
        }
        Some(_) => PinProblem::Disabled,
        None => PinProblem::Missing,
    };
    if strict {
        Choice::PinRefused(problem)
    } else {
        fallback(match problem {
            PinProblem::Missing => ChosenBy::FallbackPinMissing,
            PinProblem::Disabled => ChosenBy::FallbackPinDisabled,
            PinProblem::AtCap => ChosenBy::FallbackPinAtCap,
        })
    }
}

/// The warning of a resolve whose pin fell back to `spent`.
fn fallback_warning(pin: &str, problem: PinProblem, scope: &Scope, spent: &str) -> String {
    let what = match problem {
        PinProblem::Missing => "no longer exists",
        PinProblem::Disabled => "is disabled",
        PinProblem::AtCap => "has nothing left of its budget",
    };
    format!(
        "the pinned key {pin} {what} in {scope}; spending the scope default {spent} instead (pass strict to fail instead)"
    )
}

/// The key a turn gets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChosenKey {
    /// The provider's slug.
    pub provider: String,
    /// The key's variable, which is also its id for pinning.
    pub key_id: String,
    /// Its variant (1 for the plain variable).
    pub variant: u32,
    /// Its label.
    pub label: String,
}

/// The answer to a resolve. `Debug` never shows values.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The key chosen.
    pub key: ChosenKey,
    /// The version of the key's variable read (for the audit record).
    pub key_version: u64,
    /// How.
    pub chosen_by: ChosenBy,
    /// Set when the pin fell back.
    pub warning: Option<String>,
    /// The lease on the values read.
    pub lease_id: String,
    /// When the lease expires, Unix milliseconds.
    pub lease_expires_at: UnixMillis,
    /// The client whose form the bag has (`None` for a manifest without clients).
    pub client: Option<ClientInfo>,
    /// The env bag in that client's form: the manifest's plain names and the
    /// aliases the client reads.
    pub env: Credentials,
    /// Values the bag could not carry in the client's form.
    pub env_warnings: Vec<EnvWarning>,
}

/// An authorized request the host sends itself
/// ([`Resolver::authorize_for_sending`]). `Debug` shows no value.
pub struct SendableRequest {
    /// The request with the provider's credentials added.
    pub request: HttpRequest,
    /// Where requests for the leased key may go.
    pub allowed: AllowedHosts,
    /// Finds the leased secret values (and access token) in the answer.
    pub redactor: Redactor,
    /// The provider's plugin (it reads the usage of the answer).
    pub plugin: Plugin,
}

impl std::fmt::Debug for SendableRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendableRequest")
            .field("request", &self.request)
            .field("plugin", &self.plugin.id())
            .finish_non_exhaustive()
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct ResolveCounters {
    /// Resolves that chose a pinned key.
    pub pinned: AtomicU64,
    /// Resolves that chose the scope default.
    pub scope_default: AtomicU64,
    /// Resolves whose pin no longer existed and fell back to the default.
    pub fallbacks: AtomicU64,
    /// Resolves whose pinned key was disabled and fell back to the default.
    pub disabled_pin_fallbacks: AtomicU64,
    /// Resolves whose pinned key had nothing left of its budget and fell
    /// back to the default.
    pub cap_pin_fallbacks: AtomicU64,
    /// Resolves that failed.
    pub errors: AtomicU64,
    /// Leases issued (one per successful resolve).
    pub leases_issued: AtomicU64,
    /// Leases released early through this resolver.
    pub leases_released: AtomicU64,
}

/// The resolver: a cheap handle.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<ResolverInner>,
}

struct ResolverInner {
    store: Arc<dyn SecretStore>,
    registry: PluginRegistry,
    config: ResolverConfig,
    /// Access tokens of token-exchange keys, for authorize-by-lease.
    tokens: TokenBroker,
    /// Last use per key, applied to the store in batches.
    usage: Mutex<HashMap<(Scope, String, String), UnixMillis>>,
    counters: ResolveCounters,
}

impl Resolver {
    /// A resolver over `store` and the loaded plugins, caching access
    /// tokens by the system clock.
    pub fn new(
        store: Arc<dyn SecretStore>,
        registry: PluginRegistry,
        config: ResolverConfig,
    ) -> Self {
        Self::with_tokens(store, registry, config, TokenBroker::default())
    }

    /// A resolver whose token-exchange keys get their access tokens from
    /// `tokens` (e.g. one with a test clock).
    pub fn with_tokens(
        store: Arc<dyn SecretStore>,
        registry: PluginRegistry,
        config: ResolverConfig,
        tokens: TokenBroker,
    ) -> Self {
        Resolver {
            inner: Arc::new(ResolverInner {
                store,
                registry,
                config,
                tokens,
                usage: Mutex::new(HashMap::new()),
                counters: ResolveCounters::default(),
            }),
        }
    }

    /// The counters.
    pub fn counters(&self) -> &ResolveCounters {
        &self.inner.counters
    }

    /// The plugins.
    pub fn registry(&self) -> &PluginRegistry {
        &self.inner.registry
    }

    /// The access-token cache of token-exchange keys.
    pub fn tokens(&self) -> &TokenBroker {
        &self.inner.tokens
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.inner.store
    }

    fn plugin(&self, provider: &str) -> Result<&Plugin, ResolveError> {
        self.inner.registry.get(provider).ok_or_else(|| ResolveError::UnknownProvider {
            provider: provider.to_owned(),
            known: self.inner.registry.iter().map(|plugin| plugin.slug().to_owned()).collect(),
        })
    }

    /// Resolves a key for a turn and leases its values.
    pub async fn resolve(&self, request: &ResolveRequest) -> Result<Resolution, ResolveError> {
        let result = self.resolve_inner(request).await;
        let counters = &self.inner.counters;
        let counter = match &result {
            Ok(resolution) => match resolution.chosen_by {
                ChosenBy::Pinned => &counters.pinned,
                ChosenBy::ScopeDefault => &counters.scope_default,
                ChosenBy::FallbackPinMissing => &counters.fallbacks,
                ChosenBy::FallbackPinDisabled => &counters.disabled_pin_fallbacks,
                ChosenBy::FallbackPinAtCap => &counters.cap_pin_fallbacks,
            },
            Err(_) => &counters.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn resolve_inner(&self, request: &ResolveRequest) -> Result<Resolution, ResolveError> {
        let plugin = self.plugin(&request.provider)?;
        let manifest = plugin.manifest();
        let client = choose_client(manifest, request.client.as_deref())?;
        let scope = &request.scope;
        let keys: Vec<ProviderKey> = self
            .inner
            .store
            .list_provider_keys(scope)
            .await?
            .into_iter()
            .filter(|key| key.provider == request.provider)
            .collect();
        let pin = request.pinned_key.as_deref();
        let pin_at_cap = self.pin_at_cap(scope, &request.provider, pin, &keys).await?;
        let (key, chosen_by) =
            match choose_key(&keys, &request.provider, pin, request.strict, pin_at_cap) {
                Choice::Key { key, chosen_by } => (key, chosen_by),
                Choice::PinRefused(problem) => {
                    return Err(self.pin_refused(
                        scope,
                        manifest,
                        pin.unwrap_or_default(),
                        problem,
                        &keys,
                    ));
                }
                Choice::NoActiveKey => {
                    return Err(self.no_active_key(scope, manifest, &keys).await);
                }
            };
        let warning = chosen_by
            .pin_problem()
            .zip(pin)
            .map(|(problem, pin)| fallback_warning(pin, problem, scope, &key.env_var));

        let (plain, versions) = self.env_bag(scope, manifest, key).await?;
        let key_version =
            versions.iter().find(|var| var.source == key.env_var).map_or(0, |var| var.version);
        let ClientBag { env, warnings: env_warnings } = client_form(manifest, client, &plain);
        let lease = Lease::new(
            scope.clone(),
            request.provider.clone(),
            key.env_var.clone(),
            versions,
            now_millis(),
            self.inner.config.lease_ttl,
        );
        let lease_id = lease.token(self.inner.store.keyring()).map_err(|source| {
            ResolveError::LeaseTooLarge {
                provider: request.provider.clone(),
                scope: scope.to_string(),
                key_id: key.env_var.clone(),
                source,
            }
        })?;
        let lease_expires_at = lease.expires_at;
        self.inner.counters.leases_issued.fetch_add(1, Ordering::Relaxed);
        self.note_use(scope, &request.provider, &key.env_var);
        Ok(Resolution {
            key: ChosenKey {
                provider: request.provider.clone(),
                key_id: key.env_var.clone(),
                variant: key.variant,
                label: key.label.clone(),
            },
            key_version,
            chosen_by,
            warning,
            lease_id,
            lease_expires_at,
            client: client.cloned(),
            env,
            env_warnings,
        })
    }

    /// Every variable name the loaded manifests declare.
    pub fn known_var_names(&self) -> Vec<&str> {
        self.inner
            .registry
            .iter()
            .flat_map(|plugin| plugin.manifest().env_vars.iter().map(|var| var.name.as_str()))
            .collect()
    }

    /// The scope variables in `vars` that look like misspellings of
    /// `manifest`'s names. A variable that is some loaded provider's own name
    /// (or a numbered variant of one) is never a miss (`OPENAI_API_KEY` is not
    /// a typo of `AZURE_OPENAI_API_KEY`), and a miss is reported only for the
    /// provider whose name it is closest to.
    pub fn near_misses_for(&self, vars: &[VarInfo], manifest: &Manifest) -> Vec<NearMiss> {
        let known = self.known_var_names();
        let names: Vec<&str> = manifest.env_vars.iter().map(|var| var.name.as_str()).collect();
        vars.iter()
            .filter(|var| !known.iter().any(|base| variant_of(&var.name, base).is_some()))
            .filter_map(|var| {
                let best = *near_misses(&var.name, &known).first()?;
                names
                    .contains(&best)
                    .then(|| NearMiss { found: var.name.clone(), did_you_mean: best.to_owned() })
            })
            .collect()
    }

    /// The error of a strict pin that cannot be honoured.
    fn pin_refused(
        &self,
        scope: &Scope,
        manifest: &Manifest,
        pin: &str,
        problem: PinProblem,
        keys: &[ProviderKey],
    ) -> ResolveError {
        let (provider, scope, pinned) = (manifest.slug.clone(), scope.to_string(), pin.to_owned());
        match problem {
            PinProblem::Missing => ResolveError::PinnedKeyMissing {
                provider,
                scope,
                pinned,
                available: keys.iter().map(|key| key.env_var.clone()).collect(),
            },
            PinProblem::Disabled => ResolveError::PinnedKeyDisabled {
                provider,
                scope,
                pinned,
                active: keys
                    .iter()
                    .filter(|key| key.status == KeyStatus::Active)
                    .map(|key| key.env_var.clone())
                    .collect(),
            },
            PinProblem::AtCap => ResolveError::PinnedKeyAtCap {
                others: keys
                    .iter()
                    .filter(|key| key.status == KeyStatus::Active && key.env_var != pinned)
                    .map(|key| key.env_var.clone())
                    .collect(),
                provider,
                scope,
                pinned,
            },
        }
    }

    /// Whether `pin` names an active key of `provider` that has nothing
    /// left of its own budget (a scope's budget caps every key alike, so it
    /// is no reason to fall back).
    async fn pin_at_cap(
        &self,
        scope: &Scope,
        provider: &str,
        pin: Option<&str>,
        keys: &[ProviderKey],
    ) -> Result<bool, StoreError> {
        let Some(pin) = pin else { return Ok(false) };
        if !keys.iter().any(|key| key.env_var == pin && key.status == KeyStatus::Active) {
            return Ok(false);
        }
        let target = BudgetTarget::key(scope.clone(), provider, pin);
        let status = self.inner.store.budget_status(&target, now_millis()).await?;
        Ok(status.left() == Some(MicroUsd(0)))
    }

    /// The error of a provider without an active key: every key disabled,
    /// or none linked (with the names that would link one).
    async fn no_active_key(
        &self,
        scope: &Scope,
        manifest: &Manifest,
        keys: &[ProviderKey],
    ) -> ResolveError {
        if keys.is_empty() {
            return self.no_key_linked(scope, manifest).await;
        }
        ResolveError::AllKeysDisabled {
            provider: manifest.slug.clone(),
            scope: scope.to_string(),
            disabled: keys.iter().map(|key| key.env_var.clone()).collect(),
        }
    }

    async fn no_key_linked(&self, scope: &Scope, manifest: &Manifest) -> ResolveError {
        let expected: Vec<String> =
            key_var(manifest).map(|name| vec![name.to_owned()]).unwrap_or_default();
        let found = self.inner.store.list_vars(scope).await.unwrap_or_default();
        let near_misses = self.near_misses_for(&found, manifest);
        ResolveError::NoKeyLinked {
            provider: manifest.slug.clone(),
            scope: scope.to_string(),
            expected,
            near_misses,
        }
    }

    /// The env bag of `key`: each manifest variable from the key's variant
    /// (companions fall back to the plain variable, secrets never), else its
    /// default, read in one batch. Returns the versions read, for the lease.
    async fn env_bag(
        &self,
        scope: &Scope,
        manifest: &Manifest,
        key: &ProviderKey,
    ) -> Result<(Credentials, Vec<LeasedVar>), ResolveError> {
        let sources: Vec<Vec<String>> = manifest
            .env_vars
            .iter()
            .map(|var| value_sources(&var.name, key.variant, var.role == EnvVarRole::Secret))
            .collect();
        let names: Vec<&str> = sources.iter().flatten().map(String::as_str).collect();
        let mut values = self.inner.store.get_vars(scope, &names).await?.into_iter();
        let mut env = Credentials::new();
        let mut versions = Vec::new();
        for (var, var_sources) in manifest.env_vars.iter().zip(&sources) {
            // This variable's share of the batch, in the order of its sources.
            let found = var_sources
                .iter()
                .zip(values.by_ref().take(var_sources.len()).collect::<Vec<_>>())
                .find_map(|(source, value)| value.map(|value| (source, value)));
            match found {
                Some((source, value)) => {
                    env.insert(var.name.clone(), value.value);
                    versions.push(LeasedVar {
                        manifest_var: var.name.clone(),
                        source: source.clone(),
                        version: value.version,
                    });
                }
                None => {
                    if let Some(default) = &var.default_value {
                        env.insert(var.name.clone(), default.clone().into());
                    } else if var.required {
                        return Err(ResolveError::MissingVariable {
                            provider: manifest.slug.clone(),
                            scope: scope.to_string(),
                            key_id: key.env_var.clone(),
                            missing: var_sources.join(" or "),
                        });
                    }
                }
            }
        }
        Ok((env, versions))
    }

    fn note_use(&self, scope: &Scope, provider: &str, key: &str) {
        let mut usage = self.inner.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        usage.insert((scope.clone(), provider.to_owned(), key.to_owned()), now_millis());
    }

    /// Writes the batched last-used times to the store (one update per key,
    /// however many resolves it had). Returns how many keys were updated.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let batch: Vec<_> = {
            let mut usage =
                self.inner.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            usage.drain().collect()
        };
        for ((scope, provider, key), at) in &batch {
            self.inner
                .store
                .update_provider_key(scope, provider, key, KeyUpdate::Used { at: *at })
                .await?;
        }
        Ok(batch.len())
    }

    /// The plugin and env bag of one linked key, without leasing (for probes).
    pub async fn key_credentials(
        &self,
        location: &KeyLocation,
    ) -> Result<(Plugin, Credentials), ResolveError> {
        let plugin = self.plugin(&location.provider)?;
        let keys: Vec<ProviderKey> = self
            .inner
            .store
            .list_provider_keys(&location.scope)
            .await?
            .into_iter()
            .filter(|key| key.provider == location.provider)
            .collect();
        let key = keys.iter().find(|key| key.env_var == location.key_id).ok_or_else(|| {
            ResolveError::KeyNotFound {
                provider: location.provider.clone(),
                scope: location.scope.to_string(),
                key_id: location.key_id.clone(),
                available: keys.iter().map(|key| key.env_var.clone()).collect(),
            }
        })?;
        let (env, _) = self.env_bag(&location.scope, plugin.manifest(), key).await?;
        Ok((plugin.clone(), env))
    }

    /// Every linked key of every scope, for a health round.
    pub async fn linked_keys(&self) -> Result<Vec<KeyLocation>, StoreError> {
        Ok(self
            .inner
            .store
            .list_all_provider_keys()
            .await?
            .into_iter()
            .filter(|(_, key)| self.inner.registry.get(&key.provider).is_some())
            .map(|(scope, key)| KeyLocation { scope, provider: key.provider, key_id: key.env_var })
            .collect())
    }

    /// The lease `token` stands for, if it is a live lease of `scope`: its
    /// MAC verifies (under the current or the previous master key), it has
    /// not expired, and no host has released it.
    pub async fn live_lease(&self, scope: &Scope, token: &str) -> Result<Lease, LeaseError> {
        let lease = Lease::verify(token, self.inner.store.keyring(), scope, now_millis())?;
        if self.inner.store.lease_released(&lease.id.0, lease.expires_at).await? {
            return Err(LeaseError::Released);
        }
        Ok(lease)
    }

    /// Ends a live lease of `scope` early, for every host on this store:
    /// the lease released. `None` if `token` is no live lease of `scope`
    /// (expired, already released (of concurrent releases exactly one gets
    /// it), or not a lease of this scope: a lease of another scope is left
    /// alone).
    pub async fn release(&self, scope: &Scope, token: &str) -> Result<Option<Lease>, StoreError> {
        let Ok(lease) = Lease::verify(token, self.inner.store.keyring(), scope, now_millis())
        else {
            return Ok(None);
        };
        if !self.inner.store.release_lease(&lease.id.0, lease.expires_at).await? {
            return Ok(None);
        }
        self.inner.counters.leases_released.fetch_add(1, Ordering::Relaxed);
        Ok(Some(lease))
    }

    /// Has the plugin authorize `request` with the leased values, so an agent
    /// that should not hold the raw key can have the host sign for it. The
    /// lease must be a live lease of `scope` ([`Resolver::live_lease`]), its
    /// key still linked and active, and its value versions still kept. A
    /// token-exchange key is authorized with a cached access token of
    /// exactly the leased values, exchanged through `outbound` when none is
    /// current.
    pub async fn authorize(
        &self,
        scope: &Scope,
        token: &str,
        request: &HttpRequest,
        outbound: &Outbound,
    ) -> Result<HttpRequest, LeaseError> {
        let lease = self.live_lease(scope, token).await?;
        self.authorize_lease(&lease, request, outbound).await
    }

    /// [`Resolver::authorize`] with a lease already verified live.
    pub async fn authorize_lease(
        &self,
        lease: &Lease,
        request: &HttpRequest,
        outbound: &Outbound,
    ) -> Result<HttpRequest, LeaseError> {
        Ok(self.authorize_for_sending(lease, request, outbound).await?.request)
    }

    /// [`Resolver::authorize_lease`], with what the host needs to send the
    /// request itself: the destinations the key may reach and the redactor
    /// of the leased values (and access token), for the answer.
    pub async fn authorize_for_sending(
        &self,
        lease: &Lease,
        request: &HttpRequest,
        outbound: &Outbound,
    ) -> Result<SendableRequest, LeaseError> {
        let plugin = self.inner.registry.get(&lease.provider).ok_or(LeaseError::Unknown)?;
        self.check_lease_key(lease).await?;
        let mut credentials = self.leased_env(lease, plugin.manifest()).await?;
        let tokens = &self.inner.tokens;
        if plugin.manifest().token_exchange {
            let key = tokens.key(&lease.scope, &lease.provider, &lease.key_id, &credentials);
            credentials = tokens
                .credentials_for(plugin, &key, &credentials, outbound)
                .await
                .map_err(|error| match error {
                    ExchangeError::Call(error) => LeaseError::Plugin(error),
                    refused => LeaseError::TokenExchange(refused),
                })?;
        }
        let authorized = plugin.authorize(&credentials, request, tokens.now()).await?;
        Ok(SendableRequest {
            request: authorized,
            allowed: plugin.allowed_hosts(&credentials),
            redactor: plugin.redactor(&credentials),
            plugin: plugin.clone(),
        })
    }

    /// The lease's key is still linked and active: a key disabled or unset
    /// after the lease was taken is not spent through it.
    async fn check_lease_key(&self, lease: &Lease) -> Result<(), LeaseError> {
        let keys = self.inner.store.list_provider_keys(&lease.scope).await?;
        let key =
            keys.iter().find(|key| key.provider == lease.provider && key.env_var == lease.key_id);
        let state = match key.map(|key| key.status) {
            Some(KeyStatus::Active) => return Ok(()),
            Some(KeyStatus::Disabled) => "disabled",
            None => "no longer set",
        };
        Err(LeaseError::KeyInactive {
            provider: lease.provider.clone(),
            key_id: lease.key_id.clone(),
            state,
        })
    }

    /// The env bag a lease handed out, read back by version (each must still
    /// be kept); defaults fill the variables that were not set.
    async fn leased_env(
        &self,
        lease: &Lease,
        manifest: &Manifest,
    ) -> Result<Credentials, LeaseError> {
        let mut env = Credentials::new();
        for var in &manifest.env_vars {
            match lease.versions.iter().find(|leased| leased.manifest_var == var.name) {
                Some(leased) => {
                    let value = self
                        .inner
                        .store
                        .get_var_version(&lease.scope, &leased.source, leased.version)
                        .await?
                        .ok_or_else(|| LeaseError::VersionGone {
                            name: leased.source.clone(),
                            version: leased.version,
                        })?;
                    env.insert(var.name.clone(), value.value);
                }
                None => {
                    if let Some(default) = &var.default_value {
                        env.insert(var.name.clone(), default.clone().into());
                    }
                }
            }
        }
        Ok(env)
    }

    /// Every candidate key of `provider` in `scope`: why it would be chosen
    /// or skipped, where each variable comes from, and its health.
    /// `pinned_by` says who set `pinned_key` ([`effective_pin`]); the
    /// explanation repeats it.
    pub async fn explain(
        &self,
        scope: &Scope,
        provider: &str,
        pinned_key: Option<&str>,
        pinned_by: Option<PinnedBy>,
    ) -> Result<Explanation, ResolveError> {
        let plugin = self.plugin(provider)?;
        let manifest = plugin.manifest();
        let keys: Vec<ProviderKey> = self
            .inner
            .store
            .list_provider_keys(scope)
            .await?
            .into_iter()
            .filter(|key| key.provider == provider)
            .collect();
        let vars = self.inner.store.list_vars(scope).await?;
        // What a resolve (not strict) would do, by the one rule.
        let pin_at_cap = self.pin_at_cap(scope, provider, pinned_key, &keys).await?;
        let choice = choose_key(&keys, provider, pinned_key, false, pin_at_cap);
        let (chosen_key, chosen_by) = match choice {
            Choice::Key { key, chosen_by } => (Some(key.env_var.as_str()), Some(chosen_by)),
            Choice::PinRefused(_) | Choice::NoActiveKey => (None, None),
        };
        let pin_problem = chosen_by.and_then(ChosenBy::pin_problem);
        let warning = pin_problem
            .zip(pinned_key)
            .zip(chosen_key)
            .map(|((problem, pin), spent)| fallback_warning(pin, problem, scope, spent));
        let error = match choice {
            Choice::NoActiveKey => {
                Some(ExplainedError::of(&self.no_active_key(scope, manifest, &keys).await))
            }
            Choice::Key { .. } | Choice::PinRefused(_) => None,
        };
        let strict_error =
            match (choose_key(&keys, provider, pinned_key, true, pin_at_cap), pinned_key) {
                (Choice::PinRefused(problem), Some(pin)) => Some(ExplainedError::of(
                    &self.pin_refused(scope, manifest, pin, problem, &keys),
                )),
                _ => None,
            };
        let candidates = keys
            .iter()
            .map(|key| {
                let chosen = chosen_key == Some(key.env_var.as_str());
                let is_pin = pinned_key == Some(key.env_var.as_str());
                let reason = match (chosen_by, pinned_key) {
                    (Some(ChosenBy::Pinned), _) if chosen => "pinned".to_owned(),
                    (Some(ChosenBy::ScopeDefault), _) if chosen => default_reason(key),
                    (Some(ChosenBy::FallbackPinMissing), Some(pin)) if chosen => {
                        format!("scope default, because the pin {pin} does not exist (fallback)")
                    }
                    (Some(ChosenBy::FallbackPinDisabled), Some(pin)) if chosen => {
                        format!("scope default, because the pin {pin} is disabled (fallback)")
                    }
                    (Some(ChosenBy::FallbackPinAtCap), Some(pin)) if chosen => {
                        format!("scope default, because the pin {pin} has nothing left of its budget (fallback)")
                    }
                    _ if is_pin && pin_at_cap => "pinned, but nothing is left of its budget: a resolve falls back to the scope default (strict fails with pinned_key_at_cap)".to_owned(),
                    _ if is_pin && chosen_key.is_some() => "pinned, but disabled: a resolve falls back to the scope default (strict fails with pinned_key_disabled)".to_owned(),
                    _ if is_pin => "pinned, but disabled, like every other key".to_owned(),
                    _ if key.status == KeyStatus::Disabled => "disabled".to_owned(),
                    (_, Some(pin)) => format!("not pinned (the pin is {pin})"),
                    (_, None) => match keys.iter().find(|other| Some(other.env_var.as_str()) == chosen_key) {
                        Some(default) if default.chosen_default_at.is_some() => {
                            format!("not the scope default: an operator chose {}", default.env_var)
                        }
                        _ => format!("variant {} is not the lowest active variant", key.variant),
                    },
                };
                let sources = manifest
                    .env_vars
                    .iter()
                    .map(|var| {
                        let is_secret = var.role == EnvVarRole::Secret;
                        let found = value_sources(&var.name, key.variant, is_secret)
                            .into_iter()
                            .find_map(|source| vars.iter().find(|info| info.name == source));
                        VarSourceInfo {
                            manifest_var: var.name.clone(),
                            from: match found {
                                Some(info) => VarOrigin::Scope {
                                    variable: info.name.clone(),
                                    version: info.version,
                                    source: info.source,
                                },
                                None if var.default_value.is_some() => VarOrigin::ManifestDefault,
                                None if var.required => VarOrigin::Missing,
                                None => VarOrigin::Unset,
                            },
                        }
                    })
                    .collect();
                let verdict = key.health.as_ref().map(health_verdict);
                Candidate {
                    key_id: key.env_var.clone(),
                    variant: key.variant,
                    label: key.label.clone(),
                    status: key.status,
                    chosen,
                    reason,
                    variables: sources,
                    badge: badge(verdict.as_ref()),
                    health: key.health.clone(),
                }
            })
            .collect();
        let near_misses = self.near_misses_for(&vars, manifest);
        Ok(Explanation {
            scope: scope.to_string(),
            provider: provider.to_owned(),
            pinned_key: pinned_key.map(str::to_owned),
            pinned_by,
            chosen_by,
            warning,
            error,
            strict_error,
            candidates,
            near_misses,
        })
    }
}

/// Why `key`, the scope default, is it.
fn default_reason(key: &ProviderKey) -> String {
    if key.chosen_default_at.is_some() {
        "scope default: chosen by an operator".to_owned()
    } else {
        "scope default: the lowest active variant".to_owned()
    }
}

/// The verdict a stored health record stands for (message only).
pub fn health_verdict(record: &crate::store::HealthRecord) -> Verdict {
    use crate::store::HealthVerdict;
    let message = record.message.clone();
    match record.verdict {
        HealthVerdict::Healthy => Verdict::Healthy { message, models: Vec::new() },
        HealthVerdict::InvalidCredential => Verdict::InvalidCredential { message },
        HealthVerdict::QuotaLimited => Verdict::QuotaLimited { message },
        HealthVerdict::Unreachable => Verdict::Unreachable { message },
        HealthVerdict::Degraded => Verdict::Degraded { message },
    }
}

/// The answer to an explain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// `org/project/env`.
    pub scope: String,
    /// The provider.
    pub provider: String,
    /// The pin asked about: the request's, or the calling token's.
    pub pinned_key: Option<String>,
    /// Who set the pin: `request`, `token`, or null for no pin.
    pub pinned_by: Option<PinnedBy>,
    /// How a resolve would choose (none when it would fail).
    pub chosen_by: Option<ChosenBy>,
    /// The warning a resolve would carry (a pin that falls back).
    pub warning: Option<String>,
    /// The error a resolve would answer (no active key).
    pub error: Option<ExplainedError>,
    /// The error a `strict` resolve would answer for the pin (missing or
    /// disabled).
    pub strict_error: Option<ExplainedError>,
    /// Every key of the provider in the scope.
    pub candidates: Vec<Candidate>,
    /// Variables that look like misspelt expected names.
    pub near_misses: Vec<NearMiss>,
}

/// A resolve error as an explanation shows it: the API's code and message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExplainedError {
    /// The stable code ([`ResolveError::code`]).
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl ExplainedError {
    fn of(error: &ResolveError) -> Self {
        ExplainedError { code: error.code(), message: error.to_string() }
    }
}

/// One key in an explanation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The key's variable.
    pub key_id: String,
    /// Its variant.
    pub variant: u32,
    /// Its label.
    pub label: String,
    /// Whether it may be used.
    pub status: KeyStatus,
    /// Whether a resolve would choose it.
    pub chosen: bool,
    /// Why, or why not.
    pub reason: String,
    /// Where each manifest variable would come from.
    pub variables: Vec<VarSourceInfo>,
    /// Its badge.
    pub badge: Badge,
    /// Its last health check.
    pub health: Option<crate::store::HealthRecord>,
}

/// Where one manifest variable of a key comes from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VarSourceInfo {
    /// The manifest's name.
    pub manifest_var: String,
    /// Its origin.
    pub from: VarOrigin,
}

/// The origin of a variable's value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VarOrigin {
    /// A scope variable.
    Scope {
        /// Its name.
        variable: String,
        /// Its current version.
        version: u64,
        /// API or self-host.
        source: VarSource,
    },
    /// The manifest's default.
    ManifestDefault,
    /// Required, and not set.
    Missing,
    /// Optional, and not set.
    Unset,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(provider: &str, env_var: &str, variant: u32, status: KeyStatus) -> ProviderKey {
        ProviderKey {
            provider: provider.into(),
            env_var: env_var.into(),
            variant,
            label: env_var.into(),
            created_at: 0,
            last_used_at: None,
            status,
            health: None,
            chosen_default_at: None,
        }
    }

    fn chosen(choice: Choice<'_>) -> Option<(&str, ChosenBy)> {
        match choice {
            Choice::Key { key, chosen_by } => Some((key.env_var.as_str(), chosen_by)),
            _ => None,
        }
    }

    #[test]
    fn a_pin_is_honoured_only_when_it_exists_and_is_active() {
        use KeyStatus::{Active, Disabled};
        let keys = [
            key("openai", "OPENAI_API_KEY_3", 3, Active),
            key("openai", "OPENAI_API_KEY", 1, Disabled),
            key("openai", "OPENAI_API_KEY_2", 2, Active),
            key("anthropic", "ANTHROPIC_API_KEY", 1, Active),
        ];
        let choose = |pin, strict| choose_key(&keys, "openai", pin, strict, false);
        for strict in [false, true] {
            assert_eq!(
                chosen(choose(None, strict)),
                Some(("OPENAI_API_KEY_2", ChosenBy::ScopeDefault))
            );
            assert_eq!(
                chosen(choose(Some("OPENAI_API_KEY_3"), strict)),
                Some(("OPENAI_API_KEY_3", ChosenBy::Pinned))
            );
        }
        assert_eq!(
            chosen(choose(Some("OPENAI_API_KEY"), false)),
            Some(("OPENAI_API_KEY_2", ChosenBy::FallbackPinDisabled))
        );
        assert_eq!(choose(Some("OPENAI_API_KEY"), true), Choice::PinRefused(PinProblem::Disabled));
        // Another provider's key is no pin of this one.
        assert_eq!(
            chosen(choose(Some("ANTHROPIC_API_KEY"), false)),
            Some(("OPENAI_API_KEY_2", ChosenBy::FallbackPinMissing))
        );
        assert_eq!(choose(Some("OPENAI_API_KEY_9"), true), Choice::PinRefused(PinProblem::Missing));
    }

    #[test]
    fn a_pin_at_its_cap_falls_back_unless_strict_or_it_is_the_default_itself() {
        use KeyStatus::Active;
        let keys = [
            key("openai", "OPENAI_API_KEY", 1, Active),
            key("openai", "OPENAI_API_KEY_2", 2, Active),
        ];
        let choose = |pin, strict| choose_key(&keys, "openai", pin, strict, true);
        assert_eq!(
            chosen(choose(Some("OPENAI_API_KEY_2"), false)),
            Some(("OPENAI_API_KEY", ChosenBy::FallbackPinAtCap))
        );
        assert_eq!(choose(Some("OPENAI_API_KEY_2"), true), Choice::PinRefused(PinProblem::AtCap));
        // The default itself at its cap: nothing to fall back to.
        assert_eq!(
            chosen(choose(Some("OPENAI_API_KEY"), false)),
            Some(("OPENAI_API_KEY", ChosenBy::Pinned))
        );
        assert_eq!(choose(Some("OPENAI_API_KEY"), true), Choice::PinRefused(PinProblem::AtCap));
        assert_eq!(ChosenBy::FallbackPinAtCap.pin_problem(), Some(PinProblem::AtCap));
    }

    #[test]
    fn without_an_active_key_nothing_is_chosen() {
        let keys = [
            key("openai", "OPENAI_API_KEY", 1, KeyStatus::Disabled),
            key("openai", "OPENAI_API_KEY_2", 2, KeyStatus::Disabled),
        ];
        for pin in [None, Some("OPENAI_API_KEY"), Some("OPENAI_API_KEY_7")] {
            assert_eq!(
                choose_key(&keys, "openai", pin, false, false),
                Choice::NoActiveKey,
                "{pin:?}"
            );
        }
        assert_eq!(
            choose_key(&keys, "openai", Some("OPENAI_API_KEY_2"), true, false),
            Choice::PinRefused(PinProblem::Disabled)
        );
        assert_eq!(choose_key(&[], "openai", None, true, false), Choice::NoActiveKey);
    }

    #[test]
    fn an_operator_choice_is_the_default_while_it_is_active() {
        use KeyStatus::{Active, Disabled};
        let chosen_at = |mut key: ProviderKey, at| {
            key.chosen_default_at = Some(at);
            key
        };
        let mut keys = vec![
            key("openai", "OPENAI_API_KEY", 1, Active),
            chosen_at(key("openai", "OPENAI_API_KEY_3", 3, Active), 10),
            chosen_at(key("openai", "OPENAI_API_KEY_2", 2, Active), 20),
            chosen_at(key("anthropic", "ANTHROPIC_API_KEY_2", 2, Active), 30),
        ];
        let default = |keys: &[ProviderKey]| {
            chosen(choose_key(keys, "openai", None, false, false)).map(|(key, _)| key.to_owned())
        };
        // The latest choice wins, whatever the variant; other providers'
        // choices do not count.
        assert_eq!(default(&keys).as_deref(), Some("OPENAI_API_KEY_2"));
        // A disabled choice falls back to the choice before it, then to the
        // lowest active variant.
        keys[2].status = Disabled;
        assert_eq!(default(&keys).as_deref(), Some("OPENAI_API_KEY_3"));
        keys[1].chosen_default_at = None;
        assert_eq!(default(&keys).as_deref(), Some("OPENAI_API_KEY"));
        // A pin still beats the choice.
        keys[2].status = Active;
        assert_eq!(
            chosen(choose_key(&keys, "openai", Some("OPENAI_API_KEY_3"), true, false)),
            Some(("OPENAI_API_KEY_3", ChosenBy::Pinned))
        );
    }

    #[test]
    fn the_request_pin_beats_the_token_pin_and_an_explicit_none_opts_out() {
        let token = Some("OPENAI_API_KEY_3");
        let key = RequestPin::Key("OPENAI_API_KEY_2");
        assert_eq!(effective_pin(key, token), (Some("OPENAI_API_KEY_2"), Some(PinnedBy::Request)));
        assert_eq!(effective_pin(key, None), (Some("OPENAI_API_KEY_2"), Some(PinnedBy::Request)));
        assert_eq!(effective_pin(RequestPin::Unset, token), (token, Some(PinnedBy::Token)));
        assert_eq!(effective_pin(RequestPin::Unset, None), (None, None));
        assert_eq!(effective_pin(RequestPin::NoPin, token), (None, None));
        assert_eq!(effective_pin(RequestPin::NoPin, None), (None, None));

        assert_eq!(RequestPin::of(None), RequestPin::Unset);
        assert_eq!(RequestPin::of(Some(None)), RequestPin::NoPin);
        assert_eq!(RequestPin::of(Some(Some(""))), RequestPin::NoPin);
        assert_eq!(RequestPin::of(Some(Some("OPENAI_API_KEY_2"))), key);
        assert_eq!(serde_json::to_value(PinnedBy::Token).unwrap(), "token");
        assert_eq!(serde_json::to_value(PinnedBy::Request).unwrap(), "request");
    }
}

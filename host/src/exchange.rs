//! Token exchange (contract 0.2.0): trading a key's long-lived secret for a
//! short-lived access token, and the in-memory cache of those tokens.
//!
//! - [`exchange`] runs one exchange: the plugin's `token-request`, sent
//!   through [`Outbound`] (allowed hosts, checked addresses, no redirects,
//!   timeout, body cap), and its `read-token`, then the host's own rules
//!   ([`checked_token`]): a transport failure is `unreachable` whatever the
//!   plugin says, an empty or already expired token is no token, and an
//!   absurd expiry is clamped to [`MAX_TOKEN_LIFETIME`].
//! - [`TokenBroker`] caches tokens per [`TokenKey`] (scope, provider, key
//!   id and a salted fingerprint of the key's values, so a rotated secret
//!   never gets the old secret's token), refreshes them before expiry
//!   ([`refresh_at`]), and runs one exchange at a time per key: concurrent
//!   callers wait for it and share its outcome, success or failure.
//!
//! Tokens live in memory only, as [`SecretString`]s: never stored, logged,
//! serialized or shown in `Debug` or errors. The runtime redacts the token
//! (as `PLATOS_ACCESS_TOKEN`) from every plugin output, like a secret.
//!
//! What a resolve hands an agent for such a provider is the long-lived
//! values, as for any provider (a client library does its own exchange);
//! an agent that should not hold them uses authorize-by-lease, which signs
//! with a cached token.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::outbound::Outbound;
use crate::provider::{ACCESS_TOKEN_VAR, AccessToken, Credentials, HttpResponse, Verdict};
use crate::runtime::{CallError, Plugin};
use crate::scope::Scope;

/// The longest a token is trusted for, whatever its endpoint says: a
/// garbage or overflowing expiry must not pin a token for ever.
pub const MAX_TOKEN_LIFETIME: u64 = 24 * 60 * 60;

/// The longest a token is refreshed before it expires. A shorter-lived
/// token is refreshed when a quarter of its lifetime remains.
pub const MAX_REFRESH_MARGIN: u64 = 5 * 60;

/// The shortest token value taken: anything shorter would not be found by
/// the redaction (see [`crate::policy::redaction::MIN_SECRET_LEN`]).
const MIN_TOKEN_LEN: usize = crate::policy::redaction::MIN_SECRET_LEN;

/// Why an exchange gave no token.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// A plugin call failed or was refused (e.g. `token-request` named a
    /// foreign host, or a required variable is missing).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The token endpoint gave no token: the verdict the key gets.
    #[error("{plugin}: the token exchange gave no access token: {}", verdict.message())]
    NoToken {
        /// `slug@version`.
        plugin: String,
        /// Why (never healthy).
        verdict: Verdict,
    },
}

impl ExchangeError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ExchangeError::Call(error) => error.kind.code(),
            ExchangeError::NoToken { .. } => "token_exchange_failed",
        }
    }
}

/// Seconds since the Unix epoch, as the broker sees them. Tests inject their
/// own clock.
pub trait Clock: Send + Sync {
    /// Now, Unix seconds.
    fn now(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::health::unix_now()
    }
}

/// When a token obtained at `issued_at` and expiring at `expires_at` is
/// refreshed: [`MAX_REFRESH_MARGIN`] before it expires, or when a quarter
/// of its lifetime remains if that is sooner.
pub fn refresh_at(issued_at: u64, expires_at: u64) -> u64 {
    let lifetime = expires_at.saturating_sub(issued_at);
    expires_at - (lifetime / 4).min(MAX_REFRESH_MARGIN)
}

/// The host's rules over what `read-token` made of `response` at `now`: a
/// transport failure (status 0) is `unreachable` whatever the plugin said; a
/// token that is empty, too short or already expired is a `degraded`
/// failure; an expiry beyond [`MAX_TOKEN_LIFETIME`] is clamped to it.
pub fn checked_token(
    response: &HttpResponse,
    read: Result<AccessToken, Verdict>,
    now: u64,
) -> Result<AccessToken, Verdict> {
    if response.status == 0 {
        return Err(match read {
            Err(verdict @ Verdict::Unreachable { .. }) => verdict,
            _ => Verdict::Unreachable {
                message: format!(
                    "the token endpoint could not be reached: {}",
                    String::from_utf8_lossy(&response.body)
                ),
            },
        });
    }
    let mut token = read?;
    if token.value.expose_secret().len() < MIN_TOKEN_LEN {
        return Err(Verdict::Degraded {
            message: format!(
                "HTTP {}: the token endpoint's answer holds no usable access token",
                response.status
            ),
        });
    }
    if token.expires_at <= now {
        return Err(Verdict::Degraded {
            message: format!(
                "HTTP {}: the access token given has already expired",
                response.status
            ),
        });
    }
    token.expires_at = token.expires_at.min(now.saturating_add(MAX_TOKEN_LIFETIME));
    Ok(token)
}

/// One exchange for the key with `credentials`, at `now`, without any cache.
pub async fn exchange(
    plugin: &Plugin,
    credentials: &Credentials,
    outbound: &Outbound,
    now: u64,
) -> Result<AccessToken, ExchangeError> {
    let request = plugin.token_request(credentials, now).await?;
    let response = outbound.send(&request, &plugin.allowed_hosts(credentials)).await;
    let read = plugin.read_token(credentials, &response, now).await?;
    let token = checked_token(&response, read, now)
        .map_err(|verdict| ExchangeError::NoToken { plugin: plugin.id().to_owned(), verdict })?;
    tracing::debug!(
        plugin = plugin.id(),
        expires_in = token.expires_at.saturating_sub(now),
        "access token obtained"
    );
    Ok(token)
}

/// `credentials` with `token` under [`ACCESS_TOKEN_VAR`], for `authorize`.
pub fn with_token(credentials: &Credentials, token: &AccessToken) -> Credentials {
    let mut bag = credentials.clone();
    bag.insert(ACCESS_TOKEN_VAR, token.value.clone());
    bag
}

/// Which cached token a key gets: where the key lives and a fingerprint of
/// its values. `Debug` leaves the fingerprint out.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    scope: Scope,
    provider: String,
    key_id: String,
    fingerprint: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("scope", &self.scope)
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A cached token and when it is refreshed.
struct Cached {
    token: AccessToken,
    refresh_at: u64,
}

/// One key's slot: the cached token, the last failure, and how many
/// exchanges ran, readable without waiting for the slot.
#[derive(Default)]
struct Slot {
    exchanges: AtomicU64,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    token: Option<Cached>,
    failure: Option<Verdict>,
}

/// The token cache: a cheap handle. Tokens are kept in memory only.
#[derive(Clone)]
pub struct TokenBroker {
    inner: Arc<BrokerInner>,
}

struct BrokerInner {
    clock: Arc<dyn Clock>,
    /// A random per-process salt of the fingerprints: they never leave this
    /// process and cannot be checked against guessed values elsewhere.
    salt: [u8; 32],
    slots: Mutex<HashMap<TokenKey, Arc<Slot>>>,
    exchanges: AtomicU64,
}

impl Default for TokenBroker {
    fn default() -> Self {
        TokenBroker::new(Arc::new(SystemClock))
    }
}

impl fmt::Debug for TokenBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBroker").field("exchanges", &self.exchanges()).finish_non_exhaustive()
    }
}

impl TokenBroker {
    /// An empty cache reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        TokenBroker {
            inner: Arc::new(BrokerInner {
                clock,
                salt: crate::crypto::random_bytes::<32>(),
                slots: Mutex::new(HashMap::new()),
                exchanges: AtomicU64::new(0),
            }),
        }
    }

    /// Now, by the broker's clock.
    pub fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// How many exchanges the broker has run.
    pub fn exchanges(&self) -> u64 {
        self.inner.exchanges.load(Ordering::Relaxed)
    }

    /// The cache key of `provider`'s key `key_id` in `scope` with
    /// `credentials` (every name and value, order aside).
    pub fn key(
        &self,
        scope: &Scope,
        provider: &str,
        key_id: &str,
        credentials: &Credentials,
    ) -> TokenKey {
        let mut pairs: Vec<(&str, &str)> = credentials.expose().collect();
        pairs.sort();
        let mut hasher = Sha256::new();
        hasher.update(self.inner.salt);
        for (name, value) in pairs {
            for part in [name, value] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        TokenKey {
            scope: scope.clone(),
            provider: provider.to_owned(),
            key_id: key_id.to_owned(),
            fingerprint: hasher.finalize().into(),
        }
    }

    /// `credentials` with a current access token for `key` (cached, or
    /// from a fresh exchange when none is cached or it is due for refresh).
    /// Callers that wait while another runs the key's exchange share its
    /// outcome.
    pub async fn credentials_for(
        &self,
        plugin: &Plugin,
        key: &TokenKey,
        credentials: &Credentials,
        outbound: &Outbound,
    ) -> Result<Credentials, ExchangeError> {
        let slot = self.slot(key);
        let seen = slot.exchanges.load(Ordering::Acquire);
        let mut state = slot.state.lock().await;
        let now = self.now();
        if let Some(cached) = &state.token
            && now < cached.refresh_at
        {
            return Ok(with_token(credentials, &cached.token));
        }
        if slot.exchanges.load(Ordering::Acquire) != seen
            && let Some(verdict) = &state.failure
        {
            // The exchange this caller waited for failed: its outcome, not
            // another exchange straight away.
            return Err(ExchangeError::NoToken {
                plugin: plugin.id().to_owned(),
                verdict: verdict.clone(),
            });
        }
        self.inner.exchanges.fetch_add(1, Ordering::Relaxed);
        let outcome = exchange(plugin, credentials, outbound, now).await;
        slot.exchanges.fetch_add(1, Ordering::Release);
        match outcome {
            Ok(token) => {
                let bag = with_token(credentials, &token);
                state.token = Some(Cached { refresh_at: refresh_at(now, token.expires_at), token });
                state.failure = None;
                Ok(bag)
            }
            Err(error) => {
                state.token = None;
                state.failure = match &error {
                    ExchangeError::NoToken { verdict, .. } => Some(verdict.clone()),
                    ExchangeError::Call(_) => None,
                };
                Err(error)
            }
        }
    }

    /// The slot of `key`, created if needed. Slots whose token has expired
    /// and that nobody holds are dropped first, so rotated-away keys and
    /// ended leases do not accumulate.
    fn slot(&self, key: &TokenKey) -> Arc<Slot> {
        let now = self.now();
        let mut slots = self.inner.slots.lock().expect("the token slots are never poisoned");
        slots.retain(|kept, slot| {
            kept == key
                || Arc::strong_count(slot) > 1
                || slot.state.try_lock().is_ok_and(|state| {
                    state.token.as_ref().is_some_and(|cached| cached.token.expires_at > now)
                })
        });
        slots.entry(key.clone()).or_default().clone()
    }

    /// How many keys have a slot (for tests and metrics).
    pub fn cached_keys(&self) -> usize {
        self.inner.slots.lock().expect("the token slots are never poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn token(value: &str, expires_at: u64) -> AccessToken {
        AccessToken { value: SecretString::from(value.to_owned()), expires_at }
    }

    fn answer(status: u16) -> HttpResponse {
        HttpResponse { status, headers: Vec::new(), body: b"could not connect".to_vec() }
    }

    #[test]
    fn refresh_comes_five_minutes_early_or_at_a_quarter_of_the_lifetime() {
        assert_eq!(refresh_at(1_000, 1_000 + 3_600), 1_000 + 3_600 - 300);
        assert_eq!(refresh_at(1_000, 1_000 + 600), 1_000 + 600 - 150);
        assert_eq!(refresh_at(1_000, 1_003), 1_003, "3 s: a quarter rounds to nothing");
        assert_eq!(refresh_at(1_000, 1_000), 1_000);
        assert_eq!(refresh_at(5_000, 1_000), 1_000, "an expiry before issue never underflows");
        assert_eq!(refresh_at(0, u64::MAX), u64::MAX - MAX_REFRESH_MARGIN);
    }

    #[test]
    fn the_host_rules_over_what_read_token_says() {
        let now = 10_000;
        let good = checked_token(&answer(200), Ok(token("at-1234", now + 60)), now).unwrap();
        assert_eq!(good.expires_at, now + 60);
        let clamped = checked_token(&answer(200), Ok(token("at-1234", u64::MAX)), now).unwrap();
        assert_eq!(clamped.expires_at, now + MAX_TOKEN_LIFETIME);
        for (value, expires_at) in [("", now + 60), ("abc", now + 60), ("at-1234", now)] {
            let refused = checked_token(&answer(200), Ok(token(value, expires_at)), now);
            assert!(matches!(refused, Err(Verdict::Degraded { .. })), "{value:?} {expires_at}");
        }
        // A transport failure is unreachable, even if the plugin claims a
        // token or blames the credential.
        for read in [
            Ok(token("at-1234", now + 60)),
            Err(Verdict::InvalidCredential { message: "no".into() }),
        ] {
            match checked_token(&answer(0), read, now) {
                Err(Verdict::Unreachable { message }) => {
                    assert!(message.ends_with("could not connect"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        let own = Verdict::Unreachable { message: "dns failed".into() };
        assert_eq!(checked_token(&answer(0), Err(own.clone()), now).unwrap_err(), own);
        let refused = Verdict::InvalidCredential { message: "HTTP 401".into() };
        assert_eq!(checked_token(&answer(401), Err(refused.clone()), now).unwrap_err(), refused);
    }

    #[test]
    fn keys_separate_scopes_keys_and_values_and_hide_the_fingerprint() {
        let broker = TokenBroker::default();
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let other: Scope = "acme/shop/dev".parse().unwrap();
        let a = Credentials::new().with("A", "secret-1").with("B", "x");
        let b = Credentials::new().with("B", "x").with("A", "secret-1");
        let rotated = Credentials::new().with("A", "secret-2").with("B", "x");
        let key = broker.key(&scope, "vertex", "GOOGLE_PRIVATE_KEY", &a);
        assert_eq!(key, broker.key(&scope, "vertex", "GOOGLE_PRIVATE_KEY", &b), "order aside");
        assert_ne!(key, broker.key(&scope, "vertex", "GOOGLE_PRIVATE_KEY", &rotated));
        assert_ne!(key, broker.key(&other, "vertex", "GOOGLE_PRIVATE_KEY", &a));
        assert_ne!(key, broker.key(&scope, "vertex", "GOOGLE_PRIVATE_KEY_2", &a));
        // Length-prefixed parts: moving bytes between a name and a value
        // is another key.
        let shifted = Credentials::new().with("AB", "c");
        let unshifted = Credentials::new().with("A", "Bc");
        assert_ne!(
            broker.key(&scope, "p", "K", &shifted),
            broker.key(&scope, "p", "K", &unshifted)
        );
        // Another broker (another process) has another salt.
        assert_ne!(key, TokenBroker::default().key(&scope, "vertex", "GOOGLE_PRIVATE_KEY", &a));
        let shown = format!("{key:?}");
        assert!(!shown.contains("fingerprint") && shown.contains("GOOGLE_PRIVATE_KEY"), "{shown}");
    }

    #[test]
    fn with_token_puts_the_token_under_the_reserved_name() {
        let bag = with_token(
            &Credentials::new().with("A", "1").with(ACCESS_TOKEN_VAR, "stale"),
            &token("at-1234", 9),
        );
        assert_eq!(bag.get(ACCESS_TOKEN_VAR), Some("at-1234"));
        assert_eq!(bag.get("A"), Some("1"));
        assert!(!format!("{bag:?}").contains("at-1234"));
    }
}

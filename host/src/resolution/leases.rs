//! Leases: a turn's hold on the value versions it was given, carried by the
//! agent as a self-contained, MAC-protected token.
//!
//! A lease names the scope, the provider, the key (its variable), the value
//! version of every variable of the env bag it handed out, when it was
//! issued and when it ends, and a random id. Authorize-by-lease signs with
//! exactly those versions even after a rotation (it reads them back by
//! version; the store keeps a replaced version for its grace period, at
//! least the lease TTL: [`check_lease_ttl`]). A lease holds no secret, only
//! names and versions.
//!
//! The host keeps nothing per lease. The lease id an agent gets is the
//! [token](Lease::token): `base64url(payload || HMAC-SHA256(lease key,
//! payload))`, the lease key derived from the master key
//! ([`Keyring::lease_mac`]). Any host with the same master key verifies it,
//! before and after a restart; during a rotation the previous master key's
//! lease key verifies too ([`Keyring::verify_lease_mac`]). Only an early
//! release leaves a trace: the lease's random id and end, in the store, until
//! that end (`SecretStore::release_lease`).
//!
//! The payload, integers big-endian, `str` one length byte then UTF-8:
//!
//! ```text
//! format (1) | id (16) | issued at, Unix ms (8) | expires at, Unix ms (8)
//! | str scope | str provider | str key variable
//! | count (1) | count × (str manifest variable | str source variable | version (8))
//! ```
//!
//! Every name fits its length byte by the name rules (a scope is at most
//! 194 bytes, a slug 64, a variable name 128); a bag holds at most
//! [`MAX_LEASED_VARS`] variables.
//!
//! The client a bag was shaped for is not in the lease: authorize signs with
//! the manifest's plain variables, whatever form the agent got them in.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{Keyring, LEASE_MAC_LEN};
use crate::scope::{MAX_SCOPE_ID_LEN, Scope};
pub use crate::store::LEASE_ID_LEN;
use crate::store::UnixMillis;

/// The version of the token format this host writes and reads.
pub const LEASE_FORMAT: u8 = 1;

/// The most variables one lease holds (one env bag's set variables).
pub const MAX_LEASED_VARS: usize = 64;

/// The longest string a payload carries (one length byte).
const MAX_FIELD_LEN: usize = u8::MAX as usize;

/// The fixed part of a payload: format, id, issue and expiry times.
const FIXED_LEN: usize = 1 + LEASE_ID_LEN + 8 + 8;

/// The longest payload: the fixed part, three names and the most variables.
const MAX_PAYLOAD_LEN: usize =
    FIXED_LEN + 3 * (1 + MAX_FIELD_LEN) + 1 + MAX_LEASED_VARS * (2 * (1 + MAX_FIELD_LEN) + 8);

/// The longest token: base64 of the longest payload and its MAC. Anything
/// longer is refused before it is decoded.
pub const MAX_TOKEN_LEN: usize = (MAX_PAYLOAD_LEN + LEASE_MAC_LEN).div_ceil(3) * 4;

// Every name the payload carries fits its length byte.
const _: () = assert!(3 * MAX_SCOPE_ID_LEN + 2 <= MAX_FIELD_LEN);
const _: () = assert!(crate::policy::names::MAX_SLUG_LEN <= MAX_FIELD_LEN);
const _: () = assert!(crate::policy::names::MAX_ENV_VAR_LEN <= MAX_FIELD_LEN);
const _: () = assert!(MAX_LEASED_VARS <= u8::MAX as usize);

/// A lease's random id: what a release records. Not the token: knowing it
/// authorizes nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub [u8; LEASE_ID_LEN]);

impl LeaseId {
    /// A fresh id from the operating system's secure random source.
    pub fn random() -> Self {
        LeaseId(crate::crypto::random_bytes())
    }
}

impl fmt::Display for LeaseId {
    /// Lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseId({self})")
    }
}

/// One variable of a lease's env bag: where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedVar {
    /// The manifest's (plain) name, as the plugin sees it.
    pub manifest_var: String,
    /// The scope variable read (e.g. the numbered variant).
    pub source: String,
    /// The value version read.
    pub version: u64,
}

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Its random id.
    pub id: LeaseId,
    /// The scope it was resolved in.
    pub scope: Scope,
    /// The provider's slug.
    pub provider: String,
    /// The key's variable.
    pub key_id: String,
    /// The value versions handed out.
    pub versions: Vec<LeasedVar>,
    /// When it was issued, Unix milliseconds.
    pub issued_at: UnixMillis,
    /// When it ends, Unix milliseconds.
    pub expires_at: UnixMillis,
}

/// Why a bag cannot be leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the env bag has {vars} variables set; a lease holds at most {max}", max = MAX_LEASED_VARS)]
pub struct LeaseTooLarge {
    /// How many variables the bag has set.
    pub vars: usize,
}

/// Why a token is not a live lease of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Not a lease of this scope made by a host with this master key:
    /// malformed, altered, made under another key, or of another scope.
    /// Answered like a lease that never existed.
    #[error("no lease with this id in this scope")]
    Invalid,
    /// A genuine lease of the scope whose time is over.
    #[error("the lease expired at {at} (Unix ms)")]
    Expired {
        /// When it expired, Unix milliseconds.
        at: UnixMillis,
    },
}

impl Lease {
    /// A lease with a fresh random id, issued at `now` and valid for `ttl`.
    pub fn new(
        scope: Scope,
        provider: String,
        key_id: String,
        versions: Vec<LeasedVar>,
        now: UnixMillis,
        ttl: Duration,
    ) -> Self {
        let ttl = UnixMillis::try_from(ttl.as_millis()).unwrap_or(UnixMillis::MAX);
        Lease {
            id: LeaseId::random(),
            scope,
            provider,
            key_id,
            versions,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
        }
    }

    /// The token the agent holds: the payload and its MAC under the current
    /// master key's lease key, in URL-safe base64 without padding (it goes
    /// into paths as is).
    pub fn token(&self, keyring: &Keyring) -> Result<String, LeaseTooLarge> {
        let mut bytes = self.payload()?;
        let mac = keyring.lease_mac(&bytes);
        bytes.extend_from_slice(&mac);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The lease `token` stands for, if it is a lease of `scope` whose MAC
    /// verifies under `keyring` (the current or the previous master key)
    /// and that has not expired at `now`. The MAC is checked before any
    /// field is read.
    pub fn verify(
        token: &str,
        keyring: &Keyring,
        scope: &Scope,
        now: UnixMillis,
    ) -> Result<Lease, TokenRefusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRefusal::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| TokenRefusal::Invalid)?;
        let Some(split) = bytes.len().checked_sub(LEASE_MAC_LEN) else {
            return Err(TokenRefusal::Invalid);
        };
        let (payload, mac) = bytes.split_at(split);
        if !keyring.verify_lease_mac(payload, mac) {
            return Err(TokenRefusal::Invalid);
        }
        let lease = Lease::parse(payload).ok_or(TokenRefusal::Invalid)?;
        if &lease.scope != scope {
            return Err(TokenRefusal::Invalid);
        }
        if now >= lease.expires_at {
            return Err(TokenRefusal::Expired { at: lease.expires_at });
        }
        Ok(lease)
    }

    /// The payload (see the module's documentation).
    fn payload(&self) -> Result<Vec<u8>, LeaseTooLarge> {
        if self.versions.len() > MAX_LEASED_VARS {
            return Err(LeaseTooLarge { vars: self.versions.len() });
        }
        let scope = self.scope.to_string();
        let mut out = Vec::with_capacity(FIXED_LEN + 64 + 48 * self.versions.len());
        out.push(LEASE_FORMAT);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        for field in [&scope, &self.provider, &self.key_id] {
            put_str(&mut out, field);
        }
        out.push(self.versions.len() as u8);
        for var in &self.versions {
            put_str(&mut out, &var.manifest_var);
            put_str(&mut out, &var.source);
            out.extend_from_slice(&var.version.to_be_bytes());
        }
        Ok(out)
    }

    /// The lease of an authenticated payload; `None` if it is not one this
    /// host writes (another format, names that break their rules, bytes
    /// left over).
    fn parse(payload: &[u8]) -> Option<Lease> {
        let mut reader = Reader(payload);
        if reader.byte()? != LEASE_FORMAT {
            return None;
        }
        let id = LeaseId(reader.take(LEASE_ID_LEN)?.try_into().ok()?);
        let issued_at = reader.u64()?;
        let expires_at = reader.u64()?;
        let scope: Scope = reader.str()?.parse().ok()?;
        let provider = reader.str()?.to_owned();
        let key_id = reader.str()?.to_owned();
        let count = usize::from(reader.byte()?);
        let versions = (0..count)
            .map(|_| {
                let manifest_var = reader.str()?.to_owned();
                let source = reader.str()?.to_owned();
                let version = reader.u64()?;
                Some(LeasedVar { manifest_var, source, version })
            })
            .collect::<Option<Vec<_>>>()?;
        let names_valid = crate::policy::names::is_valid_slug(&provider)
            && [&key_id]
                .into_iter()
                .chain(versions.iter().flat_map(|var| [&var.manifest_var, &var.source]))
                .all(|name| crate::policy::names::is_valid_env_var_name(name));
        (reader.0.is_empty() && names_valid && issued_at <= expires_at).then_some(Lease {
            id,
            scope,
            provider,
            key_id,
            versions,
            issued_at,
            expires_at,
        })
    }
}

/// Appends one length byte and `text` (at most [`MAX_FIELD_LEN`] bytes, which
/// every name is by its rule).
fn put_str(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(MAX_FIELD_LEN)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Reads a payload front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|bytes| u64::from_be_bytes(bytes.try_into().expect("eight bytes")))
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::from(self.byte()?);
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// Why a lease TTL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseTtlError {
    /// Zero: every lease would be over when issued.
    #[error("the lease TTL must be at least 1s; expected e.g. 15m")]
    TooShort,
    /// Longer than the store keeps a replaced value: a lease would outlive
    /// the versions it holds.
    #[error(
        "the lease TTL ({ttl:?}) is longer than the store's grace period for replaced values ({grace:?}): a lease would outlive the value versions it holds after a rotation; use a lease TTL of at most {grace:?}"
    )]
    LongerThanGrace {
        /// The TTL asked for.
        ttl: Duration,
        /// The store's grace period.
        grace: Duration,
    },
}

/// Checks a lease TTL against the store's grace period: at least a second,
/// at most the grace period (a replaced version must stay readable for as
/// long as a lease on it lives).
pub fn check_lease_ttl(ttl: Duration, grace: Duration) -> Result<(), LeaseTtlError> {
    if ttl < Duration::from_secs(1) {
        Err(LeaseTtlError::TooShort)
    } else if ttl > grace {
        Err(LeaseTtlError::LongerThanGrace { ttl, grace })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey};

    const KEY_A: &str = "0123456789abcdef0123456789abcdef";
    const KEY_B: &str = "fedcba9876543210fedcba9876543210";
    const NOW: UnixMillis = 1_800_000_000_000;
    const TTL: Duration = Duration::from_secs(900);

    fn keyring(current: &str, previous: Option<&str>) -> Keyring {
        let key = |value| EncryptionKey::parse(ENCRYPTION_KEY_VAR, value).unwrap();
        Keyring::new(key(current), previous.map(key))
    }

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    fn var(manifest_var: &str, source: &str, version: u64) -> LeasedVar {
        LeasedVar { manifest_var: manifest_var.into(), source: source.into(), version }
    }

    fn sample() -> Lease {
        Lease::new(
            scope("acme/shop/prod"),
            "openai".into(),
            "OPENAI_API_KEY_2".into(),
            vec![
                var("OPENAI_API_KEY", "OPENAI_API_KEY_2", 3),
                var("OPENAI_BASE_URL", "OPENAI_BASE_URL", u64::MAX),
            ],
            NOW,
            TTL,
        )
    }

    #[test]
    fn a_token_round_trips_and_is_url_safe() {
        let ring = keyring(KEY_A, None);
        let lease = sample();
        let token = lease.token(&ring).unwrap();
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(token.len() < 300, "{} characters", token.len());
        let prod = scope("acme/shop/prod");
        assert_eq!(Lease::verify(&token, &ring, &prod, NOW), Ok(lease.clone()));
        assert_eq!(lease.expires_at, NOW + 900_000);
        // Each lease has its own id, so its own token.
        let again = sample();
        assert_ne!(again.id, lease.id);
        assert_ne!(again.token(&ring).unwrap(), token);
        // A bag of nothing but defaults leases no variable.
        let empty = Lease { versions: Vec::new(), ..lease };
        let token = empty.token(&ring).unwrap();
        assert_eq!(Lease::verify(&token, &ring, &prod, NOW), Ok(empty));
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let ring = keyring(KEY_A, None);
        let prod = scope("acme/shop/prod");
        let token = sample().token(&ring).unwrap();
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for index in 0..bytes.len() {
            for flip in [0x01, 0x80] {
                let mut altered = bytes.clone();
                altered[index] ^= flip;
                let altered = URL_SAFE_NO_PAD.encode(altered);
                assert_eq!(
                    Lease::verify(&altered, &ring, &prod, NOW),
                    Err(TokenRefusal::Invalid),
                    "byte {index} ^ {flip:#x}"
                );
            }
        }
        // Cut short, extended, emptied, or not base64 at all.
        for cut in [0, 1, LEASE_MAC_LEN, bytes.len() - 1] {
            let short = URL_SAFE_NO_PAD.encode(&bytes[..cut]);
            assert_eq!(Lease::verify(&short, &ring, &prod, NOW), Err(TokenRefusal::Invalid));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let longer = URL_SAFE_NO_PAD.encode(longer);
        for bad in [longer.as_str(), "", "not base64!", &format!("{token}="), &token[1..]] {
            assert_eq!(Lease::verify(bad, &ring, &prod, NOW), Err(TokenRefusal::Invalid), "{bad}");
        }
        let huge = "A".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(Lease::verify(&huge, &ring, &prod, NOW), Err(TokenRefusal::Invalid));
    }

    #[test]
    fn a_genuine_mac_over_a_payload_this_host_never_writes_is_refused() {
        // Only a holder of the master key could make these; they are refused
        // anyway (a defence against a bug in the writer, not an attacker).
        let ring = keyring(KEY_A, None);
        let prod = scope("acme/shop/prod");
        let sign = |payload: Vec<u8>| {
            let mac = ring.lease_mac(&payload);
            URL_SAFE_NO_PAD.encode([payload, mac.to_vec()].concat())
        };
        let good = sample().payload().unwrap();
        assert!(Lease::verify(&sign(good.clone()), &ring, &prod, NOW).is_ok());
        let mut other_format = good.clone();
        other_format[0] = 2;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut backwards = sample();
        backwards.issued_at = backwards.expires_at + 1;
        let mut bad_provider = sample();
        bad_provider.provider = "Open AI".into();
        let mut bad_var = sample();
        bad_var.versions[0].source = "lower".into();
        for payload in [
            other_format,
            trailing,
            good[..good.len() - 1].to_vec(),
            backwards.payload().unwrap(),
            bad_provider.payload().unwrap(),
            bad_var.payload().unwrap(),
        ] {
            assert_eq!(
                Lease::verify(&sign(payload), &ring, &prod, NOW),
                Err(TokenRefusal::Invalid)
            );
        }
    }

    #[test]
    fn another_scope_another_key_or_an_expired_lease_is_refused() {
        let ring = keyring(KEY_A, None);
        let prod = scope("acme/shop/prod");
        let lease = sample();
        let token = lease.token(&ring).unwrap();
        for other in ["acme/shop/dev", "acme/shop/prod2", "other/shop/prod"] {
            assert_eq!(
                Lease::verify(&token, &ring, &scope(other), NOW),
                Err(TokenRefusal::Invalid),
                "{other}"
            );
        }
        // Another master key: refused; the same key as the previous one of a
        // rotation: accepted, and new leases are made under the new key.
        assert_eq!(
            Lease::verify(&token, &keyring(KEY_B, None), &prod, NOW),
            Err(TokenRefusal::Invalid)
        );
        let rotated = keyring(KEY_B, Some(KEY_A));
        assert_eq!(Lease::verify(&token, &rotated, &prod, NOW), Ok(lease.clone()));
        let new = lease.token(&rotated).unwrap();
        assert_eq!(Lease::verify(&new, &ring, &prod, NOW), Err(TokenRefusal::Invalid));
        assert!(Lease::verify(&new, &keyring(KEY_B, None), &prod, NOW).is_ok());
        // Live until the millisecond it expires.
        let end = lease.expires_at;
        assert!(Lease::verify(&token, &ring, &prod, end - 1).is_ok());
        for now in [end, end + 1, UnixMillis::MAX] {
            assert_eq!(
                Lease::verify(&token, &ring, &prod, now),
                Err(TokenRefusal::Expired { at: end })
            );
        }
        // An expired token of another scope is no lease at all there.
        assert_eq!(
            Lease::verify(&token, &ring, &scope("acme/shop/dev"), end),
            Err(TokenRefusal::Invalid)
        );
    }

    #[test]
    fn the_longest_names_and_the_most_variables_fit() {
        let ring = keyring(KEY_A, None);
        let id = "a".repeat(MAX_SCOPE_ID_LEN);
        let long_scope = scope(&format!("{id}/{id}/{id}"));
        let name = format!("A{}", "B".repeat(crate::policy::names::MAX_ENV_VAR_LEN - 1));
        let slug = "p".repeat(crate::policy::names::MAX_SLUG_LEN);
        let versions = (0..MAX_LEASED_VARS).map(|_| var(&name, &name, u64::MAX)).collect();
        let lease = Lease::new(long_scope.clone(), slug, name.clone(), versions, NOW, TTL);
        let token = lease.token(&ring).unwrap();
        assert!(token.len() <= MAX_TOKEN_LEN, "{} > {MAX_TOKEN_LEN}", token.len());
        assert_eq!(Lease::verify(&token, &ring, &long_scope, NOW), Ok(lease.clone()));
        let mut too_many = lease;
        too_many.versions.push(var("X", "X", 1));
        assert_eq!(too_many.token(&ring), Err(LeaseTooLarge { vars: MAX_LEASED_VARS + 1 }));
        assert!(LeaseTooLarge { vars: 65 }.to_string().contains("at most 64"));
    }

    #[test]
    fn a_huge_ttl_saturates() {
        let lease =
            Lease::new(scope("a/b/c"), "p".into(), "K".into(), Vec::new(), NOW, Duration::MAX);
        assert_eq!(lease.expires_at, UnixMillis::MAX);
    }

    #[test]
    fn a_lease_ttl_is_at_least_a_second_and_at_most_the_grace_period() {
        let grace = Duration::from_secs(900);
        assert_eq!(check_lease_ttl(Duration::from_secs(900), grace), Ok(()));
        assert_eq!(check_lease_ttl(Duration::from_secs(1), grace), Ok(()));
        assert_eq!(
            check_lease_ttl(Duration::from_millis(999), grace),
            Err(LeaseTtlError::TooShort)
        );
        assert_eq!(check_lease_ttl(Duration::ZERO, grace), Err(LeaseTtlError::TooShort));
        let long = Duration::from_secs(901);
        let error = check_lease_ttl(long, grace).unwrap_err();
        assert_eq!(error, LeaseTtlError::LongerThanGrace { ttl: long, grace });
        let message = error.to_string();
        assert!(message.contains("901s") && message.contains("at most 900s"), "{message}");
    }

    #[test]
    fn ids_show_as_hex() {
        let id = LeaseId([0xab; LEASE_ID_LEN]);
        assert_eq!(id.to_string(), "ab".repeat(LEASE_ID_LEN));
        assert_eq!(format!("{id:?}"), format!("LeaseId({})", "ab".repeat(LEASE_ID_LEN)));
        assert_ne!(LeaseId::random(), LeaseId::random());
    }
}

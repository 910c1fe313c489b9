//! The store's rules that are not layout: every backend calls these, so a
//! second backend cannot drift from the first.

use secrecy::{ExposeSecret, SecretString};

use super::{
    KeyLink, KeyStatus, MAX_RETIRED_VERSIONS, MAX_VALUE_LEN, ProviderKey, ProviderVars, StoreError,
    UnixMillis, VarSource,
};
use crate::crypto::{CryptoError, KeyId, Keyring};
use crate::scope::Scope;

/// Checks a variable to be written: its name ([`super::check_name`]) and the
/// value's size ([`MAX_VALUE_LEN`]).
pub fn check_value(name: &str, value: &SecretString) -> Result<(), StoreError> {
    super::check_name(name)?;
    let len = value.expose_secret().len();
    if len > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLarge { name: name.to_owned(), len });
    }
    Ok(())
}

/// Refuses a manual ([`VarSource::is_manual`]) set or unset of a variable
/// whose current value the self-host import wrote. `current_writer` is who
/// wrote the current value, `None` if the variable is not set (an unset
/// self-host variable is free to take).
pub fn check_writer(
    scope: &Scope,
    name: &str,
    writer: VarSource,
    current_writer: Option<VarSource>,
) -> Result<(), StoreError> {
    if writer.is_manual() && current_writer == Some(VarSource::SelfHost) {
        return Err(StoreError::ManagedBySelfHost {
            scope: scope.to_string(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The retired versions of one variable to delete now, from `(version,
/// expires_at)` pairs: those whose grace period is over at `now`, and, of
/// the rest, the oldest beyond [`MAX_RETIRED_VERSIONS`] (the newest stay).
pub fn retired_to_drop(retired: &[(u64, UnixMillis)], now: UnixMillis) -> Vec<u64> {
    let mut newest_first = retired.to_vec();
    newest_first.sort_by_key(|&(version, _)| std::cmp::Reverse(version));
    let mut kept = 0;
    let mut dropped = Vec::new();
    for (version, expires_at) in newest_first {
        if expires_at <= now || kept == MAX_RETIRED_VERSIONS {
            dropped.push(version);
        } else {
            kept += 1;
        }
    }
    dropped
}

/// Whether a re-link keeps the provider-key row of `provider` for `env_var`:
/// its variable is set and is still a key variable of `provider`, or the
/// mapping does not know `provider` at all (a plugin that failed to load
/// keeps its keys' labels and history, dormant).
pub fn keeps_key_row(mapping: &ProviderVars, provider: &str, env_var: &str, set: bool) -> bool {
    let still_a_key = !mapping.has_provider(provider)
        || mapping.links(env_var).iter().any(|link| link.provider == provider);
    still_a_key && set
}

/// The row a newly linked provider key starts with: active, labelled with
/// its variable's name, never used or checked.
pub fn new_key_row(link: &KeyLink, env_var: &str, now: UnixMillis) -> ProviderKey {
    ProviderKey {
        provider: link.provider.clone(),
        env_var: env_var.to_owned(),
        variant: link.variant,
        label: env_var.to_owned(),
        created_at: now,
        last_used_at: None,
        status: KeyStatus::Active,
        health: None,
        chosen_default_at: None,
    }
}

/// What opening a store does about its key-check record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheckStep {
    /// The record opens under a held key: nothing to do.
    Keep,
    /// (Re)write the record sealed under this key.
    Seal(KeyId),
    /// A store written before key checks: find a held key some stored value
    /// opens under and seal the record under it; none is a mismatch.
    FromValues,
}

/// For a store without a key-check record: the id of a held key some stored
/// value opens under, `None` if no value is under a held key. A value under
/// a held key that fails authentication (altered) is skipped; if every such
/// value fails, the first failure is the error. `values` are the stored
/// values as `(scope, name, version, sealed)`, in any order.
pub fn key_of_a_value<Sealed: AsRef<[u8]>>(
    keyring: &Keyring,
    values: impl IntoIterator<Item = Result<(Scope, String, u64, Sealed), StoreError>>,
) -> Result<Option<KeyId>, StoreError> {
    let mut first_failure = None;
    for value in values {
        let (scope, name, version, sealed) = value?;
        let sealed = sealed.as_ref();
        let Ok(id) = crate::crypto::sealed_key_id(sealed) else { continue };
        if !keyring.holds(id) {
            continue;
        }
        match keyring.open(&crate::crypto::Binding { scope: &scope, name: &name, version }, sealed)
        {
            Ok(_) => return Ok(Some(id)),
            Err(source) => {
                first_failure.get_or_insert(StoreError::Crypto {
                    scope: scope.to_string(),
                    name,
                    version,
                    source,
                });
            }
        }
    }
    first_failure.map_or(Ok(None), Err)
}

/// The key-check rule at open, for a store holding values or not, with or
/// without a key-check `record`:
///
/// - without values, any key is taken: the record is (re)sealed under the
///   current key unless it already is;
/// - with a record, it must open under the current or the previous key, else
///   `mismatch` is the error;
/// - with values but no record, the values decide ([`KeyCheckStep::FromValues`]).
pub fn key_check_step(
    keyring: &Keyring,
    record: Option<&[u8]>,
    has_values: bool,
    mismatch: impl FnOnce() -> StoreError,
) -> Result<KeyCheckStep, StoreError> {
    let current = keyring.current_id();
    match (record, has_values) {
        (Some(record), false) if keyring.open_key_check(record) == Ok(current) => {
            Ok(KeyCheckStep::Keep)
        }
        (_, false) => Ok(KeyCheckStep::Seal(current)),
        (Some(record), true) => match keyring.open_key_check(record) {
            Ok(_) => Ok(KeyCheckStep::Keep),
            Err(CryptoError::UnknownKey { .. }) => Err(mismatch()),
            Err(error) => Err(StoreError::Corrupt(format!("the key-check record: {error}"))),
        },
        (None, true) => Ok(KeyCheckStep::FromValues),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{ENCRYPTION_KEY_PREVIOUS_VAR, ENCRYPTION_KEY_VAR, EncryptionKey};

    fn scope() -> Scope {
        "acme/shop/dev".parse().unwrap()
    }

    #[test]
    fn values_are_checked_by_name_and_size() {
        let ok = SecretString::from("v".repeat(MAX_VALUE_LEN));
        assert!(check_value("OPENAI_API_KEY", &ok).is_ok());
        let big = SecretString::from("v".repeat(MAX_VALUE_LEN + 1));
        let error = check_value("OPENAI_API_KEY", &big).unwrap_err();
        assert_eq!(error.code(), "value_too_large");
        assert_eq!(check_value("lower", &ok).unwrap_err().code(), "invalid_name");
        assert_eq!(check_value(ENCRYPTION_KEY_VAR, &ok).unwrap_err().code(), "reserved_name");
    }

    #[test]
    fn manual_writes_to_self_host_values_are_refused() {
        let refused = check_writer(&scope(), "X", VarSource::Api, Some(VarSource::SelfHost));
        assert_eq!(refused.unwrap_err().code(), "managed_by_self_host");
        assert!(check_writer(&scope(), "X", VarSource::Cli, Some(VarSource::SelfHost)).is_err());
        assert!(check_writer(&scope(), "X", VarSource::SelfHost, Some(VarSource::Api)).is_ok());
        assert!(
            check_writer(&scope(), "X", VarSource::SelfHost, Some(VarSource::SelfHost)).is_ok()
        );
        assert!(check_writer(&scope(), "X", VarSource::Api, Some(VarSource::Cli)).is_ok());
        assert!(check_writer(&scope(), "X", VarSource::Api, None).is_ok(), "unset: free");
    }

    #[test]
    fn retired_versions_drop_when_expired_or_beyond_the_cap() {
        assert_eq!(retired_to_drop(&[(1, 100), (2, 200), (3, 300)], 200), [2, 1]);
        assert!(retired_to_drop(&[(1, 100)], 99).is_empty());
        let many: Vec<(u64, UnixMillis)> =
            (1..=MAX_RETIRED_VERSIONS as u64 + 3).map(|version| (version, 1_000)).collect();
        let mut dropped = retired_to_drop(&many, 0);
        dropped.sort();
        assert_eq!(dropped, [1, 2, 3], "the oldest beyond the cap");
    }

    #[test]
    fn key_rows_stay_while_their_variable_is_a_set_key() {
        let mapping = ProviderVars::new().with("OPENAI_API_KEY", "openai");
        assert!(keeps_key_row(&mapping, "openai", "OPENAI_API_KEY_2", true));
        assert!(!keeps_key_row(&mapping, "openai", "OPENAI_API_KEY_2", false), "unset");
        assert!(!keeps_key_row(&mapping, "openai", "OTHER_KEY", true), "no longer its key");
        assert!(keeps_key_row(&mapping, "gone", "GONE_KEY", true), "unknown provider: dormant");
        assert!(!keeps_key_row(&mapping, "gone", "GONE_KEY", false));
    }

    #[test]
    fn key_check_steps() {
        let key = |var, text: &str| EncryptionKey::parse(var, text).unwrap();
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        let ring_a = Keyring::new(key(ENCRYPTION_KEY_VAR, a), None);
        let ring_b = Keyring::new(key(ENCRYPTION_KEY_VAR, b), None);
        let ring_b_a =
            Keyring::new(key(ENCRYPTION_KEY_VAR, b), Some(key(ENCRYPTION_KEY_PREVIOUS_VAR, a)));
        let record_a = ring_a.seal_key_check(ring_a.current_id()).unwrap();
        let mismatch = || StoreError::Corrupt("mismatch".into());
        let step = |ring: &Keyring, record: Option<&[u8]>, values| {
            key_check_step(ring, record, values, mismatch).map_err(|error| error.to_string())
        };
        assert_eq!(step(&ring_a, None, false), Ok(KeyCheckStep::Seal(ring_a.current_id())));
        assert_eq!(step(&ring_a, Some(&record_a), false), Ok(KeyCheckStep::Keep));
        assert_eq!(
            step(&ring_b, Some(&record_a), false),
            Ok(KeyCheckStep::Seal(ring_b.current_id()))
        );
        assert_eq!(step(&ring_b_a, Some(&record_a), true), Ok(KeyCheckStep::Keep), "rotating");
        assert_eq!(
            step(&ring_b, Some(&record_a), true).unwrap_err(),
            "the store is inconsistent: mismatch"
        );
        assert_eq!(step(&ring_b, None, true), Ok(KeyCheckStep::FromValues));
        let mut altered = record_a.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(step(&ring_a, Some(&altered), true).unwrap_err().contains("key-check record"));
    }
}

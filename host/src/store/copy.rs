//! Copying a whole store to another backend (`platos-host store copy`),
//! values still sealed.
//!
//! A backend exports everything it holds as a [`StoreDump`]
//! ([`super::SecretStore::export_sealed`]) and loads one into an empty store
//! ([`super::SecretStore::import_sealed`]); [`copy_store`] is the one
//! backend-neutral copy on top of them. A value is never opened: its sealed
//! record moves as it is, with its version and (inside the record) its key
//! id, and the key-check record moves with it, so the destination opens
//! under exactly the keys the source opens under.
//!
//! A dump is held in memory whole: during a copy, the source's and the
//! destination's (read back to verify), and a third copy handed to a
//! blocking backend's import. That is meant for stores of a reasonable
//! size: thousands of variables of at most [`super::MAX_VALUE_LEN`] bytes.
//! API tokens and the audit trail are no part of a dump: `platos-host store
//! copy` copies them beside it ([`super::TokenRecords::import`],
//! [`copy_audit`]).

use std::fmt;

use super::audit::MAX_AUDIT_PAGE;
use super::{
    AuditQuery, AuditTrail, Budget, LEASE_ID_LEN, ProviderKey, RESERVATION_ID_LEN, SecretStore,
    StoreError, UnixMillis, VarSource,
};
use crate::scope::Scope;

/// One stored version of a variable, sealed. `Debug` shows the record's
/// length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The value's version.
    pub version: u64,
    /// The sealed record ([`crate::crypto::Keyring::seal`]), as stored.
    pub sealed: Vec<u8>,
    /// `None` for the current version; for a replaced one, the end of its
    /// grace period.
    pub retired_until: Option<UnixMillis>,
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedValue")
            .field("version", &self.version)
            .field("sealed_len", &self.sealed.len())
            .field("retired_until", &self.retired_until)
            .finish()
    }
}

/// A variable's metadata and every stored version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedVar {
    /// Its scope.
    pub scope: Scope,
    /// Its name.
    pub name: String,
    /// The current version; `None` once unset (the variable stays, so
    /// versions are never reused).
    pub current: Option<u64>,
    /// The highest version ever written.
    pub last_version: u64,
    /// When it was last set or unset.
    pub updated_at: UnixMillis,
    /// Who last set or unset it.
    pub source: VarSource,
    /// The stored versions: the current one and those in their grace
    /// period, by version.
    pub values: Vec<SealedValue>,
}

/// A budget, keyed by its target's [`super::BudgetTarget::storage_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    /// The target's storage key.
    pub target: String,
    /// The cap.
    pub budget: Budget,
}

/// A spend counter: what `target` spent in `window` ([`super::Windows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    /// The target's storage key.
    pub target: String,
    /// The window's name (`d2026-12-03`, `m2026-12` or the total).
    pub window: String,
    /// Micro-USD spent.
    pub micro_usd: u64,
}

/// A reservation ([`super::SecretStore::reserve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    /// Its random id.
    pub id: [u8; RESERVATION_ID_LEN],
    /// The storage keys of the targets it counts against.
    pub targets: Vec<String>,
    /// Its amount, in micro-USD.
    pub amount: u64,
    /// When it stops counting.
    pub expires_at: UnixMillis,
}

/// Everything a store holds, values sealed. Tokens are not in it (they
/// live in the data directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreDump {
    /// The key-check record, as stored (`None` in a store without one).
    pub key_check: Option<Vec<u8>>,
    /// Every variable ever written, set or unset, with its stored versions.
    pub vars: Vec<SealedVar>,
    /// Every provider-key row.
    pub provider_keys: Vec<(Scope, ProviderKey)>,
    /// Every recorded lease release: `(lease id, expires_at)`.
    pub lease_releases: Vec<([u8; LEASE_ID_LEN], UnixMillis)>,
    /// Every budget.
    pub budgets: Vec<BudgetRow>,
    /// Every spend counter.
    pub spend: Vec<SpendRow>,
    /// Every recorded reservation.
    pub reservations: Vec<ReservationRow>,
}

impl StoreDump {
    /// How many records of each kind it holds.
    pub fn counts(&self) -> DumpCounts {
        DumpCounts {
            variables: self.vars.len() as u64,
            versions: self.vars.iter().map(|var| var.values.len() as u64).sum(),
            provider_keys: self.provider_keys.len() as u64,
            lease_releases: self.lease_releases.len() as u64,
            budgets: self.budgets.len() as u64,
            spend_counters: self.spend.len() as u64,
            reservations: self.reservations.len() as u64,
        }
    }

    /// Puts every list in one order (whatever the backend's), so that two
    /// dumps of the same contents are equal.
    pub fn normalize(&mut self) {
        self.vars.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
        for var in &mut self.vars {
            var.values.sort_by_key(|value| value.version);
        }
        self.provider_keys.sort_by(|(a_scope, a), (b_scope, b)| {
            (a_scope, &a.provider, &a.env_var).cmp(&(b_scope, &b.provider, &b.env_var))
        });
        self.lease_releases.sort();
        self.budgets.sort_by(|a, b| a.target.cmp(&b.target));
        self.spend.sort_by(|a, b| (&a.target, &a.window).cmp(&(&b.target, &b.window)));
        self.reservations.sort_by_key(|reservation| reservation.id);
    }
}

/// How many records of each kind a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpCounts {
    /// Variables ever written (set or unset).
    pub variables: u64,
    /// Their stored versions (current and in their grace period).
    pub versions: u64,
    /// Provider-key rows.
    pub provider_keys: u64,
    /// Lease releases.
    pub lease_releases: u64,
    /// Budgets.
    pub budgets: u64,
    /// Spend counters.
    pub spend_counters: u64,
    /// Reservations.
    pub reservations: u64,
}

impl DumpCounts {
    /// Whether there is no record at all.
    pub fn is_empty(&self) -> bool {
        *self == DumpCounts::default()
    }
}

/// `3 variables (5 versions), 2 provider keys, 1 lease releases, …`
impl fmt::Display for DumpCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} variables ({} versions), {} provider keys, {} lease releases, {} budgets, {} spend counters, {} reservations",
            self.variables,
            self.versions,
            self.provider_keys,
            self.lease_releases,
            self.budgets,
            self.spend_counters,
            self.reservations
        )
    }
}

/// Why a copy failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source and the destination are one store.
    #[error(
        "same_store: --from and --to are both {0}; expected two different stores (sled, the data directory's, and a PostgreSQL database, or two databases)"
    )]
    SameStore(String),
    /// The destination already holds records.
    #[error(
        "store_not_empty: the destination {store} already holds {found}; nothing was copied. Copy into a fresh store: an empty PostgreSQL database (`CREATE DATABASE …`) or, for sled, a new --data-dir"
    )]
    NotEmpty {
        /// The destination (never a password).
        store: String,
        /// What it holds.
        found: DumpCounts,
    },
    /// What the destination holds after the import is not what the source
    /// held.
    #[error(
        "copy_mismatch: the source held {expected} but the destination {store} holds {found}{contents}; do not use it: drop it and copy again into a fresh store",
        contents = if expected == found { " (the same counts, but other records)" } else { "" }
    )]
    Mismatch {
        /// The destination (never a password).
        store: String,
        /// What the source held.
        expected: DumpCounts,
        /// What the destination holds.
        found: DumpCounts,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CopyError {
    /// A stable code for programs, tests and logs.
    pub fn code(&self) -> &'static str {
        match self {
            CopyError::SameStore(_) => "same_store",
            CopyError::NotEmpty { .. } => "store_not_empty",
            CopyError::Mismatch { .. } => "copy_mismatch",
            CopyError::Store(error) => error.code(),
        }
    }
}

/// Copies everything `from` holds into `to` (named `to_name` in errors),
/// sealed records as they are, then reads `to` back and checks it holds
/// exactly what `from` held. `to` must be empty ([`CopyError::NotEmpty`]):
/// nothing is written otherwise. Both stores were opened with the same
/// keyring, so `from`'s key check has passed. Returns the counts copied.
pub async fn copy_store(
    from: &dyn SecretStore,
    to: &dyn SecretStore,
    to_name: &str,
) -> Result<DumpCounts, CopyError> {
    let found = to.export_sealed().await?.counts();
    if !found.is_empty() {
        return Err(CopyError::NotEmpty { store: to_name.to_owned(), found });
    }
    let mut dump = from.export_sealed().await?;
    dump.normalize();
    to.import_sealed(&dump).await?;
    to.flush().await?;
    let mut copied = to.export_sealed().await?;
    copied.normalize();
    let (expected, found) = (dump.counts(), copied.counts());
    if copied != dump {
        return Err(CopyError::Mismatch { store: to_name.to_owned(), expected, found });
    }
    Ok(found)
}

/// Copies every record of the audit trail `from` into `to`, a page at a
/// time, each page durable before the next is read (a record `to` holds
/// already is kept once); how many records `from` held.
pub async fn copy_audit(from: &dyn AuditTrail, to: &dyn AuditTrail) -> Result<u64, StoreError> {
    let mut query = AuditQuery { limit: MAX_AUDIT_PAGE, ..AuditQuery::default() };
    let mut copied = 0;
    loop {
        let page = from.query(&query).await?;
        let Some(last) = page.last() else { return Ok(copied) };
        query.after = Some((last.at, last.id.clone()));
        to.append(&page, true).await?;
        copied += page.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
    use crate::provider::MicroUsd;
    use crate::store::budgets::Period;
    use crate::store::{
        Blocking, BudgetTarget, KeyStatus, KeyUpdate, ProviderVars, Reservation, SledStore,
        StoreOptions,
    };

    const CANARY: &str = "sk-copy-unit-canary-7f3e";

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const NEW_KEY: &str = "fedcba9876543210fedcba9876543210";

    fn sled(dir: &std::path::Path) -> Arc<dyn SecretStore> {
        sled_under(dir, Keyring::new(EncryptionKey::parse(ENCRYPTION_KEY_VAR, KEY).unwrap(), None))
    }

    fn sled_under(dir: &std::path::Path, keyring: Keyring) -> Arc<dyn SecretStore> {
        let options = StoreOptions {
            provider_vars: ProviderVars::new().with("OPENAI_API_KEY", "openai"),
            ..StoreOptions::default()
        };
        Arc::new(Blocking::new(SledStore::open(dir, keyring, options).unwrap()))
    }

    #[tokio::test]
    async fn a_copy_holds_every_kind_of_record_and_is_verified() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (sled(a.path()), sled(b.path()));
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let value = SecretString::from(CANARY.to_owned());
        from.set_var(&scope, "OPENAI_API_KEY", &value, VarSource::Api).await.unwrap();
        from.set_var(&scope, "OPENAI_API_KEY", &value, VarSource::Cli).await.unwrap();
        from.set_var(&scope, "GONE", &value, VarSource::Api).await.unwrap();
        from.unset_var(&scope, "GONE", VarSource::Api).await.unwrap();
        from.update_provider_key(
            &scope,
            "openai",
            "OPENAI_API_KEY",
            KeyUpdate::Label("main".to_owned()),
        )
        .await
        .unwrap();
        from.release_lease(&[7; LEASE_ID_LEN], u64::MAX / 2).await.unwrap();
        let key = BudgetTarget::key(scope.clone(), "openai", "OPENAI_API_KEY");
        let budget = Budget { limit: MicroUsd(5_000_000), period: Period::Month };
        from.set_budget(&key, Some(budget)).await.unwrap();
        from.record_spend(&key, MicroUsd(1_234), crate::store::now_millis()).await.unwrap();
        let reservation = Reservation {
            id: [9; RESERVATION_ID_LEN],
            key: key.clone(),
            amount: MicroUsd(10),
            expires_at: u64::MAX / 2,
        };
        from.reserve(&reservation, crate::store::now_millis()).await.unwrap().unwrap();

        let counts = copy_store(from.as_ref(), to.as_ref(), "the test store").await.unwrap();
        assert_eq!(
            counts,
            DumpCounts {
                variables: 2,
                versions: 3,
                provider_keys: 1,
                lease_releases: 1,
                budgets: 1,
                spend_counters: 6,
                reservations: 1,
            }
        );
        assert_eq!(to.get_var(&scope, "OPENAI_API_KEY").await.unwrap().unwrap().version, 2);
        let old = to.get_var_version(&scope, "OPENAI_API_KEY", 1).await.unwrap().unwrap();
        assert_eq!(old.value.expose_secret(), CANARY);
        assert!(to.get_var(&scope, "GONE").await.unwrap().is_none());
        assert!(to.get_var_version(&scope, "GONE", 1).await.unwrap().is_some());
        let rows = to.list_provider_keys(&scope).await.unwrap();
        assert_eq!((rows[0].label.as_str(), rows[0].status), ("main", KeyStatus::Active));
        assert!(to.lease_released(&[7; LEASE_ID_LEN], u64::MAX / 2).await.unwrap());
        let status = to.budget_status(&key, crate::store::now_millis()).await.unwrap();
        assert_eq!(status, from.budget_status(&key, crate::store::now_millis()).await.unwrap());
        // The dump's Debug shows no sealed bytes, nor the value.
        let debug = format!("{:?}", from.export_sealed().await.unwrap());
        assert!(debug.contains("sealed_len") && !debug.contains(CANARY), "{debug}");
    }

    #[tokio::test]
    async fn a_destination_that_holds_anything_is_refused_untouched() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (from, to) = (sled(a.path()), sled(b.path()));
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let value = SecretString::from(CANARY.to_owned());
        from.set_var(&scope, "A", &value, VarSource::Api).await.unwrap();
        to.release_lease(&[1; LEASE_ID_LEN], u64::MAX / 2).await.unwrap();
        let before = to.export_sealed().await.unwrap();
        let error = copy_store(from.as_ref(), to.as_ref(), "the test store").await.unwrap_err();
        assert_eq!(error.code(), "store_not_empty");
        let message = error.to_string();
        assert!(message.contains("the test store already holds 0 variables"), "{message}");
        assert!(message.contains("1 lease releases") && message.contains("fresh"), "{message}");
        assert_eq!(to.export_sealed().await.unwrap(), before);
    }

    #[tokio::test]
    async fn values_under_the_previous_key_move_as_they_are_during_a_rotation() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let value = SecretString::from(CANARY.to_owned());
        sled(a.path()).set_var(&scope, "A", &value, VarSource::Api).await.unwrap();
        let rotating = || {
            let key = |var, text| EncryptionKey::parse(var, text).unwrap();
            Keyring::new(
                key(ENCRYPTION_KEY_VAR, NEW_KEY),
                Some(key(crate::crypto::ENCRYPTION_KEY_PREVIOUS_VAR, KEY)),
            )
        };
        let (from, to) = (sled_under(a.path(), rotating()), sled_under(b.path(), rotating()));
        copy_store(from.as_ref(), to.as_ref(), "the test store").await.unwrap();
        let old_id = rotating().previous_id().unwrap();
        assert_eq!(to.key_usage().await.unwrap().into_iter().collect::<Vec<_>>(), [(old_id, 1)]);
        assert_eq!(to.get_var(&scope, "A").await.unwrap().unwrap().value.expose_secret(), CANARY);
        // The destination's key check is the source's: under the old key
        // until a rewrap there, so the old key alone still opens it.
        drop(to);
        drop(sled(b.path()));
    }

    #[test]
    fn counts_read_as_a_summary_and_errors_name_what_differs() {
        let counts = DumpCounts { variables: 2, versions: 3, ..DumpCounts::default() };
        assert!(!counts.is_empty() && DumpCounts::default().is_empty());
        assert!(counts.to_string().starts_with("2 variables (3 versions), 0 provider keys"));
        let error =
            CopyError::Mismatch { store: "sled".to_owned(), expected: counts, found: counts };
        assert_eq!(error.code(), "copy_mismatch");
        assert!(error.to_string().contains("the same counts, but other records"), "{error}");
    }
}

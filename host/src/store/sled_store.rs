//! [`BlockingSecretStore`] on sled 0.34; callers use it as a [`super::SecretStore`] through [`super::Blocking`].
//!
//! Trees (keys use `\0` as separator: no scope id or name contains it):
//!
//! - `meta`: `format` → the store format (u32, big-endian); `key-check` →
//!   a key-check record ([`Keyring::seal_key_check`]) under the store's key.
//! - `vars`: `{scope}\0{name}` → [`VarRecord`] (JSON): the current version
//!   (the version pointer), the last version ever written, the source, and
//!   the replaced versions still in their grace period.
//! - `values`: `{scope}\0{name}\0{version: u64 BE}` → the sealed value.
//! - `keys`: `{scope}\0{provider}\0{env_var}` → [`ProviderKey`] (JSON).
//! - `leases-released`: `{expires_at: u64 BE}{lease id (16)}` → nothing: a
//!   lease released before its end, kept until that end (the key starts
//!   with it, so a purge reads only the records that are over).
//! - `budgets`: [`BudgetTarget::storage_key`] → [`BudgetRecord`] (JSON).
//! - `spend`: `{target}\0{window}` ([`Windows`], [`super::budgets::TOTAL_WINDOW`])
//!   → micro-USD spent (u64, big-endian).
//! - `reservations`: `{id (16)}` → [`ReservationRecord`] (JSON): the
//!   targets it counts against, its amount and its end.
//!
//! One logical change — value, metadata, version pointer and provider-key
//! rows — is one multi-tree transaction, and a write is acknowledged only
//! after `flush` returned. Transaction closures may run more than once: they
//! only read and write the trees and encrypt (no I/O, no logging).
//!
//! Budget checks and the writes they guard (reserve, settle, spend) take
//! one mutex of the store: one process owns a sled directory, so that
//! serializes every reserve against every write it reads.
//!
//! Health-probe claims are kept in memory ([`super::probe_claims::ProbeClaims`]):
//! one host uses a sled store, so they need no shared home, and a restart
//! costs at most one more probe per credential.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionResult, TransactionalTree,
};
use sled::{Transactional, Tree};
use subtle::ConstantTimeEq;

use super::budgets::Period;
use super::copy::{BudgetRow, ReservationRow, SealedValue, SealedVar, SpendRow};
use super::probe_claims::ProbeClaims;
use super::rules::{self, KeyCheckStep};
use super::{
    BlockingSecretStore, Budget, BudgetExceeded, BudgetStatus, BudgetTarget, ImportReport, KeyLink,
    KeyUpdate, LEASE_ID_LEN, ProbeClaim, ProbeSlot, ProbeTag, ProviderKey, ProviderVars,
    RESERVATION_ID_LEN, Reservation, RewrapFailure, RewrapProgress, RewrapReport, SpendWindows,
    StoreDump, StoreError, SyncReport, UnixMillis, VarInfo, VarSource, VarValue, Windows,
    carried_row, check_name, now_millis,
};
use crate::crypto::{Binding, KeyId, Keyring, sealed_key_id};
use crate::provider::MicroUsd;
use crate::scope::Scope;

/// The on-disk format this host writes.
pub const STORE_FORMAT: u32 = 1;
/// The store's directory under the data directory.
pub const STORE_DIR: &str = "store";
/// How long a replaced version stays readable by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);
/// The `meta` entry of the key-check record.
const KEY_CHECK: &str = "key-check";
/// A rewrap flushes and reports progress every this many records.
const REWRAP_BATCH: u64 = 256;

/// A source of the current time, replaceable in tests.
pub type Clock = Arc<dyn Fn() -> UnixMillis + Send + Sync>;

/// How a [`SledStore`] behaves.
#[derive(Clone)]
pub struct StoreOptions {
    /// How long a replaced or unset value stays readable by version.
    pub grace: Duration,
    /// Which variables are provider keys.
    pub provider_vars: ProviderVars,
    /// The current time.
    pub clock: Clock,
    /// The most connections a PostgreSQL store keeps to its database (a
    /// sled store has none).
    pub pool_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            grace: DEFAULT_GRACE,
            provider_vars: ProviderVars::new(),
            clock: Arc::new(now_millis),
            pool_size: super::postgres_store::DEFAULT_POOL_SIZE,
        }
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("grace", &self.grace)
            .field("provider_vars", &self.provider_vars)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// A variable's metadata row: the version pointer and the retired versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VarRecord {
    /// The current version; `None` once unset (the row stays, so versions
    /// are never reused).
    current: Option<u64>,
    /// The highest version ever written.
    last_version: u64,
    /// When the variable was last set or unset.
    updated_at: UnixMillis,
    /// Who last set or unset it.
    source: VarSource,
    /// Replaced versions still readable, and until when.
    retired: Vec<Retired>,
}

impl Default for VarRecord {
    fn default() -> Self {
        VarRecord {
            current: None,
            last_version: 0,
            updated_at: 0,
            source: VarSource::Api,
            retired: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Retired {
    version: u64,
    expires_at: UnixMillis,
}

/// A budget's row.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct BudgetRecord {
    /// The cap, in micro-USD.
    limit: u64,
    /// The window it caps.
    period: Period,
}

/// A reservation's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReservationRecord {
    /// The storage keys of the targets it counts against.
    targets: Vec<String>,
    /// Its amount, in micro-USD.
    amount: u64,
    /// When it stops counting.
    expires_at: UnixMillis,
}

/// `{target}\0{window}`: a spend counter's key.
fn spend_key(target: &BudgetTarget, window: &str) -> Vec<u8> {
    let mut key = target.storage_key().into_bytes();
    key.push(0);
    key.extend_from_slice(window.as_bytes());
    key
}

/// The spend counters `cost` on `target` at `now` adds to: day, month, total.
fn spend_keys(target: &BudgetTarget, now: UnixMillis) -> Vec<Vec<u8>> {
    let windows = Windows::of(now);
    [Period::Day, Period::Month, Period::Total]
        .into_iter()
        .flat_map(|period| target.counted_in().into_iter().map(move |counted| (counted, period)))
        .map(|(counted, period)| spend_key(&counted, windows.name(period)))
        .collect()
}

fn decode_amount(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("malformed spend counter".to_owned()))
}

/// The trees of one transaction.
struct Txn<'a> {
    vars: &'a TransactionalTree,
    values: &'a TransactionalTree,
    keys: &'a TransactionalTree,
}

type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

fn finish<T>(result: TransactionResult<T, StoreError>) -> Result<T, StoreError> {
    result.map_err(|error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => StoreError::backend(error),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store metadata always serializes")
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|error| StoreError::Corrupt(format!("unreadable {what} row: {error}")))
}

/// `{expires_at: u64 BE}{id}`: a lease release's key.
fn release_key(id: &[u8; LEASE_ID_LEN], expires_at: UnixMillis) -> [u8; 8 + LEASE_ID_LEN] {
    let mut key = [0; 8 + LEASE_ID_LEN];
    key[..8].copy_from_slice(&expires_at.to_be_bytes());
    key[8..].copy_from_slice(id);
    key
}

fn scope_prefix(scope: &Scope) -> Vec<u8> {
    let mut key = scope.to_string().into_bytes();
    key.push(0);
    key
}

fn var_key(scope: &Scope, name: &str) -> Vec<u8> {
    let mut key = scope_prefix(scope);
    key.extend_from_slice(name.as_bytes());
    key
}

fn value_key(scope: &Scope, name: &str, version: u64) -> Vec<u8> {
    let mut key = var_key(scope, name);
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn key_row_key(scope: &Scope, provider: &str, env_var: &str) -> Vec<u8> {
    let mut key = scope_prefix(scope);
    key.extend_from_slice(provider.as_bytes());
    key.push(0);
    key.extend_from_slice(env_var.as_bytes());
    key
}

/// `{a}\0{b}` → `(scope a, b)`.
fn split_scoped(key: &[u8]) -> Result<(Scope, &str), StoreError> {
    let corrupt = || StoreError::Corrupt("malformed row key".to_owned());
    let text = std::str::from_utf8(key).map_err(|_| corrupt())?;
    let (scope, rest) = text.split_once('\0').ok_or_else(corrupt)?;
    Ok((scope.parse().map_err(|_| corrupt())?, rest))
}

fn parse_value_key(key: &[u8]) -> Result<(Scope, String, u64), StoreError> {
    let corrupt = || StoreError::Corrupt("malformed value key".to_owned());
    if key.len() < 9 || key[key.len() - 9] != 0 {
        return Err(corrupt());
    }
    let (head, version) = key.split_at(key.len() - 8);
    let version = u64::from_be_bytes(version.try_into().map_err(|_| corrupt())?);
    let (scope, name) = split_scoped(&head[..head.len() - 1])?;
    Ok((scope, name.to_owned(), version))
}

fn parse_key_row_key(key: &[u8]) -> Result<(Scope, String, String), StoreError> {
    let (scope, rest) = split_scoped(key)?;
    let (provider, env_var) = rest
        .split_once('\0')
        .ok_or_else(|| StoreError::Corrupt("malformed provider-key key".to_owned()))?;
    Ok((scope, provider.to_owned(), env_var.to_owned()))
}

/// Makes sure `keyring` holds the key the store in `path` is written under,
/// so a wrong master key is refused at open instead of answering every read
/// with an error and sealing new writes under a key the old values do not
/// share:
///
/// - a store without values (a first start, or every value purged) takes
///   any key: its key-check record is (re)written under the current key;
/// - with a key-check record, it must open under the current or the
///   previous key (a rotation in progress);
/// - without one (a store written before key checks), a value under a held
///   key must open; the record is then written under that key. No value
///   under a held key is a mismatch.
///
/// `rewrap` re-seals the record under the current key.
fn check_master_key(
    path: &Path,
    db: &sled::Db,
    meta: &Tree,
    values: &Tree,
    keyring: &Keyring,
) -> Result<(), StoreError> {
    let mismatch = || StoreError::KeyMismatch {
        path: path.to_owned(),
        previous_set: keyring.previous_id().is_some(),
    };
    let record = meta.get(KEY_CHECK).map_err(StoreError::backend)?;
    let under =
        match rules::key_check_step(keyring, record.as_deref(), !values.is_empty(), mismatch)? {
            KeyCheckStep::Keep => return Ok(()),
            KeyCheckStep::Seal(under) => under,
            KeyCheckStep::FromValues => {
                let values = values.iter().map(|item| {
                    let (key, sealed) = item.map_err(StoreError::backend)?;
                    let (scope, name, version) = parse_value_key(&key)?;
                    Ok((scope, name, version, sealed))
                });
                rules::key_of_a_value(keyring, values)?.ok_or_else(mismatch)?
            }
        };
    let record = keyring.seal_key_check(under).map_err(|source| {
        StoreError::Corrupt(format!("cannot seal the key-check record: {source}"))
    })?;
    meta.insert(KEY_CHECK, record).map_err(StoreError::backend)?;
    db.flush().map_err(StoreError::backend)?;
    tracing::info!(key_id = %under, "key-check record written");
    Ok(())
}

/// The sled implementation of [`BlockingSecretStore`].
pub struct SledStore {
    db: sled::Db,
    meta: Tree,
    vars: Tree,
    values: Tree,
    keys: Tree,
    released: Tree,
    budgets: Tree,
    spend: Tree,
    reservations: Tree,
    /// Held by every budget check and the writes it reads.
    budget_lock: Mutex<()>,
    /// One host uses this store: its probe claims live in memory.
    probe_claims: ProbeClaims,
    keyring: Keyring,
    grace_ms: u64,
    provider_vars: RwLock<ProviderVars>,
    clock: Clock,
    import_lock: Mutex<()>,
    path: PathBuf,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("keyring", &self.keyring)
            .field("grace_ms", &self.grace_ms)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in the directory `path` (mode 0700, its
    /// files 0600), and refuses a keyring that holds not the store's key
    /// ([`StoreError::KeyMismatch`]; see "The key check" in `docs/store.md`).
    pub fn open(path: &Path, keyring: Keyring, options: StoreOptions) -> Result<Self, StoreError> {
        let db = super::sled_db::open(path, || {
            format!(
                "the store {} is in use by another process (is another `platos-host serve` running on this data directory?)",
                path.display()
            )
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(StoreError::backend);
        let meta = tree("meta")?;
        match meta.get("format").map_err(StoreError::backend)? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("malformed format marker".to_owned()))?;
                if found != STORE_FORMAT {
                    return Err(StoreError::Format { found, expected: STORE_FORMAT });
                }
            }
            None => {
                meta.insert("format", &STORE_FORMAT.to_be_bytes()).map_err(StoreError::backend)?;
                db.flush().map_err(StoreError::backend)?;
            }
        }
        let values = tree("values")?;
        check_master_key(path, &db, &meta, &values, &keyring)?;
        let store = SledStore {
            meta,
            vars: tree("vars")?,
            values,
            keys: tree("keys")?,
            released: tree("leases-released")?,
            budgets: tree("budgets")?,
            spend: tree("spend")?,
            reservations: tree("reservations")?,
            budget_lock: Mutex::new(()),
            probe_claims: ProbeClaims::default(),
            db,
            keyring,
            grace_ms: u64::try_from(options.grace.as_millis()).unwrap_or(u64::MAX),
            provider_vars: RwLock::new(options.provider_vars),
            clock: options.clock,
            import_lock: Mutex::new(()),
            path: path.to_owned(),
        };
        tracing::debug!(path = %path.display(), key_id = %store.keyring.current_id(), "store opened");
        Ok(store)
    }

    /// Opens the store at `<data_dir>/store`, creating the data directory
    /// 0700 or tightening it (with a warning) if it is open to others.
    pub fn open_in_data_dir(
        data_dir: &Path,
        keyring: Keyring,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        crate::private_fs::tighten_data_dir(data_dir);
        SledStore::open(&data_dir.join(STORE_DIR), keyring, options)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyring values are sealed with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn now(&self) -> UnixMillis {
        (self.clock)()
    }

    fn links(&self, name: &str) -> Vec<KeyLink> {
        self.provider_vars.read().unwrap_or_else(PoisonError::into_inner).links(name)
    }

    fn record(&self, scope: &Scope, name: &str) -> Result<Option<VarRecord>, StoreError> {
        match self.vars.get(var_key(scope, name)).map_err(StoreError::backend)? {
            Some(bytes) => decode("variable", &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn open_value(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
        sealed: &[u8],
    ) -> Result<VarValue, StoreError> {
        let binding = Binding { scope, name, version };
        let value = self.keyring.open_text(&binding, sealed).map_err(|source| {
            StoreError::Crypto { scope: scope.to_string(), name: name.to_owned(), version, source }
        })?;
        Ok(VarValue { version, value })
    }

    fn read_version(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Option<VarValue>, StoreError> {
        match self.values.get(value_key(scope, name, version)).map_err(StoreError::backend)? {
            Some(sealed) => self.open_value(scope, name, version, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// The providers that have a key row for `env_var` in `scope`, whatever
    /// the current mapping says.
    fn linked_providers(
        &self,
        scope: &Scope,
        env_var: &str,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut providers = BTreeSet::new();
        for item in self.keys.scan_prefix(scope_prefix(scope)) {
            let (key, _) = item.map_err(StoreError::backend)?;
            let (_, provider, var) = parse_key_row_key(&key)?;
            if var == env_var {
                providers.insert(provider);
            }
        }
        Ok(providers)
    }

    fn spent(&self, target: &BudgetTarget, window: &str) -> Result<MicroUsd, StoreError> {
        match self.spend.get(spend_key(target, window)).map_err(StoreError::backend)? {
            Some(bytes) => decode_amount(&bytes).map(MicroUsd),
            None => Ok(MicroUsd(0)),
        }
    }

    /// [`BlockingSecretStore::budget_status`], for a caller holding the
    /// budget lock.
    fn status_of(
        &self,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError> {
        let key = target.storage_key();
        let budget = match self.budgets.get(&key).map_err(StoreError::backend)? {
            Some(bytes) => {
                let record: BudgetRecord = decode("budget", &bytes)?;
                Some(Budget { limit: MicroUsd(record.limit), period: record.period })
            }
            None => None,
        };
        let windows = Windows::of(now);
        let spend = SpendWindows {
            day: self.spent(target, windows.name(Period::Day))?,
            month: self.spent(target, windows.name(Period::Month))?,
            total: self.spent(target, windows.name(Period::Total))?,
        };
        let mut reserved: u64 = 0;
        for item in self.reservations.iter() {
            let (_, bytes) = item.map_err(StoreError::backend)?;
            let record: ReservationRecord = decode("reservation", &bytes)?;
            if record.expires_at > now && record.targets.contains(&key) {
                reserved = reserved.saturating_add(record.amount);
            }
        }
        Ok(BudgetStatus::new(budget, spend, MicroUsd(reserved)))
    }

    /// Removes reservation `id` (when given) and adds `cost` to the spend
    /// of `key` at `now`, in one transaction; whether `id` was recorded.
    fn spend_and_remove(
        &self,
        id: Option<&[u8; RESERVATION_ID_LEN]>,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let counters = spend_keys(key, now);
        let serialized = self.budget_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let removed =
            finish((&self.reservations, &self.spend).transaction(|(reservations, spend)| {
                let removed = match id {
                    Some(id) => reservations.remove(&id[..])?.is_some(),
                    None => false,
                };
                for counter in &counters {
                    let old = match spend.get(counter)? {
                        Some(bytes) => match decode_amount(&bytes) {
                            Ok(amount) => amount,
                            Err(error) => return abort(error),
                        },
                        None => 0,
                    };
                    spend.insert(counter.as_slice(), &old.saturating_add(cost.0).to_be_bytes())?;
                }
                Ok(removed)
            }))?;
        // Durable before it returns, but flushed outside the lock: the
        // change is already visible to the next reserve, and concurrent
        // flushes share one write to disk.
        drop(serialized);
        self.flush()?;
        Ok(removed)
    }

    fn tx_record(&self, tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<VarRecord>> {
        match tree.get(key)? {
            Some(bytes) => match decode("variable", &bytes) {
                Ok(record) => Ok(Some(record)),
                Err(error) => abort(error),
            },
            None => Ok(None),
        }
    }

    /// Removes the retired versions of `record` that
    /// [`rules::retired_to_drop`] names.
    fn tx_drop_expired(
        &self,
        values: &TransactionalTree,
        scope: &Scope,
        name: &str,
        record: &mut VarRecord,
        now: UnixMillis,
    ) -> TxResult<usize> {
        let retired: Vec<(u64, UnixMillis)> =
            record.retired.iter().map(|retired| (retired.version, retired.expires_at)).collect();
        let dropped = rules::retired_to_drop(&retired, now);
        for version in &dropped {
            values.remove(value_key(scope, name, *version))?;
        }
        record.retired.retain(|retired| !dropped.contains(&retired.version));
        Ok(dropped.len())
    }

    /// Writes a new version of `name`: value, version pointer, retired list
    /// and provider-key rows.
    #[allow(clippy::too_many_arguments)]
    fn tx_set(
        &self,
        txn: &Txn<'_>,
        scope: &Scope,
        name: &str,
        plaintext: &[u8],
        source: VarSource,
        now: UnixMillis,
        links: &[KeyLink],
    ) -> TxResult<VarInfo> {
        let key = var_key(scope, name);
        let mut record = self.tx_record(txn.vars, &key)?.unwrap_or_default();
        if let Err(error) =
            rules::check_writer(scope, name, source, record.current.map(|_| record.source))
        {
            return abort(error);
        }
        let version = record.last_version + 1;
        let sealed = match self.keyring.seal(&Binding { scope, name, version }, plaintext) {
            Ok(sealed) => sealed,
            Err(source) => {
                return abort(StoreError::Crypto {
                    scope: scope.to_string(),
                    name: name.to_owned(),
                    version,
                    source,
                });
            }
        };
        txn.values.insert(value_key(scope, name, version), sealed)?;
        if let Some(previous) = record.current {
            record
                .retired
                .push(Retired { version: previous, expires_at: now.saturating_add(self.grace_ms) });
        }
        self.tx_drop_expired(txn.values, scope, name, &mut record, now)?;
        record.current = Some(version);
        record.last_version = version;
        record.updated_at = now;
        record.source = source;
        txn.vars.insert(key, encode(&record))?;
        for link in links {
            let row_key = key_row_key(scope, &link.provider, name);
            if txn.keys.get(&row_key)?.is_none() {
                txn.keys.insert(row_key, encode(&rules::new_key_row(link, name, now)))?;
            }
        }
        Ok(VarInfo { name: name.to_owned(), version, updated_at: now, source })
    }

    /// Unsets `name`: retires its value and unlinks the key rows of
    /// `providers`. `false` if it was not set.
    #[allow(clippy::too_many_arguments)]
    fn tx_unset(
        &self,
        txn: &Txn<'_>,
        scope: &Scope,
        name: &str,
        source: VarSource,
        now: UnixMillis,
        providers: &BTreeSet<String>,
    ) -> TxResult<bool> {
        let key = var_key(scope, name);
        let Some(mut record) = self.tx_record(txn.vars, &key)? else { return Ok(false) };
        let Some(current) = record.current else { return Ok(false) };
        if let Err(error) = rules::check_writer(scope, name, source, Some(record.source)) {
            return abort(error);
        }
        record
            .retired
            .push(Retired { version: current, expires_at: now.saturating_add(self.grace_ms) });
        self.tx_drop_expired(txn.values, scope, name, &mut record, now)?;
        record.current = None;
        record.updated_at = now;
        record.source = source;
        txn.vars.insert(key, encode(&record))?;
        for provider in providers {
            txn.keys.remove(key_row_key(scope, provider, name))?;
        }
        Ok(true)
    }

    /// The providers whose rows an unset of `name` removes: those linked now
    /// and those the current mapping names.
    fn unlink_targets(&self, scope: &Scope, name: &str) -> Result<BTreeSet<String>, StoreError> {
        let mut providers = self.linked_providers(scope, name)?;
        providers.extend(self.links(name).into_iter().map(|link| link.provider));
        Ok(providers)
    }

    /// Whether the current value of `name` (from `record`) equals `value`.
    fn tx_is_current(
        &self,
        txn: &Txn<'_>,
        scope: &Scope,
        name: &str,
        record: &VarRecord,
        value: &[u8],
    ) -> TxResult<bool> {
        let Some(version) = record.current else { return Ok(false) };
        let Some(sealed) = txn.values.get(value_key(scope, name, version))? else {
            return Ok(false);
        };
        let binding = Binding { scope, name, version };
        Ok(match self.keyring.open(&binding, &sealed) {
            Ok(current) => bool::from(current.as_slice().ct_eq(value)),
            Err(_) => false,
        })
    }
}

impl BlockingSecretStore for SledStore {
    fn set_var(
        &self,
        scope: &Scope,
        name: &str,
        value: &SecretString,
        source: VarSource,
    ) -> Result<VarInfo, StoreError> {
        rules::check_value(name, value)?;
        let plaintext = value.expose_secret().as_bytes();
        let links = self.links(name);
        let now = self.now();
        let info =
            finish((&self.vars, &self.values, &self.keys).transaction(|(vars, values, keys)| {
                self.tx_set(
                    &Txn { vars, values, keys },
                    scope,
                    name,
                    plaintext,
                    source,
                    now,
                    &links,
                )
            }))?;
        self.flush()?;
        tracing::info!(scope = %scope, name, version = info.version, %source, "variable set");
        Ok(info)
    }

    fn unset_var(&self, scope: &Scope, name: &str, source: VarSource) -> Result<bool, StoreError> {
        check_name(name)?;
        let providers = self.unlink_targets(scope, name)?;
        let now = self.now();
        let unset =
            finish((&self.vars, &self.values, &self.keys).transaction(|(vars, values, keys)| {
                self.tx_unset(&Txn { vars, values, keys }, scope, name, source, now, &providers)
            }))?;
        if unset {
            self.flush()?;
            tracing::info!(scope = %scope, name, %source, "variable unset");
        }
        Ok(unset)
    }

    fn list_vars(&self, scope: &Scope) -> Result<Vec<VarInfo>, StoreError> {
        let mut vars = Vec::new();
        for item in self.vars.scan_prefix(scope_prefix(scope)) {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let (_, name) = split_scoped(&key)?;
            let record: VarRecord = decode("variable", &bytes)?;
            if let Some(version) = record.current {
                vars.push(VarInfo {
                    name: name.to_owned(),
                    version,
                    updated_at: record.updated_at,
                    source: record.source,
                });
            }
        }
        Ok(vars)
    }

    fn get_var(&self, scope: &Scope, name: &str) -> Result<Option<VarValue>, StoreError> {
        // The value of the version read may be purged between the two reads
        // (grace 0 and a concurrent write): read the pointer again.
        for _ in 0..8 {
            let Some(record) = self.record(scope, name)? else { return Ok(None) };
            let Some(version) = record.current else { return Ok(None) };
            if let Some(value) = self.read_version(scope, name, version)? {
                tracing::trace!(scope = %scope, name, version, "variable read");
                return Ok(Some(value));
            }
        }
        Err(StoreError::Corrupt(format!(
            "{name} in scope {scope}: the current version has no value"
        )))
    }

    fn get_var_version(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Option<VarValue>, StoreError> {
        let Some(record) = self.record(scope, name)? else { return Ok(None) };
        let now = self.now();
        let readable = record.current == Some(version)
            || record
                .retired
                .iter()
                .any(|retired| retired.version == version && retired.expires_at > now);
        if !readable {
            return Ok(None);
        }
        self.read_version(scope, name, version)
    }

    fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.now();
        let mut purged = 0;
        for item in self.vars.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let record: VarRecord = decode("variable", &bytes)?;
            if !record.retired.iter().any(|retired| retired.expires_at <= now) {
                continue;
            }
            let (scope, name) = split_scoped(&key)?;
            purged += finish((&self.vars, &self.values).transaction(|(vars, values)| {
                let Some(mut record) = self.tx_record(vars, &key)? else { return Ok(0) };
                let dropped = self.tx_drop_expired(values, &scope, name, &mut record, now)?;
                if dropped > 0 {
                    vars.insert(&key, encode(&record))?;
                }
                Ok(dropped)
            }))?;
        }
        // Every release whose lease ended at or before `now`: keys up to
        // `{now}{ff…}`.
        let mut releases = 0;
        for item in self.released.range(..=release_key(&[0xff; LEASE_ID_LEN], now)) {
            let (key, _) = item.map_err(StoreError::backend)?;
            self.released.remove(key).map_err(StoreError::backend)?;
            releases += 1;
        }
        // Expired reservations count no more; a late settle still counts
        // its cost.
        let mut reservations = 0;
        for item in self.reservations.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let record: ReservationRecord = decode("reservation", &bytes)?;
            if record.expires_at <= now {
                self.reservations.remove(key).map_err(StoreError::backend)?;
                reservations += 1;
            }
        }
        if purged + releases + reservations > 0 {
            self.flush()?;
            tracing::info!(
                purged,
                releases,
                reservations,
                "expired value versions, lease releases and reservations purged"
            );
        }
        // Claims live in memory: nothing to flush for them.
        let claims = self.probe_claims.purge(now);
        Ok(purged + releases + reservations + claims)
    }

    fn release_lease(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .released
            .compare_and_swap(release_key(id, expires_at), None::<&[u8]>, Some(&[][..]))
            .map_err(StoreError::backend)?
            .is_ok();
        if recorded {
            self.flush()?;
        }
        Ok(recorded)
    }

    fn lease_released(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.released.contains_key(release_key(id, expires_at)).map_err(StoreError::backend)
    }

    fn claim_probe(
        &self,
        tag: &ProbeTag,
        slot: ProbeSlot,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<ProbeClaim, StoreError> {
        Ok(self.probe_claims.claim(tag, slot, now, until))
    }

    fn probe_done(&self, tag: &ProbeTag, slot: ProbeSlot) -> Result<(), StoreError> {
        self.probe_claims.done(tag, slot);
        Ok(())
    }

    fn set_budget(&self, target: &BudgetTarget, budget: Option<Budget>) -> Result<(), StoreError> {
        let key = target.storage_key();
        {
            let _serialized = self.budget_lock.lock().unwrap_or_else(PoisonError::into_inner);
            match budget {
                Some(budget) => {
                    let record = BudgetRecord { limit: budget.limit.0, period: budget.period };
                    self.budgets
                        .insert(key.as_bytes(), encode(&record))
                        .map_err(StoreError::backend)?;
                }
                None => {
                    self.budgets.remove(key).map_err(StoreError::backend)?;
                }
            }
        }
        self.flush()?;
        tracing::info!(budget_target = %target, ?budget, "budget set");
        Ok(())
    }

    fn budget_status(
        &self,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError> {
        // Under the lock: a settle is never seen half done.
        let _serialized = self.budget_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.status_of(target, now)
    }

    fn reserve(
        &self,
        reservation: &Reservation,
        now: UnixMillis,
    ) -> Result<Result<(), BudgetExceeded>, StoreError> {
        let targets = reservation.key.counted_in();
        let serialized = self.budget_lock.lock().unwrap_or_else(PoisonError::into_inner);
        for target in &targets {
            if let Some(exceeded) = self.status_of(target, now)?.refusal(target, reservation.amount)
            {
                return Ok(Err(exceeded));
            }
        }
        let record = ReservationRecord {
            targets: targets.iter().map(BudgetTarget::storage_key).collect(),
            amount: reservation.amount.0,
            expires_at: reservation.expires_at,
        };
        self.reservations
            .insert(&reservation.id[..], encode(&record))
            .map_err(StoreError::backend)?;
        // As in `spend_and_remove`: flushed outside the lock.
        drop(serialized);
        self.flush()?;
        Ok(Ok(()))
    }

    fn settle(
        &self,
        id: &[u8; RESERVATION_ID_LEN],
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.spend_and_remove(Some(id), key, cost, now)
    }

    fn cancel_reservation(&self, id: &[u8; RESERVATION_ID_LEN]) -> Result<bool, StoreError> {
        let removed = self.reservations.remove(&id[..]).map_err(StoreError::backend)?.is_some();
        if removed {
            self.flush()?;
        }
        Ok(removed)
    }

    fn record_spend(
        &self,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.spend_and_remove(None, key, cost, now).map(drop)
    }

    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn import_self_host(
        &self,
        scope: &Scope,
        vars: &[(String, SecretString)],
    ) -> Result<ImportReport, StoreError> {
        let _one_import_at_a_time = self.import_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut wanted: BTreeMap<&str, &SecretString> = BTreeMap::new();
        for (name, value) in vars {
            rules::check_value(name, value)?;
            wanted.insert(name, value);
        }
        let mut stale = Vec::new();
        for item in self.vars.scan_prefix(scope_prefix(scope)) {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let (_, name) = split_scoped(&key)?;
            let record: VarRecord = decode("variable", &bytes)?;
            if record.source == VarSource::SelfHost
                && record.current.is_some()
                && !wanted.contains_key(name)
            {
                let providers = self.unlink_targets(scope, name)?;
                stale.push((name.to_owned(), providers));
            }
        }
        let links: BTreeMap<&str, Vec<KeyLink>> =
            wanted.keys().map(|name| (*name, self.links(name))).collect();
        let now = self.now();
        let report =
            finish((&self.vars, &self.values, &self.keys).transaction(|(vars, values, keys)| {
                let txn = Txn { vars, values, keys };
                let mut report = ImportReport::default();
                for (name, value) in &wanted {
                    let plaintext = value.expose_secret().as_bytes();
                    let record = self.tx_record(vars, &var_key(scope, name))?;
                    if let Some(record) = &record
                        && record.source == VarSource::SelfHost
                        && self.tx_is_current(&txn, scope, name, record, plaintext)?
                    {
                        report.unchanged.push((*name).to_owned());
                        continue;
                    }
                    self.tx_set(
                        &txn,
                        scope,
                        name,
                        plaintext,
                        VarSource::SelfHost,
                        now,
                        &links[name],
                    )?;
                    report.set.push((*name).to_owned());
                }
                for (name, providers) in &stale {
                    let still_self_host = self
                        .tx_record(vars, &var_key(scope, name))?
                        .is_some_and(|record| record.source == VarSource::SelfHost);
                    if still_self_host
                        && self.tx_unset(&txn, scope, name, VarSource::SelfHost, now, providers)?
                    {
                        report.removed.push(name.clone());
                    }
                }
                Ok(report)
            }))?;
        self.flush()?;
        tracing::debug!(
            scope = %scope,
            set = %report.set.join(","),
            removed = %report.removed.join(","),
            unchanged = report.unchanged.len(),
            "self-host variables imported"
        );
        Ok(report)
    }

    fn list_provider_keys(&self, scope: &Scope) -> Result<Vec<ProviderKey>, StoreError> {
        let mut keys = Vec::new();
        for item in self.keys.scan_prefix(scope_prefix(scope)) {
            let (_, bytes) = item.map_err(StoreError::backend)?;
            keys.push(decode::<ProviderKey>("provider-key", &bytes)?);
        }
        keys.sort_by(|a, b| {
            (&a.provider, a.variant, &a.env_var).cmp(&(&b.provider, b.variant, &b.env_var))
        });
        Ok(keys)
    }

    fn list_all_provider_keys(&self) -> Result<Vec<(Scope, ProviderKey)>, StoreError> {
        let mut keys = Vec::new();
        for item in self.keys.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let (scope, _) = split_scoped(&key)?;
            keys.push((scope, decode::<ProviderKey>("provider-key", &bytes)?));
        }
        Ok(keys)
    }

    fn update_provider_key(
        &self,
        scope: &Scope,
        provider: &str,
        env_var: &str,
        update: KeyUpdate,
    ) -> Result<bool, StoreError> {
        let previous = self
            .keys
            .fetch_and_update(key_row_key(scope, provider, env_var), |old| {
                let old = old?;
                match serde_json::from_slice::<ProviderKey>(old) {
                    Ok(mut row) => {
                        update.apply(&mut row);
                        Some(encode(&row))
                    }
                    Err(_) => Some(old.to_vec()),
                }
            })
            .map_err(StoreError::backend)?;
        if previous.is_some() && update.is_durable() {
            self.flush()?;
        }
        Ok(previous.is_some())
    }

    fn set_provider_vars(&self, vars: ProviderVars) -> Result<SyncReport, StoreError> {
        *self.provider_vars.write().unwrap_or_else(PoisonError::into_inner) = vars;
        let mut report = SyncReport::default();
        let now = self.now();
        let still_a_key = |provider: &str, env_var: &str| {
            let mapping = self.provider_vars.read().unwrap_or_else(PoisonError::into_inner);
            rules::keeps_key_row(&mapping, provider, env_var, true)
        };
        // Link set key variables that have no row, carrying over the
        // metadata of the row the same variant had under a former key
        // variable of the provider.
        for item in self.vars.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let record: VarRecord = decode("variable", &bytes)?;
            if record.current.is_none() {
                continue;
            }
            let (scope, name) = split_scoped(&key)?;
            for link in self.links(name) {
                let row_key = key_row_key(&scope, &link.provider, name);
                if self.keys.contains_key(&row_key).map_err(StoreError::backend)? {
                    continue;
                }
                let mut predecessor = None;
                for item in self.keys.scan_prefix(key_row_key(&scope, &link.provider, "")) {
                    let (_, bytes) = item.map_err(StoreError::backend)?;
                    let row: ProviderKey = decode("provider-key", &bytes)?;
                    if row.variant == link.variant && !still_a_key(&row.provider, &row.env_var) {
                        predecessor = Some(row);
                    }
                }
                let row = carried_row(rules::new_key_row(&link, name, now), predecessor.as_ref());
                let linked = finish((&self.vars, &self.keys).transaction(|(vars, keys)| {
                    let set =
                        self.tx_record(vars, &key)?.is_some_and(|record| record.current.is_some());
                    if set && keys.get(&row_key)?.is_none() {
                        keys.insert(row_key.as_slice(), encode(&row))?;
                        return Ok(true);
                    }
                    Ok(false)
                }))?;
                report.linked += usize::from(linked);
            }
        }
        // Unlink the rows [`rules::keeps_key_row`] does not keep.
        let keeps = |provider: &str, env_var: &str, set: bool| {
            let mapping = self.provider_vars.read().unwrap_or_else(PoisonError::into_inner);
            rules::keeps_key_row(&mapping, provider, env_var, set)
        };
        for item in self.keys.iter() {
            let (row_key, _) = item.map_err(StoreError::backend)?;
            let (scope, provider, env_var) = parse_key_row_key(&row_key)?;
            let set = self.record(&scope, &env_var)?.is_some_and(|record| record.current.is_some());
            if keeps(&provider, &env_var, set) {
                continue;
            }
            let var = var_key(&scope, &env_var);
            let unlinked = finish((&self.vars, &self.keys).transaction(|(vars, keys)| {
                let set =
                    self.tx_record(vars, &var)?.is_some_and(|record| record.current.is_some());
                Ok(!keeps(&provider, &env_var, set) && keys.remove(&row_key)?.is_some())
            }))?;
            report.unlinked += usize::from(unlinked);
        }
        self.flush()?;
        if report.linked + report.unlinked > 0 {
            tracing::info!(
                linked = report.linked,
                unlinked = report.unlinked,
                "provider keys re-linked"
            );
        }
        Ok(report)
    }

    fn rewrap(
        &self,
        progress: &mut dyn FnMut(&RewrapProgress),
    ) -> Result<RewrapReport, StoreError> {
        let current = self.keyring.current_id();
        let mut report = RewrapReport::default();
        report.progress.total = self.values.len() as u64;
        progress(&report.progress);
        for item in self.values.iter() {
            let (key, sealed) = item.map_err(StoreError::backend)?;
            let counts = &mut report.progress;
            counts.done += 1;
            if sealed_key_id(&sealed).is_ok_and(|id| id == current) {
                counts.skipped += 1;
            } else {
                let (scope, name, version) = parse_value_key(&key)?;
                let binding = Binding { scope: &scope, name: &name, version };
                let resealed = self
                    .keyring
                    .open(&binding, &sealed)
                    .and_then(|plaintext| self.keyring.seal(&binding, &plaintext));
                match resealed {
                    Ok(resealed) => {
                        let swapped = self
                            .values
                            .compare_and_swap(&key, Some(&sealed), Some(resealed))
                            .map_err(StoreError::backend)?;
                        // A failed swap means the version was purged meanwhile.
                        if swapped.is_ok() {
                            counts.rewrapped += 1;
                        } else {
                            counts.skipped += 1;
                        }
                    }
                    Err(error) => {
                        counts.failed += 1;
                        tracing::warn!(scope = %scope, name, version, %error, "cannot rewrap a value");
                        report.failures.push(RewrapFailure {
                            scope: scope.to_string(),
                            name,
                            version,
                            error: error.to_string(),
                        });
                    }
                }
            }
            if report.progress.done % REWRAP_BATCH == 0 {
                self.flush()?;
                progress(&report.progress);
            }
        }
        // The store is now under the current key: so is its key check (a
        // value no key held could open stays as it was, and is reported).
        let check = self.keyring.seal_key_check(current).map_err(|source| {
            StoreError::Corrupt(format!("cannot seal the key-check record: {source}"))
        })?;
        self.meta.insert(KEY_CHECK, check).map_err(StoreError::backend)?;
        self.flush()?;
        progress(&report.progress);
        tracing::info!(
            key_id = %current,
            rewrapped = report.progress.rewrapped,
            skipped = report.progress.skipped,
            failed = report.progress.failed,
            "rewrap finished"
        );
        Ok(report)
    }

    fn key_usage(&self) -> Result<BTreeMap<KeyId, u64>, StoreError> {
        let mut usage = BTreeMap::new();
        for item in self.values.iter() {
            let (key, sealed) = item.map_err(StoreError::backend)?;
            let id = sealed_key_id(&sealed).map_err(|source| {
                let (scope, name, version) = match parse_value_key(&key) {
                    Ok((scope, name, version)) => (scope.to_string(), name, version),
                    Err(_) => ("?".to_owned(), "?".to_owned(), 0),
                };
                StoreError::Crypto { scope, name, version, source }
            })?;
            *usage.entry(id).or_insert(0) += 1;
        }
        Ok(usage)
    }

    /// As far as sled's `flush` goes: it survives a process kill; see
    /// `docs/store.md` on power loss.
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(StoreError::backend)
    }

    fn export_sealed(&self) -> Result<StoreDump, StoreError> {
        let mut dump = StoreDump {
            key_check: self.meta.get(KEY_CHECK).map_err(StoreError::backend)?.map(|v| v.to_vec()),
            ..StoreDump::default()
        };
        // The values, by variable: `{scope}\0{name}` → (version, sealed).
        let mut values: BTreeMap<Vec<u8>, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
        for item in self.values.iter() {
            let (key, sealed) = item.map_err(StoreError::backend)?;
            let (scope, name, version) = parse_value_key(&key)?;
            values.entry(var_key(&scope, &name)).or_default().push((version, sealed.to_vec()));
        }
        for item in self.vars.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let (scope, name) = split_scoped(&key)?;
            let record: VarRecord = decode("variable", &bytes)?;
            let mut sealed_values = Vec::new();
            for (version, sealed) in values.remove(key.as_ref()).unwrap_or_default() {
                let retired_until = if record.current == Some(version) {
                    None
                } else {
                    let retired = record.retired.iter().find(|retired| retired.version == version);
                    Some(retired.map(|retired| retired.expires_at).ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "{name} version {version} in scope {scope} has a value but is neither current nor replaced"
                        ))
                    })?)
                };
                sealed_values.push(SealedValue { version, sealed, retired_until });
            }
            dump.vars.push(SealedVar {
                scope,
                name: name.to_owned(),
                current: record.current,
                last_version: record.last_version,
                updated_at: record.updated_at,
                source: record.source,
                values: sealed_values,
            });
        }
        if let Some(orphan) = values.keys().next() {
            return Err(StoreError::Corrupt(format!(
                "values of {} have no variable row",
                String::from_utf8_lossy(orphan).replace('\0', " in scope ")
            )));
        }
        dump.provider_keys = self.list_all_provider_keys()?;
        for item in self.released.iter() {
            let (key, _) = item.map_err(StoreError::backend)?;
            let corrupt = || StoreError::Corrupt("malformed lease-release key".to_owned());
            let (expires_at, id) = key.split_at_checked(8).ok_or_else(corrupt)?;
            let expires_at = u64::from_be_bytes(expires_at.try_into().map_err(|_| corrupt())?);
            dump.lease_releases.push((id.try_into().map_err(|_| corrupt())?, expires_at));
        }
        for item in self.budgets.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let record: BudgetRecord = decode("budget", &bytes)?;
            dump.budgets.push(BudgetRow {
                target: String::from_utf8_lossy(&key).into_owned(),
                budget: Budget { limit: MicroUsd(record.limit), period: record.period },
            });
        }
        for item in self.spend.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let text = std::str::from_utf8(&key)
                .map_err(|_| StoreError::Corrupt("malformed spend key".to_owned()))?;
            let (target, window) = text
                .split_once('\0')
                .ok_or_else(|| StoreError::Corrupt("malformed spend key".to_owned()))?;
            dump.spend.push(SpendRow {
                target: target.to_owned(),
                window: window.to_owned(),
                micro_usd: decode_amount(&bytes)?,
            });
        }
        for item in self.reservations.iter() {
            let (key, bytes) = item.map_err(StoreError::backend)?;
            let record: ReservationRecord = decode("reservation", &bytes)?;
            dump.reservations.push(ReservationRow {
                id: key
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("malformed reservation id".to_owned()))?,
                targets: record.targets,
                amount: record.amount,
                expires_at: record.expires_at,
            });
        }
        Ok(dump)
    }

    fn import_sealed(&self, dump: &StoreDump) -> Result<(), StoreError> {
        let apply =
            |tree: &Tree, batch: sled::Batch| tree.apply_batch(batch).map_err(StoreError::backend);
        let (mut vars, mut values) = (sled::Batch::default(), sled::Batch::default());
        for var in &dump.vars {
            let retired = var
                .values
                .iter()
                .filter_map(|value| {
                    value
                        .retired_until
                        .map(|expires_at| Retired { version: value.version, expires_at })
                })
                .collect();
            let record = VarRecord {
                current: var.current,
                last_version: var.last_version,
                updated_at: var.updated_at,
                source: var.source,
                retired,
            };
            vars.insert(var_key(&var.scope, &var.name), encode(&record));
            for value in &var.values {
                values.insert(
                    value_key(&var.scope, &var.name, value.version),
                    value.sealed.as_slice(),
                );
            }
        }
        let mut keys = sled::Batch::default();
        for (scope, row) in &dump.provider_keys {
            keys.insert(key_row_key(scope, &row.provider, &row.env_var), encode(row));
        }
        let mut released = sled::Batch::default();
        for (id, expires_at) in &dump.lease_releases {
            released.insert(&release_key(id, *expires_at)[..], &[][..]);
        }
        let mut budgets = sled::Batch::default();
        for row in &dump.budgets {
            let record = BudgetRecord { limit: row.budget.limit.0, period: row.budget.period };
            budgets.insert(row.target.as_bytes(), encode(&record));
        }
        let mut spend = sled::Batch::default();
        for row in &dump.spend {
            let mut key = row.target.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(row.window.as_bytes());
            spend.insert(key, &row.micro_usd.to_be_bytes()[..]);
        }
        let mut reservations = sled::Batch::default();
        for row in &dump.reservations {
            let record = ReservationRecord {
                targets: row.targets.clone(),
                amount: row.amount,
                expires_at: row.expires_at,
            };
            reservations.insert(&row.id[..], encode(&record));
        }
        // Values before the rows pointing at them; the key check last.
        apply(&self.values, values)?;
        apply(&self.vars, vars)?;
        apply(&self.keys, keys)?;
        apply(&self.released, released)?;
        apply(&self.budgets, budgets)?;
        apply(&self.spend, spend)?;
        apply(&self.reservations, reservations)?;
        if let Some(record) = &dump.key_check {
            self.meta.insert(KEY_CHECK, record.as_slice()).map_err(StoreError::backend)?;
        }
        self.flush()?;
        tracing::info!(copied = %dump.counts(), "sealed records imported");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_round_trips() {
        let scope: Scope = "acme/shop/dev".parse().unwrap();
        let key = value_key(&scope, "OPENAI_API_KEY", 0x0100_0000_0000_0000);
        assert_eq!(
            parse_value_key(&key).unwrap(),
            (scope.clone(), "OPENAI_API_KEY".to_owned(), 1 << 56)
        );
        let key = value_key(&scope, "X", 0);
        assert_eq!(parse_value_key(&key).unwrap(), (scope.clone(), "X".to_owned(), 0));
        let key = key_row_key(&scope, "openai", "OPENAI_API_KEY_2");
        assert_eq!(
            parse_key_row_key(&key).unwrap(),
            (scope.clone(), "openai".to_owned(), "OPENAI_API_KEY_2".to_owned())
        );
        assert_eq!(var_key(&scope, "X"), b"acme/shop/dev\0X");
        // A scope's prefix does not match a longer environment id.
        let longer: Scope = "acme/shop/dev2".parse().unwrap();
        assert!(!var_key(&longer, "X").starts_with(&scope_prefix(&scope)));
        assert!(parse_value_key(b"short").is_err());
    }
}

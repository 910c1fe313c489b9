//! [`SecretStore`] on PostgreSQL, shared by several hosts.
//!
//! Tables (text columns collate `"C"`, so every order is byte order, as in
//! sled):
//!
//! - `platos_schema_migrations`: one row per applied migration ([`MIGRATIONS`]).
//! - `platos_meta`: `key-check` → the key-check record
//!   ([`Keyring::seal_key_check`]) under the store's key.
//! - `platos_vars`: one row per variable ever written: the current version
//!   (`NULL` once unset; the row stays, so versions are never reused), the
//!   last version written, when and by whom.
//! - `platos_values`: `(scope, name, version)` → the sealed value, sealed by
//!   [`crate::crypto`] with the same associated data as the sled store
//!   (PostgreSQL never sees a plaintext); `retired_until` is `NULL` for the
//!   current version and the end of the grace period for a replaced one.
//! - `platos_provider_keys`: `(scope, provider, env_var)` → a key's metadata.
//! - `platos_lease_releases`: `(expires_at, lease_id)` of a lease released
//!   before its end, kept until that end.
//! - `platos_budgets`: [`BudgetTarget::storage_key`] → a budget's cap and
//!   period; `platos_spend`: `(target, window)` → micro-USD spent
//!   ([`Windows`]); `platos_reservations`: a reservation's id, the targets
//!   it counts against, its amount and its end.
//! - `platos_tokens`: API tokens' rows ([`super::PostgresTokens`]; only
//!   digests, never a token).
//! - `platos_probe_claims`: `(tag, slot)` → the end of the slot, the
//!   claim's deadline and whether the probe is done
//!   ([`SecretStore::claim_probe`]): a keyed tag and times, nothing else.
//! - `platos_audit`: the audit trail's records ([`super::PostgresAudit`]),
//!   append-only (a trigger refuses updates).
//!
//! One logical change is one transaction. Writes to one variable serialize
//! on its `platos_vars` row (`SELECT … FOR UPDATE`), so concurrent writers on
//! any number of hosts get distinct versions; a self-host import also takes
//! a transaction-scoped advisory lock per scope. Migrations and the key check
//! run at open in one transaction under an advisory lock, so hosts starting
//! together do not race. A reserve, settle or spend takes a
//! transaction-scoped advisory lock per budget target it counts against,
//! in the order of their storage keys (so two never wait on each other),
//! and reads and writes under them: reserves on several hosts never
//! together exceed a cap. The rules that are not layout live in
//! [`super::rules`], shared with the sled store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{NoTls, Row};

use super::budgets::Period;
use super::copy::{BudgetRow, ReservationRow, SealedValue, SealedVar, SpendRow};
use super::rules::{self, KeyCheckStep};
use super::sled_store::{Clock, StoreOptions};
use super::{
    Budget, BudgetExceeded, BudgetStatus, BudgetTarget, HealthRecord, ImportReport, KeyLink,
    KeyStatus, KeyUpdate, LEASE_ID_LEN, ProbeClaim, ProbeSlot, ProbeTag, ProviderKey, ProviderVars,
    RESERVATION_ID_LEN, Reservation, RewrapFailure, RewrapProgress, RewrapReport, SecretStore,
    SpendWindows, StoreDump, StoreError, SyncReport, UnixMillis, VarInfo, VarSource, VarValue,
    Windows, carried_row, check_name,
};
use crate::crypto::{Binding, KeyId, Keyring, sealed_key_id};
use crate::provider::MicroUsd;
use crate::scope::Scope;

/// The schema, one migration per entry, applied in order; entry `i` is
/// version `i + 1`. Append only: an applied migration never changes.
const MIGRATIONS: &[&str] =
    &[VARIABLES_AND_KEYS, LEASE_RELEASES, BUDGETS, TOKENS, PROBE_CLAIMS, AUDIT];

/// Migration 1: variables, sealed values, provider-key rows, metadata.
const VARIABLES_AND_KEYS: &str = r#"
CREATE TABLE platos_meta (
    name text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE platos_vars (
    scope text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    current_version bigint,
    last_version bigint NOT NULL,
    updated_at bigint NOT NULL,
    source text NOT NULL CHECK (source IN ('self-host', 'api', 'cli')),
    PRIMARY KEY (scope, name)
);
CREATE TABLE platos_values (
    scope text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    sealed bytea NOT NULL,
    retired_until bigint,
    PRIMARY KEY (scope, name, version),
    FOREIGN KEY (scope, name) REFERENCES platos_vars (scope, name)
);
CREATE INDEX platos_values_retired ON platos_values (retired_until)
    WHERE retired_until IS NOT NULL;
CREATE TABLE platos_provider_keys (
    scope text COLLATE "C" NOT NULL,
    provider text COLLATE "C" NOT NULL,
    env_var text COLLATE "C" NOT NULL,
    variant integer NOT NULL,
    label text NOT NULL,
    created_at bigint NOT NULL,
    last_used_at bigint,
    status text NOT NULL CHECK (status IN ('active', 'disabled')),
    health jsonb,
    chosen_default_at bigint,
    PRIMARY KEY (scope, provider, env_var)
);
"#;

/// Migration 2: leases released before their end, kept until that end
/// ([`SecretStore::release_lease`]): the lease's random id and end, nothing
/// else.
const LEASE_RELEASES: &str = r#"
CREATE TABLE platos_lease_releases (
    expires_at bigint NOT NULL,
    lease_id bytea NOT NULL CHECK (octet_length(lease_id) = 16),
    PRIMARY KEY (expires_at, lease_id)
);
"#;

/// Migration 3: budgets, spend counters and reservations
/// ([`SecretStore::reserve`]). Amounts are micro-USD.
const BUDGETS: &str = r#"
CREATE TABLE platos_budgets (
    target text COLLATE "C" PRIMARY KEY,
    limit_micro_usd bigint NOT NULL CHECK (limit_micro_usd >= 0),
    period text NOT NULL CHECK (period IN ('day', 'month', 'total'))
);
CREATE TABLE platos_spend (
    target text COLLATE "C" NOT NULL,
    window_name text COLLATE "C" NOT NULL,
    micro_usd bigint NOT NULL CHECK (micro_usd >= 0),
    PRIMARY KEY (target, window_name)
);
CREATE TABLE platos_reservations (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 16),
    targets text[] NOT NULL,
    amount bigint NOT NULL CHECK (amount >= 0),
    expires_at bigint NOT NULL
);
CREATE INDEX platos_reservations_targets ON platos_reservations USING gin (targets);
CREATE INDEX platos_reservations_expiry ON platos_reservations (expires_at);
"#;

/// Migration 4: API tokens ([`super::PostgresTokens`]): a token's id,
/// `sha256(token)` in hex (never the token), kind, scope (none for an
/// operator token), label, default pins and creation time.
const TOKENS: &str = r#"
CREATE TABLE platos_tokens (
    id text COLLATE "C" PRIMARY KEY,
    digest text NOT NULL CHECK (octet_length(digest) = 64),
    kind text NOT NULL CHECK (kind IN ('operator', 'admin', 'agent')),
    scope text COLLATE "C",
    label text NOT NULL,
    pins jsonb NOT NULL DEFAULT '{}',
    created_at bigint NOT NULL,
    CHECK ((kind = 'operator') = (scope IS NULL))
);
"#;

/// Migration 5: health-probe claims ([`SecretStore::claim_probe`]), kept
/// until their slot ends.
const PROBE_CLAIMS: &str = r#"
CREATE TABLE platos_probe_claims (
    tag bytea NOT NULL CHECK (octet_length(tag) = 32),
    slot bigint NOT NULL,
    slot_end bigint NOT NULL,
    until_ms bigint NOT NULL,
    done boolean NOT NULL,
    PRIMARY KEY (tag, slot)
);
CREATE INDEX platos_probe_claims_end ON platos_probe_claims (slot_end);
"#;

/// Migration 6: the audit trail ([`super::PostgresAudit`]): a record's id,
/// time and scope, and the record as JSON (no value, token or lease).
/// Append-only: a trigger refuses every `UPDATE`; `DELETE` stays allowed
/// for the retention.
const AUDIT: &str = r#"
CREATE TABLE platos_audit (
    id text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    at bigint NOT NULL,
    scope text COLLATE "C",
    record text NOT NULL
);
CREATE INDEX platos_audit_at ON platos_audit (at, id);
CREATE INDEX platos_audit_scope ON platos_audit (scope, at, id);
CREATE OR REPLACE FUNCTION platos_audit_refuse_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'platos_audit is append-only';
END;
$$;
CREATE TRIGGER platos_audit_append_only BEFORE UPDATE ON platos_audit
    FOR EACH ROW EXECUTE FUNCTION platos_audit_refuse_update();
"#;

/// The advisory lock (an arbitrary constant: "platos" in ASCII) held while
/// migrating and checking the key at open.
const OPEN_LOCK: i64 = 0x706c_6174_6f73;
/// The `platos_meta` row of the key-check record.
const KEY_CHECK: &str = "key-check";
/// A rewrap reads, reseals and reports progress this many values at a time.
const REWRAP_BATCH: i64 = 256;
/// The most connections one host keeps to the database unless told
/// otherwise (`serve --store-pool-size`).
pub const DEFAULT_POOL_SIZE: usize = 16;
/// The longest a request waits for a pooled connection, a new connection or
/// the check of an idle one before the store answers it is unavailable.
const POOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

const VAR_COLUMNS: &str = "scope, name, current_version, last_version, updated_at, source";
const KEY_COLUMNS: &str = "scope, provider, env_var, variant, label, created_at, last_used_at, status, health, chosen_default_at";

/// The PostgreSQL implementation of [`SecretStore`]: several hosts may open
/// the same database and see each other's writes at once.
pub struct PostgresStore {
    pool: Pool,
    keyring: Keyring,
    grace_ms: u64,
    provider_vars: RwLock<ProviderVars>,
    clock: Clock,
    /// `postgres://user@host:port/db`, never a password.
    location: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .field("keyring", &self.keyring)
            .field("grace_ms", &self.grace_ms)
            .finish_non_exhaustive()
    }
}

/// A database error as a store error: one that means the server cannot be
/// reached or is going away ([`unreachable`]) is [`StoreError::Unavailable`],
/// any other a backend fault.
pub(super) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    let any: &dyn std::any::Any = &error;
    match any.downcast_ref::<tokio_postgres::Error>() {
        Some(postgres) if unreachable(postgres) => StoreError::Unavailable(postgres.to_string()),
        _ => StoreError::backend(error),
    }
}

/// Whether `error` says the server cannot be reached rather than that the
/// statement failed: a closed connection, an I/O error, or an SQLSTATE of
/// class 08 (connection exception) or 57P (operator intervention: shutdown,
/// crash recovery, cannot connect now).
fn unreachable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(state) = error.code() {
        let code = state.code();
        return code.starts_with("08") || code.starts_with("57P");
    }
    // No SQLSTATE: the failure is below SQL (the socket, the protocol).
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

fn described(what: String) -> StoreError {
    StoreError::backend(std::io::Error::other(what))
}

/// A `u64` of the store as a PostgreSQL `bigint` (versions and times never
/// come near `i64::MAX`; a grace period that would is clamped).
fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql_int(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

fn source_text(source: VarSource) -> String {
    source.to_string()
}

fn parse_source(text: &str) -> Result<VarSource, StoreError> {
    match text {
        "self-host" => Ok(VarSource::SelfHost),
        "api" => Ok(VarSource::Api),
        "cli" => Ok(VarSource::Cli),
        other => Err(StoreError::Corrupt(format!("unknown variable source `{other}`"))),
    }
}

fn parse_status(text: &str) -> Result<KeyStatus, StoreError> {
    match text {
        "active" => Ok(KeyStatus::Active),
        "disabled" => Ok(KeyStatus::Disabled),
        other => Err(StoreError::Corrupt(format!("unknown key status `{other}`"))),
    }
}

fn parse_scope(text: &str) -> Result<Scope, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("malformed scope `{text}`")))
}

fn health_json(record: &HealthRecord) -> serde_json::Value {
    serde_json::to_value(record).expect("a health record always serializes")
}

/// `(scope, provider key)` from a row of [`KEY_COLUMNS`].
fn key_row(row: &Row) -> Result<(Scope, ProviderKey), StoreError> {
    let health: Option<serde_json::Value> = row.get("health");
    let health = health
        .map(serde_json::from_value::<HealthRecord>)
        .transpose()
        .map_err(|error| StoreError::Corrupt(format!("unreadable health record: {error}")))?;
    let variant: i32 = row.get("variant");
    let last_used_at: Option<i64> = row.get("last_used_at");
    let chosen_default_at: Option<i64> = row.get("chosen_default_at");
    Ok((
        parse_scope(row.get("scope"))?,
        ProviderKey {
            provider: row.get("provider"),
            env_var: row.get("env_var"),
            variant: u32::try_from(variant)
                .map_err(|_| StoreError::Corrupt(format!("negative variant {variant}")))?,
            label: row.get("label"),
            created_at: from_sql_int("creation time", row.get("created_at"))?,
            last_used_at: last_used_at.map(|at| from_sql_int("last use", at)).transpose()?,
            status: parse_status(row.get("status"))?,
            health,
            chosen_default_at: chosen_default_at
                .map(|at| from_sql_int("default choice", at))
                .transpose()?,
        },
    ))
}

/// A variable's row, as read under its lock.
struct VarRow {
    current: Option<u64>,
    last_version: u64,
    updated_at: UnixMillis,
    source: VarSource,
}

impl VarRow {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let current: Option<i64> = row.get("current_version");
        Ok(VarRow {
            current: current.map(|version| from_sql_int("version", version)).transpose()?,
            last_version: from_sql_int("version", row.get("last_version"))?,
            updated_at: from_sql_int("update time", row.get("updated_at"))?,
            source: parse_source(row.get("source"))?,
        })
    }
}

/// The pool of at most `size` connections to the database at `url` (none
/// opened yet), and its location without a password.
fn pool_for(url: &str, size: usize) -> Result<(Pool, String), StoreError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|error| {
        described(format!(
            "invalid PostgreSQL URL ({error}); expected postgres://USER@HOST:PORT/DATABASE"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    let location = location_of(&config);
    if config.get_ssl_mode() == SslMode::Require {
        return Err(described(format!(
            "{location}: sslmode=require is not supported (this host connects without TLS); \
             use sslmode=disable or prefer, on a loopback or private network"
        )));
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|error| described(format!("{location}: {error}")))?;
    Ok((pool, location))
}

/// A pooled connection of `pool`; waiting for one, connecting and checking
/// one are bounded ([`POOL_TIMEOUT`]), so a database that is away answers
/// [`StoreError::Unavailable`] instead of hanging the request.
pub(super) async fn pooled(
    pool: &Pool,
    location: &str,
) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|error| StoreError::Unavailable(format!("PostgreSQL at {location}: {error}")))
}

/// `sql` prepared on `client`'s connection once and kept there, so the hot
/// reads (a resolve's, an authorize's) take one round trip instead of a
/// parse and then an execute.
pub(super) async fn prepared(
    client: &deadpool_postgres::Object,
    sql: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    client.prepare_cached(sql).await.map_err(backend)
}

/// Applies the schema migrations the database lacks, in `tx` (which holds
/// [`OPEN_LOCK`]).
async fn migrate(tx: &Transaction<'_>, location: &str, now: UnixMillis) -> Result<(), StoreError> {
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS platos_schema_migrations (
             version integer PRIMARY KEY,
             applied_at bigint NOT NULL
         )",
    )
    .await
    .map_err(backend)?;
    let applied: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM platos_schema_migrations", &[])
        .await
        .map_err(backend)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        return Err(StoreError::Format { found: applied as u32, expected: known as u32 });
    }
    for (version, migration) in (1..).zip(MIGRATIONS).skip(applied as usize) {
        tx.batch_execute(migration).await.map_err(backend)?;
        tx.execute(
            "INSERT INTO platos_schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &sql_int(now)],
        )
        .await
        .map_err(backend)?;
        tracing::info!(%location, version, "store schema migrated");
    }
    Ok(())
}

/// The pool of the database at `url`, its location, and its schema
/// migrated, without the master key (the token commands need no key: the
/// key check waits for the first host that opens the store).
pub(super) async fn open_schema(url: &str) -> Result<(Pool, String), StoreError> {
    let (pool, location) = pool_for(url, DEFAULT_POOL_SIZE)?;
    let mut client = pooled(&pool, &location).await?;
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OPEN_LOCK]).await.map_err(backend)?;
    migrate(&tx, &location, super::now_millis()).await?;
    tx.commit().await.map_err(backend)?;
    drop(client);
    Ok((pool, location))
}

/// `url` as `postgres://user@host:port/db`, without its password (or a
/// placeholder when it does not parse).
pub(super) fn redacted(url: &str) -> String {
    tokio_postgres::Config::from_str(url).map_or_else(
        |_| "postgres://(a URL that does not parse)".to_owned(),
        |config| location_of(&config),
    )
}

/// `postgres://user@host:port/db` of `config`, without its password.
fn location_of(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

impl PostgresStore {
    /// The schema version this host writes: the number of its migrations.
    pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`,
    /// or the key/value form libpq takes), applies the schema migrations it
    /// lacks, and refuses a keyring that holds not the store's key
    /// ([`StoreError::KeyMismatch`]). The connection is not encrypted:
    /// `sslmode=require` is refused; use a loopback or private network.
    pub async fn open(
        url: &str,
        keyring: Keyring,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let StoreOptions { grace, provider_vars, clock, pool_size } = options;
        let (pool, location) = pool_for(url, pool_size)?;
        let store = PostgresStore {
            pool,
            keyring,
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            provider_vars: RwLock::new(provider_vars),
            clock,
            location,
        };
        store.prepare().await?;
        tracing::debug!(location = %store.location, key_id = %store.keyring.current_id(), "store opened");
        Ok(store)
    }

    /// The connection pool, for the tables kept beside the store
    /// ([`super::PostgresTokens`], [`super::PostgresAudit`]).
    pub(super) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// `postgres://user@host:port/db` (never a password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A pooled connection; waiting for one, connecting and checking one
    /// are bounded ([`POOL_TIMEOUT`]), so a database that is away answers
    /// [`StoreError::Unavailable`] instead of hanging the request.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        pooled(&self.pool, &self.location).await
    }

    /// Migrates the schema and checks the master key, in one transaction
    /// under [`OPEN_LOCK`].
    async fn prepare(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OPEN_LOCK]).await.map_err(backend)?;
        migrate(&tx, &self.location, self.now()).await?;
        self.check_master_key(&tx).await?;
        tx.commit().await.map_err(backend)
    }

    /// The key check at open ([`rules::key_check_step`]; see "The key check"
    /// in `docs/store.md`).
    async fn check_master_key(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mismatch = || StoreError::KeyMismatch {
            path: PathBuf::from(&self.location),
            previous_set: self.keyring.previous_id().is_some(),
        };
        let record: Option<Vec<u8>> = tx
            .query_opt("SELECT value FROM platos_meta WHERE name = $1", &[&KEY_CHECK])
            .await
            .map_err(backend)?
            .map(|row| row.get(0));
        let has_values: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM platos_values)", &[])
            .await
            .map_err(backend)?
            .get(0);
        let under =
            match rules::key_check_step(&self.keyring, record.as_deref(), has_values, mismatch)? {
                KeyCheckStep::Keep => return Ok(()),
                KeyCheckStep::Seal(under) => under,
                KeyCheckStep::FromValues => self.key_of_a_value(tx).await?.ok_or_else(mismatch)?,
            };
        self.write_key_check(tx, under).await?;
        tracing::info!(key_id = %under, "key-check record written");
        Ok(())
    }

    async fn write_key_check(
        &self,
        client: &impl GenericClient,
        under: KeyId,
    ) -> Result<(), StoreError> {
        let record = self.keyring.seal_key_check(under).map_err(|source| {
            StoreError::Corrupt(format!("cannot seal the key-check record: {source}"))
        })?;
        client
            .execute(
                "INSERT INTO platos_meta (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&KEY_CHECK, &record],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// For a store without a key-check record: [`rules::key_of_a_value`]
    /// over every stored value.
    async fn key_of_a_value(&self, tx: &Transaction<'_>) -> Result<Option<KeyId>, StoreError> {
        let rows = tx
            .query("SELECT scope, name, version, sealed FROM platos_values", &[])
            .await
            .map_err(backend)?;
        let values = rows.iter().map(|row| {
            let sealed: Vec<u8> = row.get("sealed");
            let version = from_sql_int("version", row.get("version"))?;
            Ok((parse_scope(row.get("scope"))?, row.get::<_, String>("name"), version, sealed))
        });
        rules::key_of_a_value(&self.keyring, values)
    }

    fn now(&self) -> UnixMillis {
        (self.clock)()
    }

    /// Takes the advisory lock of each of `targets` (in storage-key order)
    /// for the rest of `tx`.
    async fn lock_targets(
        &self,
        tx: &Transaction<'_>,
        targets: &[BudgetTarget],
    ) -> Result<(), StoreError> {
        let mut keys: Vec<String> = targets.iter().map(BudgetTarget::storage_key).collect();
        keys.sort();
        keys.dedup();
        for key in &keys {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('platos-budget:' || $1, 0))",
                &[key],
            )
            .await
            .map_err(backend)?;
        }
        Ok(())
    }

    /// The budget, spend and live reservations of `target` at `now`, in one
    /// statement (one snapshot).
    async fn status_in(
        &self,
        client: &impl GenericClient,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError> {
        let key = target.storage_key();
        let windows = Windows::of(now);
        let row = client
            .query_one(
                "SELECT
                     (SELECT limit_micro_usd FROM platos_budgets WHERE target = $1),
                     (SELECT period FROM platos_budgets WHERE target = $1),
                     coalesce((SELECT micro_usd FROM platos_spend
                               WHERE target = $1 AND window_name = $2), 0),
                     coalesce((SELECT micro_usd FROM platos_spend
                               WHERE target = $1 AND window_name = $3), 0),
                     coalesce((SELECT micro_usd FROM platos_spend
                               WHERE target = $1 AND window_name = $4), 0),
                     (SELECT least(coalesce(sum(amount), 0), 9223372036854775807)::bigint
                      FROM platos_reservations
                      WHERE targets @> ARRAY[$1::text] AND expires_at > $5)",
                &[
                    &key,
                    &windows.name(Period::Day),
                    &windows.name(Period::Month),
                    &windows.name(Period::Total),
                    &sql_int(now),
                ],
            )
            .await
            .map_err(backend)?;
        let limit: Option<i64> = row.get(0);
        let period: Option<String> = row.get(1);
        let budget = match (limit, period) {
            (Some(limit), Some(period)) => Some(Budget {
                limit: MicroUsd(from_sql_int("budget limit", limit)?),
                period: period.parse().map_err(|_| {
                    StoreError::Corrupt(format!("unknown budget period `{period}`"))
                })?,
            }),
            _ => None,
        };
        let amount = |index: usize, what: &str| -> Result<MicroUsd, StoreError> {
            from_sql_int(what, row.get(index)).map(MicroUsd)
        };
        let spend = SpendWindows {
            day: amount(2, "spend")?,
            month: amount(3, "spend")?,
            total: amount(4, "spend")?,
        };
        Ok(BudgetStatus::new(budget, spend, amount(5, "reserved amount")?))
    }

    /// Removes reservation `id` (when given) and adds `cost` to the spend of
    /// `key` at `now`, in one transaction under the targets' locks; whether
    /// `id` was recorded.
    async fn spend_and_remove(
        &self,
        id: Option<&[u8; RESERVATION_ID_LEN]>,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let targets = key.counted_in();
        let windows = Windows::of(now);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        self.lock_targets(&tx, &targets).await?;
        let removed = match id {
            Some(id) => {
                tx.execute("DELETE FROM platos_reservations WHERE id = $1", &[&id.as_slice()])
                    .await
                    .map_err(backend)?
                    > 0
            }
            None => false,
        };
        let cost = sql_int(cost.0);
        for target in &targets {
            let key = target.storage_key();
            for period in [Period::Day, Period::Month, Period::Total] {
                tx.execute(
                    "INSERT INTO platos_spend (target, window_name, micro_usd) VALUES ($1, $2, $3)
                     ON CONFLICT (target, window_name) DO UPDATE SET micro_usd =
                         CASE WHEN platos_spend.micro_usd > 9223372036854775807 - excluded.micro_usd
                              THEN 9223372036854775807
                              ELSE platos_spend.micro_usd + excluded.micro_usd END",
                    &[&key, &windows.name(period), &cost],
                )
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    fn links(&self, name: &str) -> Vec<KeyLink> {
        self.provider_vars.read().unwrap_or_else(PoisonError::into_inner).links(name)
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

    /// The row of `name` locked for this transaction, created (unset) if
    /// there is none yet: concurrent first writers wait on its key.
    async fn lock_or_create_var(
        &self,
        tx: &Transaction<'_>,
        scope: &str,
        name: &str,
    ) -> Result<VarRow, StoreError> {
        tx.execute(
            "INSERT INTO platos_vars (scope, name, current_version, last_version, updated_at, source)
             VALUES ($1, $2, NULL, 0, 0, 'api') ON CONFLICT (scope, name) DO NOTHING",
            &[&scope, &name],
        )
        .await
        .map_err(backend)?;
        let row = self.lock_var(tx, scope, name).await?;
        row.ok_or_else(|| StoreError::Corrupt(format!("{name} in scope {scope}: row vanished")))
    }

    async fn lock_var(
        &self,
        tx: &Transaction<'_>,
        scope: &str,
        name: &str,
    ) -> Result<Option<VarRow>, StoreError> {
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {VAR_COLUMNS} FROM platos_vars WHERE scope = $1 AND name = $2 FOR UPDATE"
                ),
                &[&scope, &name],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(VarRow::from_row).transpose()
    }

    /// Starts the grace period of `version` and deletes the retired versions
    /// [`rules::retired_to_drop`] names. Returns how many were deleted.
    async fn retire(
        &self,
        tx: &Transaction<'_>,
        scope: &str,
        name: &str,
        version: u64,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        tx.execute(
            "UPDATE platos_values SET retired_until = $4
             WHERE scope = $1 AND name = $2 AND version = $3",
            &[&scope, &name, &sql_int(version), &sql_int(now.saturating_add(self.grace_ms))],
        )
        .await
        .map_err(backend)?;
        self.drop_retired(tx, scope, name, now).await
    }

    async fn drop_retired(
        &self,
        tx: &Transaction<'_>,
        scope: &str,
        name: &str,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let rows = tx
            .query(
                "SELECT version, retired_until FROM platos_values
                 WHERE scope = $1 AND name = $2 AND retired_until IS NOT NULL",
                &[&scope, &name],
            )
            .await
            .map_err(backend)?;
        let retired = rows
            .iter()
            .map(|row| {
                Ok((from_sql_int("version", row.get(0))?, from_sql_int("expiry", row.get(1))?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let dropped: Vec<i64> =
            rules::retired_to_drop(&retired, now).into_iter().map(sql_int).collect();
        if dropped.is_empty() {
            return Ok(0);
        }
        tx.execute(
            "DELETE FROM platos_values WHERE scope = $1 AND name = $2 AND version = ANY($3)",
            &[&scope, &name, &dropped],
        )
        .await
        .map_err(backend)
    }

    /// Writes a new version of `name`: value, version pointer, retired
    /// versions and provider-key rows.
    #[allow(clippy::too_many_arguments)]
    async fn tx_set(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        name: &str,
        plaintext: &[u8],
        source: VarSource,
        now: UnixMillis,
        links: &[KeyLink],
    ) -> Result<VarInfo, StoreError> {
        let scope_id = scope.to_string();
        let row = self.lock_or_create_var(tx, &scope_id, name).await?;
        rules::check_writer(scope, name, source, row.current.map(|_| row.source))?;
        let version = row.last_version + 1;
        let sealed =
            self.keyring.seal(&Binding { scope, name, version }, plaintext).map_err(|source| {
                StoreError::Crypto {
                    scope: scope_id.clone(),
                    name: name.to_owned(),
                    version,
                    source,
                }
            })?;
        tx.execute(
            "INSERT INTO platos_values (scope, name, version, sealed) VALUES ($1, $2, $3, $4)",
            &[&scope_id, &name, &sql_int(version), &sealed],
        )
        .await
        .map_err(backend)?;
        match row.current {
            Some(previous) => self.retire(tx, &scope_id, name, previous, now).await?,
            None => self.drop_retired(tx, &scope_id, name, now).await?,
        };
        tx.execute(
            "UPDATE platos_vars SET current_version = $3, last_version = $3, updated_at = $4, source = $5
             WHERE scope = $1 AND name = $2",
            &[&scope_id, &name, &sql_int(version), &sql_int(now), &source_text(source)],
        )
        .await
        .map_err(backend)?;
        for link in links {
            self.link(tx, &scope_id, &rules::new_key_row(link, name, now)).await?;
        }
        Ok(VarInfo { name: name.to_owned(), version, updated_at: now, source })
    }

    /// Inserts a provider-key row unless there is one. Returns whether it did.
    async fn link(
        &self,
        client: &impl GenericClient,
        scope: &str,
        key: &ProviderKey,
    ) -> Result<bool, StoreError> {
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO platos_provider_keys ({KEY_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
                ),
                &[
                    &scope,
                    &key.provider,
                    &key.env_var,
                    &i32::try_from(key.variant).unwrap_or(i32::MAX),
                    &key.label,
                    &sql_int(key.created_at),
                    &key.last_used_at.map(sql_int),
                    &key.status.to_string(),
                    &key.health.as_ref().map(health_json),
                    &key.chosen_default_at.map(sql_int),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(inserted > 0)
    }

    /// Unsets `name`: retires its value and removes its provider-key rows
    /// (whatever provider they belong to). `false` if it was not set.
    async fn tx_unset(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        name: &str,
        source: VarSource,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let scope_id = scope.to_string();
        let Some(row) = self.lock_var(tx, &scope_id, name).await? else { return Ok(false) };
        let Some(current) = row.current else { return Ok(false) };
        rules::check_writer(scope, name, source, Some(row.source))?;
        self.retire(tx, &scope_id, name, current, now).await?;
        tx.execute(
            "UPDATE platos_vars SET current_version = NULL, updated_at = $3, source = $4
             WHERE scope = $1 AND name = $2",
            &[&scope_id, &name, &sql_int(now), &source_text(source)],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "DELETE FROM platos_provider_keys WHERE scope = $1 AND env_var = $2",
            &[&scope_id, &name],
        )
        .await
        .map_err(backend)?;
        Ok(true)
    }

    /// Whether the current value of `name` (row `row`) equals `value`.
    async fn tx_is_current(
        &self,
        tx: &Transaction<'_>,
        scope: &Scope,
        name: &str,
        row: &VarRow,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let Some(version) = row.current else { return Ok(false) };
        let sealed = tx
            .query_opt(
                "SELECT sealed FROM platos_values WHERE scope = $1 AND name = $2 AND version = $3",
                &[&scope.to_string(), &name, &sql_int(version)],
            )
            .await
            .map_err(backend)?;
        let Some(sealed) = sealed else { return Ok(false) };
        let sealed: Vec<u8> = sealed.get(0);
        Ok(match self.keyring.open(&Binding { scope, name, version }, &sealed) {
            Ok(current) => bool::from(current.as_slice().ct_eq(value)),
            Err(_) => false,
        })
    }

    /// Values of `names` read in one statement (one snapshot): the current
    /// version of each, `None` where unset.
    async fn read_current(
        &self,
        scope: &Scope,
        names: &[&str],
    ) -> Result<Vec<Option<VarValue>>, StoreError> {
        let client = self.client().await?;
        let statement = prepared(
            &client,
            "SELECT r.name, r.current_version, v.sealed
             FROM platos_vars r
             LEFT JOIN platos_values v
               ON v.scope = r.scope AND v.name = r.name AND v.version = r.current_version
             WHERE r.scope = $1 AND r.name = ANY($2) AND r.current_version IS NOT NULL",
        )
        .await?;
        let rows =
            client.query(&statement, &[&scope.to_string(), &names]).await.map_err(backend)?;
        let mut found: BTreeMap<String, VarValue> = BTreeMap::new();
        for row in rows {
            let name: String = row.get(0);
            let version = from_sql_int("version", row.get(1))?;
            let Some(sealed) = row.get::<_, Option<Vec<u8>>>(2) else {
                return Err(StoreError::Corrupt(format!(
                    "{name} in scope {scope}: the current version has no value"
                )));
            };
            let value = self.open_value(scope, &name, version, &sealed)?;
            found.insert(name, value);
        }
        Ok(names.iter().map(|name| found.get(*name).cloned()).collect())
    }
}

#[async_trait]
impl SecretStore for PostgresStore {
    async fn set_var(
        &self,
        scope: &Scope,
        name: &str,
        value: &SecretString,
        source: VarSource,
    ) -> Result<VarInfo, StoreError> {
        rules::check_value(name, value)?;
        let links = self.links(name);
        let now = self.now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let info = self
            .tx_set(&tx, scope, name, value.expose_secret().as_bytes(), source, now, &links)
            .await?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(scope = %scope, name, version = info.version, %source, "variable set");
        Ok(info)
    }

    async fn unset_var(
        &self,
        scope: &Scope,
        name: &str,
        source: VarSource,
    ) -> Result<bool, StoreError> {
        check_name(name)?;
        let now = self.now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let unset = self.tx_unset(&tx, scope, name, source, now).await?;
        tx.commit().await.map_err(backend)?;
        if unset {
            tracing::info!(scope = %scope, name, %source, "variable unset");
        }
        Ok(unset)
    }

    async fn list_vars(&self, scope: &Scope) -> Result<Vec<VarInfo>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {VAR_COLUMNS} FROM platos_vars
                     WHERE scope = $1 AND current_version IS NOT NULL ORDER BY name"
                ),
                &[&scope.to_string()],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let var = VarRow::from_row(row)?;
                Ok(VarInfo {
                    name: row.get("name"),
                    version: var.current.unwrap_or(var.last_version),
                    updated_at: var.updated_at,
                    source: var.source,
                })
            })
            .collect()
    }

    async fn get_var(&self, scope: &Scope, name: &str) -> Result<Option<VarValue>, StoreError> {
        let value = self.read_current(scope, &[name]).await?.pop().flatten();
        if let Some(value) = &value {
            tracing::trace!(scope = %scope, name, version = value.version, "variable read");
        }
        Ok(value)
    }

    async fn get_vars(
        &self,
        scope: &Scope,
        names: &[&str],
    ) -> Result<Vec<Option<VarValue>>, StoreError> {
        self.read_current(scope, names).await
    }

    async fn get_var_version(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Option<VarValue>, StoreError> {
        let client = self.client().await?;
        let statement = prepared(
            &client,
            "SELECT v.sealed FROM platos_values v
             JOIN platos_vars r ON r.scope = v.scope AND r.name = v.name
             WHERE v.scope = $1 AND v.name = $2 AND v.version = $3
               AND (r.current_version = v.version OR v.retired_until > $4)",
        )
        .await?;
        let row = client
            .query_opt(
                &statement,
                &[&scope.to_string(), &name, &sql_int(version), &sql_int(self.now())],
            )
            .await
            .map_err(backend)?;
        row.map(|row| self.open_value(scope, name, version, &row.get::<_, Vec<u8>>(0))).transpose()
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let now = sql_int(self.now());
        let purged = client
            .execute(
                "DELETE FROM platos_values WHERE retired_until IS NOT NULL AND retired_until <= $1",
                &[&now],
            )
            .await
            .map_err(backend)?;
        let releases = client
            .execute("DELETE FROM platos_lease_releases WHERE expires_at <= $1", &[&now])
            .await
            .map_err(backend)?;
        // Expired reservations count no more; a late settle still counts
        // its cost.
        let reservations = client
            .execute("DELETE FROM platos_reservations WHERE expires_at <= $1", &[&now])
            .await
            .map_err(backend)?;
        if purged + releases + reservations > 0 {
            tracing::info!(
                purged,
                releases,
                reservations,
                "expired value versions, lease releases and reservations purged"
            );
        }
        let claims = client
            .execute("DELETE FROM platos_probe_claims WHERE slot_end <= $1", &[&now])
            .await
            .map_err(backend)?;
        Ok(usize::try_from(purged + releases + reservations + claims).unwrap_or(usize::MAX))
    }

    async fn claim_probe(
        &self,
        tag: &ProbeTag,
        slot: ProbeSlot,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<ProbeClaim, StoreError> {
        let client = self.client().await?;
        let (tag, number) = (tag.as_slice(), sql_int(slot.number));
        // One statement takes a new or an expired claim; the row lock of
        // the conflict makes concurrent claimants wait for each other.
        let claimed = client
            .execute(
                "INSERT INTO platos_probe_claims AS c (tag, slot, slot_end, until_ms, done)
                 VALUES ($1, $2, $3, $4, false)
                 ON CONFLICT (tag, slot) DO UPDATE SET until_ms = excluded.until_ms
                 WHERE NOT c.done AND c.until_ms <= $5",
                &[&tag, &number, &sql_int(slot.ends_at), &sql_int(until), &sql_int(now)],
            )
            .await
            .map_err(backend)?;
        if claimed == 1 {
            return Ok(ProbeClaim::Claimed);
        }
        let row = client
            .query_opt(
                "SELECT until_ms, done FROM platos_probe_claims WHERE tag = $1 AND slot = $2",
                &[&tag, &number],
            )
            .await
            .map_err(backend)?;
        Ok(match row {
            Some(row) if row.get::<_, bool>(1) => ProbeClaim::Done,
            Some(row) => ProbeClaim::Held { until: from_sql_int("claim deadline", row.get(0))? },
            // Purged in between (its slot ended): nothing holds it now.
            None => ProbeClaim::Held { until: now },
        })
    }

    async fn probe_done(&self, tag: &ProbeTag, slot: ProbeSlot) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO platos_probe_claims (tag, slot, slot_end, until_ms, done)
                 VALUES ($1, $2, $3, 0, true)
                 ON CONFLICT (tag, slot) DO UPDATE SET done = true",
                &[&tag.as_slice(), &sql_int(slot.number), &sql_int(slot.ends_at)],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release_lease(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let recorded = self
            .client()
            .await?
            .execute(
                "INSERT INTO platos_lease_releases (expires_at, lease_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&sql_int(expires_at), &id.as_slice()],
            )
            .await
            .map_err(backend)?;
        Ok(recorded == 1)
    }

    async fn lease_released(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = prepared(
            &client,
            "SELECT 1 FROM platos_lease_releases WHERE expires_at = $1 AND lease_id = $2",
        )
        .await?;
        let row = client
            .query_opt(&statement, &[&sql_int(expires_at), &id.as_slice()])
            .await
            .map_err(backend)?;
        Ok(row.is_some())
    }

    async fn set_budget(
        &self,
        target: &BudgetTarget,
        budget: Option<Budget>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let key = target.storage_key();
        match budget {
            Some(budget) => {
                let limit = sql_int(budget.limit.0);
                client
                    .execute(
                        "INSERT INTO platos_budgets (target, limit_micro_usd, period)
                         VALUES ($1, $2, $3)
                         ON CONFLICT (target) DO UPDATE
                         SET limit_micro_usd = excluded.limit_micro_usd, period = excluded.period",
                        &[&key, &limit, &budget.period.as_str()],
                    )
                    .await
            }
            None => client.execute("DELETE FROM platos_budgets WHERE target = $1", &[&key]).await,
        }
        .map_err(backend)?;
        tracing::info!(budget_target = %target, ?budget, "budget set");
        Ok(())
    }

    async fn budget_status(
        &self,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError> {
        let client = self.client().await?;
        self.status_in(&client, target, now).await
    }

    async fn reserve(
        &self,
        reservation: &Reservation,
        now: UnixMillis,
    ) -> Result<Result<(), BudgetExceeded>, StoreError> {
        let targets = reservation.key.counted_in();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        self.lock_targets(&tx, &targets).await?;
        for target in &targets {
            let status = self.status_in(&tx, target, now).await?;
            if let Some(exceeded) = status.refusal(target, reservation.amount) {
                // Nothing was written: the rollback only releases the locks.
                tx.rollback().await.map_err(backend)?;
                return Ok(Err(exceeded));
            }
        }
        let keys: Vec<String> = targets.iter().map(BudgetTarget::storage_key).collect();
        tx.execute(
            "INSERT INTO platos_reservations (id, targets, amount, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET targets = excluded.targets,
                 amount = excluded.amount, expires_at = excluded.expires_at",
            &[
                &reservation.id.as_slice(),
                &keys,
                &sql_int(reservation.amount.0),
                &sql_int(reservation.expires_at),
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Ok(()))
    }

    async fn settle(
        &self,
        id: &[u8; RESERVATION_ID_LEN],
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.spend_and_remove(Some(id), key, cost, now).await
    }

    async fn cancel_reservation(&self, id: &[u8; RESERVATION_ID_LEN]) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute("DELETE FROM platos_reservations WHERE id = $1", &[&id.as_slice()])
            .await
            .map_err(backend)?;
        Ok(removed > 0)
    }

    async fn record_spend(
        &self,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.spend_and_remove(None, key, cost, now).await.map(drop)
    }

    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn import_self_host(
        &self,
        scope: &Scope,
        vars: &[(String, SecretString)],
    ) -> Result<ImportReport, StoreError> {
        let mut wanted: BTreeMap<&str, &SecretString> = BTreeMap::new();
        for (name, value) in vars {
            rules::check_value(name, value)?;
            wanted.insert(name, value);
        }
        let scope_id = scope.to_string();
        let now = self.now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // One import of a scope at a time, across every host.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('platos-import:' || $1))", &[&scope_id])
            .await
            .map_err(backend)?;
        let mut report = ImportReport::default();
        for (name, value) in &wanted {
            let plaintext = value.expose_secret().as_bytes();
            let row = self.lock_or_create_var(&tx, &scope_id, name).await?;
            if row.source == VarSource::SelfHost
                && self.tx_is_current(&tx, scope, name, &row, plaintext).await?
            {
                report.unchanged.push((*name).to_owned());
                continue;
            }
            let links = self.links(name);
            self.tx_set(&tx, scope, name, plaintext, VarSource::SelfHost, now, &links).await?;
            report.set.push((*name).to_owned());
        }
        let stale = tx
            .query(
                "SELECT name FROM platos_vars
                 WHERE scope = $1 AND source = 'self-host' AND current_version IS NOT NULL
                 ORDER BY name",
                &[&scope_id],
            )
            .await
            .map_err(backend)?;
        for row in stale {
            let name: String = row.get(0);
            if !wanted.contains_key(name.as_str())
                && self.tx_unset(&tx, scope, &name, VarSource::SelfHost, now).await?
            {
                report.removed.push(name);
            }
        }
        tx.commit().await.map_err(backend)?;
        tracing::debug!(
            scope = %scope,
            set = %report.set.join(","),
            removed = %report.removed.join(","),
            unchanged = report.unchanged.len(),
            "self-host variables imported"
        );
        Ok(report)
    }

    async fn list_provider_keys(&self, scope: &Scope) -> Result<Vec<ProviderKey>, StoreError> {
        let client = self.client().await?;
        let statement = prepared(
            &client,
            &format!(
                "SELECT {KEY_COLUMNS} FROM platos_provider_keys WHERE scope = $1
                 ORDER BY provider, variant, env_var"
            ),
        )
        .await?;
        let rows = client.query(&statement, &[&scope.to_string()]).await.map_err(backend)?;
        rows.iter().map(|row| key_row(row).map(|(_, key)| key)).collect()
    }

    async fn list_all_provider_keys(&self) -> Result<Vec<(Scope, ProviderKey)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM platos_provider_keys ORDER BY scope, provider, env_var"
                ),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(key_row).collect()
    }

    async fn update_provider_key(
        &self,
        scope: &Scope,
        provider: &str,
        env_var: &str,
        update: KeyUpdate,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let key = "WHERE scope = $1 AND provider = $2 AND env_var = $3";
        let scope_id = scope.to_string();
        let updated = match &update {
            KeyUpdate::Used { at } => {
                let sql = format!(
                    "UPDATE platos_provider_keys
                     SET last_used_at = greatest(coalesce(last_used_at, $4), $4) {key}"
                );
                client.execute(&sql, &[&scope_id, &provider, &env_var, &sql_int(*at)]).await
            }
            KeyUpdate::Health(record) => {
                let sql = format!("UPDATE platos_provider_keys SET health = $4 {key}");
                client.execute(&sql, &[&scope_id, &provider, &env_var, &health_json(record)]).await
            }
            KeyUpdate::Status(status) => {
                let sql = format!("UPDATE platos_provider_keys SET status = $4 {key}");
                client.execute(&sql, &[&scope_id, &provider, &env_var, &status.to_string()]).await
            }
            KeyUpdate::Label(label) => {
                let sql = format!("UPDATE platos_provider_keys SET label = $4 {key}");
                client.execute(&sql, &[&scope_id, &provider, &env_var, label]).await
            }
            KeyUpdate::ChosenDefault(at) => {
                let sql = format!("UPDATE platos_provider_keys SET chosen_default_at = $4 {key}");
                client.execute(&sql, &[&scope_id, &provider, &env_var, &at.map(sql_int)]).await
            }
        }
        .map_err(backend)?;
        Ok(updated > 0)
    }

    async fn set_provider_vars(&self, vars: ProviderVars) -> Result<SyncReport, StoreError> {
        *self.provider_vars.write().unwrap_or_else(PoisonError::into_inner) = vars.clone();
        let now = self.now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Every variable row is held (shared) until the end: no set or unset
        // slips between the decisions below and their writes.
        let var_rows = tx
            .query(
                "SELECT scope, name, current_version IS NOT NULL FROM platos_vars FOR SHARE",
                &[],
            )
            .await
            .map_err(backend)?;
        let mut set_vars: BTreeSet<(String, String)> = BTreeSet::new();
        for row in &var_rows {
            if row.get::<_, bool>(2) {
                set_vars.insert((row.get(0), row.get(1)));
            }
        }
        let key_rows = tx
            .query(&format!("SELECT {KEY_COLUMNS} FROM platos_provider_keys FOR UPDATE"), &[])
            .await
            .map_err(backend)?;
        let rows: Vec<(Scope, ProviderKey)> =
            key_rows.iter().map(key_row).collect::<Result<_, _>>()?;
        let mut report = SyncReport::default();
        for (scope, name) in &set_vars {
            for link in vars.links(name) {
                // The row this variant had under a former key variable.
                let predecessor = rows.iter().find(|(row_scope, row)| {
                    row_scope.to_string() == *scope
                        && row.provider == link.provider
                        && row.variant == link.variant
                        && !rules::keeps_key_row(&vars, &row.provider, &row.env_var, true)
                });
                let row = carried_row(
                    rules::new_key_row(&link, name, now),
                    predecessor.map(|(_, row)| row),
                );
                if self.link(&tx, scope, &row).await? {
                    report.linked += 1;
                }
            }
        }
        for (row_scope, row) in rows {
            let (scope, provider, env_var) = (row_scope.to_string(), row.provider, row.env_var);
            let set = set_vars.contains(&(scope.clone(), env_var.clone()));
            if rules::keeps_key_row(&vars, &provider, &env_var, set) {
                continue;
            }
            report.unlinked += usize::try_from(
                tx.execute(
                    "DELETE FROM platos_provider_keys
                     WHERE scope = $1 AND provider = $2 AND env_var = $3",
                    &[&scope, &provider, &env_var],
                )
                .await
                .map_err(backend)?,
            )
            .unwrap_or(0);
        }
        tx.commit().await.map_err(backend)?;
        if report.linked + report.unlinked > 0 {
            tracing::info!(
                linked = report.linked,
                unlinked = report.unlinked,
                "provider keys re-linked"
            );
        }
        Ok(report)
    }

    async fn rewrap(
        &self,
        progress: &mut (dyn for<'p> FnMut(&'p RewrapProgress) + Send),
    ) -> Result<RewrapReport, StoreError> {
        let current = self.keyring.current_id();
        let client = self.client().await?;
        let mut report = RewrapReport::default();
        let total: i64 = client
            .query_one("SELECT count(*) FROM platos_values", &[])
            .await
            .map_err(backend)?
            .get(0);
        report.progress.total = from_sql_int("count", total)?;
        progress(&report.progress);
        let mut after: (String, String, i64) = (String::new(), String::new(), -1);
        loop {
            let rows = client
                .query(
                    "SELECT scope, name, version, sealed FROM platos_values
                     WHERE (scope, name, version) > ($1, $2, $3)
                     ORDER BY scope, name, version LIMIT $4",
                    &[&after.0, &after.1, &after.2, &REWRAP_BATCH],
                )
                .await
                .map_err(backend)?;
            let Some(last) = rows.last() else { break };
            after = (last.get(0), last.get(1), last.get(2));
            for row in &rows {
                let sealed: Vec<u8> = row.get(3);
                let counts = &mut report.progress;
                counts.done += 1;
                if sealed_key_id(&sealed).is_ok_and(|id| id == current) {
                    counts.skipped += 1;
                    continue;
                }
                let scope_id: String = row.get(0);
                let scope = parse_scope(&scope_id)?;
                let name: String = row.get(1);
                let version_sql: i64 = row.get(2);
                let version = from_sql_int("version", version_sql)?;
                let binding = Binding { scope: &scope, name: &name, version };
                let resealed = self
                    .keyring
                    .open(&binding, &sealed)
                    .and_then(|plaintext| self.keyring.seal(&binding, &plaintext));
                match resealed {
                    Ok(resealed) => {
                        // Only if unchanged meanwhile: a purged version stays purged.
                        let swapped = client
                            .execute(
                                "UPDATE platos_values SET sealed = $5
                                 WHERE scope = $1 AND name = $2 AND version = $3 AND sealed = $4",
                                &[&scope_id, &name, &version_sql, &sealed, &resealed],
                            )
                            .await
                            .map_err(backend)?;
                        if swapped > 0 {
                            counts.rewrapped += 1;
                        } else {
                            counts.skipped += 1;
                        }
                    }
                    Err(error) => {
                        counts.failed += 1;
                        tracing::warn!(scope = %scope, name, version, %error, "cannot rewrap a value");
                        report.failures.push(RewrapFailure {
                            scope: scope_id,
                            name,
                            version,
                            error: error.to_string(),
                        });
                    }
                }
            }
            progress(&report.progress);
        }
        // The store is now under the current key: so is its key check.
        self.write_key_check(&client, current).await?;
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

    async fn key_usage(&self) -> Result<BTreeMap<KeyId, u64>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT scope, name, version, sealed FROM platos_values", &[])
            .await
            .map_err(backend)?;
        let mut usage = BTreeMap::new();
        for row in rows {
            let id =
                sealed_key_id(&row.get::<_, Vec<u8>>(3)).map_err(|source| StoreError::Crypto {
                    scope: row.get(0),
                    name: row.get(1),
                    version: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                    source,
                })?;
            *usage.entry(id).or_insert(0) += 1;
        }
        Ok(usage)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is durable once its transaction committed.
        Ok(())
    }

    async fn export_sealed(&self) -> Result<StoreDump, StoreError> {
        let mut client = self.client().await?;
        // One snapshot of every table.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let mut dump = StoreDump {
            key_check: tx
                .query_opt("SELECT value FROM platos_meta WHERE name = $1", &[&KEY_CHECK])
                .await
                .map_err(backend)?
                .map(|row| row.get(0)),
            ..StoreDump::default()
        };
        let value_rows = tx
            .query(
                "SELECT scope, name, version, sealed, retired_until FROM platos_values
                 ORDER BY scope, name, version",
                &[],
            )
            .await
            .map_err(backend)?;
        let mut values: BTreeMap<(String, String), Vec<SealedValue>> = BTreeMap::new();
        for row in &value_rows {
            let retired_until: Option<i64> = row.get(4);
            values.entry((row.get(0), row.get(1))).or_default().push(SealedValue {
                version: from_sql_int("version", row.get(2))?,
                sealed: row.get(3),
                retired_until: retired_until.map(|at| from_sql_int("expiry", at)).transpose()?,
            });
        }
        drop(value_rows);
        let var_rows = tx
            .query(&format!("SELECT {VAR_COLUMNS} FROM platos_vars ORDER BY scope, name"), &[])
            .await
            .map_err(backend)?;
        for row in &var_rows {
            let (scope, name): (String, String) = (row.get("scope"), row.get("name"));
            let var = VarRow::from_row(row)?;
            dump.vars.push(SealedVar {
                scope: parse_scope(&scope)?,
                values: values.remove(&(scope, name.clone())).unwrap_or_default(),
                name,
                current: var.current,
                last_version: var.last_version,
                updated_at: var.updated_at,
                source: var.source,
            });
        }
        dump.provider_keys = tx
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM platos_provider_keys ORDER BY scope, provider, env_var"
                ),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(key_row)
            .collect::<Result<_, _>>()?;
        for row in tx
            .query("SELECT lease_id, expires_at FROM platos_lease_releases ORDER BY 2, 1", &[])
            .await
            .map_err(backend)?
        {
            let id: Vec<u8> = row.get(0);
            let id = id
                .try_into()
                .map_err(|_| StoreError::Corrupt("malformed lease-release id".to_owned()))?;
            dump.lease_releases.push((id, from_sql_int("lease end", row.get(1))?));
        }
        for row in tx
            .query("SELECT target, limit_micro_usd, period FROM platos_budgets ORDER BY 1", &[])
            .await
            .map_err(backend)?
        {
            let period: String = row.get(2);
            dump.budgets.push(BudgetRow {
                target: row.get(0),
                budget: Budget {
                    limit: MicroUsd(from_sql_int("budget limit", row.get(1))?),
                    period: period.parse().map_err(|_| {
                        StoreError::Corrupt(format!("unknown budget period `{period}`"))
                    })?,
                },
            });
        }
        for row in tx
            .query("SELECT target, window_name, micro_usd FROM platos_spend ORDER BY 1, 2", &[])
            .await
            .map_err(backend)?
        {
            dump.spend.push(SpendRow {
                target: row.get(0),
                window: row.get(1),
                micro_usd: from_sql_int("spend", row.get(2))?,
            });
        }
        for row in tx
            .query(
                "SELECT id, targets, amount, expires_at FROM platos_reservations ORDER BY 1",
                &[],
            )
            .await
            .map_err(backend)?
        {
            let id: Vec<u8> = row.get(0);
            dump.reservations.push(ReservationRow {
                id: id
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("malformed reservation id".to_owned()))?,
                targets: row.get(1),
                amount: from_sql_int("reserved amount", row.get(2))?,
                expires_at: from_sql_int("reservation end", row.get(3))?,
            });
        }
        tx.commit().await.map_err(backend)?;
        // Every value has its variable's row: the foreign key sees to it.
        Ok(dump)
    }

    async fn import_sealed(&self, dump: &StoreDump) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        // All or nothing.
        let tx = client.transaction().await.map_err(backend)?;
        for var in &dump.vars {
            let scope = var.scope.to_string();
            tx.execute(
                "INSERT INTO platos_vars (scope, name, current_version, last_version, updated_at, source)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (scope, name) DO UPDATE SET current_version = excluded.current_version,
                     last_version = excluded.last_version, updated_at = excluded.updated_at,
                     source = excluded.source",
                &[
                    &scope,
                    &var.name,
                    &var.current.map(sql_int),
                    &sql_int(var.last_version),
                    &sql_int(var.updated_at),
                    &source_text(var.source),
                ],
            )
            .await
            .map_err(backend)?;
            for value in &var.values {
                tx.execute(
                    "INSERT INTO platos_values (scope, name, version, sealed, retired_until)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (scope, name, version) DO UPDATE SET sealed = excluded.sealed,
                         retired_until = excluded.retired_until",
                    &[
                        &scope,
                        &var.name,
                        &sql_int(value.version),
                        &value.sealed,
                        &value.retired_until.map(sql_int),
                    ],
                )
                .await
                .map_err(backend)?;
            }
        }
        for (scope, row) in &dump.provider_keys {
            let scope = scope.to_string();
            tx.execute(
                "DELETE FROM platos_provider_keys WHERE scope = $1 AND provider = $2 AND env_var = $3",
                &[&scope, &row.provider, &row.env_var],
            )
            .await
            .map_err(backend)?;
            self.link(&tx, &scope, row).await?;
        }
        for (id, expires_at) in &dump.lease_releases {
            tx.execute(
                "INSERT INTO platos_lease_releases (expires_at, lease_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&sql_int(*expires_at), &id.as_slice()],
            )
            .await
            .map_err(backend)?;
        }
        for row in &dump.budgets {
            tx.execute(
                "INSERT INTO platos_budgets (target, limit_micro_usd, period) VALUES ($1, $2, $3)
                 ON CONFLICT (target) DO UPDATE SET limit_micro_usd = excluded.limit_micro_usd,
                     period = excluded.period",
                &[&row.target, &sql_int(row.budget.limit.0), &row.budget.period.as_str()],
            )
            .await
            .map_err(backend)?;
        }
        for row in &dump.spend {
            tx.execute(
                "INSERT INTO platos_spend (target, window_name, micro_usd) VALUES ($1, $2, $3)
                 ON CONFLICT (target, window_name) DO UPDATE SET micro_usd = excluded.micro_usd",
                &[&row.target, &row.window, &sql_int(row.micro_usd)],
            )
            .await
            .map_err(backend)?;
        }
        for row in &dump.reservations {
            tx.execute(
                "INSERT INTO platos_reservations (id, targets, amount, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET targets = excluded.targets,
                     amount = excluded.amount, expires_at = excluded.expires_at",
                &[&row.id.as_slice(), &row.targets, &sql_int(row.amount), &sql_int(row.expires_at)],
            )
            .await
            .map_err(backend)?;
        }
        if let Some(record) = &dump.key_check {
            tx.execute(
                "INSERT INTO platos_meta (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&KEY_CHECK, record],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        tracing::info!(location = %self.location, copied = %dump.counts(), "sealed records imported");
        Ok(())
    }
}

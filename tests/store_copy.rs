//! `platos-host store copy`, run as an operator runs it: sled to PostgreSQL
//! and back, every kind of record kept and its values still sealed, and
//! the API tokens (each still verifies on the other side) and the audit
//! trail with them; a destination that holds anything, a wrong master key
//! and a password on the command line refused; no value in the command's
//! output.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use platos_host::api::auth::{Grant, Pins, TokenStore};
use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::provider::MicroUsd;
use platos_host::scope::Scope;
use platos_host::store::audit::{ActorKind, MAX_AUDIT_PAGE};
use platos_host::store::{
    AuditAction, AuditActor, AuditQuery, AuditRecord, AuditTrail, FileAudit, StoreBackend,
};
use platos_host::store::{
    Blocking, Budget, BudgetTarget, HealthRecord, HealthVerdict, KeyStatus, KeyUpdate,
    LEASE_ID_LEN, Period, PostgresStore, ProviderVars, RESERVATION_ID_LEN, Reservation,
    SecretStore, SledStore, StoreDump, StoreOptions, VarSource, now_millis,
};
use secrecy::{ExposeSecret, SecretString};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210";
const CANARY_1: &str = "sk-copy-canary-first-93b1";
const CANARY_2: &str = "sk-copy-canary-second-4c7a";
const CANARY_3: &str = "sk-copy-canary-variant-e05d";
const LEASE: [u8; LEASE_ID_LEN] = [0x5a; LEASE_ID_LEN];
const RESERVATION: [u8; RESERVATION_ID_LEN] = [0xa5; RESERVATION_ID_LEN];
/// Far in the future: live releases and reservations.
const LATER: u64 = 4_102_444_800_000;

fn keyring(key: &str) -> Keyring {
    Keyring::new(EncryptionKey::parse(ENCRYPTION_KEY_VAR, key).unwrap(), None)
}

fn options() -> StoreOptions {
    StoreOptions {
        provider_vars: ProviderVars::new().with("OPENAI_API_KEY", "openai"),
        ..StoreOptions::default()
    }
}

fn scope() -> Scope {
    "acme/shop/prod".parse().unwrap()
}

fn key_target() -> BudgetTarget {
    BudgetTarget::key(scope(), "openai", "OPENAI_API_KEY_2")
}

fn sled(data_dir: &Path) -> Arc<dyn SecretStore> {
    Arc::new(Blocking::new(SledStore::open_in_data_dir(data_dir, keyring(KEY), options()).unwrap()))
}

async fn postgres(url: &str) -> Arc<dyn SecretStore> {
    Arc::new(PostgresStore::open(url, keyring(KEY), options()).await.unwrap())
}

/// A store holding every kind of record: a variable written twice (its
/// first version in its grace period), a second key variant, an unset
/// variable, provider-key rows with a label, status, default choice, last
/// use and health, a lease release, budgets, spend and a reservation.
async fn fill(store: &dyn SecretStore) {
    let (scope, secret) = (scope(), |text: &str| SecretString::from(text.to_owned()));
    store.set_var(&scope, "OPENAI_API_KEY", &secret(CANARY_1), VarSource::Api).await.unwrap();
    store.set_var(&scope, "OPENAI_API_KEY", &secret(CANARY_2), VarSource::Cli).await.unwrap();
    store.set_var(&scope, "OPENAI_API_KEY_2", &secret(CANARY_3), VarSource::Api).await.unwrap();
    store.set_var(&scope, "RETIRED", &secret(CANARY_1), VarSource::Api).await.unwrap();
    store.unset_var(&scope, "RETIRED", VarSource::Api).await.unwrap();
    let update = |env_var: &'static str, update: KeyUpdate| {
        let scope = scope.clone();
        async move {
            assert!(store.update_provider_key(&scope, "openai", env_var, update).await.unwrap())
        }
    };
    update("OPENAI_API_KEY_2", KeyUpdate::Label("backup".to_owned())).await;
    update("OPENAI_API_KEY_2", KeyUpdate::ChosenDefault(Some(1_700_000_000_000))).await;
    update("OPENAI_API_KEY", KeyUpdate::Status(KeyStatus::Disabled)).await;
    update("OPENAI_API_KEY_2", KeyUpdate::Used { at: 1_700_000_100_000 }).await;
    let health = HealthRecord {
        verdict: HealthVerdict::QuotaLimited,
        message: "rate limited".to_owned(),
        checked_at: 1_700_000_200_000,
        latency_ms: 42,
        models: vec!["gpt-4o-mini".to_owned()],
    };
    update("OPENAI_API_KEY_2", KeyUpdate::Health(health)).await;
    store.flush().await.unwrap();
    assert!(store.release_lease(&LEASE, LATER).await.unwrap());
    let budget = Budget { limit: MicroUsd(9_000_000), period: Period::Month };
    store.set_budget(&key_target(), Some(budget)).await.unwrap();
    let scope_budget = Budget { limit: MicroUsd(20_000_000), period: Period::Total };
    store.set_budget(&BudgetTarget::Scope(scope.clone()), Some(scope_budget)).await.unwrap();
    store.record_spend(&key_target(), MicroUsd(1_500), now_millis()).await.unwrap();
    let reservation = Reservation {
        id: RESERVATION,
        key: key_target(),
        amount: MicroUsd(700),
        expires_at: LATER,
    };
    store.reserve(&reservation, now_millis()).await.unwrap().unwrap();
}

/// What `fill` wrote, read back through the store's own API.
async fn assert_holds_what_fill_wrote(store: &dyn SecretStore) {
    let scope = scope();
    let current = store.get_var(&scope, "OPENAI_API_KEY").await.unwrap().unwrap();
    assert_eq!((current.version, current.value.expose_secret()), (2, CANARY_2));
    let first = store.get_var_version(&scope, "OPENAI_API_KEY", 1).await.unwrap().unwrap();
    assert_eq!(first.value.expose_secret(), CANARY_1);
    let variant = store.get_var(&scope, "OPENAI_API_KEY_2").await.unwrap().unwrap();
    assert_eq!(variant.value.expose_secret(), CANARY_3);
    assert!(store.get_var(&scope, "RETIRED").await.unwrap().is_none());
    let retired = store.get_var_version(&scope, "RETIRED", 1).await.unwrap().unwrap();
    assert_eq!(retired.value.expose_secret(), CANARY_1);
    let names: Vec<_> = store.list_vars(&scope).await.unwrap();
    let sources: Vec<_> = names.iter().map(|var| (var.name.as_str(), var.source)).collect();
    assert_eq!(sources, [("OPENAI_API_KEY", VarSource::Cli), ("OPENAI_API_KEY_2", VarSource::Api)]);
    let rows = store.list_provider_keys(&scope).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].status, KeyStatus::Disabled);
    let backup = &rows[1];
    assert_eq!((backup.label.as_str(), backup.variant), ("backup", 2));
    assert_eq!(backup.last_used_at, Some(1_700_000_100_000));
    assert_eq!(backup.health.as_ref().unwrap().verdict, HealthVerdict::QuotaLimited);
    let default = store.default_provider_key(&scope, "openai").await.unwrap().unwrap();
    assert_eq!(default.env_var, "OPENAI_API_KEY_2");
    assert!(store.lease_released(&LEASE, LATER).await.unwrap());
    let status = store.budget_status(&key_target(), now_millis()).await.unwrap();
    assert_eq!(status.budget.unwrap().limit, MicroUsd(9_000_000));
    assert_eq!((status.spend.month, status.reserved), (MicroUsd(1_500), MicroUsd(700)));
    let scope_status =
        store.budget_status(&BudgetTarget::Scope(scope.clone()), now_millis()).await.unwrap();
    assert_eq!(scope_status.spend.total, MicroUsd(1_500));
}

async fn dump(store: &dyn SecretStore) -> StoreDump {
    let mut dump = store.export_sealed().await.unwrap();
    dump.normalize();
    dump
}

/// Runs `platos-host store copy ARGS` on `data_dir` under `key`, with `envs`.
fn copy(data_dir: &Path, key: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_platos-host"));
    command
        .args(["store", "copy"])
        .args(args)
        .env("PLATOS_DATA_DIR", data_dir)
        .env(ENCRYPTION_KEY_VAR, key)
        .env("PLATOS_LOG", "debug")
        .env_remove("PLATOS_STORE")
        .env_remove("PLATOS_STORE_FROM")
        .env_remove("PLATOS_STORE_TO")
        .env_remove("PLATOS_PLUGIN_DIR");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_no_canary(output: &Output) {
    for canary in [CANARY_1, CANARY_2, CANARY_3] {
        support::assert_no_secret(&output.stdout, canary, "store copy's stdout");
        support::assert_no_secret(&output.stderr, canary, "store copy's stderr");
    }
}

const SUMMARY: &str = "copied: 3 variables (4 versions), 2 provider keys, 1 lease releases, 2 budgets, 6 spend counters, 1 reservations; verified";

/// Whether `token` verifies against the tokens of `backend` (with
/// `data_dir` for sled), and the labels of every token there, sorted.
async fn tokens_of(backend: &StoreBackend, data_dir: &Path, token: &str) -> (bool, Vec<String>) {
    let tokens = TokenStore::new(backend.open_tokens(data_dir).await.unwrap());
    let verified = tokens.verify(token).await.unwrap().is_some();
    // Sorted: tokens made in the same millisecond list in their ids' order.
    let mut labels: Vec<String> =
        tokens.list().await.unwrap().into_iter().map(|token| token.label).collect();
    labels.sort();
    (verified, labels)
}

/// An audit trail of more than one page ([`MAX_AUDIT_PAGE`]), in order.
fn audit_records() -> Vec<AuditRecord> {
    (0..1_500u64)
        .map(|n| AuditRecord {
            scope: (n % 2 == 0).then(|| scope().to_string()),
            provider: Some("openai".to_owned()),
            variable: Some("OPENAI_API_KEY_2".to_owned()),
            variant: Some(2),
            version: Some(1),
            ..AuditRecord::new(
                AuditAction::Resolve,
                AuditActor::of_kind(ActorKind::Cli),
                format!("{:016x}", n * 17),
                1_000 + n / 4,
            )
        })
        .collect()
}

/// Every audit record of `backend` (with `data_dir` for sled), in order.
async fn audit_of(backend: &StoreBackend, data_dir: &Path) -> Vec<AuditRecord> {
    let trail = backend.open_audit(data_dir).await.unwrap();
    let mut query = AuditQuery { limit: MAX_AUDIT_PAGE, ..AuditQuery::default() };
    let mut all = Vec::new();
    loop {
        let page = trail.query(&query).await.unwrap();
        let Some(last) = page.last() else { return all };
        query.after = Some((last.at, last.id.clone()));
        all.extend(page);
    }
}

#[tokio::test]
async fn sled_to_postgres_and_back_keeps_every_record_sealed_as_it_was() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let original = {
        let store = sled(first.path());
        fill(store.as_ref()).await;
        dump(store.as_ref()).await
    };
    let agent = {
        let tokens = TokenStore::open_in_data_dir(first.path()).unwrap();
        tokens.create(&Grant::Operator, "copied operator", Pins::new()).await.unwrap();
        let grant = Grant::Agent(scope());
        let pins = Pins::from([("openai".to_owned(), "OPENAI_API_KEY_2".to_owned())]);
        tokens.create(&grant, "copied agent", pins).await.unwrap().token.expose_secret().to_owned()
    };
    let labels = ["copied agent", "copied operator"].map(str::to_owned).to_vec();
    let trail = audit_records();
    FileAudit::open_in_data_dir(first.path()).unwrap().append(&trail, true).await.unwrap();
    let url = support::postgres_database().await;
    let shared = StoreBackend::Postgres(url.clone());

    // --to from PLATOS_STORE, as the other commands take the store.
    let output = copy(first.path(), KEY, &["--from", "sled"], &[("PLATOS_STORE", &url)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains(SUMMARY), "{stdout}");
    assert!(stdout.contains("copied: 2 API tokens (0 already there), digests only"), "{stdout}");
    assert_no_canary(&output);
    support::assert_no_secret(&output.stdout, &agent, "store copy's stdout");
    support::assert_no_secret(&output.stderr, &agent, "store copy's stderr");
    let database = postgres(&url).await;
    assert_eq!(dump(database.as_ref()).await, original);
    assert_holds_what_fill_wrote(database.as_ref()).await;
    drop(database);
    assert_eq!(tokens_of(&shared, first.path(), &agent).await, (true, labels.clone()));
    assert!(stdout.contains("copied: 1500 audit records"), "{stdout}");
    assert_eq!(audit_of(&shared, first.path()).await, trail);

    // And back, into a new data directory: --from from PLATOS_STORE_FROM.
    let output = copy(second.path(), KEY, &["--to", "sled"], &[("PLATOS_STORE_FROM", &url)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains(SUMMARY), "{}", text(&output.stdout));
    assert_no_canary(&output);
    let back = sled(second.path());
    // The very same sealed records, key check included: nothing re-encrypted.
    assert_eq!(dump(back.as_ref()).await, original);
    assert_holds_what_fill_wrote(back.as_ref()).await;
    assert_eq!(tokens_of(&StoreBackend::Sled, second.path(), &agent).await, (true, labels));
    assert!(
        text(&output.stdout).contains("copied: 1500 audit records"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(audit_of(&StoreBackend::Sled, second.path()).await, trail);
}

#[tokio::test]
async fn a_destination_that_holds_anything_is_refused_and_left_as_it_was() {
    let data = tempfile::tempdir().unwrap();
    fill(sled(data.path()).as_ref()).await;
    let url = support::postgres_database().await;
    let before = {
        let database = postgres(&url).await;
        let other = SecretString::from("other".to_owned());
        database.set_var(&scope(), "OTHER", &other, VarSource::Api).await.unwrap();
        dump(database.as_ref()).await
    };
    let output = copy(data.path(), KEY, &["--from", "sled"], &[("PLATOS_STORE_TO", &url)]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("store_not_empty"), "{stderr}");
    assert!(stderr.contains("already holds 1 variables (1 versions)"), "{stderr}");
    assert!(stderr.contains("fresh"), "{stderr}");
    assert!(!text(&output.stdout).contains("copied"), "{}", text(&output.stdout));
    assert_no_canary(&output);
    assert_eq!(dump(postgres(&url).await.as_ref()).await, before);
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_before_anything_is_written() {
    let data = tempfile::tempdir().unwrap();
    fill(sled(data.path()).as_ref()).await;
    let url = support::postgres_database().await;
    let output = copy(data.path(), OTHER_KEY, &["--from", "sled"], &[("PLATOS_STORE_TO", &url)]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot open the source"), "{stderr}");
    assert!(stderr.contains("does not match the store"), "{stderr}");
    assert_no_canary(&output);
    let database = PostgresStore::open(&url, keyring(OTHER_KEY), options()).await.unwrap();
    assert!(dump(&database).await.counts().is_empty());
}

#[test]
fn a_password_on_the_command_line_is_refused_and_never_shown() {
    let data = tempfile::tempdir().unwrap();
    let output = copy(
        data.path(),
        KEY,
        &["--from", "sled", "--to", "postgres://platos:pw-copy-canary@127.0.0.1:1/platos"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("password on the command line"), "{stderr}");
    assert!(stderr.contains("postgres://platos@127.0.0.1:1/platos"), "{stderr}");
    support::assert_no_secret(&output.stderr, "pw-copy-canary", "stderr");
    support::assert_no_secret(&output.stdout, "pw-copy-canary", "stdout");
}

#[test]
fn the_same_store_twice_and_a_missing_source_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = copy(data.path(), KEY, &["--from", "sled", "--to", "sled"], &[]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("same_store"), "{}", text(&output.stderr));
    let output =
        copy(data.path(), KEY, &["--from", "sled", "--to", "postgres://u@127.0.0.1:1/d"], &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no_source_store"), "{stderr}");
    assert!(!data.path().join("store").exists(), "a missing source is not created");
}

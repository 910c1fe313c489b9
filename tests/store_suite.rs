//! One test suite for every store backend (as Vault's `ExerciseBackend`):
//! each case takes a [`Backend`], which opens its one store (again, as a
//! restart does) through the [`SecretStore`] trait only. `store_suite!`
//! turns every case into a test of a backend; `tests/store.rs` runs it for
//! sled and for PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use platos_host::crypto::{
    ENCRYPTION_KEY_PREVIOUS_VAR, ENCRYPTION_KEY_VAR, EncryptionKey, Keyring,
};
use platos_host::provider::MicroUsd;
use platos_host::scope::Scope;
use platos_host::selfhost::{SelfHostConfig, reload};
use platos_host::store::{
    Budget, BudgetExceeded, BudgetTarget, HealthRecord, HealthVerdict, KeyStatus, KeyUpdate,
    MAX_RETIRED_VERSIONS, MAX_VALUE_LEN, Period, ProbeClaim, ProbeSlot, ProviderVars,
    RESERVATION_ID_LEN, Reservation, SecretStore, SpendWindows, StoreError, StoreOptions,
    VarSource,
};
use secrecy::{ExposeSecret, SecretString};

pub const KEY_A: &str = "0123456789abcdef0123456789abcdef";
pub const KEY_B: &str = "fedcba9876543210fedcba9876543210";
pub const KEY_C: &str = "00112233445566778899aabbccddeeff";

/// A store backend under test: one store, opened as often as a case asks.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the backend's store (again) with `keyring` and `options`. A
    /// case drops the handles it opened before opening again.
    async fn open(
        &self,
        keyring: Keyring,
        options: StoreOptions,
    ) -> Result<Arc<dyn SecretStore>, StoreError>;

    /// How a [`StoreError::KeyMismatch`] names the store.
    fn location(&self) -> String;
}

pub fn key(var: &'static str, value: &str) -> EncryptionKey {
    EncryptionKey::parse(var, value).unwrap()
}

pub fn keyring(current: &str, previous: Option<&str>) -> Keyring {
    Keyring::new(
        key(ENCRYPTION_KEY_VAR, current),
        previous.map(|value| key(ENCRYPTION_KEY_PREVIOUS_VAR, value)),
    )
}

pub fn provider_vars() -> ProviderVars {
    ProviderVars::new().with("OPENAI_API_KEY", "openai").with("ANTHROPIC_API_KEY", "anthropic")
}

pub fn options() -> StoreOptions {
    StoreOptions { provider_vars: provider_vars(), ..StoreOptions::default() }
}

pub fn scope(text: &str) -> Scope {
    text.parse().unwrap()
}

pub fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

pub async fn open(backend: &dyn Backend, keyring: Keyring) -> Arc<dyn SecretStore> {
    backend.open(keyring, options()).await.unwrap()
}

pub async fn value_of(store: &dyn SecretStore, scope: &Scope, name: &str) -> Option<String> {
    store.get_var(scope, name).await.unwrap().map(|value| value.value.expose_secret().to_owned())
}

pub async fn set(store: &dyn SecretStore, scope: &Scope, name: &str, value: &str) -> u64 {
    store.set_var(scope, name, &secret(value), VarSource::Api).await.unwrap().version
}

/// A clock the test moves by hand, with a 60 s grace period.
pub fn manual_clock(start: u64) -> (Arc<AtomicU64>, StoreOptions) {
    let now = Arc::new(AtomicU64::new(start));
    let clock = now.clone();
    let options = StoreOptions {
        grace: Duration::from_secs(60),
        clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        ..options()
    };
    (now, options)
}

/// Turns each case named into a `#[tokio::test]` of the backend `$make`
/// (an expression giving a future of a [`Backend`], evaluated per test).
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@cases $make;
            scopes_are_isolated,
            numbered_variants_link_and_unlink_provider_key_rows,
            a_changed_key_variable_relinks_rows_with_their_metadata,
            an_operator_default_choice_persists,
            replaced_versions_stay_readable_for_the_grace_period,
            lease_releases_are_recorded_once_kept_until_the_lease_ends_and_survive_a_reopen,
            probe_claims_give_one_claimant_per_slot_until_done_or_expired,
            a_zero_grace_period_keeps_no_old_version,
            replaced_versions_are_capped,
            names_and_values_are_checked,
            batch_reads_follow_the_names,
            concurrent_writers_get_distinct_versions,
            self_host_values_win_and_api_writes_to_them_are_refused,
            rotation_then_rewrap_leaves_everything_readable_under_the_new_key,
            a_wrong_master_key_is_refused_at_open,
            canary_secrets_never_reach_logs_errors_or_debug,
            budget_reserve_within_the_cap_and_refuse_over_it_with_the_numbers,
            budget_a_scope_cap_applies_across_its_keys,
            budget_settle_moves_reserved_to_spent_and_a_late_settle_still_counts,
            budget_an_expired_reservation_frees_its_amount,
            budget_spend_counts_in_its_day_and_month_windows,
            budget_concurrent_reserves_never_exceed_a_cap,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $make.await;
                $crate::store_suite::$case(&backend).await;
            }
        )*
    };
}

pub async fn scopes_are_isolated(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let store = &*store;
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    let dev2 = scope("acme/shop/dev2");
    let other_org = scope("beta/shop/dev");
    set(store, &dev, "OPENAI_API_KEY", "sk-dev").await;
    set(store, &dev, "ONLY_IN_DEV", "x").await;
    set(store, &prod, "OPENAI_API_KEY", "sk-prod").await;
    assert_eq!(value_of(store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-dev");
    assert_eq!(value_of(store, &prod, "OPENAI_API_KEY").await.unwrap(), "sk-prod");
    assert_eq!(value_of(store, &prod, "ONLY_IN_DEV").await, None);
    for empty in [&dev2, &other_org] {
        assert!(store.list_vars(empty).await.unwrap().is_empty());
        assert!(store.list_provider_keys(empty).await.unwrap().is_empty());
        assert_eq!(value_of(store, empty, "OPENAI_API_KEY").await, None);
    }
    let names = async |scope: &Scope| -> Vec<String> {
        store.list_vars(scope).await.unwrap().into_iter().map(|var| var.name).collect()
    };
    assert_eq!(names(&dev).await, ["ONLY_IN_DEV", "OPENAI_API_KEY"]);
    assert_eq!(names(&prod).await, ["OPENAI_API_KEY"]);
    // Unsetting in dev leaves prod alone.
    assert!(store.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).await.unwrap());
    assert_eq!(value_of(store, &prod, "OPENAI_API_KEY").await.unwrap(), "sk-prod");
    assert_eq!(store.list_provider_keys(&prod).await.unwrap().len(), 1);
    assert!(store.list_provider_keys(&dev).await.unwrap().is_empty());
    let all = store.list_all_provider_keys().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((&all[0].0, all[0].1.env_var.as_str()), (&prod, "OPENAI_API_KEY"));
}

/// Release 0.2 linked OpenAI-compatible keys on the optional API key; later
/// releases link them on the required base URL. Labels, status and the
/// default choice follow the variant to the new row.
pub async fn a_changed_key_variable_relinks_rows_with_their_metadata(backend: &dyn Backend) {
    let before = ProviderVars::new().with("OPENAI_COMPATIBLE_API_KEY", "openai-compatible");
    let options = StoreOptions { provider_vars: before, ..StoreOptions::default() };
    let store = backend.open(keyring(KEY_A, None), options).await.unwrap();
    let lab = scope("acme/lab/dev");
    for name in [
        "OPENAI_COMPATIBLE_BASE_URL",
        "OPENAI_COMPATIBLE_BASE_URL_2",
        "OPENAI_COMPATIBLE_BASE_URL_3",
    ] {
        set(&*store, &lab, name, "http://127.0.0.1:11434/v1").await;
    }
    set(&*store, &lab, "OPENAI_COMPATIBLE_API_KEY", "sk-one").await;
    set(&*store, &lab, "OPENAI_COMPATIBLE_API_KEY_2", "sk-two").await;
    for (key, change) in [
        ("OPENAI_COMPATIBLE_API_KEY_2", KeyUpdate::Label("vllm-gpu".into())),
        ("OPENAI_COMPATIBLE_API_KEY_2", KeyUpdate::ChosenDefault(Some(7))),
        ("OPENAI_COMPATIBLE_API_KEY", KeyUpdate::Status(KeyStatus::Disabled)),
    ] {
        assert!(store.update_provider_key(&lab, "openai-compatible", key, change).await.unwrap());
    }

    let after = || ProviderVars::new().with("OPENAI_COMPATIBLE_BASE_URL", "openai-compatible");
    let report = store.set_provider_vars(after()).await.unwrap();
    assert_eq!((report.linked, report.unlinked), (3, 2));
    let rows: Vec<(String, String, KeyStatus, Option<u64>)> = store
        .list_provider_keys(&lab)
        .await
        .unwrap()
        .into_iter()
        .map(|key| (key.env_var, key.label, key.status, key.chosen_default_at))
        .collect();
    let row =
        |var: &str, label: &str, status, chosen| (var.to_owned(), label.to_owned(), status, chosen);
    let base = "OPENAI_COMPATIBLE_BASE_URL";
    assert_eq!(
        rows,
        [
            row(base, base, KeyStatus::Disabled, None),
            row("OPENAI_COMPATIBLE_BASE_URL_2", "vllm-gpu", KeyStatus::Active, Some(7)),
            row(
                "OPENAI_COMPATIBLE_BASE_URL_3",
                "OPENAI_COMPATIBLE_BASE_URL_3",
                KeyStatus::Active,
                None
            ),
        ]
    );
    // Again: nothing left to carry, nothing changes.
    assert_eq!(store.set_provider_vars(after()).await.unwrap(), Default::default());
}

/// The operator's choice of the scope default is stored with the key and
/// survives a reopen; withdrawing it clears it.
pub async fn an_operator_default_choice_persists(backend: &dyn Backend) {
    let dev = scope("acme/shop/dev");
    {
        let store = open(backend, keyring(KEY_A, None)).await;
        set(&*store, &dev, "OPENAI_API_KEY", "sk-1").await;
        set(&*store, &dev, "OPENAI_API_KEY_2", "sk-2").await;
        let default = store.default_provider_key(&dev, "openai").await.unwrap().unwrap();
        assert_eq!(default.env_var, "OPENAI_API_KEY");
        let choose = KeyUpdate::ChosenDefault(Some(42));
        assert!(
            store.update_provider_key(&dev, "openai", "OPENAI_API_KEY_2", choose).await.unwrap()
        );
    }
    let store = open(backend, keyring(KEY_A, None)).await;
    let default = store.default_provider_key(&dev, "openai").await.unwrap().unwrap();
    assert_eq!(
        (default.env_var.as_str(), default.chosen_default_at),
        ("OPENAI_API_KEY_2", Some(42))
    );
    let withdraw = KeyUpdate::ChosenDefault(None);
    assert!(store.update_provider_key(&dev, "openai", "OPENAI_API_KEY_2", withdraw).await.unwrap());
    let default = store.default_provider_key(&dev, "openai").await.unwrap().unwrap();
    assert_eq!(default.env_var, "OPENAI_API_KEY");
}

pub async fn numbered_variants_link_and_unlink_provider_key_rows(backend: &dyn Backend) {
    let (now, clocked) = manual_clock(1_000);
    let store = backend.open(keyring(KEY_A, None), clocked).await.unwrap();
    let dev = scope("acme/shop/dev");
    let rows = async |store: &dyn SecretStore| -> Vec<(String, String, u32)> {
        store
            .list_provider_keys(&dev)
            .await
            .unwrap()
            .into_iter()
            .map(|key| (key.provider, key.env_var, key.variant))
            .collect()
    };
    let default = async |store: &dyn SecretStore, provider: &str| {
        store.default_provider_key(&dev, provider).await.unwrap().map(|key| key.env_var)
    };
    let s = &*store;

    set(s, &dev, "OPENAI_API_KEY_2", "sk-2").await;
    assert_eq!(rows(s).await, [("openai".into(), "OPENAI_API_KEY_2".into(), 2)]);
    assert_eq!(default(s, "openai").await.as_deref(), Some("OPENAI_API_KEY_2"));
    now.store(2_000, Ordering::SeqCst);
    set(s, &dev, "OPENAI_API_KEY", "sk-1").await;
    set(s, &dev, "OPENAI_API_KEY_10", "sk-10").await;
    set(s, &dev, "ANTHROPIC_API_KEY_3", "sk-ant-3").await;
    // Not keys: a companion, `_1`, a leading zero.
    set(s, &dev, "OPENAI_API_BASE", "https://example.test/v1").await;
    set(s, &dev, "OPENAI_API_KEY_1", "x").await;
    set(s, &dev, "OPENAI_API_KEY_02", "x").await;
    assert_eq!(
        rows(s).await,
        [
            ("anthropic".into(), "ANTHROPIC_API_KEY_3".into(), 3),
            ("openai".into(), "OPENAI_API_KEY".into(), 1),
            ("openai".into(), "OPENAI_API_KEY_2".into(), 2),
            ("openai".into(), "OPENAI_API_KEY_10".into(), 10),
        ]
    );
    assert_eq!(default(s, "openai").await.as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(default(s, "anthropic").await.as_deref(), Some("ANTHROPIC_API_KEY_3"));

    // Metadata updates keep the row; a new value of the variable keeps it too.
    let health = HealthRecord {
        verdict: HealthVerdict::InvalidCredential,
        message: "401".into(),
        checked_at: 2_500,
        latency_ms: 12,
        models: vec!["gpt-5".into()],
    };
    let update = async |env_var: &str, update: KeyUpdate| {
        s.update_provider_key(&dev, "openai", env_var, update).await.unwrap()
    };
    assert!(update("OPENAI_API_KEY_2", KeyUpdate::Health(health.clone())).await);
    assert!(update("OPENAI_API_KEY_2", KeyUpdate::Used { at: 2_600 }).await);
    // An older use does not move the last use back.
    assert!(update("OPENAI_API_KEY_2", KeyUpdate::Used { at: 2_100 }).await);
    assert!(update("OPENAI_API_KEY_2", KeyUpdate::Label("eu".into())).await);
    assert!(!update("OPENAI_API_KEY_3", KeyUpdate::Used { at: 1 }).await);
    set(s, &dev, "OPENAI_API_KEY_2", "sk-2-rotated").await;
    let row = s
        .list_provider_keys(&dev)
        .await
        .unwrap()
        .into_iter()
        .find(|key| key.env_var == "OPENAI_API_KEY_2")
        .unwrap();
    assert_eq!((row.created_at, row.last_used_at, row.label.as_str()), (1_000, Some(2_600), "eu"));
    assert_eq!(row.health, Some(health));
    assert_eq!(row.status, KeyStatus::Active);

    // Unsetting the plain variable unlinks its row: the default moves to 2.
    assert!(s.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).await.unwrap());
    assert_eq!(default(s, "openai").await.as_deref(), Some("OPENAI_API_KEY_2"));
    // A disabled key is never the default.
    assert!(update("OPENAI_API_KEY_2", KeyUpdate::Status(KeyStatus::Disabled)).await);
    assert_eq!(default(s, "openai").await.as_deref(), Some("OPENAI_API_KEY_10"));
    assert!(!s.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).await.unwrap());
    s.unset_var(&dev, "OPENAI_API_KEY_10", VarSource::Api).await.unwrap();
    s.unset_var(&dev, "OPENAI_API_KEY_2", VarSource::Api).await.unwrap();
    assert_eq!(rows(s).await, [("anthropic".into(), "ANTHROPIC_API_KEY_3".into(), 3)]);
    assert_eq!(default(s, "openai").await, None);

    // A new mapping re-links: a provider whose key variable changed loses
    // the old rows and gains rows for the new variable, already set.
    let renamed = ProviderVars::new().with("OPENAI_API_BASE", "anthropic");
    let report = s.set_provider_vars(renamed.clone()).await.unwrap();
    assert_eq!((report.linked, report.unlinked), (1, 1));
    assert_eq!(rows(s).await, [("anthropic".into(), "OPENAI_API_BASE".into(), 1)]);
    assert_eq!(s.set_provider_vars(renamed).await.unwrap(), Default::default());
    // A provider missing from the mapping (its plugin failed to load) keeps
    // its rows, dormant.
    assert_eq!(s.set_provider_vars(ProviderVars::new()).await.unwrap(), Default::default());
    assert_eq!(rows(s).await, [("anthropic".into(), "OPENAI_API_BASE".into(), 1)]);
    // Rows survive a reopen.
    drop(store);
    let store = open(backend, keyring(KEY_A, None)).await;
    assert_eq!(rows(&*store).await, [("anthropic".into(), "OPENAI_API_BASE".into(), 1)]);
}

pub async fn lease_releases_are_recorded_once_kept_until_the_lease_ends_and_survive_a_reopen(
    backend: &dyn Backend,
) {
    let (now, clocked) = manual_clock(1_000_000);
    let store = backend.open(keyring(KEY_A, None), clocked.clone()).await.unwrap();
    let (one, two) = ([1u8; 16], [2u8; 16]);
    let end = 1_000_000 + 900_000;
    assert!(!store.lease_released(&one, end).await.unwrap());
    assert!(store.release_lease(&one, end).await.unwrap(), "the first release records it");
    assert!(!store.release_lease(&one, end).await.unwrap(), "a second release is not a new one");
    assert!(store.lease_released(&one, end).await.unwrap());
    // Another id, or the same id with another end, is another lease.
    assert!(!store.lease_released(&two, end).await.unwrap());
    assert!(!store.lease_released(&one, end + 1).await.unwrap());
    assert!(store.release_lease(&two, end + 1).await.unwrap());

    // Concurrent releases of one lease: exactly one records it.
    let three = [3u8; 16];
    let releases = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.release_lease(&three, end).await.unwrap() })
    });
    let mut recorded = 0;
    for release in releases.collect::<Vec<_>>() {
        recorded += usize::from(release.await.unwrap());
    }
    assert_eq!(recorded, 1);

    // Durable: a reopened store (a restart, another host) sees them.
    drop(store);
    let store = backend.open(keyring(KEY_A, None), clocked).await.unwrap();
    assert!(store.lease_released(&one, end).await.unwrap());
    assert!(store.lease_released(&two, end + 1).await.unwrap());

    // Kept until the lease's end, then purged; a purge drops only those over.
    now.store(end - 1, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert!(store.lease_released(&one, end).await.unwrap());
    now.store(end, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 2, "the two leases ending at {end}");
    assert!(!store.lease_released(&one, end).await.unwrap());
    assert!(!store.lease_released(&three, end).await.unwrap());
    assert!(store.lease_released(&two, end + 1).await.unwrap());
    now.store(i64::MAX as u64, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
}

/// Health-probe claims ([`SecretStore::claim_probe`]): one claimant per
/// credential and slot, held until done or until its deadline passes (then
/// another takes it over), slots apart, purged once their slot ends.
pub async fn probe_claims_give_one_claimant_per_slot_until_done_or_expired(backend: &dyn Backend) {
    let interval = Duration::from_secs(300);
    let t0 = 1_800_000_000_000; // a slot's start: 300 s divide it
    let slot = ProbeSlot::of(t0, interval);
    assert_eq!(slot.ends_at, t0 + 300_000);
    let (now, clocked) = manual_clock(t0);
    let store = backend.open(keyring(KEY_A, None), clocked).await.unwrap();
    let (a, b, c, d) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);

    // The first claimant gets it; another sees it held until the first's deadline.
    assert_eq!(store.claim_probe(&a, slot, t0, t0 + 1_000).await.unwrap(), ProbeClaim::Claimed);
    assert_eq!(
        store.claim_probe(&a, slot, t0 + 10, t0 + 2_000).await.unwrap(),
        ProbeClaim::Held { until: t0 + 1_000 }
    );
    assert_eq!(store.claim_probe(&b, slot, t0, t0 + 1_000).await.unwrap(), ProbeClaim::Claimed);
    // Done: every later claim in the slot, even past the deadline, says so.
    store.probe_done(&a, slot).await.unwrap();
    for at in [t0 + 20, t0 + 5_000] {
        assert_eq!(store.claim_probe(&a, slot, at, at + 1_000).await.unwrap(), ProbeClaim::Done);
    }
    // Not done by its deadline (its claimant died): taken over, by one.
    assert_eq!(
        store.claim_probe(&b, slot, t0 + 999, t0 + 2_000).await.unwrap(),
        ProbeClaim::Held { until: t0 + 1_000 },
        "held until its deadline"
    );
    assert_eq!(
        store.claim_probe(&b, slot, t0 + 1_000, t0 + 3_000).await.unwrap(),
        ProbeClaim::Claimed
    );
    assert_eq!(
        store.claim_probe(&b, slot, t0 + 1_001, t0 + 3_001).await.unwrap(),
        ProbeClaim::Held { until: t0 + 3_000 }
    );
    // Another slot is another claim.
    let next = ProbeSlot::of(slot.ends_at, interval);
    assert_eq!(next.number, slot.number + 1);
    let later = slot.ends_at;
    assert_eq!(
        store.claim_probe(&a, next, later, later + 1_000).await.unwrap(),
        ProbeClaim::Claimed
    );
    // Concurrent claimants of one credential: exactly one gets it.
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_probe(&c, slot, t0, t0 + 1_000).await.unwrap() })
    });
    let mut claimed = 0;
    for claim in claims.collect::<Vec<_>>() {
        match claim.await.unwrap() {
            ProbeClaim::Claimed => claimed += 1,
            ProbeClaim::Held { until } => assert_eq!(until, t0 + 1_000),
            ProbeClaim::Done => panic!("nobody marked it done"),
        }
    }
    assert_eq!(claimed, 1);
    // Marked done without a claim (its claim was purged): done all the same.
    store.probe_done(&d, slot).await.unwrap();
    assert_eq!(store.claim_probe(&d, slot, t0, t0 + 1_000).await.unwrap(), ProbeClaim::Done);

    // Kept until the slot ends, then purged; the next slot's stay.
    now.store(slot.ends_at - 1, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(store.claim_probe(&a, slot, t0, t0 + 1_000).await.unwrap(), ProbeClaim::Done);
    now.store(slot.ends_at, Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 4, "a, b, c and d of the ended slot");
    assert_eq!(
        store.claim_probe(&a, next, later + 1, later + 1_000).await.unwrap(),
        ProbeClaim::Held { until: later + 1_000 }
    );
    assert_eq!(store.purge_expired().await.unwrap(), 0);
}

pub async fn replaced_versions_stay_readable_for_the_grace_period(backend: &dyn Backend) {
    let (now, clocked) = manual_clock(1_000_000);
    let store = backend.open(keyring(KEY_A, None), clocked).await.unwrap();
    let s = &*store;
    let dev = scope("acme/shop/dev");
    let name = "OPENAI_API_KEY";
    let read = async |version: u64| {
        s.get_var_version(&dev, name, version)
            .await
            .unwrap()
            .map(|value| value.value.expose_secret().to_owned())
    };
    assert_eq!(set(s, &dev, name, "one").await, 1);
    assert_eq!(set(s, &dev, name, "two").await, 2);
    let current = s.get_var(&dev, name).await.unwrap().unwrap();
    assert_eq!((current.version, current.value.expose_secret()), (2, "two"));
    // A turn holding version 1 can still read it, until the grace ends.
    assert_eq!(read(1).await.as_deref(), Some("one"));
    assert_eq!(read(3).await, None);
    now.store(1_000_000 + 59_999, Ordering::SeqCst);
    assert_eq!(read(1).await.as_deref(), Some("one"));
    assert_eq!(s.purge_expired().await.unwrap(), 0);
    now.store(1_000_000 + 60_000, Ordering::SeqCst);
    assert_eq!(read(1).await, None);
    assert_eq!(read(2).await.as_deref(), Some("two"));
    assert_eq!(s.purge_expired().await.unwrap(), 1);
    assert_eq!(s.purge_expired().await.unwrap(), 0);

    // Unset: the current value disappears, the last version stays readable
    // for the grace period, and versions are never reused.
    assert!(s.unset_var(&dev, name, VarSource::Api).await.unwrap());
    assert!(s.get_var(&dev, name).await.unwrap().is_none());
    assert!(s.list_vars(&dev).await.unwrap().is_empty());
    assert_eq!(read(2).await.as_deref(), Some("two"));
    assert_eq!(set(s, &dev, name, "three").await, 3);
    now.fetch_add(60_000, Ordering::SeqCst);
    assert_eq!(read(2).await, None);
    // The expired version was dropped by the write itself or by a purge.
    s.purge_expired().await.unwrap();
    assert_eq!(s.key_usage().await.unwrap().values().sum::<u64>(), 1);
}

pub async fn a_zero_grace_period_keeps_no_old_version(backend: &dyn Backend) {
    let zero_grace = StoreOptions { grace: Duration::ZERO, ..options() };
    let store = backend.open(keyring(KEY_A, None), zero_grace).await.unwrap();
    let dev = scope("acme/shop/dev");
    let name = "OPENAI_API_KEY";
    set(&*store, &dev, name, "one").await;
    set(&*store, &dev, name, "two").await;
    assert!(store.get_var_version(&dev, name, 1).await.unwrap().is_none());
    assert_eq!(store.get_var_version(&dev, name, 2).await.unwrap().unwrap().version, 2);
    assert_eq!(store.key_usage().await.unwrap().values().sum::<u64>(), 1);
}

pub async fn replaced_versions_are_capped(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let dev = scope("acme/shop/dev");
    let cap = MAX_RETIRED_VERSIONS as u64;
    for index in 1..=cap + 8 {
        assert_eq!(set(&*store, &dev, "HOT", &format!("v{index}")).await, index);
    }
    let mut readable = Vec::new();
    for version in 1..=cap + 8 {
        if store.get_var_version(&dev, "HOT", version).await.unwrap().is_some() {
            readable.push(version);
        }
    }
    assert_eq!(readable, (8..=cap + 8).collect::<Vec<u64>>());
    assert_eq!(store.key_usage().await.unwrap().values().sum::<u64>(), cap + 1);
}

pub async fn names_and_values_are_checked(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let s = &*store;
    let dev = scope("acme/shop/dev");
    for bad in ["", "lower", "1ABC", "A-B", "A B"] {
        let error = s.set_var(&dev, bad, &secret("v"), VarSource::Api).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidName(_)), "{bad}: {error}");
        let error = s.unset_var(&dev, bad, VarSource::Api).await.unwrap_err();
        assert!(matches!(error, StoreError::InvalidName(_)), "{bad}: {error}");
    }
    for reserved in [ENCRYPTION_KEY_VAR, ENCRYPTION_KEY_PREVIOUS_VAR] {
        let error = s.set_var(&dev, reserved, &secret(KEY_B), VarSource::Api).await.unwrap_err();
        assert!(matches!(error, StoreError::ReservedName(_)), "{error}");
        assert!(!error.to_string().contains(KEY_B));
    }
    let huge = "x".repeat(MAX_VALUE_LEN + 1);
    let error = s.set_var(&dev, "BIG", &secret(&huge), VarSource::Api).await.unwrap_err();
    assert!(matches!(error, StoreError::ValueTooLarge { .. }), "{error}");
    let largest = "x".repeat(MAX_VALUE_LEN);
    set(s, &dev, "LARGEST", &largest).await;
    assert_eq!(value_of(s, &dev, "LARGEST").await.unwrap(), largest);
    // Multi-line, empty and non-ASCII values are values.
    set(s, &dev, "PEM", "-----BEGIN-----\nabc\n-----END-----\n").await;
    assert_eq!(value_of(s, &dev, "PEM").await.unwrap(), "-----BEGIN-----\nabc\n-----END-----\n");
    set(s, &dev, "EMPTY", "").await;
    assert_eq!(value_of(s, &dev, "EMPTY").await.unwrap(), "");
    set(s, &dev, "UNICODE", "ключ\0🔑'\"\\").await;
    assert_eq!(value_of(s, &dev, "UNICODE").await.unwrap(), "ключ\0🔑'\"\\");
}

pub async fn batch_reads_follow_the_names(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let s = &*store;
    let dev = scope("acme/shop/dev");
    set(s, &dev, "A", "a1").await;
    set(s, &dev, "A", "a2").await;
    set(s, &dev, "B", "b").await;
    set(s, &scope("acme/shop/prod"), "C", "elsewhere").await;
    set(s, &dev, "GONE", "x").await;
    s.unset_var(&dev, "GONE", VarSource::Api).await.unwrap();
    let values = s.get_vars(&dev, &["B", "C", "A", "GONE", "B"]).await.unwrap();
    let got: Vec<Option<(u64, String)>> = values
        .into_iter()
        .map(|value| value.map(|value| (value.version, value.value.expose_secret().to_owned())))
        .collect();
    assert_eq!(
        got,
        [Some((1, "b".into())), None, Some((2, "a2".into())), None, Some((1, "b".into()))]
    );
    assert!(s.get_vars(&dev, &[]).await.unwrap().is_empty());
}

pub async fn concurrent_writers_get_distinct_versions(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let dev = scope("acme/shop/dev");
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let store = store.clone();
            let dev = dev.clone();
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for index in 0..25 {
                    versions.push(set(&*store, &dev, "SHARED", &format!("{task}-{index}")).await);
                }
                versions
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.extend(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=100).collect::<Vec<u64>>());
    assert_eq!(store.get_var(&dev, "SHARED").await.unwrap().unwrap().version, 100);
}

pub async fn self_host_values_win_and_api_writes_to_them_are_refused(backend: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(backend, keyring(KEY_A, None)).await;
    let s = &*store;
    let home = scope("self/default/prod");
    // The API set a value first.
    set(s, &home, "OPENAI_API_KEY", "sk-from-api").await;
    set(s, &home, "API_ONLY", "api").await;

    let env_file = dir.path().join("platos.env");
    std::fs::write(
        &env_file,
        "# providers\nOPENAI_API_KEY=sk-from-file\nexport ANTHROPIC_API_KEY='sk-ant-file'\nbad_name=x\n",
    )
    .unwrap();
    let config = SelfHostConfig {
        scope: home.clone(),
        env_file: Some(env_file.clone()),
        process_env: false,
    };
    let accept = |_: &str| false;
    let first = reload(s, &config, &accept).await.unwrap();
    assert_eq!(first.report.set, ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]);
    assert_eq!(first.skipped.len(), 1);
    assert_eq!(first.skipped[0].line, 4);
    // Self-host wins over the API value of the same name.
    assert_eq!(value_of(s, &home, "OPENAI_API_KEY").await.unwrap(), "sk-from-file");
    let sources: BTreeMap<String, VarSource> =
        s.list_vars(&home).await.unwrap().into_iter().map(|var| (var.name, var.source)).collect();
    assert_eq!(sources["OPENAI_API_KEY"], VarSource::SelfHost);
    assert_eq!(sources["API_ONLY"], VarSource::Api);
    assert_eq!(s.list_provider_keys(&home).await.unwrap().len(), 2);

    // Neither the API nor the command line can overwrite or unset a
    // self-host variable.
    for writer in [VarSource::Api, VarSource::Cli] {
        let error =
            s.set_var(&home, "OPENAI_API_KEY", &secret("sk-api-again"), writer).await.unwrap_err();
        assert!(matches!(error, StoreError::ManagedBySelfHost { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("managed by the self-host configuration"), "{message}");
        assert!(message.contains("OPENAI_API_KEY") && message.contains("self/default/prod"));
        assert!(!message.contains("sk-"), "{message}");
        let error = s.unset_var(&home, "OPENAI_API_KEY", writer).await.unwrap_err();
        assert!(matches!(error, StoreError::ManagedBySelfHost { .. }));
    }
    // The rule is per scope: the same name elsewhere is the API's.
    set(s, &scope("self/default/dev"), "OPENAI_API_KEY", "sk-dev").await;
    set(s, &home, "API_ONLY", "api-2").await;

    // A reload with the same content changes nothing (no new versions).
    let again = reload(s, &config, &accept).await.unwrap();
    assert!(again.report.set.is_empty());
    assert_eq!(again.report.unchanged, ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]);
    assert_eq!(s.get_var(&home, "OPENAI_API_KEY").await.unwrap().unwrap().version, 2);

    // A name removed from the file is unset (and its key unlinked); then
    // the API may set it.
    std::fs::write(&env_file, "OPENAI_API_KEY=sk-from-file-2\n").unwrap();
    let third = reload(s, &config, &accept).await.unwrap();
    assert_eq!(third.report.set, ["OPENAI_API_KEY"]);
    assert_eq!(third.report.removed, ["ANTHROPIC_API_KEY"]);
    assert_eq!(value_of(s, &home, "ANTHROPIC_API_KEY").await, None);
    let providers: Vec<String> =
        s.list_provider_keys(&home).await.unwrap().into_iter().map(|key| key.provider).collect();
    assert_eq!(providers, ["openai"]);
    set(s, &home, "ANTHROPIC_API_KEY", "sk-ant-api").await;
    assert_eq!(value_of(s, &home, "API_ONLY").await.unwrap(), "api-2");

    // A malformed or missing file changes nothing.
    std::fs::write(&env_file, "OPENAI_API_KEY=changed\nnot a line\n").unwrap();
    let error = reload(s, &config, &accept).await.unwrap_err().to_string();
    assert!(error.ends_with("platos.env:2: expected NAME=VALUE"), "{error}");
    let missing =
        SelfHostConfig { env_file: Some(dir.path().join("missing.env")), ..config.clone() };
    assert!(reload(s, &missing, &accept).await.is_err());
    assert_eq!(value_of(s, &home, "OPENAI_API_KEY").await.unwrap(), "sk-from-file-2");
    // An import is all or nothing: a bad name in the list writes nothing.
    let bad = [("GOOD_NAME".to_owned(), secret("v")), ("bad".to_owned(), secret("v"))];
    let error = s.import_self_host(&home, &bad).await.unwrap_err();
    assert_eq!(error.code(), "invalid_name");
    assert_eq!(value_of(s, &home, "GOOD_NAME").await, None);
    assert_eq!(value_of(s, &home, "OPENAI_API_KEY").await.unwrap(), "sk-from-file-2");
}

pub async fn rotation_then_rewrap_leaves_everything_readable_under_the_new_key(
    backend: &dyn Backend,
) {
    let scopes = [scope("acme/shop/dev"), scope("acme/shop/prod"), scope("other/x/y")];
    let mut expected = BTreeMap::new();
    {
        let store = open(backend, keyring(KEY_A, None)).await;
        for scope in &scopes {
            for index in 0..200 {
                let name = format!("VAR_{index}");
                let value = format!("{scope}-{index}-v1");
                let version = set(&*store, scope, &name, &value).await;
                expected.insert((scope.clone(), name.clone(), version), value);
                if index % 10 == 0 {
                    // A second version: the first stays in its grace period.
                    let value = format!("{scope}-{index}-v2");
                    let version = set(&*store, scope, &name, &value).await;
                    expected.insert((scope.clone(), name, version), value);
                }
            }
        }
        assert_eq!(store.key_usage().await.unwrap().len(), 1);
    }
    let id_a = keyring(KEY_A, None).current_id();
    let id_b = keyring(KEY_B, None).current_id();

    // Rotate: B encrypts, A still decrypts. New writes go under B.
    let store = open(backend, keyring(KEY_B, Some(KEY_A))).await;
    let fresh = scope("acme/shop/dev");
    let version = set(&*store, &fresh, "WRITTEN_AFTER_ROTATION", "new").await;
    expected.insert((fresh, "WRITTEN_AFTER_ROTATION".into(), version), "new".into());
    let usage = store.key_usage().await.unwrap();
    assert_eq!(usage[&id_b], 1);
    assert_eq!(usage[&id_a], expected.len() as u64 - 1);

    // Interrupt a rewrap after its first batch (the callback panics), while
    // a reader reads every value.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop, expected) = (store.clone(), stop.clone(), expected.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) || reads == 0 {
                for ((scope, name, version), want) in &expected {
                    let got = store.get_var_version(scope, name, *version).await.unwrap().unwrap();
                    assert_eq!(got.value.expose_secret(), want);
                    reads += 1;
                }
                // A backend that reads in place never yields by itself.
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    let interrupted = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .rewrap(&mut |progress| {
                    if progress.done > 0 {
                        panic!("interrupted at {}", progress.done);
                    }
                })
                .await
        })
        .await
    };
    assert!(interrupted.unwrap_err().is_panic());
    // The first batch is done (a backend working on its own thread, as
    // sled's adapter, may finish the rest although its caller went away).
    let usage = store.key_usage().await.unwrap();
    assert!(usage[&id_b] > 1, "{usage:?}");

    // Run it again: it finishes the rest and skips what is done.
    let mut calls = Vec::new();
    let report = store.rewrap(&mut |progress| calls.push(*progress)).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);
    let last = calls.last().unwrap();
    assert_eq!(last, &report.progress);
    assert_eq!(last.done, expected.len() as u64);
    assert_eq!(last.total, expected.len() as u64);
    assert_eq!(last.failed, 0);
    assert!(last.skipped >= 256, "{last:?}");
    assert_eq!(last.rewrapped + last.skipped, last.done);
    assert!(calls.len() >= 3, "progress is reported along the way");
    assert_eq!(store.key_usage().await.unwrap(), BTreeMap::from([(id_b, expected.len() as u64)]));
    // A third run has nothing to do.
    assert_eq!(store.rewrap(&mut |_| {}).await.unwrap().progress.rewrapped, 0);
    drop(store);

    // Without the old key, every value (current and in grace) still reads.
    let store = open(backend, keyring(KEY_B, None)).await;
    for ((scope, name, version), want) in &expected {
        let got = store.get_var_version(scope, name, *version).await.unwrap().unwrap();
        assert_eq!(got.value.expose_secret(), want);
    }
    drop(store);

    // An unrelated key is refused at open: the rewrap moved the key check to B.
    for ring in [keyring(KEY_C, None), keyring(KEY_A, None), keyring(KEY_C, Some(KEY_A))] {
        let error = backend.open(ring, options()).await.map(drop).unwrap_err();
        assert_eq!(error.code(), "key_mismatch", "{error}");
    }

    // A rollback to B after writes under C (the key check is still under B,
    // as rewrap did not run): the store opens, the values under C do not
    // decrypt, and the error names key ids only.
    let store = open(backend, keyring(KEY_C, Some(KEY_B))).await;
    set(&*store, &scopes[0], "UNDER_C", "c").await;
    drop(store);
    let store = open(backend, keyring(KEY_B, None)).await;
    let message = store.get_var(&scopes[0], "UNDER_C").await.unwrap_err().to_string();
    let id_c = keyring(KEY_C, None).current_id();
    assert!(message.contains(&id_c.to_string()) && message.contains("unset"), "{message}");
    assert!(!message.contains(KEY_B) && !message.contains(KEY_C));
    let report = store.rewrap(&mut |_| {}).await.unwrap();
    assert_eq!(report.progress.failed, 1);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].name, "UNDER_C");
}

fn key_ids(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| keyring(key, None).current_id().to_string()).collect()
}

/// Opens the backend with `ring`, expecting a key mismatch; returns its
/// message after checking it names the store but neither a key nor a key id.
async fn refused(backend: &dyn Backend, ring: Keyring, keys: &[&str]) -> String {
    let previous_set = ring.previous_id().is_some();
    let error = backend.open(ring, options()).await.map(drop).unwrap_err();
    assert!(
        matches!(&error, StoreError::KeyMismatch { previous_set: set, .. } if *set == previous_set),
        "{error}"
    );
    assert_eq!(error.code(), "key_mismatch");
    let message = format!("{error} {error:?}");
    assert!(message.contains("does not match") || message.contains("matches"), "{message}");
    assert!(message.contains("ENCRYPTION_KEY_PREVIOUS") && message.contains("rewrap"), "{message}");
    assert!(message.contains(&backend.location()), "names the store: {message}");
    for secret in keys.iter().map(|key| key.to_string()).chain(key_ids(keys)) {
        assert!(!message.contains(&secret), "{secret} in: {message}");
    }
    message
}

pub async fn a_wrong_master_key_is_refused_at_open(backend: &dyn Backend) {
    let dev = scope("acme/shop/dev");
    // An empty store takes any key (first start), and B again while it is
    // still empty.
    drop(open(backend, keyring(KEY_A, None)).await);
    drop(open(backend, keyring(KEY_B, None)).await);
    {
        let store = open(backend, keyring(KEY_A, None)).await;
        set(&*store, &dev, "OPENAI_API_KEY", "sk-a").await;
    }
    let keys = [KEY_A, KEY_B, KEY_C];
    let message = refused(backend, keyring(KEY_B, None), &keys).await;
    assert!(message.contains("the master key (ENCRYPTION_KEY) does not match"), "{message}");
    let message = refused(backend, keyring(KEY_B, Some(KEY_C)), &keys).await;
    assert!(message.contains("neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS"), "{message}");
    // The refused opens wrote nothing: the right key reads the value.
    let store = open(backend, keyring(KEY_A, None)).await;
    assert_eq!(value_of(&*store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-a");
    assert_eq!(store.key_usage().await.unwrap().len(), 1);
    drop(store);

    // A rotation: the store's key as the previous one opens it; writes go
    // under the new key; after rewrap the new key alone opens it and the old
    // one is refused.
    let store = open(backend, keyring(KEY_B, Some(KEY_A))).await;
    set(&*store, &dev, "ANTHROPIC_API_KEY", "sk-b").await;
    drop(store);
    refused(backend, keyring(KEY_B, None), &keys).await;
    let store = open(backend, keyring(KEY_B, Some(KEY_A))).await;
    assert_eq!(store.rewrap(&mut |_| {}).await.unwrap().progress.failed, 0);
    drop(store);
    let store = open(backend, keyring(KEY_B, None)).await;
    assert_eq!(value_of(&*store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-a");
    assert_eq!(value_of(&*store, &dev, "ANTHROPIC_API_KEY").await.unwrap(), "sk-b");
    drop(store);
    refused(backend, keyring(KEY_A, None), &keys).await;
    // Swapped roles still hold the store's key: a rotation back.
    drop(open(backend, keyring(KEY_A, Some(KEY_B))).await);

    // Once every value is purged, the store is empty again and takes any key.
    let (_, mut grace_zero) = manual_clock(0);
    grace_zero.grace = Duration::ZERO;
    let store = backend.open(keyring(KEY_B, None), grace_zero).await.unwrap();
    for name in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] {
        store.unset_var(&dev, name, VarSource::Api).await.unwrap();
    }
    store.purge_expired().await.unwrap();
    drop(store);
    drop(open(backend, keyring(KEY_C, None)).await);
    drop(open(backend, keyring(KEY_A, None)).await);
}

pub async fn canary_secrets_never_reach_logs_errors_or_debug(backend: &dyn Backend) {
    const CANARY: &str = "sk-CANARY-7d3a91c0e5";
    const CANARY_KEY: &str = "CANARYKEYcanarykeyCANARYKEYcanar"; // 32 bytes
    // This thread's logs; a backend that logs from other threads must pass
    // the dispatcher on (the sled adapter does).
    let (_guard, logs) = crate::support::capture_logs();
    let mut seen = Vec::<String>::new();
    let dir = tempfile::tempdir().unwrap();
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    let store = open(backend, keyring(CANARY_KEY, Some(KEY_A))).await;
    let s = &*store;
    let info = s.set_var(&dev, "OPENAI_API_KEY", &secret(CANARY), VarSource::Api).await.unwrap();
    seen.push(format!("{info:?}"));
    s.set_var(&dev, "OPENAI_API_KEY", &secret(CANARY), VarSource::Api).await.unwrap();
    let value = s.get_var(&dev, "OPENAI_API_KEY").await.unwrap().unwrap();
    assert_eq!(value.value.expose_secret(), CANARY);
    seen.push(format!("{value:?}"));
    seen.push(format!("{:?}", s.get_var_version(&dev, "OPENAI_API_KEY", 1).await.unwrap()));
    seen.push(format!("{:?}", s.get_vars(&dev, &["OPENAI_API_KEY"]).await.unwrap()));
    seen.push(format!("{:?}", s.list_vars(&dev).await.unwrap()));
    seen.push(format!("{:?}", s.list_provider_keys(&dev).await.unwrap()));
    seen.push(format!("{:?}", s.rewrap(&mut |_| {}).await.unwrap()));
    seen.push(format!("{:?}", s.key_usage().await.unwrap()));

    // Self-host import of the canary, then refused API writes.
    let env_file = dir.path().join(".env");
    std::fs::write(&env_file, format!("ANTHROPIC_API_KEY={CANARY}\nlower={CANARY}\n")).unwrap();
    let config = SelfHostConfig {
        scope: prod.clone(),
        env_file: Some(env_file.clone()),
        process_env: false,
    };
    let reloaded = reload(s, &config, &|_| false).await.unwrap();
    seen.push(format!("{:?} {:?}", reloaded.report, reloaded.skipped));
    let refused =
        s.set_var(&prod, "ANTHROPIC_API_KEY", &secret(CANARY), VarSource::Api).await.unwrap_err();
    seen.push(format!("{refused} {refused:?}"));
    // A malformed line holding the canary.
    std::fs::write(&env_file, format!("OK=1\n{CANARY}\n\"{CANARY}\n")).unwrap();
    let malformed = reload(s, &config, &|_| false).await.unwrap_err();
    seen.push(format!("{malformed} {malformed:?}"));
    // A wrong master key, refused at open.
    drop(store);
    let mismatch = backend.open(keyring(KEY_B, None), options()).await.map(drop).unwrap_err();
    assert_eq!(mismatch.code(), "key_mismatch");
    seen.push(format!("{mismatch} {mismatch:?}"));
    // Decryption failures: a value written during a rotation to B, read
    // after a rollback to the canary key alone.
    let rotated = open(backend, keyring(KEY_B, Some(CANARY_KEY))).await;
    rotated.set_var(&dev, "OPENAI_API_KEY", &secret(CANARY), VarSource::Api).await.unwrap();
    drop(rotated);
    let without = open(backend, keyring(CANARY_KEY, None)).await;
    let failed = without.get_var(&dev, "OPENAI_API_KEY").await.unwrap_err();
    seen.push(format!("{failed} {failed:?}"));
    let failed = without.get_vars(&dev, &["OPENAI_API_KEY"]).await.unwrap_err();
    seen.push(format!("{failed} {failed:?}"));
    let report = without.rewrap(&mut |_| {}).await.unwrap();
    seen.push(format!("{report:?}"));
    seen.push(format!("{:?}", options()));
    drop(without);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("variable set"), "the capture works: {logs}");
    assert!(logs.contains("cannot rewrap a value"), "{logs}");
    for text in seen.iter().chain([&logs]) {
        for canary in [CANARY, "CANARY-7d3a", CANARY_KEY, "CANARYKEY"] {
            assert!(!text.contains(canary), "{canary} leaked into: {text}");
        }
    }
}

/// 2026-12-03T12:00:00Z.
pub const NOON: u64 = 1_796_299_200_000;
/// A day, in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// Dollars as micro-USD.
pub fn usd(dollars: u64) -> MicroUsd {
    MicroUsd(dollars * 1_000_000)
}

pub fn key_target(scope_text: &str, provider: &str, key_id: &str) -> BudgetTarget {
    BudgetTarget::key(scope(scope_text), provider, key_id)
}

pub fn scope_target(scope_text: &str) -> BudgetTarget {
    BudgetTarget::Scope(scope(scope_text))
}

/// A reservation with an id made of `n`.
pub fn reservation(n: u64, key: &BudgetTarget, amount: MicroUsd, expires_at: u64) -> Reservation {
    let mut id = [0; RESERVATION_ID_LEN];
    id[..8].copy_from_slice(&n.to_be_bytes());
    Reservation { id, key: key.clone(), amount, expires_at }
}

pub fn id_of(n: u64) -> [u8; RESERVATION_ID_LEN] {
    reservation(n, &scope_target("a/b/c"), MicroUsd(0), 0).id
}

pub async fn budget_reserve_within_the_cap_and_refuse_over_it_with_the_numbers(
    backend: &dyn Backend,
) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let key = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    let monthly = Budget { limit: usd(10), period: Period::Month };
    store.set_budget(&key, Some(monthly)).await.unwrap();
    let later = NOON + 3_600_000;
    assert_eq!(store.reserve(&reservation(1, &key, usd(4), later), NOON).await.unwrap(), Ok(()));
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!(status.budget, Some(monthly));
    assert_eq!((status.spent, status.reserved, status.left()), (usd(0), usd(4), Some(usd(6))));
    let refused = store.reserve(&reservation(2, &key, usd(7), later), NOON).await.unwrap();
    let refused = refused.unwrap_err();
    assert_eq!(
        refused,
        BudgetExceeded {
            target: key.clone(),
            limit: usd(10),
            period: Period::Month,
            spent: usd(0),
            reserved: usd(4),
            asked: usd(7),
        }
    );
    assert_eq!(refused.left(), usd(6));
    let message = refused.to_string();
    assert!(message.contains("OPENAI_API_KEY") && message.contains("$10.00"), "{message}");
    assert!(message.contains("$6.00 is left"), "{message}");
    // Nothing was reserved by the refusal; exactly the rest still fits.
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().reserved, usd(4));
    assert_eq!(store.reserve(&reservation(3, &key, usd(6), later), NOON).await.unwrap(), Ok(()));
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().left(), Some(usd(0)));
    // The budget survives a reopen.
    drop(store);
    let store = open(backend, keyring(KEY_A, None)).await;
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.budget, status.reserved), (Some(monthly), usd(10)));
    // Removed, nothing caps the key, and a reservation still shows.
    store.set_budget(&key, None).await.unwrap();
    assert_eq!(store.reserve(&reservation(4, &key, usd(100), later), NOON).await.unwrap(), Ok(()));
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.budget, status.reserved, status.left()), (None, usd(110), None));
    // The same id again replaces the reservation.
    assert_eq!(store.reserve(&reservation(4, &key, usd(1), later), NOON).await.unwrap(), Ok(()));
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().reserved, usd(11));
    drop(store);
    let store = open(backend, keyring(KEY_A, None)).await;
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().budget, None);
}

pub async fn budget_a_scope_cap_applies_across_its_keys(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let prod = scope_target("acme/shop/prod");
    let first = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    let second = key_target("acme/shop/prod", "anthropic", "ANTHROPIC_API_KEY");
    let elsewhere = key_target("acme/shop/dev", "openai", "OPENAI_API_KEY");
    store.set_budget(&prod, Some(Budget { limit: usd(5), period: Period::Day })).await.unwrap();
    let later = NOON + 60_000;
    assert_eq!(store.reserve(&reservation(1, &first, usd(3), later), NOON).await.unwrap(), Ok(()));
    let refused = store.reserve(&reservation(2, &second, usd(3), later), NOON).await.unwrap();
    let refused = refused.unwrap_err();
    assert_eq!((&refused.target, refused.reserved, refused.asked), (&prod, usd(3), usd(3)));
    assert_eq!(store.reserve(&reservation(3, &second, usd(2), later), NOON).await.unwrap(), Ok(()));
    assert_eq!(store.budget_status(&prod, NOON).await.unwrap().reserved, usd(5));
    assert_eq!(store.budget_status(&first, NOON).await.unwrap().reserved, usd(3));
    assert_eq!(store.budget_status(&second, NOON).await.unwrap().reserved, usd(2));
    // Another scope is not capped by this one.
    assert_eq!(
        store.reserve(&reservation(4, &elsewhere, usd(50), later), NOON).await.unwrap(),
        Ok(())
    );
    // A key's own cap is checked first.
    store.set_budget(&prod, Some(Budget { limit: usd(50), period: Period::Day })).await.unwrap();
    store.set_budget(&first, Some(Budget { limit: usd(4), period: Period::Total })).await.unwrap();
    let refused = store.reserve(&reservation(5, &first, usd(2), later), NOON).await.unwrap();
    assert_eq!(refused.unwrap_err().target, first);
}

pub async fn budget_settle_moves_reserved_to_spent_and_a_late_settle_still_counts(
    backend: &dyn Backend,
) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let key = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    let prod = scope_target("acme/shop/prod");
    store.set_budget(&key, Some(Budget { limit: usd(10), period: Period::Total })).await.unwrap();
    let soon = NOON + 60_000;
    assert_eq!(store.reserve(&reservation(1, &key, usd(4), soon), NOON).await.unwrap(), Ok(()));
    assert!(store.settle(&id_of(1), &key, usd(3), NOON).await.unwrap());
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.spent, status.reserved, status.left()), (usd(3), usd(0), Some(usd(7))));
    let whole = store.budget_status(&prod, NOON).await.unwrap();
    assert_eq!((whole.budget, whole.spent, whole.spend.day), (None, usd(3), usd(3)));
    // Settled after the reservation expired: the cost counts all the same.
    assert_eq!(store.reserve(&reservation(2, &key, usd(2), soon), NOON).await.unwrap(), Ok(()));
    assert!(store.settle(&id_of(2), &key, usd(2), soon + 1).await.unwrap());
    // A settle of a reservation no longer recorded still counts its cost.
    assert!(!store.settle(&id_of(2), &key, usd(1), soon + 1).await.unwrap());
    assert_eq!(store.budget_status(&key, soon + 1).await.unwrap().spent, usd(6));
    // A cancel frees the amount and spends nothing.
    assert_eq!(store.reserve(&reservation(3, &key, usd(4), soon), NOON).await.unwrap(), Ok(()));
    assert!(store.reserve(&reservation(4, &key, usd(1), soon), NOON).await.unwrap().is_err());
    assert!(store.cancel_reservation(&id_of(3)).await.unwrap());
    assert!(!store.cancel_reservation(&id_of(3)).await.unwrap());
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.spent, status.reserved), (usd(6), usd(0)));
    // Reported usage counts without a reservation, on the key and its scope.
    store.record_spend(&key, MicroUsd(1), NOON).await.unwrap();
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().spent, MicroUsd(6_000_001));
    assert_eq!(store.budget_status(&prod, NOON).await.unwrap().spend.total, MicroUsd(6_000_001));
    // Spend is durable.
    drop(store);
    let store = open(backend, keyring(KEY_A, None)).await;
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().spent, MicroUsd(6_000_001));
}

pub async fn budget_an_expired_reservation_frees_its_amount(backend: &dyn Backend) {
    let (clock, options) = manual_clock(NOON);
    let store = backend.open(keyring(KEY_A, None), options).await.unwrap();
    let key = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    store.set_budget(&key, Some(Budget { limit: usd(10), period: Period::Day })).await.unwrap();
    let end = NOON + 60_000;
    assert_eq!(store.reserve(&reservation(1, &key, usd(8), end), NOON).await.unwrap(), Ok(()));
    assert!(store.reserve(&reservation(2, &key, usd(3), end), end - 1).await.unwrap().is_err());
    // At its end it counts no more.
    assert_eq!(store.budget_status(&key, end).await.unwrap().reserved, usd(0));
    assert_eq!(
        store.reserve(&reservation(2, &key, usd(3), end + 60_000), end).await.unwrap(),
        Ok(())
    );
    // The purge drops it (and only it); a settle after that still counts.
    clock.store(end, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert!(!store.cancel_reservation(&id_of(1)).await.unwrap());
    assert!(!store.settle(&id_of(1), &key, usd(5), end).await.unwrap());
    let status = store.budget_status(&key, end).await.unwrap();
    assert_eq!((status.spent, status.reserved), (usd(5), usd(3)));
}

pub async fn budget_spend_counts_in_its_day_and_month_windows(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let key = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    // The last millisecond of 2026-12-31, then the first of 2027-01-01.
    let new_year = 1_798_761_600_000;
    let last = new_year - 1;
    store.record_spend(&key, usd(5), last).await.unwrap();
    let fits = async |period: Period, now: u64| {
        store.set_budget(&key, Some(Budget { limit: usd(5), period })).await.unwrap();
        let asked = reservation(now, &key, MicroUsd(1), now + 1);
        let fits = store.reserve(&asked, now).await.unwrap().is_ok();
        store.cancel_reservation(&asked.id).await.unwrap();
        fits
    };
    assert!(!fits(Period::Day, last).await);
    assert!(!fits(Period::Day, last - 3_600_000).await, "the same day");
    assert!(fits(Period::Day, new_year).await, "a new day");
    assert!(!fits(Period::Month, last - 20 * DAY_MS).await, "the same month");
    assert!(fits(Period::Month, new_year).await, "a new month");
    assert!(!fits(Period::Total, new_year + 400 * DAY_MS).await, "the total never resets");
    let status = store.budget_status(&key, new_year).await.unwrap();
    assert_eq!(status.spend, SpendWindows { day: usd(0), month: usd(0), total: usd(5) });
    let status = store.budget_status(&key, last - 2 * DAY_MS).await.unwrap();
    assert_eq!(status.spend, SpendWindows { day: usd(0), month: usd(5), total: usd(5) });
    assert_eq!(store.budget_status(&key, last).await.unwrap().spend.day, usd(5));
}

/// The reserves of `amount` with the ids `ids` at once, on `stores` and
/// for `keys` in turn; how many were admitted.
pub async fn reserve_at_once(
    stores: &[Arc<dyn SecretStore>],
    keys: &[BudgetTarget],
    ids: std::ops::Range<u64>,
    amount: MicroUsd,
) -> usize {
    let tasks: Vec<_> = ids
        .map(|n| {
            let store = stores[n as usize % stores.len()].clone();
            let asked = reservation(n, &keys[n as usize % keys.len()], amount, NOON + 60_000);
            tokio::spawn(async move { store.reserve(&asked, NOON).await.unwrap().is_ok() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    admitted
}

pub async fn budget_concurrent_reserves_never_exceed_a_cap(backend: &dyn Backend) {
    let store = open(backend, keyring(KEY_A, None)).await;
    let key = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    let amount = MicroUsd(1_000);
    let cap = Budget { limit: MicroUsd(37 * 1_000), period: Period::Day };
    store.set_budget(&key, Some(cap)).await.unwrap();
    let stores = [store.clone()];
    assert_eq!(reserve_at_once(&stores, std::slice::from_ref(&key), 0..200, amount).await, 37);
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.reserved, status.left()), (MicroUsd(37_000), Some(MicroUsd(0))));
    // A scope cap across two keys holds the same way.
    let dev = scope_target("acme/shop/dev");
    store.set_budget(&dev, Some(cap)).await.unwrap();
    let keys = [
        key_target("acme/shop/dev", "openai", "OPENAI_API_KEY"),
        key_target("acme/shop/dev", "anthropic", "ANTHROPIC_API_KEY"),
    ];
    assert_eq!(reserve_at_once(&stores, &keys, 200..400, amount).await, 37);
    assert_eq!(store.budget_status(&dev, NOON).await.unwrap().reserved, MicroUsd(37_000));
}

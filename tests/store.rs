//! The encrypted, scoped store: keys, binding of ciphertexts to rows,
//! rotation and rewrap, scope isolation, provider-key rows, grace periods,
//! self-host precedence, secrets in logs, the command line, and crash safety
//! (`PLATOS_CRASH_CYCLES` sets the number of kill cycles; 50 by default).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use platos_host::crypto::{
    CryptoError, ENCRYPTION_KEY_PREVIOUS_VAR, ENCRYPTION_KEY_VAR, EncryptionKey, KeyError, Keyring,
};
use platos_host::scope::Scope;
use platos_host::selfhost::{Reload, SelfHostConfig, SelfHostError};
use platos_host::store::{
    Blocking, BlockingSecretStore, HealthRecord, HealthVerdict, KeyStatus, KeyUpdate, ProviderVars,
    SledStore, StoreError, StoreOptions, VarSource, default_key,
};
use secrecy::{ExposeSecret, SecretString};

const KEY_A: &str = "0123456789abcdef0123456789abcdef";
const KEY_B: &str = "fedcba9876543210fedcba9876543210";
const KEY_C: &str = "00112233445566778899aabbccddeeff";

fn key(var: &'static str, value: &str) -> EncryptionKey {
    EncryptionKey::parse(var, value).unwrap()
}

fn keyring(current: &str, previous: Option<&str>) -> Keyring {
    Keyring::new(
        key(ENCRYPTION_KEY_VAR, current),
        previous.map(|value| key(ENCRYPTION_KEY_PREVIOUS_VAR, value)),
    )
}

fn provider_vars() -> ProviderVars {
    ProviderVars::new().with("OPENAI_API_KEY", "openai").with("ANTHROPIC_API_KEY", "anthropic")
}

fn options() -> StoreOptions {
    StoreOptions { provider_vars: provider_vars(), ..StoreOptions::default() }
}

fn open(dir: &Path, keyring: Keyring) -> SledStore {
    SledStore::open(dir, keyring, options()).unwrap()
}

fn scope(text: &str) -> Scope {
    text.parse().unwrap()
}

fn secret(value: &str) -> SecretString {
    SecretString::from(value.to_owned())
}

fn value_of(store: &dyn BlockingSecretStore, scope: &Scope, name: &str) -> Option<String> {
    store.get_var(scope, name).unwrap().map(|value| value.value.expose_secret().to_owned())
}

fn set(store: &dyn BlockingSecretStore, scope: &Scope, name: &str, value: &str) -> u64 {
    store.set_var(scope, name, &secret(value), VarSource::Api).unwrap().version
}

/// The self-host import (async, over the async store) on a sled store these
/// tests also use directly.
fn reload(
    store: &Arc<SledStore>,
    config: &SelfHostConfig,
    accept: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Reload, SelfHostError> {
    let shared = Blocking::shared(Arc::clone(store));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(platos_host::selfhost::reload(&shared, config, accept))
}

/// A clock the test moves by hand.
fn manual_clock(start: u64) -> (Arc<AtomicU64>, StoreOptions) {
    let now = Arc::new(AtomicU64::new(start));
    let clock = now.clone();
    let options = StoreOptions {
        grace: Duration::from_secs(60),
        clock: Arc::new(move || clock.load(Ordering::SeqCst)),
        ..options()
    };
    (now, options)
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_bytes(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

/// The store's sled database, opened directly (waiting for the lock of a
/// store just dropped).
fn raw_db(dir: &Path) -> sled::Db {
    for _ in 0..200 {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    sled::open(dir).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn wrong_key_lengths_are_refused_without_the_key() {
    for len in [0usize, 16, 31, 33, 64] {
        let value: String = "x7".repeat(len).chars().take(len).collect();
        let lookup = |name: &str| (name == ENCRYPTION_KEY_VAR).then(|| OsString::from(&value));
        let error = Keyring::from_lookup(&lookup).unwrap_err();
        assert_eq!(
            error,
            KeyError::WrongLength { var: ENCRYPTION_KEY_VAR, expected: 32, found: len }
        );
        let message = error.to_string();
        assert!(message.contains("ENCRYPTION_KEY must be exactly 32 ASCII bytes"), "{message}");
        assert!(message.contains(&format!("found {len} bytes")), "{message}");
        assert!(message.contains("openssl rand -hex 16"), "{message}");
        if len > 0 {
            assert!(!message.contains(&value), "{message}");
            assert!(!format!("{error:?}").contains(&value));
        }
    }
    let non_ascii = "ключ-ключ-ключ-к"; // 30 bytes, not ASCII
    let lookup = |name: &str| (name == ENCRYPTION_KEY_VAR).then(|| OsString::from(non_ascii));
    let message = Keyring::from_lookup(&lookup).unwrap_err().to_string();
    assert!(message.contains("non-ASCII") && message.contains("openssl rand -hex 16"), "{message}");
    assert!(!message.contains("ключ"), "{message}");
    // 32 non-ASCII bytes are refused too, for being non-ASCII.
    let thirty_two = "é".repeat(16);
    let lookup = |name: &str| (name == ENCRYPTION_KEY_VAR).then(|| OsString::from(&thirty_two));
    assert!(matches!(
        Keyring::from_lookup(&lookup),
        Err(KeyError::NotAscii { expected: 32, found: 32, .. })
    ));
    // The previous key is checked the same way.
    let lookup = |name: &str| match name {
        ENCRYPTION_KEY_VAR => Some(OsString::from(KEY_A)),
        _ => Some(OsString::from("too-short-previous")),
    };
    let message = Keyring::from_lookup(&lookup).unwrap_err().to_string();
    assert!(message.starts_with("ENCRYPTION_KEY_PREVIOUS must be exactly 32"), "{message}");
    assert!(!message.contains("too-short-previous"));
}

#[test]
fn ciphertext_moved_to_another_row_fails_to_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        set(&store, &dev, "OPENAI_API_KEY", "sk-dev-secret");
        set(&store, &prod, "OPENAI_API_KEY", "sk-prod-secret");
        set(&store, &dev, "OTHER", "other-secret");
        set(&store, &dev, "OTHER", "other-secret-2");
        set(&store, &dev, "THIRD", "third-secret");
    }
    // Copy ciphertexts straight in the sled tree: dev's key over prod's
    // (another scope), over THIRD (another name), and OTHER v1 over OTHER v2
    // (another version).
    {
        let db = raw_db(dir.path());
        let values = db.open_tree("values").unwrap();
        let row = |scope: &str, name: &str, version: u64| {
            let mut key = format!("{scope}\0{name}\0").into_bytes();
            key.extend_from_slice(&version.to_be_bytes());
            key
        };
        let copy = |from: Vec<u8>, to: Vec<u8>| {
            let sealed = values.get(from).unwrap().unwrap();
            values.insert(to, sealed).unwrap();
        };
        copy(row("acme/shop/dev", "OPENAI_API_KEY", 1), row("acme/shop/prod", "OPENAI_API_KEY", 1));
        copy(row("acme/shop/dev", "OPENAI_API_KEY", 1), row("acme/shop/dev", "THIRD", 1));
        copy(row("acme/shop/dev", "OTHER", 1), row("acme/shop/dev", "OTHER", 2));
        db.flush().unwrap();
    }
    let store = open(dir.path(), keyring(KEY_A, None));
    for (scope, name) in [(&prod, "OPENAI_API_KEY"), (&dev, "THIRD"), (&dev, "OTHER")] {
        let error = store.get_var(scope, name).unwrap_err();
        assert!(
            matches!(error, StoreError::Crypto { source: CryptoError::Authentication, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("failed authentication") && message.contains(name), "{message}");
        assert!(!message.contains("-secret"));
    }
    // The source row still decrypts.
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").unwrap(), "sk-dev-secret");
}

#[test]
fn encryptions_differ_and_no_plaintext_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    let canary = "sk-canary-plaintext-4f1e9b";
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        set(&store, &dev, "OPENAI_API_KEY", canary);
        set(&store, &prod, "OPENAI_API_KEY", canary);
        set(&store, &dev, "OPENAI_API_KEY", canary);
    }
    let db = raw_db(dir.path());
    let values: Vec<Vec<u8>> =
        db.open_tree("values").unwrap().iter().map(|item| item.unwrap().1.to_vec()).collect();
    assert_eq!(values.len(), 3);
    assert!(values[0] != values[1] && values[1] != values[2] && values[0] != values[2]);
    // Same length (same plaintext), different nonces and ciphertexts.
    assert!(values.iter().all(|value| value.len() == values[0].len()));
    assert_ne!(values[0][9..21], values[1][9..21]);
    drop(db);
    assert!(!contains(&all_bytes(dir.path()), canary), "plaintext found in the store files");
}

#[test]
fn rotation_then_rewrap_leaves_everything_readable_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let scopes = [scope("acme/shop/dev"), scope("acme/shop/prod"), scope("other/x/y")];
    let mut expected = BTreeMap::new();
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        for scope in &scopes {
            for index in 0..200 {
                let name = format!("VAR_{index}");
                let version = set(&store, scope, &name, &format!("{scope}-{index}-v1"));
                expected
                    .insert((scope.clone(), name.clone(), version), format!("{scope}-{index}-v1"));
                if index % 10 == 0 {
                    // A second version: the first stays in its grace period.
                    let version = set(&store, scope, &name, &format!("{scope}-{index}-v2"));
                    expected.insert((scope.clone(), name, version), format!("{scope}-{index}-v2"));
                }
            }
        }
        assert_eq!(store.key_usage().unwrap().len(), 1);
    }
    let id_a = keyring(KEY_A, None).current_id();
    let id_b = keyring(KEY_B, None).current_id();

    // Rotate: B encrypts, A still decrypts. New writes go under B.
    let store = Arc::new(open(dir.path(), keyring(KEY_B, Some(KEY_A))));
    let fresh = scope("acme/shop/dev");
    let version = set(&*store, &fresh, "WRITTEN_AFTER_ROTATION", "new");
    expected.insert((fresh, "WRITTEN_AFTER_ROTATION".into(), version), "new".into());
    let usage = store.key_usage().unwrap();
    assert_eq!(usage[&id_b], 1);
    assert_eq!(usage[&id_a], expected.len() as u64 - 1);

    // Interrupt a rewrap after its first batch (the callback panics), while
    // a reader reads every value.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let stop = stop.clone();
        let expected = expected.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) || reads == 0 {
                for ((scope, name, version), want) in &expected {
                    let got = store.get_var_version(scope, name, *version).unwrap().unwrap();
                    assert_eq!(got.value.expose_secret(), want);
                    reads += 1;
                }
            }
            reads
        })
    };
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.rewrap(&mut |progress| {
            if progress.done > 0 {
                panic!("interrupted at {}", progress.done);
            }
        })
    }));
    assert!(interrupted.is_err());
    let usage = store.key_usage().unwrap();
    assert!(usage[&id_b] > 1 && usage[&id_a] > 0, "{usage:?}");

    // Run it again: it finishes the rest and skips what is done.
    let mut calls = Vec::new();
    let report = store.rewrap(&mut |progress| calls.push(*progress)).unwrap();
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    let last = calls.last().unwrap();
    assert_eq!(last, &report.progress);
    assert_eq!(last.done, expected.len() as u64);
    assert_eq!(last.total, expected.len() as u64);
    assert_eq!(last.failed, 0);
    assert!(last.skipped >= 256, "{last:?}");
    assert_eq!(last.rewrapped + last.skipped, last.done);
    assert!(calls.len() >= 3, "progress is reported along the way");
    assert_eq!(store.key_usage().unwrap(), BTreeMap::from([(id_b, expected.len() as u64)]));
    // A third run has nothing to do.
    assert_eq!(store.rewrap(&mut |_| {}).unwrap().progress.rewrapped, 0);
    drop(store);

    // Without the old key, every value (current and in grace) still reads.
    let store = open(dir.path(), keyring(KEY_B, None));
    for ((scope, name, version), want) in &expected {
        let got = store.get_var_version(scope, name, *version).unwrap().unwrap();
        assert_eq!(got.value.expose_secret(), want);
    }
    drop(store);

    // An unrelated key is refused at open: the rewrap moved the key check to B.
    for ring in [keyring(KEY_C, None), keyring(KEY_A, None), keyring(KEY_C, Some(KEY_A))] {
        let error = SledStore::open(dir.path(), ring, options()).unwrap_err();
        assert_eq!(error.code(), "key_mismatch", "{error}");
    }

    // A rollback to A after writes under B (the key check is still under A,
    // as rewrap did not run): the store opens, the values under B do not
    // decrypt, and the error names key ids only.
    let store = open(dir.path(), keyring(KEY_C, Some(KEY_B)));
    set(&store, &scopes[0], "UNDER_C", "c");
    drop(store);
    let store = open(dir.path(), keyring(KEY_B, None));
    let message = store.get_var(&scopes[0], "UNDER_C").unwrap_err().to_string();
    let id_c = keyring(KEY_C, None).current_id();
    assert!(message.contains(&id_c.to_string()) && message.contains("unset"), "{message}");
    assert!(!message.contains(KEY_B) && !message.contains(KEY_C));
    let report = store.rewrap(&mut |_| {}).unwrap();
    assert_eq!(report.progress.failed, 1);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].name, "UNDER_C");
}

#[test]
fn scopes_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), keyring(KEY_A, None));
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    let dev2 = scope("acme/shop/dev2");
    let other_org = scope("beta/shop/dev");
    set(&store, &dev, "OPENAI_API_KEY", "sk-dev");
    set(&store, &dev, "ONLY_IN_DEV", "x");
    set(&store, &prod, "OPENAI_API_KEY", "sk-prod");
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").unwrap(), "sk-dev");
    assert_eq!(value_of(&store, &prod, "OPENAI_API_KEY").unwrap(), "sk-prod");
    assert_eq!(value_of(&store, &prod, "ONLY_IN_DEV"), None);
    for empty in [&dev2, &other_org] {
        assert!(store.list_vars(empty).unwrap().is_empty());
        assert!(store.list_provider_keys(empty).unwrap().is_empty());
        assert_eq!(value_of(&store, empty, "OPENAI_API_KEY"), None);
    }
    let names = |scope: &Scope| -> Vec<String> {
        store.list_vars(scope).unwrap().into_iter().map(|var| var.name).collect()
    };
    assert_eq!(names(&dev), ["ONLY_IN_DEV", "OPENAI_API_KEY"]);
    assert_eq!(names(&prod), ["OPENAI_API_KEY"]);
    // Unsetting in dev leaves prod alone.
    assert!(store.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).unwrap());
    assert_eq!(value_of(&store, &prod, "OPENAI_API_KEY").unwrap(), "sk-prod");
    assert_eq!(store.list_provider_keys(&prod).unwrap().len(), 1);
    assert!(store.list_provider_keys(&dev).unwrap().is_empty());
}

#[test]
fn numbered_variants_link_and_unlink_provider_key_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (now, clocked) = manual_clock(1_000);
    let store = SledStore::open(dir.path(), keyring(KEY_A, None), clocked).unwrap();
    let dev = scope("acme/shop/dev");
    let rows = |store: &SledStore| -> Vec<(String, String, u32)> {
        store
            .list_provider_keys(&dev)
            .unwrap()
            .into_iter()
            .map(|key| (key.provider, key.env_var, key.variant))
            .collect()
    };
    let default = |store: &SledStore, provider: &str| {
        let keys = store.list_provider_keys(&dev).unwrap();
        default_key(&keys, provider).map(|key| key.env_var.clone())
    };

    set(&store, &dev, "OPENAI_API_KEY_2", "sk-2");
    assert_eq!(rows(&store), [("openai".into(), "OPENAI_API_KEY_2".into(), 2)]);
    assert_eq!(default(&store, "openai").as_deref(), Some("OPENAI_API_KEY_2"));
    now.store(2_000, Ordering::SeqCst);
    set(&store, &dev, "OPENAI_API_KEY", "sk-1");
    set(&store, &dev, "OPENAI_API_KEY_10", "sk-10");
    set(&store, &dev, "ANTHROPIC_API_KEY_3", "sk-ant-3");
    // Not keys: a companion, `_1`, a leading zero.
    set(&store, &dev, "OPENAI_API_BASE", "https://example.test/v1");
    set(&store, &dev, "OPENAI_API_KEY_1", "x");
    set(&store, &dev, "OPENAI_API_KEY_02", "x");
    assert_eq!(
        rows(&store),
        [
            ("anthropic".into(), "ANTHROPIC_API_KEY_3".into(), 3),
            ("openai".into(), "OPENAI_API_KEY".into(), 1),
            ("openai".into(), "OPENAI_API_KEY_2".into(), 2),
            ("openai".into(), "OPENAI_API_KEY_10".into(), 10),
        ]
    );
    assert_eq!(default(&store, "openai").as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(default(&store, "anthropic").as_deref(), Some("ANTHROPIC_API_KEY_3"));

    // Metadata updates keep the row; a new value of the variable keeps it too.
    let health = HealthRecord {
        verdict: HealthVerdict::InvalidCredential,
        message: "401".into(),
        checked_at: 2_500,
        latency_ms: 12,
        models: Vec::new(),
    };
    assert!(
        store
            .update_provider_key(
                &dev,
                "openai",
                "OPENAI_API_KEY_2",
                KeyUpdate::Health(health.clone())
            )
            .unwrap()
    );
    assert!(
        store
            .update_provider_key(&dev, "openai", "OPENAI_API_KEY_2", KeyUpdate::Used { at: 2_600 })
            .unwrap()
    );
    assert!(
        store
            .update_provider_key(&dev, "openai", "OPENAI_API_KEY_2", KeyUpdate::Label("eu".into()))
            .unwrap()
    );
    assert!(
        !store
            .update_provider_key(&dev, "openai", "OPENAI_API_KEY_3", KeyUpdate::Used { at: 1 })
            .unwrap()
    );
    set(&store, &dev, "OPENAI_API_KEY_2", "sk-2-rotated");
    let row = store
        .list_provider_keys(&dev)
        .unwrap()
        .into_iter()
        .find(|key| key.env_var == "OPENAI_API_KEY_2")
        .unwrap();
    assert_eq!((row.created_at, row.last_used_at, row.label.as_str()), (1_000, Some(2_600), "eu"));
    assert_eq!(row.health, Some(health));
    assert_eq!(row.status, KeyStatus::Active);

    // Unsetting the plain variable unlinks its row: the default moves to 2.
    assert!(store.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).unwrap());
    assert_eq!(default(&store, "openai").as_deref(), Some("OPENAI_API_KEY_2"));
    // A disabled key is never the default.
    store
        .update_provider_key(
            &dev,
            "openai",
            "OPENAI_API_KEY_2",
            KeyUpdate::Status(KeyStatus::Disabled),
        )
        .unwrap();
    assert_eq!(default(&store, "openai").as_deref(), Some("OPENAI_API_KEY_10"));
    assert!(!store.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).unwrap());
    store.unset_var(&dev, "OPENAI_API_KEY_10", VarSource::Api).unwrap();
    store.unset_var(&dev, "OPENAI_API_KEY_2", VarSource::Api).unwrap();
    assert_eq!(rows(&store), [("anthropic".into(), "ANTHROPIC_API_KEY_3".into(), 3)]);
    assert_eq!(default(&store, "openai"), None);

    // A new mapping re-links: a provider whose key variable changed loses
    // the old rows and gains rows for the new variable, already set.
    let renamed = ProviderVars::new().with("OPENAI_API_BASE", "anthropic");
    let report = store.set_provider_vars(renamed.clone()).unwrap();
    assert_eq!((report.linked, report.unlinked), (1, 1));
    assert_eq!(rows(&store), [("anthropic".into(), "OPENAI_API_BASE".into(), 1)]);
    assert_eq!(store.set_provider_vars(renamed).unwrap(), Default::default());
    // A provider missing from the mapping (its plugin failed to load) keeps
    // its rows, dormant.
    assert_eq!(store.set_provider_vars(ProviderVars::new()).unwrap(), Default::default());
    assert_eq!(rows(&store), [("anthropic".into(), "OPENAI_API_BASE".into(), 1)]);
    // Rows survive a reopen.
    drop(store);
    let store = open(dir.path(), keyring(KEY_A, None));
    assert_eq!(rows(&store), [("anthropic".into(), "OPENAI_API_BASE".into(), 1)]);
}

#[test]
fn replaced_versions_stay_readable_for_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (now, clocked) = manual_clock(1_000_000);
    let store = SledStore::open(dir.path(), keyring(KEY_A, None), clocked).unwrap();
    let dev = scope("acme/shop/dev");
    let name = "OPENAI_API_KEY";
    let read = |version: u64| {
        store
            .get_var_version(&dev, name, version)
            .unwrap()
            .map(|value| value.value.expose_secret().to_owned())
    };
    assert_eq!(set(&store, &dev, name, "one"), 1);
    assert_eq!(set(&store, &dev, name, "two"), 2);
    let current = store.get_var(&dev, name).unwrap().unwrap();
    assert_eq!((current.version, current.value.expose_secret()), (2, "two"));
    // A turn holding version 1 can still read it, until the grace ends.
    assert_eq!(read(1).as_deref(), Some("one"));
    assert_eq!(read(3), None);
    now.store(1_000_000 + 59_999, Ordering::SeqCst);
    assert_eq!(read(1).as_deref(), Some("one"));
    assert_eq!(store.purge_expired().unwrap(), 0);
    now.store(1_000_000 + 60_000, Ordering::SeqCst);
    assert_eq!(read(1), None);
    assert_eq!(read(2).as_deref(), Some("two"));
    assert_eq!(store.purge_expired().unwrap(), 1);
    assert_eq!(store.purge_expired().unwrap(), 0);

    // Unset: the current value disappears, the last version stays readable
    // for the grace period, and versions are never reused.
    assert!(store.unset_var(&dev, name, VarSource::Api).unwrap());
    assert!(store.get_var(&dev, name).unwrap().is_none());
    assert!(store.list_vars(&dev).unwrap().is_empty());
    assert_eq!(read(2).as_deref(), Some("two"));
    assert_eq!(set(&store, &dev, name, "three"), 3);
    now.fetch_add(60_000, Ordering::SeqCst);
    assert_eq!(read(2), None);
    // The expired version was dropped by the write itself or by a purge.
    store.purge_expired().unwrap();
    let db_versions = store.key_usage().unwrap().values().sum::<u64>();
    assert_eq!(db_versions, 1);
    drop(store);

    // A zero grace period keeps no old version.
    let dir = tempfile::tempdir().unwrap();
    let zero_grace = StoreOptions { grace: Duration::ZERO, ..options() };
    let store = SledStore::open(dir.path(), keyring(KEY_A, None), zero_grace).unwrap();
    set(&store, &dev, name, "one");
    set(&store, &dev, name, "two");
    assert!(store.get_var_version(&dev, name, 1).unwrap().is_none());
    assert_eq!(store.key_usage().unwrap().values().sum::<u64>(), 1);
}

#[test]
fn lease_releases_are_recorded_once_kept_until_the_lease_ends_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (now, clocked) = manual_clock(1_000_000);
    let store = SledStore::open(dir.path(), keyring(KEY_A, None), clocked.clone()).unwrap();
    let (one, two) = ([1u8; 16], [2u8; 16]);
    let end = 1_000_000 + 900_000;
    assert!(!store.lease_released(&one, end).unwrap());
    assert!(store.release_lease(&one, end).unwrap(), "the first release records it");
    assert!(!store.release_lease(&one, end).unwrap(), "a second release is not a new one");
    assert!(store.lease_released(&one, end).unwrap());
    // Another id, or the same id with another end, is another lease.
    assert!(!store.lease_released(&two, end).unwrap());
    assert!(!store.lease_released(&one, end + 1).unwrap());
    assert!(store.release_lease(&two, end + 1).unwrap());

    // Concurrent releases of one lease: exactly one records it.
    let three = [3u8; 16];
    let recorded = std::thread::scope(|threads| {
        let handles: Vec<_> =
            (0..8).map(|_| threads.spawn(|| store.release_lease(&three, end).unwrap())).collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .filter(|recorded| *recorded)
            .count()
    });
    assert_eq!(recorded, 1);

    // Durable, and each record is the end and the id only, nothing else.
    drop(store);
    let db = raw_db(dir.path());
    let records: Vec<(Vec<u8>, Vec<u8>)> = db
        .open_tree("leases-released")
        .unwrap()
        .iter()
        .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap())
        .collect();
    let record = |id: [u8; 16], end: u64| ([&end.to_be_bytes()[..], &id].concat(), Vec::new());
    assert_eq!(records, [record(one, end), record(three, end), record(two, end + 1)]);
    drop(db);
    let store = SledStore::open(dir.path(), keyring(KEY_A, None), clocked).unwrap();
    assert!(
        store.lease_released(&one, end).unwrap() && store.lease_released(&two, end + 1).unwrap()
    );

    // Kept until the lease's end, then purged; a purge drops only those over.
    now.store(end - 1, Ordering::SeqCst);
    assert_eq!(store.purge_expired().unwrap(), 0);
    assert!(store.lease_released(&one, end).unwrap());
    now.store(end, Ordering::SeqCst);
    assert_eq!(store.purge_expired().unwrap(), 2, "the two leases ending at {end}");
    assert!(
        !store.lease_released(&one, end).unwrap() && !store.lease_released(&three, end).unwrap()
    );
    assert!(store.lease_released(&two, end + 1).unwrap());
    now.store(u64::MAX, Ordering::SeqCst);
    assert_eq!(store.purge_expired().unwrap(), 1);
    assert_eq!(store.purge_expired().unwrap(), 0);
}

#[test]
fn replaced_versions_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), keyring(KEY_A, None));
    let dev = scope("acme/shop/dev");
    let cap = platos_host::store::MAX_RETIRED_VERSIONS as u64;
    for index in 1..=cap + 8 {
        assert_eq!(set(&store, &dev, "HOT", &format!("v{index}")), index);
    }
    let readable: Vec<u64> = (1..=cap + 8)
        .filter(|version| store.get_var_version(&dev, "HOT", *version).unwrap().is_some())
        .collect();
    assert_eq!(readable, (8..=cap + 8).collect::<Vec<u64>>());
    assert_eq!(store.key_usage().unwrap().values().sum::<u64>(), cap + 1);
}

#[test]
fn names_and_values_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), keyring(KEY_A, None));
    let dev = scope("acme/shop/dev");
    for bad in ["", "lower", "1ABC", "A-B", "A B"] {
        let error = store.set_var(&dev, bad, &secret("v"), VarSource::Api).unwrap_err();
        assert!(matches!(error, StoreError::InvalidName(_)), "{bad}: {error}");
    }
    for reserved in [ENCRYPTION_KEY_VAR, ENCRYPTION_KEY_PREVIOUS_VAR] {
        let error = store.set_var(&dev, reserved, &secret(KEY_B), VarSource::Api).unwrap_err();
        assert!(matches!(error, StoreError::ReservedName(_)), "{error}");
        assert!(!error.to_string().contains(KEY_B));
    }
    let huge = "x".repeat(platos_host::store::MAX_VALUE_LEN + 1);
    let error = store.set_var(&dev, "BIG", &secret(&huge), VarSource::Api).unwrap_err();
    assert!(matches!(error, StoreError::ValueTooLarge { .. }), "{error}");
    // Multi-line and empty values are values.
    set(&store, &dev, "PEM", "-----BEGIN-----\nabc\n-----END-----\n");
    assert_eq!(value_of(&store, &dev, "PEM").unwrap(), "-----BEGIN-----\nabc\n-----END-----\n");
    set(&store, &dev, "EMPTY", "");
    assert_eq!(value_of(&store, &dev, "EMPTY").unwrap(), "");
}

#[test]
fn concurrent_writers_get_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), keyring(KEY_A, None)));
    let dev = scope("acme/shop/dev");
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let store = store.clone();
            let dev = dev.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|index| set(&*store, &dev, "SHARED", &format!("{thread}-{index}")))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut versions: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=100).collect::<Vec<u64>>());
    assert_eq!(store.get_var(&dev, "SHARED").unwrap().unwrap().version, 100);
}

#[test]
fn self_host_values_win_and_api_writes_to_them_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), keyring(KEY_A, None)));
    let home = scope("self/default/prod");
    // The API set a value first.
    set(&*store, &home, "OPENAI_API_KEY", "sk-from-api");
    set(&*store, &home, "API_ONLY", "api");

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
    let first = reload(&store, &config, &accept).unwrap();
    assert_eq!(first.report.set, ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]);
    assert_eq!(first.skipped.len(), 1);
    assert_eq!(first.skipped[0].line, 4);
    // Self-host wins over the API value of the same name.
    assert_eq!(value_of(&*store, &home, "OPENAI_API_KEY").unwrap(), "sk-from-file");
    let sources: BTreeMap<String, VarSource> =
        store.list_vars(&home).unwrap().into_iter().map(|var| (var.name, var.source)).collect();
    assert_eq!(sources["OPENAI_API_KEY"], VarSource::SelfHost);
    assert_eq!(sources["API_ONLY"], VarSource::Api);
    assert_eq!(store.list_provider_keys(&home).unwrap().len(), 2);

    // The API can neither overwrite nor unset a self-host variable.
    let error = store
        .set_var(&home, "OPENAI_API_KEY", &secret("sk-api-again"), VarSource::Api)
        .unwrap_err();
    assert!(matches!(error, StoreError::ManagedBySelfHost { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("managed by the self-host configuration"), "{message}");
    assert!(message.contains("OPENAI_API_KEY") && message.contains("self/default/prod"));
    assert!(!message.contains("sk-"), "{message}");
    let error = store.unset_var(&home, "OPENAI_API_KEY", VarSource::Api).unwrap_err();
    assert!(matches!(error, StoreError::ManagedBySelfHost { .. }));
    // The rule is per scope: the same name elsewhere is the API's.
    set(&*store, &scope("self/default/dev"), "OPENAI_API_KEY", "sk-dev");
    set(&*store, &home, "API_ONLY", "api-2");

    // A reload with the same content changes nothing (no new versions).
    let again = reload(&store, &config, &accept).unwrap();
    assert!(again.report.set.is_empty());
    assert_eq!(again.report.unchanged, ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]);
    assert_eq!(store.get_var(&home, "OPENAI_API_KEY").unwrap().unwrap().version, 2);

    // A name removed from the file is unset (and its key unlinked); then
    // the API may set it.
    std::fs::write(&env_file, "OPENAI_API_KEY=sk-from-file-2\n").unwrap();
    let third = reload(&store, &config, &accept).unwrap();
    assert_eq!(third.report.set, ["OPENAI_API_KEY"]);
    assert_eq!(third.report.removed, ["ANTHROPIC_API_KEY"]);
    assert_eq!(value_of(&*store, &home, "ANTHROPIC_API_KEY"), None);
    let providers: Vec<String> =
        store.list_provider_keys(&home).unwrap().into_iter().map(|key| key.provider).collect();
    assert_eq!(providers, ["openai"]);
    set(&*store, &home, "ANTHROPIC_API_KEY", "sk-ant-api");
    assert_eq!(value_of(&*store, &home, "API_ONLY").unwrap(), "api-2");

    // A malformed or missing file changes nothing.
    std::fs::write(&env_file, "OPENAI_API_KEY=changed\nnot a line\n").unwrap();
    let error = reload(&store, &config, &accept).unwrap_err().to_string();
    assert!(error.ends_with("platos.env:2: expected NAME=VALUE"), "{error}");
    let missing =
        SelfHostConfig { env_file: Some(dir.path().join("missing.env")), ..config.clone() };
    assert!(reload(&store, &missing, &accept).is_err());
    assert_eq!(value_of(&*store, &home, "OPENAI_API_KEY").unwrap(), "sk-from-file-2");
}

#[test]
fn self_host_reads_the_process_environment_through_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), keyring(KEY_A, None)));
    let home = scope("self/default/prod");
    let config = SelfHostConfig { scope: home.clone(), env_file: None, process_env: true };
    // Only accepted names are imported, and never a name of the host's own
    // environment (PATH is set in every test process), whatever the filter.
    // SAFETY: no other test of this binary reads or writes this variable,
    // and the std environment functions are locked against each other.
    unsafe { std::env::set_var("SELFHOST_FILTER_TEST_KEY", "sk-process-value") };
    let accept = |name: &str| ["PATH", "HOME", "SELFHOST_FILTER_TEST_KEY"].contains(&name);
    let reload_report = reload(&store, &config, &accept).unwrap();
    assert_eq!(reload_report.report.set, ["SELFHOST_FILTER_TEST_KEY"]);
    assert_eq!(reload_report.from_process, ["SELFHOST_FILTER_TEST_KEY"]);
    let reject = |_: &str| false;
    let report = reload(&store, &config, &reject).unwrap().report;
    assert_eq!(report.removed, ["SELFHOST_FILTER_TEST_KEY"]);
    assert!(store.list_vars(&home).unwrap().is_empty());
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn canary_secrets_never_reach_logs_errors_or_debug() {
    const CANARY: &str = "sk-CANARY-7d3a91c0e5";
    const CANARY_KEY: &str = "CANARYKEYcanarykeyCANARYKEYcanar"; // 32 bytes
    const CANARY_BAD_KEY: &str = "CANARY-short-key";
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let mut seen = Vec::<String>::new();
    tracing::subscriber::with_default(subscriber, || {
        let dir = tempfile::tempdir().unwrap();
        let dev = scope("acme/shop/dev");
        let prod = scope("acme/shop/prod");
        let store = Arc::new(open(dir.path(), keyring(CANARY_KEY, Some(KEY_A))));
        let info = store.set_var(&dev, "OPENAI_API_KEY", &secret(CANARY), VarSource::Api).unwrap();
        seen.push(format!("{info:?}"));
        store.set_var(&dev, "OPENAI_API_KEY", &secret(CANARY), VarSource::Api).unwrap();
        let value = store.get_var(&dev, "OPENAI_API_KEY").unwrap().unwrap();
        assert_eq!(value.value.expose_secret(), CANARY);
        seen.push(format!("{value:?}"));
        seen.push(format!("{:?}", store.get_var_version(&dev, "OPENAI_API_KEY", 1).unwrap()));
        seen.push(format!("{:?}", store.list_vars(&dev).unwrap()));
        seen.push(format!("{:?}", store.list_provider_keys(&dev).unwrap()));
        seen.push(format!("{store:?}"));
        seen.push(format!("{:?}", store.keyring()));
        seen.push(format!("{:?}", store.rewrap(&mut |_| {}).unwrap()));
        seen.push(format!("{:?}", store.key_usage().unwrap()));

        // Self-host import of the canary, then refused API writes.
        let env_file = dir.path().join(".env");
        std::fs::write(&env_file, format!("ANTHROPIC_API_KEY={CANARY}\nlower={CANARY}\n")).unwrap();
        let config = SelfHostConfig {
            scope: prod.clone(),
            env_file: Some(env_file.clone()),
            process_env: false,
        };
        let reloaded = reload(&store, &config, &|_| false).unwrap();
        seen.push(format!("{:?} {:?}", reloaded.report, reloaded.skipped));
        let refused =
            store.set_var(&prod, "ANTHROPIC_API_KEY", &secret(CANARY), VarSource::Api).unwrap_err();
        seen.push(format!("{refused} {refused:?}"));
        // A malformed line holding the canary.
        std::fs::write(&env_file, format!("OK=1\n{CANARY}\n\"{CANARY}\n")).unwrap();
        let malformed = reload(&store, &config, &|_| false).unwrap_err();
        seen.push(format!("{malformed} {malformed:?}"));
        // Key errors: a bad key holding the canary.
        let bad = EncryptionKey::parse(ENCRYPTION_KEY_VAR, CANARY_BAD_KEY).unwrap_err();
        seen.push(format!("{bad} {bad:?}"));
        let good = EncryptionKey::parse(ENCRYPTION_KEY_VAR, CANARY_KEY).unwrap();
        seen.push(format!("{good:?}"));
        // A wrong master key, refused at open.
        drop(store);
        let mismatch = SledStore::open(dir.path(), keyring(KEY_B, None), options()).unwrap_err();
        assert_eq!(mismatch.code(), "key_mismatch");
        seen.push(format!("{mismatch} {mismatch:?}"));
        // Decryption failures: a value written during a rotation to B, read
        // after a rollback to the canary key alone.
        let rotated = open(dir.path(), keyring(KEY_B, Some(CANARY_KEY)));
        rotated.set_var(&dev, "OPENAI_API_KEY", &secret(CANARY), VarSource::Api).unwrap();
        drop(rotated);
        let without = open(dir.path(), keyring(CANARY_KEY, None));
        let failed = without.get_var(&dev, "OPENAI_API_KEY").unwrap_err();
        seen.push(format!("{failed} {failed:?}"));
        let report = without.rewrap(&mut |_| {}).unwrap();
        seen.push(format!("{report:?}"));
        seen.push(format!("{:?}", options()));
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("variable set"), "the capture works: {logs}");
    assert!(logs.contains("cannot rewrap a value"), "{logs}");
    for text in seen.iter().chain([&logs]) {
        for canary in [CANARY, "CANARY-7d3a", CANARY_KEY, "CANARYKEY", CANARY_BAD_KEY] {
            assert!(!text.contains(canary), "{canary} leaked into: {text}");
        }
    }
}

#[test]
fn store_format_is_checked_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), keyring(KEY_A, None)));
    {
        let db = raw_db(dir.path());
        db.open_tree("meta").unwrap().insert("format", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let error = SledStore::open(dir.path(), keyring(KEY_A, None), options()).unwrap_err();
    assert!(matches!(error, StoreError::Format { found: 99, expected: 1 }), "{error}");
}

/// sled 0.34.7 writes a snapshot on open as `snap.{lsn}.generating` and
/// renames it when done, but picks a `.generating` file on the next open: a
/// process killed mid-snapshot leaves a store sled calls corrupted. The store
/// discards the unfinished snapshot and recovers from the log.
#[test]
fn an_unfinished_snapshot_left_by_a_kill_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let dev = scope("acme/shop/dev");
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        for index in 0..50 {
            set(&store, &dev, &format!("VAR_{index}"), &format!("value-{index}"));
        }
    }
    // Reopen once so a complete snapshot exists, then plant a torn one.
    drop(open(dir.path(), keyring(KEY_A, None)));
    let snapshot = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap().to_string_lossy().starts_with("snap."))
        .expect("sled wrote a snapshot");
    let bytes = std::fs::read(&snapshot).unwrap();
    let torn = snapshot
        .with_file_name(format!("{}.generating", snapshot.file_name().unwrap().to_string_lossy()));
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    // sled alone refuses it.
    assert!(matches!(sled::open(dir.path()), Err(sled::Error::Corruption { .. })));
    let store = open(dir.path(), keyring(KEY_A, None));
    assert!(!torn.exists());
    for index in 0..50 {
        assert_eq!(
            value_of(&store, &dev, &format!("VAR_{index}")).unwrap(),
            format!("value-{index}")
        );
    }
}

#[test]
fn store_lives_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open_in_data_dir(dir.path(), keyring(KEY_A, None), options()).unwrap();
    assert_eq!(store.path(), dir.path().join("store"));
    set(&store, &scope("a/b/c"), "X", "y");
    drop(store);
    assert!(dir.path().join("store").is_dir());
}

// ---------------------------------------------------------------------------
// The command line, and the crash test.

/// Runs the binary with `data` as the data directory, `key` as
/// `ENCRYPTION_KEY` (and `previous` as `ENCRYPTION_KEY_PREVIOUS`) and
/// `stdin` piped in.
fn cli(data: &Path, key: &str, previous: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_platos-host"));
    command
        .args(args)
        .env("PLATOS_DATA_DIR", data)
        .env_remove("PLATOS_PLUGIN_DIR")
        .env("PLATOS_LOG", "debug,cranelift=warn,wasmtime=warn")
        .env("ENCRYPTION_KEY", key)
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(previous) = previous {
        command.env("ENCRYPTION_KEY_PREVIOUS", previous);
    }
    let mut child = command.spawn().expect("the binary starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cli_refuses_bad_keys_without_printing_them() {
    let data = tempfile::tempdir().unwrap();
    for bad in [
        "",
        "CANARY-16-bytes!",
        "CANARY-33-bytes-0123456789abcdefg",
        "клю4-CANARY-0123456789abcdef",
    ] {
        let output = cli(data.path(), bad, None, &["env", "list", "acme/shop/dev"], "");
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("ENCRYPTION_KEY must be exactly 32 ASCII bytes"), "{stderr}");
        assert!(stderr.contains("openssl rand -hex 16"), "{stderr}");
        assert!(stderr.contains(&format!("{} bytes", bad.len())), "{stderr}");
        if !bad.is_empty() {
            assert!(!stderr.contains("CANARY") && !text(&output.stdout).contains("CANARY"));
        }
    }
    // A key is never a flag.
    let output =
        cli(data.path(), KEY_A, None, &["env", "list", "--encryption-key", KEY_B, "a/b/c"], "");
    assert_eq!(output.status.code(), Some(2));
    // A bad scope is a usage error naming the part.
    let output = cli(data.path(), KEY_A, None, &["env", "list", "acme/sh op/dev"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("invalid project id"), "{}", text(&output.stderr));
}

#[test]
fn cli_sets_lists_links_unsets_and_rewraps() {
    const CANARY: &str = "sk-cli-store-canary-9b2e";
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let mut outputs = Vec::new();
    let mut run = |key: &str, previous: Option<&str>, args: &[&str], stdin: &str| {
        let output = cli(data, key, previous, args, stdin);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        outputs.push(format!("{stdout}{stderr}"));
        (output.status.code(), stdout, stderr)
    };

    let (code, stdout, stderr) = run(
        KEY_A,
        None,
        &["env", "set", "acme/shop/prod", "OPENAI_API_KEY"],
        &format!("{CANARY}\n"),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OPENAI_API_KEY set in acme/shop/prod: version 1"), "{stdout}");
    let (code, _, stderr) =
        run(KEY_A, None, &["env", "set", "acme/shop/prod", "OPENAI_API_KEY_2"], CANARY);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(KEY_A, None, &["env", "set", "acme/shop/prod", "OPENAI_KEY"], "x");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("did you mean OPENAI_API_KEY"), "{stderr}");
    let (code, _, stderr) = run(KEY_A, None, &["env", "set", "acme/shop/prod", "EMPTY"], "\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no value on stdin"), "{stderr}");

    let (code, stdout, _) = run(KEY_A, None, &["env", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("NAME") && stdout.contains("SOURCE"), "{stdout}");
    for line in ["OPENAI_API_KEY ", "OPENAI_API_KEY_2", "OPENAI_KEY"] {
        assert!(stdout.contains(line), "{stdout}");
    }
    assert!(stdout.contains(" cli"), "CLI writes say so: {stdout}");
    let (_, stdout, _) = run(KEY_A, None, &["env", "list", "acme/shop/dev"], "");
    assert!(stdout.contains("no variables in acme/shop/dev"), "{stdout}");
    let (_, stdout, _) = run(KEY_A, None, &["env", "list", "acme/shop/prod", "--json"], "");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[0]["source"], "cli");

    let (code, stdout, stderr) = run(KEY_A, None, &["keys", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OPENAI_API_KEY*"), "the default is marked: {stdout}");
    assert!(stdout.contains("OPENAI_API_KEY_2 "), "{stdout}");
    assert!(!stdout.contains("OPENAI_KEY"), "{stdout}");
    let (_, stdout, _) = run(KEY_A, None, &["keys", "list", "acme/shop/prod", "--json"], "");
    let keys: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_eq!(keys[0]["key"]["provider"], "openai");
    assert_eq!(keys[0]["scope_default"], true);
    assert_eq!(keys[1]["key"]["variant"], 2);

    let (code, stdout, _) =
        run(KEY_A, None, &["env", "unset", "acme/shop/prod", "OPENAI_API_KEY"], "");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("OPENAI_API_KEY unset in acme/shop/prod"), "{stdout}");
    let (_, stdout, _) = run(KEY_A, None, &["keys", "list", "acme/shop/prod"], "");
    assert!(
        stdout.contains("OPENAI_API_KEY_2*") && !stdout.contains("OPENAI_API_KEY "),
        "{stdout}"
    );

    // Rotate: B encrypts, A still decrypts; rewrap; then A can go.
    let (code, stdout, stderr) = run(KEY_B, Some(KEY_A), &["rewrap"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("re-encrypting"), "{stderr}");
    assert!(stdout.contains("(current)") && stdout.contains("can be removed"), "{stdout}");
    let (code, stdout, _) = run(KEY_B, None, &["rewrap"], "");
    assert_eq!(code, Some(0));
    assert!(stdout.contains("can be removed"), "{stdout}");
    let store = SledStore::open_in_data_dir(data, keyring(KEY_B, None), options()).unwrap();
    let prod = scope("acme/shop/prod");
    assert_eq!(value_of(&store, &prod, "OPENAI_API_KEY_2").unwrap(), CANARY);
    assert_eq!(store.get_var_version(&prod, "OPENAI_API_KEY", 1).unwrap().unwrap().version, 1);
    drop(store);
    // The wrong key is refused before the rewrap, naming what to do.
    let (code, _, stderr) = run(KEY_C, None, &["rewrap"], "");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not match the store"), "{stderr}");
    assert!(stderr.contains("ENCRYPTION_KEY_PREVIOUS"), "{stderr}");

    for output in &outputs {
        assert!(!output.contains(CANARY) && !output.contains("canary"), "leaked: {output}");
        for key in [KEY_A, KEY_B, KEY_C] {
            assert!(!output.contains(key), "a key leaked: {output}");
        }
    }
}

/// A random number, without a dependency.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Reads the writer's acknowledged numbers: complete lines only.
fn read_acks(stdout: std::process::ChildStdout, first: mpsc::Sender<()>) -> Vec<u64> {
    let mut reader = BufReader::new(stdout);
    let mut acks = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.ends_with('\n') => {
                acks.push(line.trim().parse().expect("the writer prints numbers"));
                let _ = first.send(());
            }
            Ok(_) => break,
        }
    }
    acks
}

/// Spawns the writer, kills it with SIGKILL at a random moment, reopens the
/// store and checks every acknowledged write is there: 50 cycles by default,
/// `PLATOS_CRASH_CYCLES` for more.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let cycles: u64 =
        std::env::var("PLATOS_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let torture = scope("torture/store/crash");
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut killed_mid_write = 0;
    for cycle in 0..cycles {
        let prefix = format!("C{cycle}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
            .args(["store-torture", "--dir"])
            .arg(&store_dir)
            .args(["--prefix", &prefix])
            .env("ENCRYPTION_KEY", KEY_A)
            .env_remove("ENCRYPTION_KEY_PREVIOUS")
            .env("PLATOS_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the writer starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (first_tx, first_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || read_acks(stdout, first_tx));
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        // Odd cycles: kill anywhere from start-up on (opening, recovering);
        // even cycles: once writes are flowing.
        if cycle % 2 == 0 {
            let started = first_rx.recv_timeout(Duration::from_secs(30));
            assert!(started.is_ok(), "cycle {cycle}: the writer acknowledged nothing");
        }
        std::thread::sleep(Duration::from_micros(random_u64() % 40_000));
        let exited = child.try_wait().unwrap();
        assert!(exited.is_none(), "cycle {cycle}: the writer exited: {}", errors.join().unwrap());
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        let _ = errors.join();
        killed_mid_write += u64::from(!acks.is_empty());

        let store = match SledStore::open(&store_dir, keyring(KEY_A, None), options()) {
            Ok(store) => store,
            Err(error) => {
                // Keep the evidence for a sled bug report.
                let kept = dir.keep();
                panic!(
                    "cycle {cycle}: the store does not open: {error} (kept in {})",
                    kept.display()
                );
            }
        };
        for n in &acks {
            let value = value_of(&store, &torture, &format!("{prefix}_{n}"));
            assert_eq!(
                value.as_deref(),
                Some(format!("value-{prefix}-{n}").as_str()),
                "cycle {cycle}: acknowledged write {n} is missing"
            );
        }
        acked.extend(acks.into_iter().map(|n| (prefix.clone(), n)));
        // Each change is atomic: the counter's current version decrypts, and
        // provider-key rows match the variables set.
        if let Some(counter) = store.get_var(&torture, "COUNTER").unwrap() {
            assert!(counter.value.expose_secret().starts_with("value-C"));
        }
        let set: Vec<String> = store
            .list_vars(&torture)
            .unwrap()
            .into_iter()
            .map(|var| var.name)
            .filter(|name| name.starts_with("OPENAI_API_KEY_"))
            .collect();
        let linked: Vec<String> = store
            .list_provider_keys(&torture)
            .unwrap()
            .into_iter()
            .map(|key| key.env_var)
            .collect();
        assert_eq!(set, linked, "cycle {cycle}: provider-key rows do not follow the variables");
    }
    assert!(killed_mid_write >= cycles / 2, "the writer was killed while writing");
    // Everything acknowledged in any cycle is still there at the end.
    let store = SledStore::open(&store_dir, keyring(KEY_A, None), options()).unwrap();
    for (prefix, n) in &acked {
        let value = value_of(&store, &torture, &format!("{prefix}_{n}"));
        assert_eq!(value.as_deref(), Some(format!("value-{prefix}-{n}").as_str()));
    }
    assert!(acked.len() as u64 >= cycles / 2, "{} writes acknowledged", acked.len());
    eprintln!(
        "{cycles} kill cycles, {} acknowledged writes checked, {killed_mid_write} kills mid-write",
        acked.len()
    );
}

// ---------------------------------------------------------------------------
// The key check: a wrong master key is refused at open.

/// Every key id of `keys`, in hex: no error may name them (a key id is a
/// hash prefix of the key).
fn key_ids(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| keyring(key, None).current_id().to_string()).collect()
}

/// Opens `dir` with `ring`, expecting a key mismatch; returns its message
/// after checking it names neither a key nor a key id.
fn refused(dir: &Path, ring: Keyring, keys: &[&str]) -> String {
    let previous_set = ring.previous_id().is_some();
    let error = SledStore::open(dir, ring, options()).unwrap_err();
    assert!(
        matches!(&error, StoreError::KeyMismatch { previous_set: set, .. } if *set == previous_set),
        "{error}"
    );
    assert_eq!(error.code(), "key_mismatch");
    let message = format!("{error} {error:?}");
    assert!(message.contains("does not match") || message.contains("matches"), "{message}");
    assert!(message.contains("ENCRYPTION_KEY_PREVIOUS") && message.contains("rewrap"), "{message}");
    assert!(message.contains(&dir.display().to_string()), "names the store: {message}");
    for secret in keys.iter().map(|key| key.to_string()).chain(key_ids(keys)) {
        assert!(!message.contains(&secret), "{secret} in: {message}");
    }
    message
}

#[test]
fn a_wrong_master_key_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let dev = scope("acme/shop/dev");
    // An empty store takes any key (first start), and B again while it is
    // still empty.
    drop(open(dir.path(), keyring(KEY_A, None)));
    drop(open(dir.path(), keyring(KEY_B, None)));
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        set(&store, &dev, "OPENAI_API_KEY", "sk-a");
    }
    let keys = [KEY_A, KEY_B, KEY_C];
    let message = refused(dir.path(), keyring(KEY_B, None), &keys);
    assert!(message.contains("the master key (ENCRYPTION_KEY) does not match"), "{message}");
    let message = refused(dir.path(), keyring(KEY_B, Some(KEY_C)), &keys);
    assert!(message.contains("neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS"), "{message}");
    // The refused opens wrote nothing: the right key reads the value.
    let store = open(dir.path(), keyring(KEY_A, None));
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").unwrap(), "sk-a");
    assert_eq!(store.key_usage().unwrap().len(), 1);
    drop(store);

    // A rotation: the store's key as the previous one opens it; writes go
    // under the new key; after rewrap the new key alone opens it and the old
    // one is refused.
    let store = open(dir.path(), keyring(KEY_B, Some(KEY_A)));
    set(&store, &dev, "ANTHROPIC_API_KEY", "sk-b");
    drop(store);
    refused(dir.path(), keyring(KEY_B, None), &keys);
    let store = open(dir.path(), keyring(KEY_B, Some(KEY_A)));
    assert_eq!(store.rewrap(&mut |_| {}).unwrap().progress.failed, 0);
    drop(store);
    let store = open(dir.path(), keyring(KEY_B, None));
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").unwrap(), "sk-a");
    assert_eq!(value_of(&store, &dev, "ANTHROPIC_API_KEY").unwrap(), "sk-b");
    drop(store);
    refused(dir.path(), keyring(KEY_A, None), &keys);
    // Swapped roles still hold the store's key: a rotation back.
    drop(open(dir.path(), keyring(KEY_A, Some(KEY_B))));

    // Once every value is purged, the store is empty again and takes any key.
    let (_, mut grace_zero) = manual_clock(0);
    grace_zero.grace = Duration::ZERO;
    let store = SledStore::open(dir.path(), keyring(KEY_B, None), grace_zero).unwrap();
    for name in ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"] {
        store.unset_var(&dev, name, VarSource::Api).unwrap();
    }
    store.purge_expired().unwrap();
    drop(store);
    drop(open(dir.path(), keyring(KEY_C, None)));
    drop(open(dir.path(), keyring(KEY_A, None)));
}

#[test]
fn a_store_without_a_key_check_is_checked_against_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let dev = scope("acme/shop/dev");
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        set(&store, &dev, "OPENAI_API_KEY", "sk-a");
        set(&store, &dev, "OPENAI_API_KEY_2", "sk-a2");
    }
    let remove_check = || {
        let db = raw_db(dir.path());
        assert!(db.open_tree("meta").unwrap().remove("key-check").unwrap().is_some());
        db.flush().unwrap();
    };
    // As a release without key checks left it: a wrong key is refused by
    // its values, and nothing is written.
    remove_check();
    refused(dir.path(), keyring(KEY_B, None), &[KEY_A, KEY_B]);
    refused(dir.path(), keyring(KEY_B, Some(KEY_C)), &[KEY_A, KEY_B, KEY_C]);
    assert!(raw_db(dir.path()).open_tree("meta").unwrap().get("key-check").unwrap().is_none());
    // The right key as the previous one opens it and records the check
    // under it (not under the new key, which holds no value yet).
    drop(open(dir.path(), keyring(KEY_B, Some(KEY_A))));
    assert!(raw_db(dir.path()).open_tree("meta").unwrap().get("key-check").unwrap().is_some());
    refused(dir.path(), keyring(KEY_B, None), &[KEY_A, KEY_B]);
    let store = open(dir.path(), keyring(KEY_A, None));
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY_2").unwrap(), "sk-a2");
    drop(store);

    // A value under the right key id that fails authentication (altered) is
    // skipped when another opens; when every one fails, it is the error.
    remove_check();
    let values_of = |db: &sled::Db| {
        let values = db.open_tree("values").unwrap();
        values.iter().map(|item| item.unwrap()).collect::<Vec<_>>()
    };
    {
        let db = raw_db(dir.path());
        let values = db.open_tree("values").unwrap();
        let (key, sealed) = values_of(&db).remove(0);
        let mut altered = sealed.to_vec();
        *altered.last_mut().unwrap() ^= 1;
        values.insert(key, altered).unwrap();
        db.flush().unwrap();
    }
    drop(open(dir.path(), keyring(KEY_A, None)));
    remove_check();
    {
        let db = raw_db(dir.path());
        let values = db.open_tree("values").unwrap();
        for (key, sealed) in values_of(&db) {
            // Another byte of the tag than before: the first stays altered.
            let mut altered = sealed.to_vec();
            let at = altered.len() - 2;
            altered[at] ^= 1;
            values.insert(key, altered).unwrap();
        }
        db.flush().unwrap();
    }
    let error = SledStore::open(dir.path(), keyring(KEY_A, None), options()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Crypto { source: CryptoError::Authentication, .. }),
        "{error}"
    );
}

#[test]
fn an_altered_key_check_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), keyring(KEY_A, None));
        set(&store, &scope("a/b/c"), "X", "y");
    }
    {
        let db = raw_db(dir.path());
        let meta = db.open_tree("meta").unwrap();
        let mut record = meta.get("key-check").unwrap().unwrap().to_vec();
        *record.last_mut().unwrap() ^= 1;
        meta.insert("key-check", record).unwrap();
        db.flush().unwrap();
    }
    let error = SledStore::open(dir.path(), keyring(KEY_A, None), options()).unwrap_err();
    assert_eq!(error.code(), "store_corrupt", "{error}");
    assert!(error.to_string().contains("key-check record"), "{error}");
}

// ---------------------------------------------------------------------------
// The upgrade promise: a data directory written by release 0.1 (before key
// checks) opens and reads the same. `tests/fixtures/datadir-v0.1/README.md`
// says how it was made.

/// The fixture's data directory.
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/datadir-v0.1/data");
/// Its master key (a test key; also its `encryption.key`).
const FIXTURE_KEY: &str = "f1x7ure0da7ad1r0v01te57key000001";
/// The clock it was written with.
const FIXTURE_T0: u64 = 1_764_000_000_000;

/// A copy of the fixture (opening a store writes to it).
fn fixture_copy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(Path::new(FIXTURE), dir.path());
    dir
}

/// Options reading the fixture a minute after it was written (its replaced
/// versions are still in their grace period).
fn fixture_options() -> StoreOptions {
    StoreOptions { clock: Arc::new(|| FIXTURE_T0 + 60_000), ..options() }
}

fn open_fixture(data: &Path, ring: Keyring) -> Result<SledStore, StoreError> {
    SledStore::open_in_data_dir(data, ring, fixture_options())
}

/// Checks everything the fixture holds.
fn assert_fixture_reads_the_same(store: &SledStore) {
    let prod = scope("acme/shop/prod");
    let dev = scope("acme/shop/dev");
    let selfhost = scope("self/host/default");
    let listed = |scope: &Scope| {
        store
            .list_vars(scope)
            .unwrap()
            .into_iter()
            .map(|var| (var.name, var.version, var.source, var.updated_at))
            .collect::<Vec<_>>()
    };
    let api = VarSource::Api;
    assert_eq!(
        listed(&prod),
        [
            ("ANTHROPIC_API_KEY".to_owned(), 1, api, FIXTURE_T0),
            ("OPENAI_API_BASE".to_owned(), 1, api, FIXTURE_T0),
            ("OPENAI_API_KEY".to_owned(), 2, api, FIXTURE_T0),
            ("OPENAI_API_KEY_2".to_owned(), 1, api, FIXTURE_T0),
            ("UNICODE_NOTE".to_owned(), 1, api, FIXTURE_T0),
        ]
    );
    assert_eq!(listed(&dev), [("OPENAI_API_KEY".to_owned(), 1, api, FIXTURE_T0)]);
    assert_eq!(
        listed(&selfhost),
        [("ANTHROPIC_API_KEY".to_owned(), 1, VarSource::SelfHost, FIXTURE_T0)]
    );
    for (scope, name, value) in [
        (&prod, "OPENAI_API_KEY", "sk-fixture-openai-prod-v2"),
        (&prod, "OPENAI_API_KEY_2", "sk-fixture-openai-prod-second"),
        (&prod, "OPENAI_API_BASE", "https://api.openai.com/v1"),
        (&prod, "ANTHROPIC_API_KEY", "sk-ant-fixture-prod"),
        (&prod, "UNICODE_NOTE", "ключ 🔑 \"quoted\"\nline two"),
        (&dev, "OPENAI_API_KEY", "sk-fixture-openai-dev"),
        (&selfhost, "ANTHROPIC_API_KEY", "sk-ant-fixture-selfhost"),
    ] {
        assert_eq!(value_of(store, scope, name).as_deref(), Some(value), "{scope} {name}");
    }
    // Replaced and unset versions, in their grace period.
    let version = |scope: &Scope, name: &str, version: u64| {
        let value = store.get_var_version(scope, name, version).unwrap();
        value.map(|value| value.value.expose_secret().to_owned())
    };
    assert_eq!(version(&prod, "OPENAI_API_KEY", 1).unwrap(), "sk-fixture-openai-prod-v1");
    assert_eq!(value_of(store, &dev, "OPENAI_API_KEY_3"), None);
    assert_eq!(version(&dev, "OPENAI_API_KEY_3", 1).unwrap(), "sk-fixture-openai-dev-third");

    // Provider-key rows: labels, status, health, last use; the defaults
    // (what a turn without a pin gets) and the pinnable names.
    let rows = store.list_provider_keys(&prod).unwrap();
    let names: Vec<_> =
        rows.iter().map(|row| (row.provider.as_str(), row.env_var.as_str())).collect();
    assert_eq!(
        names,
        [
            ("anthropic", "ANTHROPIC_API_KEY"),
            ("openai", "OPENAI_API_KEY"),
            ("openai", "OPENAI_API_KEY_2")
        ]
    );
    assert_eq!(rows[0].status, KeyStatus::Disabled);
    assert_eq!((rows[1].label.as_str(), rows[1].status), ("OPENAI_API_KEY", KeyStatus::Active));
    let second = &rows[2];
    assert_eq!((second.label.as_str(), second.variant), ("team backup", 2));
    assert_eq!(second.created_at, FIXTURE_T0);
    assert_eq!(second.last_used_at, Some(FIXTURE_T0 + 2_000));
    assert_eq!(
        second.health,
        Some(HealthRecord {
            verdict: HealthVerdict::Healthy,
            message: "models listed".to_owned(),
            checked_at: FIXTURE_T0 + 1_000,
            latency_ms: 42,
            models: vec!["gpt-4o".to_owned(), "gpt-4o-mini".to_owned()],
        })
    );
    let default = |scope: &Scope, provider: &str| {
        default_key(&store.list_provider_keys(scope).unwrap(), provider)
            .map(|row| row.env_var.clone())
    };
    assert_eq!(default(&prod, "openai").as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(default(&prod, "anthropic"), None, "disabled");
    assert_eq!(default(&selfhost, "anthropic").as_deref(), Some("ANTHROPIC_API_KEY"));
    let dev_rows = store.list_provider_keys(&dev).unwrap();
    assert_eq!(dev_rows.len(), 1);
    assert_eq!(dev_rows[0].env_var, "OPENAI_API_KEY");
    assert_eq!(store.list_all_provider_keys().unwrap().len(), 5);
}

#[test]
fn a_data_dir_of_release_0_1_opens_and_reads_the_same() {
    let data = fixture_copy();
    let data = data.path();
    assert_eq!(
        std::fs::read_to_string(data.join("encryption.key")).unwrap().trim(),
        FIXTURE_KEY,
        "the fixture's key file is its key"
    );
    let store_dir = data.join("store");
    let keys = [FIXTURE_KEY, KEY_A, KEY_B];
    // A wrong key is refused by its values (it has no key-check record).
    for ring in [keyring(KEY_A, None), keyring(KEY_A, Some(KEY_B))] {
        let error = open_fixture(data, ring).unwrap_err();
        assert_eq!(error.code(), "key_mismatch", "{error}");
        refused(&store_dir, keyring(KEY_A, None), &keys);
    }
    // Its key reads everything, twice (the second open goes through the
    // key-check record the first wrote).
    for _ in 0..2 {
        let store = open_fixture(data, keyring(FIXTURE_KEY, None)).unwrap();
        assert_fixture_reads_the_same(&store);
        let id = keyring(FIXTURE_KEY, None).current_id();
        assert_eq!(store.key_usage().unwrap(), BTreeMap::from([(id, 9)]));
    }
    refused(&store_dir, keyring(KEY_A, None), &keys);

    // Its tokens still verify; the revoked one does not.
    let tokens = platos_host::api::auth::TokenStore::open_in_data_dir(data).unwrap();
    let mut labels: Vec<_> = tokens.list().into_iter().map(|token| token.label).collect();
    labels.sort();
    assert_eq!(labels, ["fixture agent prod", "fixture operator"]);
    let operator = tokens.verify(FIXTURE_OPERATOR_TOKEN).unwrap();
    assert!(operator.is_operator());
    let agent = tokens.verify(FIXTURE_AGENT_TOKEN).unwrap();
    assert!(!agent.is_operator());
    assert!(agent.can_access(&scope("acme/shop/prod")));
    assert!(!agent.can_access(&scope("acme/shop/dev")));
    assert!(tokens.verify(FIXTURE_REVOKED_TOKEN).is_none());
}

#[test]
fn a_data_dir_of_release_0_1_rotates_to_a_new_key() {
    let data = fixture_copy();
    let data = data.path();
    let store_dir = data.join("store");
    // The release's key as the previous one: a rotation.
    let store = open_fixture(data, keyring(KEY_A, Some(FIXTURE_KEY))).unwrap();
    assert_fixture_reads_the_same(&store);
    drop(store);
    refused(&store_dir, keyring(KEY_A, None), &[FIXTURE_KEY, KEY_A]);
    let store = open_fixture(data, keyring(KEY_A, Some(FIXTURE_KEY))).unwrap();
    let report = store.rewrap(&mut |_| {}).unwrap();
    assert_eq!((report.progress.rewrapped, report.progress.failed), (9, 0));
    drop(store);
    let store = open_fixture(data, keyring(KEY_A, None)).unwrap();
    assert_fixture_reads_the_same(&store);
    drop(store);
    refused(&store_dir, keyring(FIXTURE_KEY, None), &[FIXTURE_KEY, KEY_A]);
}

/// The fixture's tokens (test tokens), as its generator printed them.
const FIXTURE_OPERATOR_TOKEN: &str =
    "platos_a52aefc91b42_a7c36556637472497d59145af36b288b7bdd65cdb3f3e8d2f52002a54720ea29";
const FIXTURE_AGENT_TOKEN: &str =
    "platos_6ff88cce471e_f86fb391c08b75e70f9a59dd2e600dbe2b87e41aec9b4c0be1f5ffa38972a72d";
const FIXTURE_REVOKED_TOKEN: &str =
    "platos_892a7830b8bd_a8c4f0f0c5f89e78d736e5f38f0083cd22c7a0ed2f024a16d74c8ffc74a11bfc";

//! The encrypted, scoped store. The backend-neutral cases (rotation and
//! rewrap, scope isolation, provider-key rows, grace periods, self-host
//! precedence, the key check, secrets in logs) are `tests/store_suite.rs`,
//! run here for sled and for PostgreSQL (whose own cases are
//! `tests/store_postgres.rs`); this file adds what only sled has: binding of
//! ciphertexts to rows in its trees, its files on disk, the command line, and
//! crash safety (`PLATOS_CRASH_CYCLES` sets the number of kill cycles; 50 by
//! default).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use platos_host::crypto::{
    CryptoError, ENCRYPTION_KEY_PREVIOUS_VAR, ENCRYPTION_KEY_VAR, EncryptionKey, KeyError, Keyring,
};
use platos_host::scope::Scope;
use platos_host::selfhost::{Reload, SelfHostConfig, SelfHostError};
use platos_host::store::{
    Blocking, BlockingSecretStore, HealthRecord, HealthVerdict, KeyStatus, ProviderVars, SledStore,
    StoreError, StoreOptions, VarSource, default_key,
};
use secrecy::{ExposeSecret, SecretString};

mod store_postgres;
mod store_suite;
mod support;

/// The store suite on sled, through the `Blocking` adapter.
struct SledBackend {
    dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl store_suite::Backend for SledBackend {
    async fn open(
        &self,
        keyring: Keyring,
        options: StoreOptions,
    ) -> Result<Arc<dyn platos_host::store::SecretStore>, StoreError> {
        Ok(Arc::new(Blocking::new(SledStore::open(self.dir.path(), keyring, options)?)))
    }

    fn location(&self) -> String {
        self.dir.path().display().to_string()
    }
}

/// The log capture the canary cases rely on sees a callsite that another
/// thread, with no subscriber of its own, reached first.
#[test]
fn the_log_capture_sees_callsites_another_thread_reached_first() {
    fn event() {
        tracing::info!("reached first on another thread");
    }
    let (guard, logs) = support::capture_logs();
    std::thread::spawn(event).join().unwrap();
    event();
    drop(guard);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("reached first on another thread"), "nothing captured: {logs:?}");
}

mod sled_suite {
    crate::store_suite!(async { crate::SledBackend { dir: tempfile::tempdir().unwrap() } });
}

mod postgres_suite {
    crate::store_suite!(crate::store_postgres::PostgresBackend::new());
}

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
    raw_open(dir).unwrap()
}

/// Opens `dir` with sled alone, waiting up to 10 s for the lock a store just
/// dropped holds until its background threads end (longer under load).
fn raw_open(dir: &Path) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
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
fn a_lease_release_record_is_its_end_and_id_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), keyring(KEY_A, None));
    let (one, two) = ([1u8; 16], [2u8; 16]);
    assert!(store.release_lease(&two, 7).unwrap());
    assert!(store.release_lease(&one, 9).unwrap());
    drop(store);
    let db = raw_db(dir.path());
    let records: Vec<(Vec<u8>, Vec<u8>)> = db
        .open_tree("leases-released")
        .unwrap()
        .iter()
        .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap())
        .collect();
    let record = |id: [u8; 16], end: u64| ([&end.to_be_bytes()[..], &id].concat(), Vec::new());
    // Ordered by end, so a purge reads only the records that are over.
    assert_eq!(records, [record(two, 7), record(one, 9)]);
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
    let torn = tear_newest_snapshot(dir.path());
    let store = open(dir.path(), keyring(KEY_A, None));
    assert!(!torn.exists());
    for index in 0..50 {
        assert_eq!(
            value_of(&store, &dev, &format!("VAR_{index}")).unwrap(),
            format!("value-{index}")
        );
    }
}

/// Plants a torn copy of the newest snapshot of the sled database in `dir`
/// as `….generating`, the file a kill mid-snapshot leaves, and checks sled
/// alone then refuses the database; returns the torn file's path.
fn tear_newest_snapshot(dir: &Path) -> std::path::PathBuf {
    // The newest snapshot is the one sled reads (names sort by their lsn).
    let snapshot = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with("snap."))
        .max()
        .expect("sled wrote a snapshot");
    let bytes = std::fs::read(&snapshot).unwrap();
    let torn = snapshot
        .with_file_name(format!("{}.generating", snapshot.file_name().unwrap().to_string_lossy()));
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    let alone = raw_open(dir);
    assert!(matches!(alone, Err(sled::Error::Corruption { .. })), "{:?}", alone.err());
    torn
}

/// The token database survives the same torn snapshot: it opens through the
/// store's one sled opener.
#[tokio::test]
async fn the_token_database_discards_an_unfinished_snapshot_too() {
    use platos_host::api::auth::{Grant, TokenStore};
    use platos_host::store::SledTokens;
    let data = tempfile::tempdir().unwrap();
    {
        let tokens = TokenStore::new(Arc::new(SledTokens::open_in_data_dir(data.path()).unwrap()));
        tokens.create(&Grant::Operator, "root", Default::default()).await.unwrap();
    }
    // Reopen once so a complete snapshot exists, then tear it.
    drop(SledTokens::open_in_data_dir(data.path()).unwrap());
    let torn = tear_newest_snapshot(&data.path().join("tokens"));
    let tokens = TokenStore::new(Arc::new(SledTokens::open_in_data_dir(data.path()).unwrap()));
    assert_eq!(tokens.list().await.unwrap().len(), 1);
    assert!(!torn.exists());
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
        .env_remove("PLATOS_STORE")
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
        let reader = std::thread::spawn(move || support::crash::read_acks(stdout, first_tx));
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
        std::thread::sleep(Duration::from_micros(support::crash::random_u64() % 40_000));
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
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let tokens = platos_host::api::auth::TokenStore::open_in_data_dir(data).unwrap();
        let listed = tokens.list().await.unwrap();
        let mut labels: Vec<_> = listed.iter().map(|token| token.label.clone()).collect();
        labels.sort();
        assert_eq!(labels, ["fixture agent prod", "fixture operator"]);
        assert!(listed.iter().all(|token| token.pins.is_empty()), "rows before pins have none");
        let verify = async |token: &str| tokens.verify(token).await.unwrap();
        let operator = verify(FIXTURE_OPERATOR_TOKEN).await.unwrap();
        assert!(operator.is_operator());
        let agent = verify(FIXTURE_AGENT_TOKEN).await.unwrap();
        assert!(!agent.is_operator());
        assert!(agent.can_access(&scope("acme/shop/prod")));
        assert!(!agent.can_access(&scope("acme/shop/dev")));
        assert!(verify(FIXTURE_REVOKED_TOKEN).await.is_none());
    });
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

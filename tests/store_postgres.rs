//! What only the PostgreSQL store has: several hosts on one database, the
//! database's own view of what it holds, its schema migrations and its URL.
//! (The backend-neutral cases run for it through `store_suite!`.)

use std::sync::Arc;

use async_trait::async_trait;
use platos_host::crypto::CryptoError;
use platos_host::provider::MicroUsd;
use platos_host::store::{
    AuditQuery, AuditRecord, AuditTrail, Budget, KeyUpdate, Period, PostgresAudit, PostgresStore,
    ProbeClaim, ProbeSlot, SecretStore, StoreError, StoreOptions, VarSource,
};
use secrecy::ExposeSecret;

use crate::store_suite::{
    Backend, KEY_A, KEY_B, NOON, key_target, keyring, options, reserve_at_once, scope,
    scope_target, secret, set, value_of,
};
use crate::support;

/// A PostgreSQL database of its own on the test server.
pub struct PostgresBackend {
    pub url: String,
}

impl PostgresBackend {
    pub async fn new() -> Self {
        PostgresBackend { url: support::postgres_database().await }
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn open(
        &self,
        keyring: platos_host::crypto::Keyring,
        options: StoreOptions,
    ) -> Result<Arc<dyn SecretStore>, StoreError> {
        Ok(Arc::new(PostgresStore::open(&self.url, keyring, options).await?))
    }

    fn location(&self) -> String {
        self.url.clone()
    }
}

/// A plain connection to the database (as an operator's `psql`).
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The newest migration the database records.
async fn schema_version(client: &tokio_postgres::Client) -> i32 {
    client.query_one("SELECT max(version) FROM platos_schema_migrations", &[]).await.unwrap().get(0)
}

async fn host(url: &str) -> PostgresStore {
    PostgresStore::open(url, keyring(KEY_A, None), options()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_database_see_each_others_writes_at_once() {
    let url = support::postgres_database().await;
    let (a, b) = tokio::join!(host(&url), host(&url));
    let dev = scope("acme/shop/dev");
    assert_eq!(set(&a, &dev, "OPENAI_API_KEY", "sk-from-a").await, 1);
    assert_eq!(value_of(&b, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-from-a");
    assert_eq!(set(&b, &dev, "OPENAI_API_KEY", "sk-from-b").await, 2, "one version sequence");
    assert_eq!(value_of(&a, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-from-b");
    let old = a.get_var_version(&dev, "OPENAI_API_KEY", 1).await.unwrap().unwrap();
    assert_eq!(old.value.expose_secret(), "sk-from-a", "b's write started a's grace period");
    // Provider-key rows and their metadata are shared too.
    assert!(
        b.update_provider_key(&dev, "openai", "OPENAI_API_KEY", KeyUpdate::Label("eu".into()))
            .await
            .unwrap()
    );
    let rows = a.list_provider_keys(&dev).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].label, "eu");
    assert!(b.unset_var(&dev, "OPENAI_API_KEY", VarSource::Api).await.unwrap());
    assert_eq!(value_of(&a, &dev, "OPENAI_API_KEY").await, None);
    assert!(a.list_provider_keys(&dev).await.unwrap().is_empty());
    assert!(a.list_all_provider_keys().await.unwrap().is_empty());
    // A self-host import on one host is refused to manual writes on the other.
    let home = scope("self/default/prod");
    a.import_self_host(&home, &[("ANTHROPIC_API_KEY".into(), secret("sk-ant"))]).await.unwrap();
    let error = b
        .set_var(&home, "ANTHROPIC_API_KEY", &secret("sk-other"), VarSource::Api)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "managed_by_self_host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_several_hosts_never_reuse_a_version() {
    let url = support::postgres_database().await;
    // Hosts starting at once on an empty database: one migrates, the others
    // wait for it and find the schema in place.
    let hosts: Vec<Arc<PostgresStore>> = futures_join_all((0..4).map(|_| {
        let url = url.clone();
        async move { host(&url).await }
    }))
    .await
    .into_iter()
    .map(Arc::new)
    .collect();
    let dev = scope("acme/shop/dev");
    let writers: Vec<_> = hosts
        .iter()
        .enumerate()
        .flat_map(|(index, store)| {
            let dev = dev.clone();
            (0..2).map(move |writer| {
                let (store, dev) = (store.clone(), dev.clone());
                tokio::spawn(async move {
                    let mut versions = Vec::new();
                    for n in 0..15 {
                        let value = format!("{index}-{writer}-{n}");
                        versions.push(set(&*store, &dev, "SHARED", &value).await);
                        if n % 5 == 0 {
                            // An unset in the middle keeps the sequence going.
                            let _ = store.unset_var(&dev, "SHARED", VarSource::Api).await.unwrap();
                        }
                    }
                    versions
                })
            })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        versions.extend(writer.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=120).collect::<Vec<u64>>(), "every version once");
    let client = sql(&url).await;
    let applied: i64 = client
        .query_one("SELECT count(*) FROM platos_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, PostgresStore::SCHEMA_VERSION as i64, "the schema migrated once");
    let last: i64 = client
        .query_one("SELECT last_version FROM platos_vars WHERE name = 'SHARED'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserves_from_two_hosts_on_one_database_never_together_exceed_a_cap() {
    let url = support::postgres_database().await;
    let (a, b) = tokio::join!(host(&url), host(&url));
    let stores: [Arc<dyn SecretStore>; 2] = [Arc::new(a), Arc::new(b)];
    let key = key_target("acme/shop/prod", "openai", "OPENAI_API_KEY");
    let amount = MicroUsd(1_000);
    let cap = Budget { limit: MicroUsd(37_000), period: Period::Month };
    stores[0].set_budget(&key, Some(cap)).await.unwrap();
    assert_eq!(reserve_at_once(&stores, std::slice::from_ref(&key), 0..200, amount).await, 37);
    let status = stores[1].budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.reserved, status.left()), (MicroUsd(37_000), Some(MicroUsd(0))));
    // A scope cap across two keys, reserved from both hosts.
    let dev = scope_target("acme/shop/dev");
    stores[1].set_budget(&dev, Some(cap)).await.unwrap();
    let keys = [
        key_target("acme/shop/dev", "openai", "OPENAI_API_KEY"),
        key_target("acme/shop/dev", "anthropic", "ANTHROPIC_API_KEY"),
    ];
    assert_eq!(reserve_at_once(&stores, &keys, 200..400, amount).await, 37);
    assert_eq!(stores[0].budget_status(&dev, NOON).await.unwrap().reserved, MicroUsd(37_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_schema_2_migrates_to_budgets_and_keeps_its_data() {
    let url = support::postgres_database().await;
    let dev = scope("acme/shop/dev");
    {
        let store = host(&url).await;
        set(&store, &dev, "OPENAI_API_KEY", "sk-before-budgets").await;
    }
    // The database as a host of schema 2 left it: no budget tables.
    let client = sql(&url).await;
    client
        .batch_execute(
            "DROP TABLE platos_budgets, platos_spend, platos_reservations, platos_tokens,
                 platos_probe_claims, platos_audit;
             DROP FUNCTION platos_audit_refuse_update;
             DELETE FROM platos_schema_migrations WHERE version >= 3;",
        )
        .await
        .unwrap();
    let store = host(&url).await;
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-before-budgets");
    assert_eq!(schema_version(&client).await, PostgresStore::SCHEMA_VERSION as i32);
    let key = key_target("acme/shop/dev", "openai", "OPENAI_API_KEY");
    let budget = Budget { limit: MicroUsd(5), period: Period::Total };
    store.set_budget(&key, Some(budget)).await.unwrap();
    store.record_spend(&key, MicroUsd(2), NOON).await.unwrap();
    let status = store.budget_status(&key, NOON).await.unwrap();
    assert_eq!((status.budget, status.spent), (Some(budget), MicroUsd(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_schema_4_migrates_to_probe_claims_and_keeps_its_data() {
    let url = support::postgres_database().await;
    let dev = scope("acme/shop/dev");
    let key = key_target("acme/shop/dev", "openai", "OPENAI_API_KEY");
    let budget = Budget { limit: MicroUsd(5), period: Period::Total };
    {
        let store = host(&url).await;
        set(&store, &dev, "OPENAI_API_KEY", "sk-before-claims").await;
        store.set_budget(&key, Some(budget)).await.unwrap();
    }
    // The database as a host of schema 4 left it: no claims table.
    let client = sql(&url).await;
    client
        .batch_execute(
            "DROP TABLE platos_probe_claims, platos_audit;
             DROP FUNCTION platos_audit_refuse_update;
             DELETE FROM platos_schema_migrations WHERE version >= 5;",
        )
        .await
        .unwrap();
    let store = host(&url).await;
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-before-claims");
    assert_eq!(store.budget_status(&key, NOON).await.unwrap().budget, Some(budget));
    assert_eq!(schema_version(&client).await, PostgresStore::SCHEMA_VERSION as i32);
    let slot = ProbeSlot::of(NOON, std::time::Duration::from_secs(300));
    let tag = [7u8; 32];
    assert_eq!(store.claim_probe(&tag, slot, NOON, NOON + 1).await.unwrap(), ProbeClaim::Claimed);
    // A second host on the database sees the first one's claim.
    let other = host(&url).await;
    assert_eq!(
        other.claim_probe(&tag, slot, NOON, NOON + 1).await.unwrap(),
        ProbeClaim::Held { until: NOON + 1 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_schema_5_migrates_to_the_audit_trail_and_keeps_its_data() {
    let url = support::postgres_database().await;
    let dev = scope("acme/shop/dev");
    let slot = ProbeSlot::of(NOON, std::time::Duration::from_secs(300));
    let tag = [7u8; 32];
    {
        let store = host(&url).await;
        set(&store, &dev, "OPENAI_API_KEY", "sk-before-audit").await;
        store.claim_probe(&tag, slot, NOON, NOON + 1).await.unwrap();
    }
    // The database as a host of schema 5 left it: no audit table.
    let client = sql(&url).await;
    client
        .batch_execute(
            "DROP TABLE platos_audit;
             DROP FUNCTION platos_audit_refuse_update;
             DELETE FROM platos_schema_migrations WHERE version >= 6;",
        )
        .await
        .unwrap();
    assert_eq!(schema_version(&client).await, 5);
    let store = host(&url).await;
    assert_eq!(schema_version(&client).await, PostgresStore::SCHEMA_VERSION as i32);
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-before-audit");
    assert_eq!(
        store.claim_probe(&tag, slot, NOON, NOON + 1).await.unwrap(),
        ProbeClaim::Held { until: NOON + 1 }
    );
    // The audit table is there, over the store's connections, append-only.
    let audit = PostgresAudit::of_store(&store);
    let record: AuditRecord = serde_json::from_value(serde_json::json!({
        "id": "00000000000000a1", "request": "00000000000000a1", "at": NOON,
        "action": "var.set", "outcome": "ok", "actor": { "kind": "cli" },
        "scope": "acme/shop/dev", "variable": "OPENAI_API_KEY",
    }))
    .unwrap();
    audit.append(std::slice::from_ref(&record), true).await.unwrap();
    let query =
        AuditQuery { scope: Some("acme/shop/dev".into()), limit: 10, ..AuditQuery::default() };
    assert_eq!(audit.query(&query).await.unwrap(), [record]);
    let error = client.batch_execute("UPDATE platos_audit SET at = 0").await.unwrap_err();
    assert!(format!("{error:?}").contains("platos_audit is append-only"), "{error:?}");
}

/// Runs `futures` as concurrent tasks; their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

/// Every text, bytea and jsonb cell of the store's tables, as bytes.
async fn every_cell(client: &tokio_postgres::Client) -> Vec<(String, Vec<u8>)> {
    let columns = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name LIKE 'platos\\_%'",
            &[],
        )
        .await
        .unwrap();
    assert!(columns.len() >= 20, "found the store's columns: {}", columns.len());
    let mut cells = Vec::new();
    for column in columns {
        let (table, name, kind): (String, String, String) =
            (column.get(0), column.get(1), column.get(2));
        let query = if kind == "bytea" {
            format!("SELECT \"{name}\" FROM {table}")
        } else {
            format!("SELECT convert_to(\"{name}\"::text, 'UTF8') FROM {table}")
        };
        for row in client.query(&query, &[]).await.unwrap() {
            if let Some(bytes) = row.get::<_, Option<Vec<u8>>>(0) {
                cells.push((format!("{table}.{name}"), bytes));
            }
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_never_holds_a_plaintext_value() {
    const CANARY: &str = "sk-pg-canary-5be1c0d9a7";
    let url = support::postgres_database().await;
    let store = host(&url).await;
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    set(&store, &dev, "OPENAI_API_KEY", CANARY).await;
    set(&store, &prod, "OPENAI_API_KEY", CANARY).await;
    set(&store, &dev, "OPENAI_API_KEY", CANARY).await;
    store
        .import_self_host(
            &scope("self/default/prod"),
            &[("ANTHROPIC_API_KEY".into(), secret(CANARY))],
        )
        .await
        .unwrap();
    store.rewrap(&mut |_| {}).await.unwrap();
    let client = sql(&url).await;
    let cells = every_cell(&client).await;
    assert!(cells.iter().any(|(column, _)| column == "platos_values.sealed"));
    for (column, bytes) in &cells {
        if let Some(form) = support::find_secret(bytes, CANARY) {
            panic!("the canary ({form}) is in {column}");
        }
    }
    // The same plaintext seals differently each time (fresh nonces).
    let sealed: Vec<Vec<u8>> = client
        .query("SELECT sealed FROM platos_values", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(sealed.len(), 4);
    for (index, one) in sealed.iter().enumerate() {
        assert!(sealed[index + 1..].iter().all(|other| other != one));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ciphertext_moved_to_another_row_fails_to_decrypt() {
    let url = support::postgres_database().await;
    let store = host(&url).await;
    let dev = scope("acme/shop/dev");
    let prod = scope("acme/shop/prod");
    set(&store, &dev, "OPENAI_API_KEY", "sk-dev-secret").await;
    set(&store, &prod, "OPENAI_API_KEY", "sk-prod-secret").await;
    set(&store, &dev, "OTHER", "other-secret").await;
    set(&store, &dev, "OTHER", "other-secret-2").await;
    set(&store, &dev, "THIRD", "third-secret").await;
    // dev's key over prod's (another scope), over THIRD (another name), and
    // OTHER v1 over OTHER v2 (another version).
    let client = sql(&url).await;
    for (to_scope, to_name, to_version, from_name, from_version) in [
        ("acme/shop/prod", "OPENAI_API_KEY", 1i64, "OPENAI_API_KEY", 1i64),
        ("acme/shop/dev", "THIRD", 1, "OPENAI_API_KEY", 1),
        ("acme/shop/dev", "OTHER", 2, "OTHER", 1),
    ] {
        let moved = client
            .execute(
                "UPDATE platos_values SET sealed = (SELECT sealed FROM platos_values
                   WHERE scope = 'acme/shop/dev' AND name = $4 AND version = $5)
                 WHERE scope = $1 AND name = $2 AND version = $3",
                &[&to_scope, &to_name, &to_version, &from_name, &from_version],
            )
            .await
            .unwrap();
        assert_eq!(moved, 1);
    }
    for (scope, name) in [(&prod, "OPENAI_API_KEY"), (&dev, "THIRD"), (&dev, "OTHER")] {
        let error = store.get_var(scope, name).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Crypto { source: CryptoError::Authentication, .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("-secret"));
    }
    assert_eq!(value_of(&store, &dev, "OPENAI_API_KEY").await.unwrap(), "sk-dev-secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_version_and_the_key_check_are_checked_at_open() {
    let url = support::postgres_database().await;
    drop(host(&url).await);
    drop(host(&url).await); // a second open migrates nothing
    let client = sql(&url).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM platos_schema_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=PostgresStore::SCHEMA_VERSION as i32).collect::<Vec<_>>());

    // A key-check record written under another key than the values: the
    // store opens with the record's key, the values do not; with no record,
    // the values decide.
    let store = host(&url).await;
    set(&store, &scope("a/b/c"), "X", "y").await;
    drop(store);
    client.execute("DELETE FROM platos_meta WHERE name = 'key-check'", &[]).await.unwrap();
    let error = PostgresStore::open(&url, keyring(KEY_B, None), options()).await.unwrap_err();
    assert_eq!(error.code(), "key_mismatch", "{error}");
    assert!(error.to_string().contains(&url), "{error}");
    drop(host(&url).await);
    let records: i64 = client
        .query_one("SELECT count(*) FROM platos_meta WHERE name = 'key-check'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(records, 1, "the right key wrote the record again");

    // An altered record is refused as corrupt.
    let altered = client
        .execute(
            "UPDATE platos_meta
             SET value = set_byte(value, length(value) - 1, get_byte(value, length(value) - 1) # 1)
             WHERE name = 'key-check'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(altered, 1);
    let error = PostgresStore::open(&url, keyring(KEY_A, None), options()).await.unwrap_err();
    assert_eq!(error.code(), "store_corrupt", "{error}");
    assert!(error.to_string().contains("key-check record"), "{error}");

    // A schema from a newer host is refused, not migrated down.
    client.execute("DELETE FROM platos_meta WHERE name = 'key-check'", &[]).await.unwrap();
    client
        .execute("INSERT INTO platos_schema_migrations (version, applied_at) VALUES (99, 0)", &[])
        .await
        .unwrap();
    let error = PostgresStore::open(&url, keyring(KEY_A, None), options()).await.unwrap_err();
    let expected = PostgresStore::SCHEMA_VERSION as u32;
    assert!(
        matches!(error, StoreError::Format { found: 99, expected: e } if e == expected),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_unreachable_servers_get_clear_errors_without_the_password() {
    let url = support::postgres_database().await;
    let require = format!("{url}?sslmode=require");
    let error = PostgresStore::open(&require, keyring(KEY_A, None), options()).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("sslmode=require is not supported"), "{message}");
    // sslmode=disable and prefer connect without TLS.
    for mode in ["disable", "prefer"] {
        drop(
            PostgresStore::open(&format!("{url}?sslmode={mode}"), keyring(KEY_A, None), options())
                .await
                .unwrap(),
        );
    }
    let error =
        PostgresStore::open("mysql://x", keyring(KEY_A, None), options()).await.unwrap_err();
    assert!(error.to_string().contains("expected postgres://USER@HOST:PORT/DATABASE"), "{error}");
    // A port nothing listens on (bound, then closed): the error names the
    // server, never the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let password = "pg-password-canary-31f";
    let unreachable = format!("postgres://platos:{password}@127.0.0.1:{port}/platos");
    let error =
        PostgresStore::open(&unreachable, keyring(KEY_A, None), options()).await.unwrap_err();
    let message = format!("{error} {error:?}");
    assert_eq!(
        error.code(),
        "store_unavailable",
        "a server nobody answers on is unavailable, not a fault"
    );
    assert!(message.contains(&format!("postgres://platos@127.0.0.1:{port}/platos")), "{message}");
    assert!(!message.contains(password), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_writes_to_the_store_it_is_given() {
    const CANARY: &str = "sk-cli-pg-canary-0d4f";
    let url = support::postgres_database().await;
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut full = vec!["--store", url.as_str()];
        full.extend_from_slice(args);
        let output = crate::cli(data.path(), KEY_A, None, &full, stdin);
        let (stdout, stderr) = (crate::text(&output.stdout), crate::text(&output.stderr));
        assert!(!stdout.contains(CANARY) && !stderr.contains(CANARY), "{stdout}{stderr}");
        (output.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) =
        run(&["env", "set", "acme/shop/prod", "OPENAI_API_KEY"], &format!("{CANARY}\n"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OPENAI_API_KEY set in acme/shop/prod: version 1"), "{stdout}");
    let (code, stdout, stderr) = run(&["env", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OPENAI_API_KEY") && stdout.contains("cli"), "{stdout}");
    let (code, stdout, stderr) = run(&["keys", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("openai") && stdout.contains("OPENAI_API_KEY"), "{stdout}");
    // The value is in PostgreSQL, not in a sled store under the data directory.
    assert!(!data.path().join("store").exists());
    let store = host(&url).await;
    assert_eq!(value_of(&store, &scope("acme/shop/prod"), "OPENAI_API_KEY").await.unwrap(), CANARY);
    let (code, _, stderr) = run(&["rewrap"], "");
    assert_eq!(code, Some(0), "{stderr}");
    // A wrong key is refused naming the database; an unknown store is a usage error.
    let wrong =
        crate::cli(data.path(), KEY_B, None, &["--store", &url, "env", "list", "a/b/c"], "");
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = crate::text(&wrong.stderr);
    assert!(stderr.contains("does not match") && stderr.contains(&url), "{stderr}");
    let bogus = crate::cli(
        data.path(),
        KEY_A,
        None,
        &["--store", "mysql://u:pw-canary@h/d", "env", "list", "a/b/c"],
        "",
    );
    assert_eq!(bogus.status.code(), Some(2));
    let stderr = crate::text(&bogus.stderr);
    assert!(stderr.contains("expected `sled`") && !stderr.contains("pw-canary"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keeps_no_more_connections_than_its_pool_size() {
    let url = support::postgres_database().await;
    let options = StoreOptions { pool_size: 2, ..options() };
    let store = Arc::new(PostgresStore::open(&url, keyring(KEY_A, None), options).await.unwrap());
    let dev = scope("acme/shop/dev");
    set(&*store, &dev, "OPENAI_API_KEY", "sk-pooled").await;
    // Twenty reads at once share the two connections (each waits its turn).
    let reads: Vec<_> = (0..20)
        .map(|_| {
            let (store, dev) = (store.clone(), dev.clone());
            tokio::spawn(async move { value_of(&*store, &dev, "OPENAI_API_KEY").await })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap(), "sk-pooled");
    }
    let client = sql(&url).await;
    let open: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((1..=2).contains(&open), "{open} connections open for a pool of 2");
}

//! Setup shared by the benchmarks: the bundled plugins, a store on a
//! temporary directory that knows their key variables, and databases on the
//! PostgreSQL test server.

use std::sync::Arc;

use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::runtime::{PluginHost, PluginRegistry, RuntimeConfig};
use platos_host::store::{ProviderVars, SledStore, StoreOptions};

/// The bundled plugins and a fresh store; keep the directory alive as long as the store.
#[allow(dead_code)] // not every bench uses sled
pub async fn plugins_and_store() -> (PluginRegistry, Arc<SledStore>, tempfile::TempDir) {
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let mut registry = PluginRegistry::new();
    platos_host::bundled::load_bundled(&host, &mut registry).await.unwrap();
    let provider_vars =
        ProviderVars::from_manifests(registry.iter().map(|plugin| plugin.manifest()));
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::parse(ENCRYPTION_KEY_VAR, "0123456789abcdef0123456789abcdef").unwrap();
    let store = Arc::new(
        SledStore::open(
            dir.path(),
            Keyring::new(key, None),
            StoreOptions { provider_vars, ..StoreOptions::default() },
        )
        .unwrap(),
    );
    (registry, store, dir)
}

/// The URL of the PostgreSQL test server: `PLATOS_TEST_POSTGRES`, else the
/// one `scripts/postgres-test-server.sh` starts (or reuses).
#[allow(dead_code)] // not every bench uses PostgreSQL
pub fn postgres_server() -> String {
    if let Ok(url) = std::env::var("PLATOS_TEST_POSTGRES")
        && !url.is_empty()
    {
        return url;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres-test-server.sh");
    let output = std::process::Command::new("bash").arg(script).output().expect("bash runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().last().unwrap().trim().to_owned()
}

/// A fresh database `name` on the server at `server`; its URL.
#[allow(dead_code)] // not every bench uses PostgreSQL
pub async fn fresh_database(server: &str, name: &str) -> String {
    let (client, connection) =
        tokio_postgres::connect(server, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (root, _) = server.rsplit_once('/').unwrap();
    format!("{root}/{name}")
}

//! Setup shared by the benchmarks: the bundled plugins and a store on a
//! temporary directory that knows their key variables.

use std::sync::Arc;

use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::runtime::{PluginHost, PluginRegistry, RuntimeConfig};
use platos_host::store::{ProviderVars, SledStore, StoreOptions};

/// The bundled plugins and a fresh store; keep the directory alive as long as the store.
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

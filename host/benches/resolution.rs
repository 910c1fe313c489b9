//! In-process resolve: the store reads, decryption, env-bag assembly and the
//! lease, for a scope default and for a pinned variant with a companion.
//! Figures are recorded in docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::resolution::{ResolveRequest, Resolver, ResolverConfig};
use platos_host::runtime::{PluginHost, PluginRegistry, RuntimeConfig};
use platos_host::scope::Scope;
use platos_host::store::{ProviderVars, SecretStore, SledStore, StoreOptions, VarSource};
use secrecy::SecretString;

fn resolve_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let mut registry = PluginRegistry::new();
    runtime.block_on(platos_host::bundled::load_bundled(&host, &mut registry)).unwrap();
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
    let scope: Scope = "acme/shop/prod".parse().unwrap();
    for (name, value) in [
        ("OPENAI_API_KEY", "sk-bench-one"),
        ("OPENAI_API_KEY_2", "sk-bench-two"),
        ("OPENAI_API_BASE_2", "https://proxy.example/v1"),
    ] {
        store.set_var(&scope, name, &SecretString::from(value.to_owned()), VarSource::Api).unwrap();
    }
    // A short lease so the table stays small however many iterations run.
    let resolver =
        Resolver::new(store, registry, ResolverConfig { lease_ttl: Duration::from_millis(200) });
    let default = ResolveRequest {
        scope: scope.clone(),
        provider: "openai".into(),
        pinned_key: None,
        strict: false,
    };
    let pinned = ResolveRequest {
        pinned_key: Some("OPENAI_API_KEY_2".into()),
        strict: true,
        ..default.clone()
    };

    let mut group = c.benchmark_group("resolve (in-process)");
    group.bench_function("scope default", |b| {
        b.iter(|| {
            let resolution = resolver.resolve(&default).unwrap();
            resolver.release(&resolution.lease_id);
        })
    });
    group.bench_function("pinned variant with companion", |b| {
        b.iter(|| {
            let resolution = resolver.resolve(&pinned).unwrap();
            resolver.release(&resolution.lease_id);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(2));
    targets = resolve_benches
}
criterion_main!(benches);

//! In-process resolve: the store reads, decryption, env-bag assembly and the
//! lease, for a scope default and for a pinned variant with a companion.
//! Figures are recorded in docs/benchmarks.md.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use platos_host::resolution::{ResolveRequest, Resolver, ResolverConfig};
use platos_host::scope::Scope;
use platos_host::store::{Blocking, BlockingSecretStore, VarSource};
use secrecy::SecretString;

fn resolve_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (registry, store, _dir) = runtime.block_on(support::plugins_and_store());
    let scope: Scope = "acme/shop/prod".parse().unwrap();
    for (name, value) in [
        ("OPENAI_API_KEY", "sk-bench-one"),
        ("OPENAI_API_KEY_2", "sk-bench-two"),
        ("OPENAI_API_BASE_2", "https://proxy.example/v1"),
    ] {
        store.set_var(&scope, name, &SecretString::from(value.to_owned()), VarSource::Api).unwrap();
    }
    // A lease is a token the agent holds: the host keeps nothing per lease,
    // so nothing is released between iterations.
    let resolver = Resolver::new(
        std::sync::Arc::new(Blocking::shared(store)),
        registry,
        ResolverConfig::default(),
    );
    let default = ResolveRequest {
        scope: scope.clone(),
        provider: "openai".into(),
        pinned_key: None,
        strict: false,
        client: None,
    };
    let pinned = ResolveRequest {
        pinned_key: Some("OPENAI_API_KEY_2".into()),
        strict: true,
        ..default.clone()
    };

    let mut group = c.benchmark_group("resolve (in-process)");
    group.bench_function("scope default", |b| {
        b.to_async(&runtime).iter(|| async {
            resolver.resolve(&default).await.unwrap();
        })
    });
    group.bench_function("pinned variant with companion", |b| {
        b.to_async(&runtime).iter(|| async {
            resolver.resolve(&pinned).await.unwrap();
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

//! Plugin call cost: `authorize` on a fresh store and instance (every call
//! gets one), plus `interpret-health` on a models list and a plugin load from
//! the compile cache. Figures are recorded in docs/benchmarks.md.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use platos_host::provider::{Credentials, HttpRequest, HttpResponse};
use platos_host::runtime::{PluginHost, RuntimeConfig};

fn openai_wasm() -> &'static [u8] {
    platos_host::bundled::BUNDLED_PLUGINS
        .iter()
        .find(|(name, _)| *name == "openai")
        .map(|(_, wasm)| *wasm)
        .expect("openai is bundled")
}

fn runtime_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let plugin = runtime.block_on(host.load(openai_wasm(), "bench:openai")).unwrap();
    let credentials = Credentials::new().with("OPENAI_API_KEY", "sk-bench-0123456789abcdef");
    let request = HttpRequest::get("https://api.openai.com/v1/chat/completions");

    c.bench_function("authorize (fresh instance)", |b| {
        b.to_async(&runtime).iter(|| async {
            plugin.authorize(&credentials, &request, 1_700_000_000).await.unwrap()
        })
    });

    // The same plugin frozen at contract 0.1.0, beside it in the same run: what
    // the contract version costs, apart from the host's own checks.
    let frozen =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/v0.1.0/openai.wasm"))
            .unwrap();
    let frozen = runtime.block_on(host.load(&frozen, "bench:openai@0.1.0")).unwrap();
    c.bench_function("authorize (fresh instance, contract 0.1.0 build)", |b| {
        b.to_async(&runtime).iter(|| async {
            frozen.authorize(&credentials, &request, 1_700_000_000).await.unwrap()
        })
    });

    // The fixed cost of a call: fresh store, instance and the smallest input.
    let refused = HttpResponse { status: 401, headers: vec![], body: Vec::new() };
    c.bench_function("interpret-health (401, empty body)", |b| {
        b.to_async(&runtime).iter(|| async {
            plugin.interpret_health(&Credentials::new(), &refused).await.unwrap()
        })
    });

    let models: Vec<String> =
        (0..100).map(|i| format!(r#"{{"id":"model-{i}","object":"model"}}"#)).collect();
    let response = HttpResponse {
        status: 200,
        headers: vec![],
        body: format!(r#"{{"object":"list","data":[{}]}}"#, models.join(",")).into_bytes(),
    };
    c.bench_function("interpret-health (100 models)", |b| {
        b.to_async(&runtime).iter(|| async {
            plugin.interpret_health(&Credentials::new(), &response).await.unwrap()
        })
    });

    c.bench_function("load plugin from the compile cache", |b| {
        b.to_async(&runtime)
            .iter(|| async { host.load(openai_wasm(), "bench:openai").await.unwrap() })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(2));
    targets = runtime_benches
}
criterion_main!(benches);

//! One health round over 10,000 keys in 1,000 scopes (ten providers' worth of
//! distinct credentials per scope) against a mock upstream on loopback that
//! answers every probe after 50 ms. Goal: the round ends within 60 s.
//! Run: `cargo bench -p platos-host --bench health_round`. Prints the figures
//! recorded in docs/benchmarks.md.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use platos_host::health::{HealthConfig, HealthService};
use platos_host::outbound::{Outbound, OutboundConfig};
use platos_host::policy::addresses::AddressPolicy;
use platos_host::resolution::{Resolver, ResolverConfig};
use platos_host::scope::Scope;
use platos_host::store::{Blocking, BlockingSecretStore};
use secrecy::SecretString;

const SCOPES: usize = 1_000;
const KEYS_PER_SCOPE: usize = 10;

fn main() {
    // `cargo test --all-targets` runs bench targets with `--bench` absent: stay quick there.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("health_round: run with `cargo bench -p platos-host --bench health_round`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/v1/models",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                hits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                r#"{"data":[{"id":"gpt-5"}]}"#
            }),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (registry, store, _dir) = support::plugins_and_store().await;

    let setup = Instant::now();
    let base = format!("http://{address}/v1");
    for scope_index in 0..SCOPES {
        let scope: Scope =
            format!("org-{}/project-{scope_index}/prod", scope_index % 10).parse().unwrap();
        let mut vars = vec![("OPENAI_API_BASE".to_owned(), SecretString::from(base.clone()))];
        for variant in 1..=KEYS_PER_SCOPE {
            let name = if variant == 1 {
                "OPENAI_API_KEY".to_owned()
            } else {
                format!("OPENAI_API_KEY_{variant}")
            };
            vars.push((name, SecretString::from(format!("sk-{scope_index}-{variant}"))));
        }
        store.import_self_host(&scope, &vars).unwrap();
    }
    println!(
        "setup: {} keys in {SCOPES} scopes in {:.1} s",
        SCOPES * KEYS_PER_SCOPE,
        setup.elapsed().as_secs_f64()
    );

    let resolver = Resolver::new(
        std::sync::Arc::new(Blocking::shared(store)),
        registry,
        ResolverConfig::default(),
    );
    let outbound = Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        ..OutboundConfig::default()
    })
    .unwrap();
    let config = HealthConfig::default();
    let concurrency = config.concurrency;
    let service = HealthService::new(resolver, outbound, config);
    let started = Instant::now();
    let stats = service.run_round().await.unwrap();
    let elapsed = started.elapsed();
    println!(
        "round: {} keys, {} probes, concurrency {concurrency}, 50 ms upstream: {:.1} s ({:.0} probes/s); upstream saw {} requests",
        stats.keys,
        stats.probes,
        elapsed.as_secs_f64(),
        stats.probes as f64 / elapsed.as_secs_f64(),
        hits.load(Ordering::Relaxed)
    );
    assert_eq!(stats.probes, SCOPES * KEYS_PER_SCOPE);
    assert!(elapsed <= Duration::from_secs(60), "the round took longer than the 60 s goal");
}

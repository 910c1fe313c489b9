//! One health round over 10,000 keys in 1,000 scopes (ten providers' worth of
//! distinct credentials per scope) against a mock upstream on loopback that
//! answers every probe after 50 ms. Goal: the round ends within 60 s.
//!
//! Then the scheduled round of the same keys on PostgreSQL (the test
//! server, `scripts/postgres-test-server.sh`), by one node and by three
//! nodes sharing the database (three stores, resolvers and health services
//! in this process), started together: issue 11's goal is each credential
//! probed once across the nodes and the round no slower than one node's.
//!
//! Run: `cargo bench -p platos-host --bench health_round`. Prints the figures
//! recorded in docs/benchmarks.md.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::health::rounds::{RoundState, RoundTarget, RoundTrigger};
use platos_host::health::{HealthConfig, HealthService};
use platos_host::outbound::{Outbound, OutboundConfig};
use platos_host::policy::addresses::AddressPolicy;
use platos_host::resolution::{Resolver, ResolverConfig};
use platos_host::runtime::PluginRegistry;
use platos_host::scope::Scope;
use platos_host::store::{
    Blocking, BlockingSecretStore, PostgresStore, ProviderVars, SecretStore, StoreOptions,
};
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
    for (scope, vars) in scopes(&base) {
        store.import_self_host(&scope, &vars).unwrap();
    }
    println!(
        "setup: {} keys in {SCOPES} scopes in {:.1} s",
        SCOPES * KEYS_PER_SCOPE,
        setup.elapsed().as_secs_f64()
    );

    let resolver = Resolver::new(
        std::sync::Arc::new(Blocking::shared(store)),
        registry.clone(),
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

    let one = shared_round(&registry, 1).await;
    let three = shared_round(&registry, 3).await;
    println!(
        "scheduled round on PostgreSQL: 1 node {:.1} s, 3 nodes {:.1} s ({:.2}x)",
        one.as_secs_f64(),
        three.as_secs_f64(),
        three.as_secs_f64() / one.as_secs_f64()
    );
}

/// Every scope's variables: the mock as the base URL, and ten keys, each a
/// distinct credential (`sk-{scope}-{variant}`).
fn scopes(base: &str) -> Vec<(Scope, Vec<(String, SecretString)>)> {
    (0..SCOPES)
        .map(|scope_index| {
            let scope: Scope =
                format!("org-{}/project-{scope_index}/prod", scope_index % 10).parse().unwrap();
            let mut vars =
                vec![("OPENAI_API_BASE".to_owned(), SecretString::from(base.to_owned()))];
            for variant in 1..=KEYS_PER_SCOPE {
                let name = if variant == 1 {
                    "OPENAI_API_KEY".to_owned()
                } else {
                    format!("OPENAI_API_KEY_{variant}")
                };
                vars.push((name, SecretString::from(format!("sk-{scope_index}-{variant}"))));
            }
            (scope, vars)
        })
        .collect()
}

/// One scheduled round of every key by `nodes` health services, each on a
/// store of its own over one fresh database, started together against a
/// mock of its own that counts the probes of each credential. Asserts each
/// credential was probed exactly once; returns the time until the last
/// node's round ended.
async fn shared_round(registry: &PluginRegistry, nodes: usize) -> Duration {
    let probes: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let app =
        Router::new()
            .route(
                "/v1/models",
                get(
                    |State(probes): State<Arc<Mutex<HashMap<String, usize>>>>,
                     headers: HeaderMap| async move {
                        let credential = headers
                            .get("authorization")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        *probes.lock().unwrap().entry(credential).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        r#"{"data":[{"id":"gpt-5"}]}"#
                    },
                ),
            )
            .with_state(probes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = support::postgres_server();
    let url = support::fresh_database(&server, &format!("platos_bench_health_{nodes}")).await;
    let key = || {
        let key =
            EncryptionKey::parse(ENCRYPTION_KEY_VAR, "0123456789abcdef0123456789abcdef").unwrap();
        Keyring::new(key, None)
    };
    let options = || StoreOptions {
        provider_vars: ProviderVars::from_manifests(
            registry.iter().map(|plugin| plugin.manifest()),
        ),
        ..StoreOptions::default()
    };
    let mut stores: Vec<Arc<dyn SecretStore>> = Vec::new();
    for _ in 0..nodes {
        stores.push(Arc::new(PostgresStore::open(&url, key(), options()).await.unwrap()));
    }
    let setup = Instant::now();
    for (scope, vars) in scopes(&base) {
        stores[0].import_self_host(&scope, &vars).await.unwrap();
    }
    println!(
        "PostgreSQL setup for {nodes} node(s): {} keys in {:.1} s",
        SCOPES * KEYS_PER_SCOPE,
        setup.elapsed().as_secs_f64()
    );
    // A day's slot: every node's round falls in the same one (a round
    // started within a minute of midnight UTC would straddle two).
    let config = HealthConfig { interval: Duration::from_secs(86_400), ..HealthConfig::default() };
    let services: Vec<HealthService> = stores
        .into_iter()
        .map(|store| {
            let resolver = Resolver::new(store, registry.clone(), ResolverConfig::default());
            let outbound = Outbound::new(OutboundConfig {
                addresses: AddressPolicy { allow_loopback: true, allow_private: false },
                ..OutboundConfig::default()
            })
            .unwrap();
            HealthService::new(resolver, outbound, config.clone())
        })
        .collect();
    let started = Instant::now();
    let rounds: Vec<u64> = services
        .iter()
        .map(|service| service.start_round(RoundTarget::All, RoundTrigger::Schedule).0.id)
        .collect();
    let mut views = Vec::new();
    for (service, id) in services.iter().zip(&rounds) {
        let view = loop {
            let view = service.round(*id).unwrap();
            if view.state != RoundState::Running {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        views.push(view);
    }
    let elapsed = started.elapsed();
    let probes = probes.lock().unwrap();
    let once = probes.values().filter(|count| **count == 1).count();
    println!(
        "{nodes} node(s): round {:.1} s; keys probed per node {:?}, skipped as shared {:?}; \
         the mock saw {} credentials, {once} of them exactly once, {} requests",
        elapsed.as_secs_f64(),
        views.iter().map(|view| view.probed).collect::<Vec<_>>(),
        views.iter().map(|view| view.shared).collect::<Vec<_>>(),
        probes.len(),
        probes.values().sum::<usize>()
    );
    assert!(views.iter().all(|view| view.state == RoundState::Done), "a round failed");
    assert_eq!(probes.len(), SCOPES * KEYS_PER_SCOPE, "every credential was probed");
    assert_eq!(once, SCOPES * KEYS_PER_SCOPE, "each credential exactly once");
    elapsed
}

//! The store's costs: a durable write (one transaction and a sled flush),
//! a read with decryption, and the AES-256-GCM seal/open beneath them.
//!
//! Run with `cargo bench -p platos-host --bench store -- --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use platos_host::crypto::{Binding, ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::scope::Scope;
use platos_host::store::{BlockingSecretStore, ProviderVars, SledStore, StoreOptions, VarSource};
use secrecy::SecretString;

const KEY: &str = "0123456789abcdef0123456789abcdef";
/// A provider key of typical length.
const VALUE: &str =
    "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab";

fn keyring() -> Keyring {
    Keyring::new(EncryptionKey::parse(ENCRYPTION_KEY_VAR, KEY).unwrap(), None)
}

fn store(dir: &std::path::Path) -> SledStore {
    let options = StoreOptions {
        provider_vars: ProviderVars::new().with("OPENAI_API_KEY", "openai"),
        ..StoreOptions::default()
    };
    SledStore::open(dir, keyring(), options).unwrap()
}

fn bench_store(c: &mut Criterion) {
    let scope: Scope = "acme/shop/prod".parse().unwrap();
    let value = SecretString::from(VALUE.to_owned());
    let names: Vec<String> = (0..64).map(|index| format!("VAR_{index}")).collect();

    let dir = tempfile::tempdir().unwrap();
    let durable = store(dir.path());
    let mut next = 0;
    c.bench_function("store/set_durable", |b| {
        b.iter(|| {
            next = (next + 1) % names.len();
            black_box(durable.set_var(&scope, &names[next], &value, VarSource::Api).unwrap())
        })
    });
    // A provider key: the transaction also touches its provider-key row.
    c.bench_function("store/set_durable_provider_key", |b| {
        b.iter(|| {
            black_box(durable.set_var(&scope, "OPENAI_API_KEY_2", &value, VarSource::Api).unwrap())
        })
    });
    drop(durable);

    let dir = tempfile::tempdir().unwrap();
    let reads = store(dir.path());
    let many: Vec<String> = (0..1000).map(|index| format!("VAR_{index}")).collect();
    for name in &many {
        reads.set_var(&scope, name, &value, VarSource::Api).unwrap();
    }
    let mut next = 0;
    c.bench_function("store/get_decrypt", |b| {
        b.iter(|| {
            next = (next + 7) % many.len();
            black_box(reads.get_var(&scope, &many[next]).unwrap().unwrap())
        })
    });
    c.bench_function("store/list_vars_1000", |b| {
        b.iter(|| black_box(reads.list_vars(&scope).unwrap()))
    });

    let ring = keyring();
    let binding = Binding { scope: &scope, name: "OPENAI_API_KEY", version: 7 };
    let sealed = ring.seal(&binding, VALUE.as_bytes()).unwrap();
    c.bench_function("crypto/seal", |b| {
        b.iter(|| black_box(ring.seal(&binding, black_box(VALUE.as_bytes())).unwrap()))
    });
    c.bench_function("crypto/open", |b| {
        b.iter(|| black_box(ring.open(&binding, black_box(&sealed)).unwrap()))
    });
}

criterion_group!(benches, bench_store);
criterion_main!(benches);

//! Resolution, leases, the picker, explain, the embedding track and the
//! health service, on a real store with the bundled plugins; probes go to a
//! mock upstream on loopback.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use platos_host::crypto::{
    ENCRYPTION_KEY_PREVIOUS_VAR, ENCRYPTION_KEY_VAR, EncryptionKey, Keyring,
};
use platos_host::embedding::{EmbeddingProvider, status};
use platos_host::health::rounds::{RoundState, RoundTrigger};
use platos_host::health::{HealthConfig, HealthService, KeyLocation};
use platos_host::outbound::{Outbound, OutboundConfig};
use platos_host::policy::addresses::AddressPolicy;
use platos_host::provider::MicroUsd;
use platos_host::provider::{HttpRequest, ModelClass};
use platos_host::resolution::{
    ChosenBy, LeaseError, PinnedBy, ResolveError, ResolveRequest, Resolver, ResolverConfig,
};
use platos_host::runtime::{PluginHost, PluginRegistry, RuntimeConfig};
use platos_host::scope::Scope;
use platos_host::store::{
    BlockingSecretStore, Budget, BudgetTarget, HealthRecord, HealthVerdict, KeyStatus, KeyUpdate,
    Period, ProviderVars, SledStore, StoreOptions, VarSource,
};
use secrecy::SecretString;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    resolver: Resolver,
}

async fn fixture() -> Fixture {
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let mut registry = PluginRegistry::new();
    platos_host::bundled::load_bundled(&host, &mut registry).await.unwrap();
    let (dir, store) = support::store_for(&registry);
    let resolver = Resolver::new(support::async_store(&store), registry, ResolverConfig::default());
    Fixture { _dir: dir, store, resolver }
}

fn scope(text: &str) -> Scope {
    text.parse().unwrap()
}

fn set(store: &SledStore, scope: &Scope, name: &str, value: &str) {
    store.set_var(scope, name, &SecretString::from(value.to_owned()), VarSource::Api).unwrap();
}

fn request(scope: &Scope, provider: &str, pin: Option<&str>, strict: bool) -> ResolveRequest {
    ResolveRequest {
        scope: scope.clone(),
        provider: provider.into(),
        pinned_key: pin.map(Into::into),
        strict,
        client: None,
    }
}

#[tokio::test]
async fn the_scope_default_is_the_lowest_variant_and_pins_choose_their_key() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    set(&f.store, &dev, "ANTHROPIC_API_KEY_3", "sk-ant-three");
    set(&f.store, &dev, "ANTHROPIC_API_KEY_2", "sk-ant-two");
    let resolution = f.resolver.resolve(&request(&dev, "anthropic", None, false)).await.unwrap();
    assert_eq!(resolution.chosen_by, ChosenBy::ScopeDefault);
    assert_eq!(resolution.key.key_id, "ANTHROPIC_API_KEY_2");
    assert_eq!(
        resolution.env.get("ANTHROPIC_API_KEY"),
        Some("sk-ant-two"),
        "the bag uses the plain name"
    );
    assert_eq!(
        resolution.env.get("ANTHROPIC_BASE_URL"),
        Some("https://api.anthropic.com"),
        "defaults fill in"
    );

    let pinned = f
        .resolver
        .resolve(&request(&dev, "anthropic", Some("ANTHROPIC_API_KEY_3"), true))
        .await
        .unwrap();
    assert_eq!((pinned.chosen_by, pinned.key.variant), (ChosenBy::Pinned, 3));
    assert_eq!(pinned.env.get("ANTHROPIC_API_KEY"), Some("sk-ant-three"));
    assert!(!format!("{pinned:?}").contains("sk-ant-three"), "Debug shows no value");
}

#[tokio::test]
async fn a_vanished_pin_falls_back_loudly_or_fails_when_strict() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-one");
    let fallback = f
        .resolver
        .resolve(&request(&prod, "openai", Some("OPENAI_API_KEY_7"), false))
        .await
        .unwrap();
    assert_eq!(fallback.chosen_by, ChosenBy::FallbackPinMissing);
    assert_eq!(fallback.key.key_id, "OPENAI_API_KEY");
    assert!(fallback.warning.as_deref().unwrap().contains("OPENAI_API_KEY_7"));
    assert_eq!(f.resolver.counters().fallbacks.load(Ordering::Relaxed), 1);

    let error = f
        .resolver
        .resolve(&request(&prod, "openai", Some("OPENAI_API_KEY_7"), true))
        .await
        .unwrap_err();
    assert!(matches!(error, ResolveError::PinnedKeyMissing { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("OPENAI_API_KEY_7") && message.contains("OPENAI_API_KEY"),
        "{message}"
    );
    assert!(!message.contains("sk-one"));
}

#[tokio::test]
async fn no_key_names_the_expected_variable_and_the_near_misses() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    set(&f.store, &dev, "OPENAI_KEY", "sk-typo");
    let error = f.resolver.resolve(&request(&dev, "openai", None, false)).await.unwrap_err();
    match &error {
        ResolveError::NoKeyLinked { expected, near_misses, .. } => {
            assert_eq!(expected, &["OPENAI_API_KEY"]);
            assert_eq!(near_misses.len(), 1);
            assert_eq!(
                (near_misses[0].found.as_str(), near_misses[0].did_you_mean.as_str()),
                ("OPENAI_KEY", "OPENAI_API_KEY")
            );
        }
        other => panic!("expected NoKeyLinked, got {other}"),
    }
    assert!(error.to_string().contains("OPENAI_KEY → did you mean OPENAI_API_KEY?"), "{error}");
    // Another provider's own variable is no misspelling of this one's.
    set(&f.store, &dev, "OPENAI_API_KEY_2", "sk-two");
    match f.resolver.resolve(&request(&dev, "azure-openai", None, false)).await.unwrap_err() {
        ResolveError::NoKeyLinked { near_misses, .. } => {
            assert!(near_misses.is_empty(), "{near_misses:?}")
        }
        other => panic!("expected NoKeyLinked, got {other}"),
    }
    // A key in dev does not apply to prod.
    set(&f.store, &dev, "OPENAI_API_KEY", "sk-dev");
    assert!(
        f.resolver
            .resolve(&request(&scope("acme/shop/prod"), "openai", None, false))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn companions_follow_the_variant_and_fall_back_to_the_plain_variable() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    set(&f.store, &dev, "OPENAI_API_BASE", "https://proxy.example/v1");
    set(&f.store, &dev, "OPENAI_API_KEY_2", "sk-two");
    set(&f.store, &dev, "OPENAI_API_KEY_3", "sk-three");
    set(&f.store, &dev, "OPENAI_API_BASE_3", "https://eu.proxy.example/v1");
    let two =
        f.resolver.resolve(&request(&dev, "openai", Some("OPENAI_API_KEY_2"), true)).await.unwrap();
    assert_eq!(two.env.get("OPENAI_API_BASE"), Some("https://proxy.example/v1"));
    let three =
        f.resolver.resolve(&request(&dev, "openai", Some("OPENAI_API_KEY_3"), true)).await.unwrap();
    assert_eq!(three.env.get("OPENAI_API_BASE"), Some("https://eu.proxy.example/v1"));
    // Bedrock: variant 2's secret never borrows variant 1's.
    set(&f.store, &dev, "AWS_ACCESS_KEY_ID", "AKIAONE");
    set(&f.store, &dev, "AWS_SECRET_ACCESS_KEY", "secret-one");
    set(&f.store, &dev, "AWS_ACCESS_KEY_ID_2", "AKIATWO");
    let error = f
        .resolver
        .resolve(&request(&dev, "bedrock", Some("AWS_ACCESS_KEY_ID_2"), true))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("AWS_SECRET_ACCESS_KEY_2"), "{error}");
}

#[tokio::test]
async fn a_rotation_keeps_the_old_value_for_the_lease_and_gives_new_resolves_the_new_one() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-old");
    let held = f.resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-new");
    let fresh = f.resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    assert_eq!(fresh.env.get("OPENAI_API_KEY"), Some("sk-new"));

    let call = HttpRequest::get("https://api.openai.com/v1/models");
    // Authorize sends nothing for an API-key provider (only a token
    // exchange would go through the sender).
    let net = &Outbound::new(OutboundConfig::default()).unwrap();
    let old = f.resolver.authorize(&prod, &held.lease_id, &call, net).await.unwrap();
    assert_eq!(old.header_values("authorization").collect::<Vec<_>>(), ["Bearer sk-old"]);
    let new = f.resolver.authorize(&prod, &fresh.lease_id, &call, net).await.unwrap();
    assert_eq!(new.header_values("authorization").collect::<Vec<_>>(), ["Bearer sk-new"]);

    // A lease belongs to its scope (another scope cannot use or release
    // it), and ends when released; the other lease goes on.
    let dev = scope("acme/shop/dev");
    let refused = f.resolver.authorize(&dev, &held.lease_id, &call, net).await.unwrap_err();
    assert!(matches!(refused, LeaseError::Unknown), "{refused}");
    assert!(f.resolver.release(&dev, &held.lease_id).await.unwrap().is_none());
    assert!(f.resolver.release(&prod, &held.lease_id).await.unwrap().is_some());
    let refused = f.resolver.authorize(&prod, &held.lease_id, &call, net).await.unwrap_err();
    assert!(matches!(refused, LeaseError::Released), "{refused}");
    assert!(f.resolver.release(&prod, &held.lease_id).await.unwrap().is_none(), "released once");
    assert!(f.resolver.authorize(&prod, &fresh.lease_id, &call, net).await.is_ok());
    let counters = f.resolver.counters();
    assert_eq!(counters.leases_issued.load(Ordering::Relaxed), 2);
    assert_eq!(counters.leases_released.load(Ordering::Relaxed), 1);
    // The token names no value.
    for lease in [&held.lease_id, &fresh.lease_id] {
        support::assert_no_secret(lease, "sk-old", "a lease token");
        support::assert_no_secret(lease, "sk-new", "a lease token");
    }
}

#[tokio::test]
async fn leases_expire() {
    let f = fixture().await;
    let resolver = Resolver::new(
        support::async_store(&f.store),
        f.resolver.registry().clone(),
        ResolverConfig { lease_ttl: Duration::from_millis(50) },
    );
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-one");
    let lease = resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let call = HttpRequest::get("https://api.openai.com/v1/models");
    let net = &Outbound::new(OutboundConfig::default()).unwrap();
    let refused = resolver.authorize(&prod, &lease.lease_id, &call, net).await.unwrap_err();
    assert!(
        matches!(refused, LeaseError::Expired { at } if at == lease.lease_expires_at),
        "{refused}"
    );
    assert!(
        resolver.release(&prod, &lease.lease_id).await.unwrap().is_none(),
        "nothing to release"
    );
}

/// A sled store in `path` under `keyring` with the bundled providers' key
/// variables and a grace period of `grace`.
fn open_store(
    path: &std::path::Path,
    keyring: Keyring,
    registry: &PluginRegistry,
    grace: Duration,
) -> Arc<SledStore> {
    let provider_vars =
        ProviderVars::from_manifests(registry.iter().map(|plugin| plugin.manifest()));
    let options = StoreOptions { provider_vars, grace, ..StoreOptions::default() };
    Arc::new(SledStore::open(path, keyring, options).unwrap())
}

fn key(var: &'static str, value: &str) -> EncryptionKey {
    EncryptionKey::parse(var, value).unwrap()
}

/// The key `support::store_for` opens its stores with.
const SUPPORT_KEY: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn a_lease_authorizes_on_another_resolver_and_after_a_restart_and_a_release_is_shared() {
    let f = fixture().await;
    let registry = f.resolver.registry().clone();
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-one");
    let call = HttpRequest::get("https://api.openai.com/v1/models");
    let net = &Outbound::new(OutboundConfig::default()).unwrap();
    let bearer =
        |request: HttpRequest| request.header_values("authorization").collect::<Vec<_>>().join(",");

    // Two resolvers on one store: a lease of one authorizes on the other,
    // and a release on one is honoured by the other.
    let other =
        Resolver::new(support::async_store(&f.store), registry.clone(), ResolverConfig::default());
    let kept = f.resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    let released = f.resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    let signed = other.authorize(&prod, &kept.lease_id, &call, net).await.unwrap();
    assert_eq!(bearer(signed), "Bearer sk-one");
    assert!(other.release(&prod, &released.lease_id).await.unwrap().is_some());
    let refused = f.resolver.authorize(&prod, &released.lease_id, &call, net).await.unwrap_err();
    assert!(matches!(refused, LeaseError::Released), "{refused}");
    assert!(f.resolver.release(&prod, &released.lease_id).await.unwrap().is_none());

    // A restart: every handle on the store dropped, the store reopened
    // with the same key: the lease still authorizes, the release still holds.
    let Fixture { _dir: dir, store, resolver } = f;
    drop((resolver, other, store));
    let store = open_store(
        dir.path(),
        Keyring::new(key(ENCRYPTION_KEY_VAR, SUPPORT_KEY), None),
        &registry,
        platos_host::store::DEFAULT_GRACE,
    );
    let restarted =
        Resolver::new(support::async_store(&store), registry.clone(), ResolverConfig::default());
    let signed = restarted.authorize(&prod, &kept.lease_id, &call, net).await.unwrap();
    assert_eq!(bearer(signed), "Bearer sk-one");
    let refused = restarted.authorize(&prod, &released.lease_id, &call, net).await.unwrap_err();
    assert!(matches!(refused, LeaseError::Released), "{refused}");

    // A master-key rotation: the old key as the previous one still verifies
    // the lease; new leases are made under the new key.
    drop((restarted, store));
    let rotated = Keyring::new(
        key(ENCRYPTION_KEY_VAR, "fedcba9876543210fedcba9876543210"),
        Some(key(ENCRYPTION_KEY_PREVIOUS_VAR, SUPPORT_KEY)),
    );
    let store = open_store(dir.path(), rotated, &registry, platos_host::store::DEFAULT_GRACE);
    let resolver =
        Resolver::new(support::async_store(&store), registry.clone(), ResolverConfig::default());
    assert_eq!(
        bearer(resolver.authorize(&prod, &kept.lease_id, &call, net).await.unwrap()),
        "Bearer sk-one"
    );
    let new = resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    assert!(resolver.authorize(&prod, &new.lease_id, &call, net).await.is_ok());
    // A host with another master key altogether refuses both.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger_store = open_store(
        stranger_dir.path(),
        Keyring::new(key(ENCRYPTION_KEY_VAR, "00112233445566778899aabbccddeeff"), None),
        &registry,
        platos_host::store::DEFAULT_GRACE,
    );
    set(&stranger_store, &prod, "OPENAI_API_KEY", "sk-one");
    let foreign =
        Resolver::new(support::async_store(&stranger_store), registry, ResolverConfig::default());
    for lease in [&kept.lease_id, &new.lease_id] {
        let refused = foreign.authorize(&prod, lease, &call, net).await.unwrap_err();
        assert!(matches!(refused, LeaseError::Unknown), "{refused}");
    }
}

#[tokio::test]
async fn a_lease_stops_when_its_key_is_disabled_or_unset_or_its_version_is_no_longer_kept() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-one");
    let call = HttpRequest::get("https://api.openai.com/v1/models");
    let net = &Outbound::new(OutboundConfig::default()).unwrap();
    let lease = f.resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    assert!(f.resolver.authorize(&prod, &lease.lease_id, &call, net).await.is_ok());

    // Disabled after the lease was taken: refused, saying so; enabled again: it works.
    let status = |status| KeyUpdate::Status(status);
    assert!(
        f.store
            .update_provider_key(&prod, "openai", "OPENAI_API_KEY", status(KeyStatus::Disabled))
            .unwrap()
    );
    let refused = f.resolver.authorize(&prod, &lease.lease_id, &call, net).await.unwrap_err();
    assert!(
        matches!(&refused, LeaseError::KeyInactive { key_id, state: "disabled", .. } if key_id == "OPENAI_API_KEY"),
        "{refused}"
    );
    assert!(refused.to_string().contains("OPENAI_API_KEY of openai is disabled"), "{refused}");
    assert!(
        f.store
            .update_provider_key(&prod, "openai", "OPENAI_API_KEY", status(KeyStatus::Active))
            .unwrap()
    );
    assert!(f.resolver.authorize(&prod, &lease.lease_id, &call, net).await.is_ok());

    // Unset: the key is no longer linked.
    assert!(f.store.unset_var(&prod, "OPENAI_API_KEY", VarSource::Api).unwrap());
    let refused = f.resolver.authorize(&prod, &lease.lease_id, &call, net).await.unwrap_err();
    assert!(matches!(refused, LeaseError::KeyInactive { state: "no longer set", .. }), "{refused}");

    // A version past its grace period (a store with none): refused as gone.
    let dir = tempfile::tempdir().unwrap();
    let registry = f.resolver.registry().clone();
    let keyring = Keyring::new(key(ENCRYPTION_KEY_VAR, SUPPORT_KEY), None);
    let no_grace = open_store(dir.path(), keyring, &registry, Duration::ZERO);
    let resolver =
        Resolver::new(support::async_store(&no_grace), registry, ResolverConfig::default());
    set(&no_grace, &prod, "OPENAI_API_KEY", "sk-one");
    let lease = resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    set(&no_grace, &prod, "OPENAI_API_KEY", "sk-two");
    let refused = resolver.authorize(&prod, &lease.lease_id, &call, net).await.unwrap_err();
    assert!(
        matches!(&refused, LeaseError::VersionGone { name, version: 1 } if name == "OPENAI_API_KEY"),
        "{refused}"
    );
}

#[tokio::test]
async fn last_used_is_batched() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-one");
    for _ in 0..50 {
        f.resolver.resolve(&request(&prod, "openai", None, false)).await.unwrap();
    }
    let before = f.store.list_provider_keys(&prod).unwrap();
    assert_eq!(before[0].last_used_at, None, "nothing written per resolve");
    assert_eq!(f.resolver.flush_usage().await.unwrap(), 1, "one update for fifty resolves");
    let after = f.store.list_provider_keys(&prod).unwrap();
    assert!(after[0].last_used_at.is_some());
}

#[tokio::test]
async fn the_picker_shows_only_providers_with_a_key() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    assert!(f.resolver.models(&dev, None).await.unwrap().is_empty(), "no key, no models");
    set(&f.store, &dev, "VOYAGE_API_KEY", "pa-key");
    let models = f.resolver.models(&dev, None).await.unwrap();
    assert!(!models.is_empty() && models.iter().all(|model| model.provider == "voyage"));
    let reranks = f.resolver.models(&dev, Some(ModelClass::Rerank)).await.unwrap();
    assert!(!reranks.is_empty() && reranks.iter().all(|model| model.class == ModelClass::Rerank));
    assert!(f.resolver.models(&dev, Some(ModelClass::Chat)).await.unwrap().is_empty());
    f.store.unset_var(&dev, "VOYAGE_API_KEY", VarSource::Api).unwrap();
    assert!(
        f.resolver.models(&dev, None).await.unwrap().is_empty(),
        "unlinking hides the models again"
    );
}

#[tokio::test]
async fn explain_lists_every_candidate_and_where_its_values_come_from() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    set(&f.store, &dev, "OPENAI_API_KEY", "sk-one");
    set(&f.store, &dev, "OPENAI_API_KEY_2", "sk-two");
    set(&f.store, &dev, "OPENAI_API_BASE_2", "https://proxy.example/v1");
    let explanation = f
        .resolver
        .explain(&dev, "openai", Some("OPENAI_API_KEY_9"), Some(PinnedBy::Request))
        .await
        .unwrap();
    let json = serde_json::to_value(&explanation).unwrap();
    assert_eq!(json["candidates"][0]["key_id"], "OPENAI_API_KEY");
    assert_eq!(json["candidates"][0]["chosen"], true);
    assert!(json["candidates"][0]["reason"].as_str().unwrap().contains("fallback"));
    assert_eq!(json["candidates"][1]["chosen"], false);
    let base_of_two = &json["candidates"][1]["variables"][1];
    assert_eq!(base_of_two["manifest_var"], "OPENAI_API_BASE");
    assert_eq!(base_of_two["from"]["variable"], "OPENAI_API_BASE_2");
    assert_eq!(base_of_two["from"]["source"], "api");
    assert_eq!(json["candidates"][0]["variables"][1]["from"]["kind"], "manifest-default");
    assert_eq!(json["candidates"][0]["badge"], "grey");
    assert!(!json.to_string().contains("sk-one"));
}

#[tokio::test]
async fn the_embedding_track_says_what_is_missing() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    let missing = status(&f.resolver, &dev, EmbeddingProvider::Voyage).await.unwrap();
    assert!(!missing.ready);
    assert!(missing.missing.unwrap().contains("VOYAGE_API_KEY"));
    set(&f.store, &dev, "OPENAI_API_KEY", "sk-one");
    assert!(status(&f.resolver, &dev, EmbeddingProvider::Openai).await.unwrap().ready);
    assert!(!status(&f.resolver, &dev, EmbeddingProvider::Voyage).await.unwrap().ready);
}

#[tokio::test]
async fn a_key_found_invalid_leaves_the_picker_and_the_embedding_track() {
    let f = fixture().await;
    let dev = scope("acme/shop/dev");
    set(&f.store, &dev, "VOYAGE_API_KEY", "pa-revoked");
    assert!(
        status(&f.resolver, &dev, EmbeddingProvider::Voyage).await.unwrap().ready,
        "unprobed: usable"
    );
    let invalid = platos_host::provider::Verdict::InvalidCredential { message: "401".into() };
    let record = |verdict| KeyUpdate::Health(HealthRecord::from_verdict(verdict, 1));
    f.store.update_provider_key(&dev, "voyage", "VOYAGE_API_KEY", record(&invalid)).unwrap();
    assert!(f.resolver.models(&dev, None).await.unwrap().is_empty(), "no models of an invalid key");
    let embedding = status(&f.resolver, &dev, EmbeddingProvider::Voyage).await.unwrap();
    assert!(!embedding.ready);
    let missing = embedding.missing.unwrap();
    assert!(missing.contains("VOYAGE_API_KEY is invalid at its last probe"), "{missing}");
    // A second key that is fine brings both back.
    set(&f.store, &dev, "VOYAGE_API_KEY_2", "pa-fine");
    assert!(status(&f.resolver, &dev, EmbeddingProvider::Voyage).await.unwrap().ready);
    assert!(!f.resolver.models(&dev, None).await.unwrap().is_empty());
}

/// A models endpoint: `Bearer good` lists two models, anything else is 401.
async fn mock_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/v1/models",
            get(|State(hits): State<Arc<AtomicUsize>>, headers: HeaderMap| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                if auth == "Bearer good" {
                    (StatusCode::OK, r#"{"data":[{"id":"gpt-5"},{"id":"ft:gpt-4o:acme"},{"id":"text-embedding-3-small"}]}"#)
                } else {
                    (StatusCode::UNAUTHORIZED, r#"{"error":{"code":"invalid_api_key"}}"#)
                }
            }),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rounds_start_in_every_slot_and_two_services_on_a_store_probe_it_once() {
    let f = fixture().await;
    let (address, hits) = mock_upstream().await;
    let dev = scope("acme/a/prod");
    set(&f.store, &dev, "OPENAI_API_BASE", &format!("http://{address}/v1"));
    set(&f.store, &dev, "OPENAI_API_KEY", "good");
    let outbound = Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        timeout: Duration::from_secs(2),
        max_body_bytes: 1 << 20,
    })
    .unwrap();
    let interval = Duration::from_secs(2);
    let config = HealthConfig { interval, jitter: 0.1, ..HealthConfig::default() };
    // Two services on one store, as two hosts on one database.
    let services = [
        HealthService::new(f.resolver.clone(), outbound.clone(), config.clone()),
        HealthService::new(f.resolver.clone(), outbound, config),
    ];
    let running: Vec<_> =
        services.iter().map(|service| tokio::spawn(service.clone().run())).collect();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    for task in running {
        task.abort();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rounds = loop {
        let rounds: Vec<_> = services.iter().flat_map(HealthService::rounds).collect();
        if rounds.iter().all(|round| round.state != RoundState::Running) {
            break rounds;
        }
        assert!(std::time::Instant::now() < deadline, "rounds still running: {rounds:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let millis = interval.as_millis() as u64;
    let scheduled: Vec<_> =
        rounds.iter().filter(|round| round.trigger == RoundTrigger::Schedule).collect();
    assert!(scheduled.len() >= 2, "{rounds:?}");
    for round in &scheduled {
        // Early in its slot: within the 10 % jitter, and some slack for a busy machine.
        assert!(round.started_at % millis < millis / 2, "{round:?}");
    }
    // One probe of the credential in each slot a round of either service ran in.
    let slots: BTreeSet<u64> = rounds.iter().map(|round| round.started_at / millis).collect();
    assert_eq!(hits.load(Ordering::SeqCst), slots.len(), "{rounds:?}");
    let probed: usize = rounds.iter().map(|round| round.probed).sum();
    let shared: usize = rounds.iter().map(|round| round.shared).sum();
    assert_eq!((probed, probed + shared), (slots.len(), rounds.len()), "{rounds:?}");
}

#[tokio::test]
async fn health_rounds_record_verdicts_dedupe_and_feed_the_picker() {
    let f = fixture().await;
    let (address, hits) = mock_upstream().await;
    let base = format!("http://{address}/v1");
    let scopes: Vec<Scope> =
        ["acme/a/prod", "acme/b/prod", "acme/c/prod"].iter().map(|s| scope(s)).collect();
    for scope in &scopes {
        set(&f.store, scope, "OPENAI_API_BASE", &base);
        set(&f.store, scope, "OPENAI_API_KEY", "good");
    }
    set(&f.store, &scopes[0], "OPENAI_API_KEY_2", "revoked");
    let outbound = Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        timeout: Duration::from_secs(2),
        max_body_bytes: 1 << 20,
    })
    .unwrap();
    let service = HealthService::new(f.resolver.clone(), outbound, HealthConfig::default());
    let stats = service.run_round().await.unwrap();
    assert_eq!((stats.keys, stats.probes), (4, 2), "one shared credential, one revoked one");
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let keys = f.store.list_provider_keys(&scopes[0]).unwrap();
    let health = |index: usize| keys[index].health.clone().unwrap();
    assert_eq!(health(0).verdict, HealthVerdict::Healthy);
    assert_eq!(health(0).models, ["gpt-5", "ft:gpt-4o:acme", "text-embedding-3-small"]);
    assert_eq!(health(1).verdict, HealthVerdict::InvalidCredential);

    let models = f.resolver.models(&scopes[1], None).await.unwrap();
    let tuned = models
        .iter()
        .find(|model| model.id == "ft:gpt-4o:acme")
        .expect("discovered models join the picker");
    assert_eq!((tuned.source, tuned.class), ("discovered", ModelClass::Chat));
    let embeddings = f.resolver.models(&scopes[1], Some(ModelClass::Embedding)).await.unwrap();
    assert_eq!(
        embeddings.iter().filter(|model| model.id == "text-embedding-3-small").count(),
        1,
        "no duplicates"
    );

    // On demand: "test key".
    let location = KeyLocation {
        scope: scopes[0].clone(),
        provider: "openai".into(),
        key_id: "OPENAI_API_KEY_2".into(),
    };
    set(&f.store, &scopes[0], "OPENAI_API_KEY_2", "good");
    let outcome = service.probe_key(&location).await.unwrap();
    assert_eq!(platos_host::policy::verdicts::class_name(&outcome.verdict), "healthy");
    let keys = f.store.list_provider_keys(&scopes[0]).unwrap();
    assert_eq!(keys[1].health.as_ref().unwrap().verdict, HealthVerdict::Healthy);
}

fn disable(store: &SledStore, scope: &Scope, key: &str) {
    store
        .update_provider_key(scope, "openai", key, KeyUpdate::Status(KeyStatus::Disabled))
        .unwrap();
}

#[tokio::test]
async fn a_pin_to_a_key_at_its_cap_falls_back_or_fails_and_explain_says_the_same() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-canary-default-one");
    set(&f.store, &prod, "OPENAI_API_KEY_2", "sk-canary-capped-two");
    let capped = BudgetTarget::key(prod.clone(), "openai", "OPENAI_API_KEY_2");
    let budget = Budget { limit: MicroUsd(1_000_000), period: Period::Month };
    f.store.set_budget(&capped, Some(budget)).unwrap();
    let now = platos_host::store::now_millis();
    // A cent short of the cap is not at it: the pin holds.
    f.store.record_spend(&capped, MicroUsd(990_000), now).unwrap();
    let pinned = request(&prod, "openai", Some("OPENAI_API_KEY_2"), true);
    assert_eq!(f.resolver.resolve(&pinned).await.unwrap().chosen_by, ChosenBy::Pinned);
    f.store.record_spend(&capped, MicroUsd(10_000), now).unwrap();

    let fallback = f
        .resolver
        .resolve(&request(&prod, "openai", Some("OPENAI_API_KEY_2"), false))
        .await
        .unwrap();
    assert_eq!(fallback.chosen_by, ChosenBy::FallbackPinAtCap);
    assert_eq!(fallback.env.get("OPENAI_API_KEY"), Some("sk-canary-default-one"));
    let warning = fallback.warning.clone().unwrap();
    assert!(warning.contains("OPENAI_API_KEY_2 has nothing left of its budget"), "{warning}");
    assert_eq!(f.resolver.counters().cap_pin_fallbacks.load(Ordering::Relaxed), 1);

    let error = f.resolver.resolve(&pinned).await.unwrap_err();
    assert_eq!(error.code(), "pinned_key_at_cap");
    let message = error.to_string();
    assert!(message.ends_with("pin another active key: OPENAI_API_KEY"), "{message}");

    let explanation = f
        .resolver
        .explain(&prod, "openai", Some("OPENAI_API_KEY_2"), Some(PinnedBy::Request))
        .await
        .unwrap();
    assert_eq!(explanation.chosen_by, Some(ChosenBy::FallbackPinAtCap));
    assert_eq!(explanation.warning.as_deref(), Some(warning.as_str()));
    let strict = explanation.strict_error.as_ref().unwrap();
    assert_eq!((strict.code, strict.message.as_str()), ("pinned_key_at_cap", message.as_str()));

    // A scope's cap is no reason to fall back: every key shares it.
    f.store.set_budget(&capped, None).unwrap();
    f.store.set_budget(&BudgetTarget::Scope(prod.clone()), Some(budget)).unwrap();
    assert_eq!(f.resolver.resolve(&pinned).await.unwrap().chosen_by, ChosenBy::Pinned);
}

#[tokio::test]
async fn a_pin_to_a_disabled_key_falls_back_or_fails_and_explain_says_the_same() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-canary-active-one");
    set(&f.store, &prod, "OPENAI_API_KEY_2", "sk-canary-disabled-two");
    disable(&f.store, &prod, "OPENAI_API_KEY_2");

    // Not strict: the scope default, with a warning that says why.
    let fallback = f
        .resolver
        .resolve(&request(&prod, "openai", Some("OPENAI_API_KEY_2"), false))
        .await
        .unwrap();
    assert_eq!(fallback.chosen_by, ChosenBy::FallbackPinDisabled);
    assert_eq!(fallback.key.key_id, "OPENAI_API_KEY");
    assert_eq!(fallback.env.get("OPENAI_API_KEY"), Some("sk-canary-active-one"));
    let warning = fallback.warning.clone().unwrap();
    assert!(warning.contains("OPENAI_API_KEY_2 is disabled"), "{warning}");
    assert_eq!(f.resolver.counters().disabled_pin_fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(f.resolver.counters().fallbacks.load(Ordering::Relaxed), 0);

    // Strict: its own error, naming the pin and the active keys.
    let error = f
        .resolver
        .resolve(&request(&prod, "openai", Some("OPENAI_API_KEY_2"), true))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "pinned_key_disabled");
    let message = error.to_string();
    assert!(message.contains("OPENAI_API_KEY_2 of openai is disabled"), "{message}");
    assert!(message.ends_with("pin an active key: OPENAI_API_KEY"), "{message}");

    // Explain: the same choice, warning and strict error, word for word.
    let explanation = f
        .resolver
        .explain(&prod, "openai", Some("OPENAI_API_KEY_2"), Some(PinnedBy::Request))
        .await
        .unwrap();
    assert_eq!(explanation.chosen_by, Some(ChosenBy::FallbackPinDisabled));
    assert_eq!(explanation.warning.as_deref(), Some(warning.as_str()));
    let strict = explanation.strict_error.as_ref().unwrap();
    assert_eq!((strict.code, strict.message.as_str()), ("pinned_key_disabled", message.as_str()));
    assert!(explanation.error.is_none());
    let chosen: Vec<(&str, bool, &str)> = explanation
        .candidates
        .iter()
        .map(|c| (c.key_id.as_str(), c.chosen, c.reason.as_str()))
        .collect();
    assert_eq!(chosen[0].0, "OPENAI_API_KEY");
    assert!(chosen[0].1 && chosen[0].2.contains("is disabled (fallback)"), "{chosen:?}");
    assert_eq!((chosen[1].0, chosen[1].1), ("OPENAI_API_KEY_2", false));
    assert!(chosen[1].2.starts_with("pinned, but disabled"), "{chosen:?}");

    // A missing pin keeps its own wording and code.
    let missing = f
        .resolver
        .explain(&prod, "openai", Some("OPENAI_API_KEY_7"), Some(PinnedBy::Request))
        .await
        .unwrap();
    assert_eq!(missing.chosen_by, Some(ChosenBy::FallbackPinMissing));
    assert_eq!(missing.strict_error.unwrap().code, "pinned_key_missing");

    // Every key disabled: the error says so, not "set OPENAI_API_KEY".
    disable(&f.store, &prod, "OPENAI_API_KEY");
    for pin in [None, Some("OPENAI_API_KEY_2"), Some("OPENAI_API_KEY_7")] {
        let error = f.resolver.resolve(&request(&prod, "openai", pin, false)).await.unwrap_err();
        assert_eq!(error.code(), "all_keys_disabled", "{pin:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(
                "every openai key in acme/shop/prod is disabled (OPENAI_API_KEY, OPENAI_API_KEY_2)"
            ),
            "{message}"
        );
        assert!(!message.contains("set OPENAI_API_KEY"), "{message}");
        let explanation =
            f.resolver.explain(&prod, "openai", pin, pin.map(|_| PinnedBy::Request)).await.unwrap();
        assert_eq!(explanation.chosen_by, None);
        let explained = explanation.error.unwrap();
        assert_eq!((explained.code, explained.message), ("all_keys_disabled", message));
        assert!(explanation.candidates.iter().all(|c| !c.chosen));
    }
    // No key at all is still "no key linked".
    let error = f
        .resolver
        .resolve(&request(&scope("acme/shop/dev"), "openai", None, false))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "no_key_linked");

    // Enabled again, the pin is honoured.
    f.store
        .update_provider_key(
            &prod,
            "openai",
            "OPENAI_API_KEY_2",
            KeyUpdate::Status(KeyStatus::Active),
        )
        .unwrap();
    let pinned = f
        .resolver
        .resolve(&request(&prod, "openai", Some("OPENAI_API_KEY_2"), true))
        .await
        .unwrap();
    assert_eq!(
        (pinned.chosen_by, pinned.key.key_id.as_str()),
        (ChosenBy::Pinned, "OPENAI_API_KEY_2")
    );

    // No error or explanation carries a value.
    let texts = [
        format!(
            "{:?}",
            f.resolver
                .explain(&prod, "openai", Some("OPENAI_API_KEY_2"), Some(PinnedBy::Request))
                .await
                .unwrap()
        ),
        serde_json::to_string(&f.resolver.explain(&prod, "openai", None, None).await.unwrap())
            .unwrap(),
        message,
        warning,
    ];
    for text in texts {
        assert!(!text.contains("sk-canary"), "{text}");
    }
}

#[tokio::test]
async fn probing_a_vanished_key_says_the_key_is_not_found() {
    let f = fixture().await;
    let prod = scope("acme/shop/prod");
    set(&f.store, &prod, "OPENAI_API_KEY", "sk-canary-probe");
    let outbound = Outbound::new(OutboundConfig::default()).unwrap();
    let service = HealthService::new(f.resolver.clone(), outbound, HealthConfig::default());
    let location = KeyLocation {
        scope: prod.clone(),
        provider: "openai".into(),
        key_id: "OPENAI_API_KEY_3".into(),
    };
    let error = service.probe_key(&location).await.unwrap_err();
    assert!(matches!(error, ResolveError::KeyNotFound { .. }), "{error}");
    assert_eq!(error.code(), "key_not_found");
    assert_eq!(
        error.to_string(),
        "openai has no key OPENAI_API_KEY_3 in acme/shop/prod; its keys: OPENAI_API_KEY"
    );
}

#[tokio::test]
async fn a_server_without_auth_links_on_its_base_url() {
    // Ollama needs no key: its base URL alone links it, and the bag has no
    // key; a second server is a numbered variant with its own optional key.
    let f = fixture().await;
    let lab = scope("acme/lab/dev");
    let missing = f.resolver.resolve(&request(&lab, "openai-compatible", None, false)).await;
    match missing {
        Err(ResolveError::NoKeyLinked { expected, .. }) => {
            assert_eq!(expected, ["OPENAI_COMPATIBLE_BASE_URL"], "the page asks for the URL")
        }
        other => panic!("expected no_key_linked, got {other:?}"),
    }
    set(&f.store, &lab, "OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:11434/v1");
    let ollama =
        f.resolver.resolve(&request(&lab, "openai-compatible", None, false)).await.unwrap();
    assert_eq!(ollama.key.key_id, "OPENAI_COMPATIBLE_BASE_URL");
    assert_eq!(ollama.env.get("OPENAI_COMPATIBLE_BASE_URL"), Some("http://127.0.0.1:11434/v1"));
    assert_eq!(ollama.env.get("OPENAI_COMPATIBLE_API_KEY"), None);
    set(&f.store, &lab, "OPENAI_COMPATIBLE_BASE_URL_2", "http://127.0.0.1:8000/v1");
    set(&f.store, &lab, "OPENAI_COMPATIBLE_API_KEY_2", "sk-vllm");
    let vllm = f
        .resolver
        .resolve(&request(&lab, "openai-compatible", Some("OPENAI_COMPATIBLE_BASE_URL_2"), true))
        .await
        .unwrap();
    assert_eq!(vllm.env.get("OPENAI_COMPATIBLE_BASE_URL"), Some("http://127.0.0.1:8000/v1"));
    assert_eq!(vllm.env.get("OPENAI_COMPATIBLE_API_KEY"), Some("sk-vllm"));
}

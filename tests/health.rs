//! Health probes through a real plugin against a mock upstream on loopback:
//! every verdict class, deduplication of shared credentials, the concurrency
//! bound, a hanging probe and a redirect, and rounds sharing a slot's claims.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::health::{
    KeyResult, ProbeTarget, RoundStats, SharedSlot, probe, probe_each, run_round,
};
use platos_host::outbound::{Outbound, OutboundConfig};
use platos_host::policy::addresses::AddressPolicy;
use platos_host::provider::{Credentials, Verdict};
use platos_host::runtime::{Plugin, PluginHost, RuntimeConfig};
use platos_host::store::{
    Blocking, HealthRecord, ProbeSlot, SecretStore, SledStore, StoreOptions, now_millis,
};

#[derive(Default)]
struct Mock {
    hits: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The key (`sk-canary-<behaviour>`) decides the answer: `good`, `bad`, `quota`, `broken`, `hang`,
/// `moved`, `huge-list` (90,000 empty model ids), or `slow-*` (healthy after 100 ms).
async fn models(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    mock.hits.fetch_add(1, Ordering::SeqCst);
    let now = mock.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    mock.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer sk-canary-"))
        .unwrap_or("")
        .to_owned();
    let listing = r#"{"data":[{"id":"gpt-5"},{"id":"local-model"}]}"#;
    let response = match key.as_str() {
        "good" => (StatusCode::OK, listing).into_response(),
        "bad" => {
            (StatusCode::UNAUTHORIZED, r#"{"error":{"code":"invalid_api_key"}}"#).into_response()
        }
        "quota" => (StatusCode::TOO_MANY_REQUESTS, r#"{"error":{"type":"insufficient_quota"}}"#)
            .into_response(),
        "broken" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        "huge-list" => {
            // 90,000 empty ids within the 1 MiB body cap, and one real one.
            let mut body = String::from(r#"{"data":["#);
            body.push_str(&r#"{"id":""},"#.repeat(90_000));
            body.push_str(r#"{"id":"gpt-5"}]}"#);
            (StatusCode::OK, body).into_response()
        }
        "moved" => {
            (StatusCode::FOUND, [(header::LOCATION, "http://169.254.169.254/")]).into_response()
        }
        "hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, listing).into_response()
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (StatusCode::OK, listing).into_response()
        }
    };
    mock.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn mock_upstream() -> (SocketAddr, Arc<Mock>) {
    let mock = Arc::new(Mock::default());
    let app = Router::new().route("/v1/models", get(models)).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, mock)
}

async fn openai() -> Plugin {
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let (_, wasm) =
        platos_host::bundled::BUNDLED_PLUGINS.iter().find(|(name, _)| *name == "openai").unwrap();
    host.load(wasm, "bundled:openai").await.unwrap()
}

fn outbound() -> Outbound {
    Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        timeout: Duration::from_millis(700),
        max_body_bytes: 1 << 20,
    })
    .unwrap()
}

/// A key whose secret is `sk-canary-<behaviour>`.
fn key(address: SocketAddr, behaviour: &str) -> Credentials {
    Credentials::new()
        .with("OPENAI_API_KEY", format!("sk-canary-{behaviour}"))
        .with("OPENAI_API_BASE", format!("http://{address}/v1"))
}

fn class(verdict: &Verdict) -> &'static str {
    platos_host::policy::verdicts::class_name(verdict)
}

#[tokio::test]
async fn each_verdict_class_through_the_plugin() {
    let (address, _) = mock_upstream().await;
    let plugin = openai().await;
    let outbound = outbound();
    for (secret, expected) in [
        ("good", "healthy"),
        ("bad", "invalid-credential"),
        ("quota", "quota-limited"),
        ("broken", "degraded"),
        ("hang", "unreachable"),
        ("moved", "degraded"),
    ] {
        let outcome = probe(&plugin, &key(address, secret), &outbound).await;
        assert_eq!(class(&outcome.verdict), expected, "{secret}: {:?}", outcome.verdict);
        assert!(!outcome.verdict.message().contains("sk-canary"), "{outcome:?}");
    }
    let outcome = probe(&plugin, &key(address, "good"), &outbound).await;
    assert_eq!(
        outcome.verdict,
        Verdict::Healthy {
            message: "listed 2 models".into(),
            models: vec!["gpt-5".into(), "local-model".into()]
        }
    );
}

#[tokio::test]
async fn a_closed_address_policy_makes_a_loopback_base_unreachable() {
    let (address, mock) = mock_upstream().await;
    let plugin = openai().await;
    let closed = Outbound::new(OutboundConfig::default()).unwrap();
    let outcome = probe(&plugin, &key(address, "good"), &closed).await;
    assert_eq!(class(&outcome.verdict), "unreachable", "{:?}", outcome.verdict);
    assert_eq!(mock.hits.load(Ordering::SeqCst), 0, "nothing was sent");
}

#[tokio::test]
async fn a_shared_credential_is_probed_once_per_round() {
    let (address, mock) = mock_upstream().await;
    let plugin = openai().await;
    let targets: Vec<ProbeTarget<String>> = (0..6)
        .map(|scope| ProbeTarget {
            key: format!("org/project-{scope}/prod"),
            plugin: plugin.clone(),
            credentials: key(address, if scope < 4 { "good" } else { "bad" }),
        })
        .collect();
    let (results, stats) = run_round(targets, &outbound(), 4).await;
    assert_eq!((stats.keys, stats.probes), (6, 2));
    assert_eq!(mock.hits.load(Ordering::SeqCst), 2);
    assert_eq!(results.len(), 6);
    for (scope, outcome) in &results {
        let expected = if scope.ends_with("-4/prod") || scope.ends_with("-5/prod") {
            "invalid-credential"
        } else {
            "healthy"
        };
        assert_eq!(class(&outcome.verdict), expected, "{scope}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_sharing_a_slot_probe_each_credential_once_between_them() {
    let (address, mock) = mock_upstream().await;
    let plugin = openai().await;
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::new(
        EncryptionKey::parse(ENCRYPTION_KEY_VAR, "0123456789abcdef0123456789abcdef").unwrap(),
        None,
    );
    let store: Arc<dyn SecretStore> = Arc::new(Blocking::new(
        SledStore::open(dir.path(), keyring, StoreOptions::default()).unwrap(),
    ));
    let shared =
        |slot| Some(SharedSlot { store: store.clone(), slot, hold: Duration::from_secs(5) });
    let targets = |behaviour: &dyn Fn(usize) -> String| -> Vec<ProbeTarget<usize>> {
        (0..6)
            .map(|index| ProbeTarget {
                key: index,
                plugin: plugin.clone(),
                credentials: key(address, &behaviour(index)),
            })
            .collect()
    };
    // A round of the slot, with every key's result.
    let collecting = |targets, shared| async move {
        let results = Arc::new(Mutex::new(Vec::new()));
        let collected = results.clone();
        let stats = probe_each(targets, &outbound(), 4, shared, move |key, result| {
            collected.lock().unwrap().push((key, result));
            std::future::ready(())
        })
        .await;
        let results = std::mem::take(&mut *results.lock().unwrap());
        (stats, results)
    };
    let good_or_bad = |index: usize| if index < 4 { "good" } else { "bad" }.to_owned();
    let hour = Duration::from_secs(3600);
    let slot = ProbeSlot::of(now_millis(), hour);

    // The first round of the slot probes each distinct credential.
    let (stats, results) = collecting(targets(&good_or_bad), shared(slot)).await;
    assert_eq!(stats, RoundStats { keys: 6, probes: 2, shared: 0, unsettled: 0 });
    assert_eq!(mock.hits.load(Ordering::SeqCst), 2);
    assert!(results.iter().all(|(_, result)| matches!(result, KeyResult::Probed(_))));
    // Another round in the slot (another host's) skips them all.
    let (stats, results) = collecting(targets(&good_or_bad), shared(slot)).await;
    assert_eq!(stats, RoundStats { keys: 6, probes: 0, shared: 2, unsettled: 0 });
    assert_eq!(mock.hits.load(Ordering::SeqCst), 2, "nothing sent");
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(|(_, result)| *result == KeyResult::Shared));
    // The next slot probes again.
    let next = ProbeSlot::of(slot.ends_at, hour);
    let stats =
        probe_each(targets(&good_or_bad), &outbound(), 4, shared(next), |_, _| async {}).await;
    assert_eq!((stats.probes, stats.shared), (2, 0));
    assert_eq!(mock.hits.load(Ordering::SeqCst), 4);

    // Two rounds at once on one slot, with slow answers so that they meet
    // on claims the other holds: each credential probed once between them.
    let slow = |index: usize| format!("slow-{index}");
    let later = ProbeSlot::of(next.ends_at, hour);
    let outbound = outbound();
    let (one, two) = tokio::join!(
        probe_each(targets(&slow), &outbound, 2, shared(later), |_, _| async {}),
        probe_each(targets(&slow), &outbound, 2, shared(later), |_, _| async {}),
    );
    assert_eq!((one.probes + two.probes, one.shared + two.shared), (6, 6), "{one:?} {two:?}");
    assert_eq!((one.unsettled, two.unsettled), (0, 0));
    assert_eq!(mock.hits.load(Ordering::SeqCst), 10);
    // Without a shared slot (a person asked): probed whatever the claims say.
    let (_, stats) = run_round(targets(&slow), &outbound, 6).await;
    assert_eq!((stats.probes, stats.shared), (6, 0));
    assert_eq!(mock.hits.load(Ordering::SeqCst), 16);

    // A slow recorder (a loaded database) holds no claim past its end: each
    // credential's rows are written, and the claim marked done, within its
    // own hold, however many other credentials wait to be recorded.
    let last = ProbeSlot::of(later.ends_at, hour);
    let short =
        |slot| Some(SharedSlot { store: store.clone(), slot, hold: Duration::from_secs(1) });
    let slow_recorder = |_, _| async { tokio::time::sleep(Duration::from_millis(400)).await };
    let (one, two) = tokio::join!(
        probe_each(targets(&slow), &outbound, 2, short(last), slow_recorder),
        probe_each(targets(&slow), &outbound, 2, short(last), slow_recorder),
    );
    assert_eq!((one.probes + two.probes, one.shared + two.shared), (6, 6), "{one:?} {two:?}");
    assert_eq!(mock.hits.load(Ordering::SeqCst), 22, "each credential once more, not twice");
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let (address, mock) = mock_upstream().await;
    let plugin = openai().await;
    let targets: Vec<ProbeTarget<usize>> = (0..12)
        .map(|index| ProbeTarget {
            key: index,
            plugin: plugin.clone(),
            credentials: key(address, &format!("slow-{index}")),
        })
        .collect();
    let (results, stats) = run_round(targets, &outbound(), 3).await;
    assert_eq!(stats.probes, 12);
    assert!(results.iter().all(|(_, outcome)| class(&outcome.verdict) == "healthy"));
    assert_eq!(
        mock.max_in_flight.load(Ordering::SeqCst),
        3,
        "at most, and at best, 3 probes in flight"
    );
}

#[tokio::test]
async fn a_huge_model_list_is_bounded_by_the_sdk_and_the_record() {
    let (address, _) = mock_upstream().await;
    let plugin = openai().await;
    let started = Instant::now();
    let outcome = probe(&plugin, &key(address, "huge-list"), &outbound()).await;
    assert_eq!(
        outcome.verdict,
        Verdict::Healthy { message: "listed 1 models".into(), models: vec!["gpt-5".into()] }
    );
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// The secret-echo fixture's key: upper-case letters, nothing to encode.
const H1_CANARY: &str = "sk-H1Health-Canary-9aZ3k7";

async fn secret_echo() -> Plugin {
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let path = std::path::Path::new(platos_host::bundled::BUILT_PLUGIN_DIR)
        .join("platos_fixture_h1_secret_echo.wasm");
    host.load(&std::fs::read(path).unwrap(), "test:h1-secret-echo").await.unwrap()
}

#[tokio::test]
async fn an_upstream_that_echoes_the_key_puts_it_in_no_verdict_or_record() {
    let upstream = support::echoing_upstream().await;
    let plugin = secret_echo().await;
    let openai = openai().await;
    let outbound = outbound();
    for (mode, class_expected, says) in [
        ("echo-message", "degraded", "upstream said [redacted]; percent [redacted]"),
        ("echo-models", "healthy", "listed models for Bearer [redacted]"),
        ("empty-models", "degraded", "h1-secret-echo@0.0.1: interpret-health"),
        ("many-models", "degraded", "5000 model ids, more than the limit of 4096"),
    ] {
        let credentials = Credentials::new()
            .with("H1_KEY", H1_CANARY)
            .with("H1_BASE", upstream.as_str())
            .with("H1_MODE", mode);
        let outcome = probe(&plugin, &credentials, &outbound).await;
        assert_eq!(class(&outcome.verdict), class_expected, "{mode}: {:?}", outcome.verdict);
        assert!(outcome.verdict.message().contains(says), "{mode}: {}", outcome.verdict.message());
        let record = HealthRecord::from_verdict(&outcome.verdict, 0);
        let stored = serde_json::to_string(&record).unwrap();
        assert!(stored.len() < 8 << 10, "{mode}: a record of {} bytes", stored.len());
        support::assert_no_secret(serde_json::to_string(&outcome).unwrap(), H1_CANARY, mode);
        support::assert_no_secret(&stored, H1_CANARY, mode);
    }

    // The bundled OpenAI plugin, behind a gateway that echoes the key in a
    // 502 body.
    let key = Credentials::new()
        .with("OPENAI_API_KEY", H1_CANARY)
        .with("OPENAI_API_BASE", upstream.as_str());
    let outcome = probe(&openai, &key, &outbound).await;
    assert_eq!(class(&outcome.verdict), "degraded", "{:?}", outcome.verdict);
    assert!(outcome.verdict.message().starts_with("HTTP 502"), "{:?}", outcome.verdict);
    support::assert_no_secret(outcome.verdict.message(), H1_CANARY, "the OpenAI verdict");
}

#[test]
fn a_stored_record_is_bounded() {
    let verdict = Verdict::Healthy {
        message: "m".repeat(100_000),
        models: (0..4_096).map(|index| format!("{index}-{}", "x".repeat(200))).collect(),
    };
    let record = HealthRecord::from_verdict(&verdict, 0);
    assert_eq!(
        record.message.chars().count(),
        platos_host::policy::bounds::MAX_RECORD_MESSAGE_CHARS + 1
    );
    let stored = serde_json::to_string(&record).unwrap();
    assert!(
        stored.len() <= platos_host::policy::bounds::MAX_RECORD_MODEL_BYTES + (8 << 10),
        "{}",
        stored.len()
    );
    assert!(record.models.len() < 4_096 && record.models[0].starts_with("0-"));
}

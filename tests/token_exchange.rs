//! Token exchange end to end: the `d-token-mock` fixture plugin against a
//! mock token endpoint and API on loopback, through authorize-by-lease (the
//! cache: one exchange for many authorizes, single-flight, refresh before
//! expiry by an injected clock, a rotation gets a new token) and the health
//! probe (a refused secret is an invalid credential, a dead endpoint
//! unreachable), over HTTP too, with canaries searched in logs, errors,
//! `Debug`, answers and files; and the two bundled token-exchange plugins:
//! Vertex AI's RS256 JWT verified with an independent RSA (`ring`) against a
//! committed test-only key, Azure OpenAI's Entra ID client credentials.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use platos_host::bundled::BUILT_PLUGIN_DIR;
use platos_host::exchange::{Clock, TokenBroker};
use platos_host::health::{HealthConfig, HealthService, KeyLocation, probe};
use platos_host::outbound::{Outbound, OutboundConfig};
use platos_host::policy::addresses::AddressPolicy;
use platos_host::provider::{Credentials, HttpRequest, Verdict};
use platos_host::resolution::{LeaseError, ResolveRequest, Resolver, ResolverConfig};
use platos_host::runtime::{Plugin, PluginHost, PluginRegistry, RuntimeConfig};
use platos_host::scope::Scope;
use platos_host::store::{BlockingSecretStore, SledStore, VarSource};
use secrecy::SecretString;
use support::{assert_no_secret, capture_logs, files_under};

const SECRET_VAR: &str = "D_TOKEN_MOCK_CLIENT_SECRET";
const BASE_VAR: &str = "D_TOKEN_MOCK_BASE_URL";
const TOKEN_PREFIX: &str = "at-canary-Qx7";

/// What the mock token endpoint and API saw, and how long its tokens live.
struct Mock {
    exchanges: AtomicUsize,
    secrets: Mutex<Vec<String>>,
    authorizations: Mutex<Vec<String>>,
    expires_in: AtomicU64,
}

/// `POST /oauth/token`: the client secret decides. `cs-good-*` gets
/// `at-canary-Qx7<n>` (n counts exchanges) for `expires_in` seconds,
/// `cs-slow-good-*` the same after 300 ms; `cs-bad-*` a 401
/// `invalid_client`, `cs-slow-bad-*` the same after 300 ms; `cs-grant-*`
/// a 400 `invalid_grant`.
async fn token(State(mock): State<Arc<Mock>>, body: String) -> Response {
    let count = mock.exchanges.fetch_add(1, Ordering::SeqCst) + 1;
    let secret = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("client_secret="))
        .unwrap_or_default()
        .to_owned();
    mock.secrets.lock().unwrap().push(secret.clone());
    if secret.starts_with("cs-slow-") {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let secret = secret.replace("cs-slow-", "cs-");
    if secret.starts_with("cs-good-") {
        let expires_in = mock.expires_in.load(Ordering::SeqCst);
        let body = format!(
            r#"{{"access_token":"{TOKEN_PREFIX}{count}","token_type":"Bearer","expires_in":{expires_in}}}"#
        );
        (StatusCode::OK, body).into_response()
    } else if secret.starts_with("cs-grant-") {
        (StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant"}"#).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response()
    }
}

/// `GET /v1/models`: a bearer access token of the mock lists one model.
async fn models(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    mock.authorizations.lock().unwrap().push(auth.clone());
    if auth.starts_with(&format!("Bearer {TOKEN_PREFIX}")) {
        (StatusCode::OK, r#"{"data":[{"id":"mock-1"}]}"#).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, r#"{"error":{"code":"invalid_token"}}"#).into_response()
    }
}

async fn mock_endpoint() -> (String, Arc<Mock>) {
    let mock = Arc::new(Mock {
        exchanges: AtomicUsize::new(0),
        secrets: Mutex::default(),
        authorizations: Mutex::default(),
        expires_in: AtomicU64::new(3_600),
    });
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/v1/models", get(models))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), mock)
}

/// A clock the test moves by hand.
struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const START: u64 = 1_800_000_000;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<SledStore>,
    resolver: Resolver,
    clock: Arc<TestClock>,
    outbound: Outbound,
    scope: Scope,
}

async fn token_mock_plugin() -> Plugin {
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let path = Path::new(BUILT_PLUGIN_DIR).join("platos_fixture_d_token_mock.wasm");
    host.load_file(&path).await.unwrap()
}

fn open_outbound(allow_loopback: bool) -> Outbound {
    Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback, allow_private: false },
        timeout: Duration::from_secs(5),
        max_body_bytes: 1 << 20,
    })
    .unwrap()
}

async fn fixture(base: &str, secret: &str) -> Fixture {
    let plugin = token_mock_plugin().await;
    let mut registry = PluginRegistry::new();
    registry.insert(plugin).unwrap();
    let (dir, store) = support::store_for(&registry);
    let clock = Arc::new(TestClock(AtomicU64::new(START)));
    let resolver = Resolver::with_tokens(
        support::async_store(&store),
        registry,
        ResolverConfig::default(),
        TokenBroker::new(clock.clone()),
    );
    let scope: Scope = "acme/shop/prod".parse().unwrap();
    let fixture = Fixture { dir, store, resolver, clock, outbound: open_outbound(true), scope };
    fixture.set(BASE_VAR, base);
    fixture.set(SECRET_VAR, secret);
    fixture
}

impl Fixture {
    fn set(&self, name: &str, value: &str) {
        self.store
            .set_var(&self.scope, name, &SecretString::from(value.to_owned()), VarSource::Api)
            .unwrap();
    }

    async fn lease(&self) -> String {
        let request = ResolveRequest {
            scope: self.scope.clone(),
            provider: "d-token-mock".into(),
            pinned_key: None,
            strict: false,
            client: None,
        };
        self.resolver.resolve(&request).await.unwrap().lease_id
    }

    async fn authorize(&self, lease: &str) -> Result<HttpRequest, LeaseError> {
        let request = HttpRequest::get(format!("{}/v1/chat/completions", self.base()));
        self.resolver.authorize(&self.scope, lease, &request, &self.outbound).await
    }

    fn base(&self) -> String {
        let value = self.store.get_var(&self.scope, BASE_VAR).unwrap().unwrap();
        secrecy::ExposeSecret::expose_secret(&value.value).to_owned()
    }

    fn advance_to(&self, at: u64) {
        self.clock.0.store(at, Ordering::SeqCst);
    }
}

fn bearer(request: &HttpRequest) -> String {
    request.header_values("authorization").collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn one_exchange_serves_many_authorizes_and_concurrent_callers_share_it() {
    let (base, mock) = mock_endpoint().await;
    let secret = "cs-slow-good-canary-8fKq2";
    let f = Arc::new(fixture(&base, secret).await);
    let lease = f.lease().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (f, lease) = (f.clone(), lease.clone());
        tasks.spawn(async move { f.authorize(&lease).await.unwrap() });
    }
    while let Some(authorized) = tasks.join_next().await {
        let authorized = authorized.unwrap();
        assert_eq!(bearer(&authorized), format!("Bearer {TOKEN_PREFIX}1"));
        let shown = format!("{authorized:?} {:?}", authorized.body);
        assert!(!shown.contains(TOKEN_PREFIX), "{shown}");
        let wire = format!("{} {:?} {:?}", authorized.url, authorized.headers, authorized.body);
        assert!(!wire.contains(secret), "the client secret never goes on the wire: {wire}");
    }
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 1, "twelve concurrent callers, one exchange");
    for _ in 0..20 {
        assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}1"));
    }
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 1, "cached for every later authorize");
    assert_eq!(f.resolver.tokens().exchanges(), 1);
    assert_eq!(mock.secrets.lock().unwrap().as_slice(), [secret]);
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires_by_the_injected_clock() {
    let (base, mock) = mock_endpoint().await;
    mock.expires_in.store(600, Ordering::SeqCst);
    let f = fixture(&base, "cs-good-canary-r3fr").await;
    let lease = f.lease().await;
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}1"));
    // A 600 s token is refreshed when a quarter (150 s) of it remains.
    f.advance_to(START + 449);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}1"));
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 1);
    f.advance_to(START + 450);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}2"));
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 2);
    // An hour-long token is refreshed five minutes early.
    mock.expires_in.store(3_600, Ordering::SeqCst);
    f.advance_to(START + 1_000);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}3"));
    f.advance_to(START + 1_000 + 3_299);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}3"));
    f.advance_to(START + 1_000 + 3_300);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}4"));
    // An absurd lifetime is clamped to a day.
    mock.expires_in.store(u64::MAX / 2, Ordering::SeqCst);
    f.advance_to(START + 10_000);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}5"));
    f.advance_to(START + 10_000 + 86_400 - 300);
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}6"));
}

#[tokio::test]
async fn a_rotated_secret_gets_its_own_token_and_a_lease_keeps_its_values() {
    let (base, mock) = mock_endpoint().await;
    let f = fixture(&base, "cs-good-canary-old").await;
    let old_lease = f.lease().await;
    assert_eq!(bearer(&f.authorize(&old_lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}1"));
    f.set(SECRET_VAR, "cs-good-canary-new");
    let new_lease = f.lease().await;
    assert_eq!(bearer(&f.authorize(&new_lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}2"));
    assert_eq!(
        mock.secrets.lock().unwrap().as_slice(),
        ["cs-good-canary-old", "cs-good-canary-new"],
        "the rotated secret was exchanged, never served the old token"
    );
    // The turn in flight keeps the values (and the token) it was given.
    assert_eq!(bearer(&f.authorize(&old_lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}1"));
    assert_eq!(bearer(&f.authorize(&new_lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}2"));
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 2);
    assert_eq!(f.resolver.tokens().cached_keys(), 2);
}

#[tokio::test]
async fn a_refused_exchange_fails_authorize_with_its_verdict_and_concurrent_callers_share_it() {
    let (base, mock) = mock_endpoint().await;
    let f = Arc::new(fixture(&base, "cs-slow-bad-canary-9w").await);
    let lease = f.lease().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (f, lease) = (f.clone(), lease.clone());
        tasks.spawn(async move { f.authorize(&lease).await.unwrap_err() });
    }
    while let Some(error) = tasks.join_next().await {
        match error.unwrap() {
            LeaseError::TokenExchange(error) => {
                assert_eq!(error.code(), "token_exchange_failed");
                let text = error.to_string();
                assert!(
                    text.starts_with("d-token-mock@0.2.0: the token exchange gave no access token: HTTP 401 (invalid_client)"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 1, "eight waiting callers, one exchange");
    // A later authorize tries again (a fixed secret must not wait out a cache).
    f.set(SECRET_VAR, "cs-good-canary-fixed");
    let lease = f.lease().await;
    assert_eq!(bearer(&f.authorize(&lease).await.unwrap()), format!("Bearer {TOKEN_PREFIX}2"));
}

#[tokio::test]
async fn the_probe_exchanges_first_and_a_failed_exchange_is_the_verdict() {
    let (base, mock) = mock_endpoint().await;
    let plugin = token_mock_plugin().await;
    let outbound = open_outbound(true);
    let key = |secret: &str, base: &str| {
        Credentials::new().with(SECRET_VAR, secret).with(BASE_VAR, base.to_owned())
    };
    let healthy = probe(&plugin, &key("cs-good-canary-p1", &base), &outbound).await;
    assert_eq!(
        healthy.verdict,
        Verdict::Healthy { message: "listed 1 models".into(), models: vec!["mock-1".into()] }
    );
    assert_eq!(
        mock.authorizations.lock().unwrap().as_slice(),
        [format!("Bearer {TOKEN_PREFIX}1")],
        "the probe went out with the exchanged token"
    );
    // Every probe proves the secret still trades: a fresh exchange each time.
    probe(&plugin, &key("cs-good-canary-p1", &base), &outbound).await;
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 2);

    for (secret, wanted) in [("cs-bad-canary-p2", "HTTP 401"), ("cs-grant-canary-p3", "HTTP 400")] {
        let outcome = probe(&plugin, &key(secret, &base), &outbound).await;
        match &outcome.verdict {
            Verdict::InvalidCredential { message } => {
                assert!(message.starts_with(wanted), "{message}");
                assert!(!message.contains(secret), "{message}");
            }
            other => panic!("{secret}: {other:?}"),
        }
    }
    let probes_with_a_token = mock.authorizations.lock().unwrap().len();
    assert_eq!(probes_with_a_token, 2, "a refused exchange sends no probe");

    // A dead token endpoint, and one the address policy refuses.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let outcome = probe(&plugin, &key("cs-good-canary-p4", &dead), &outbound).await;
    assert!(matches!(outcome.verdict, Verdict::Unreachable { .. }), "{:?}", outcome.verdict);
    let policy_closed = open_outbound(false);
    let outcome = probe(&plugin, &key("cs-good-canary-p5", &base), &policy_closed).await;
    match &outcome.verdict {
        Verdict::Unreachable { message } => assert!(message.contains("loopback"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A missing secret is an invalid credential, before any exchange.
    let exchanges = mock.exchanges.load(Ordering::SeqCst);
    let outcome = probe(&plugin, &Credentials::new().with(BASE_VAR, base.clone()), &outbound).await;
    match &outcome.verdict {
        Verdict::InvalidCredential { message } => {
            assert!(message.contains("D_TOKEN_MOCK_CLIENT_SECRET is not set"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), exchanges);
}

#[tokio::test]
async fn neither_the_secret_nor_the_token_leaks_into_logs_errors_debug_or_files() {
    let (_guard, logs) = capture_logs();
    let (base, mock) = mock_endpoint().await;
    let secret = "cs-good-canary-Zt8vLm3q";
    let f = fixture(&base, secret).await;
    let lease = f.lease().await;
    let authorized = f.authorize(&lease).await.unwrap();
    let token = format!("{TOKEN_PREFIX}1");
    assert_eq!(bearer(&authorized), format!("Bearer {token}"));
    let service =
        HealthService::new(f.resolver.clone(), f.outbound.clone(), HealthConfig::default());
    let location = KeyLocation {
        scope: f.scope.clone(),
        provider: "d-token-mock".into(),
        key_id: SECRET_VAR.into(),
    };
    let probed = service.probe_key(&location).await.unwrap();
    assert!(matches!(probed.verdict, Verdict::Healthy { .. }), "{:?}", probed.verdict);
    let second_token = format!("{TOKEN_PREFIX}2");

    // A failing exchange and a failing authorize of a secret that leaks back.
    f.set(SECRET_VAR, "cs-bad-canary-Zt8vLm3q");
    let failed = f.authorize(&f.lease().await).await.unwrap_err();
    let mut shown = vec![
        format!("{failed} {failed:?}"),
        format!("{authorized:?}"),
        format!("{:?}", f.resolver.tokens()),
        format!("{probed:?}"),
        serde_json::to_string(&probed).unwrap(),
    ];
    let resolution = f
        .resolver
        .resolve(&ResolveRequest {
            scope: f.scope.clone(),
            provider: "d-token-mock".into(),
            pinned_key: None,
            strict: false,
            client: None,
        })
        .await
        .unwrap();
    shown.push(format!("{resolution:?}"));
    f.resolver.flush_usage().await.unwrap();
    for text in &shown {
        for canary in [secret, "cs-bad-canary-Zt8vLm3q", token.as_str(), second_token.as_str()] {
            assert_no_secret(text, canary, "an error or Debug");
        }
    }
    let log = logs.lock().unwrap().clone();
    assert!(!log.is_empty(), "the log capture works");
    for canary in [secret, "cs-bad-canary-Zt8vLm3q", token.as_str(), second_token.as_str()] {
        assert_no_secret(&log, canary, "the log");
    }
    // The store holds the secret encrypted and never a token.
    f.store.flush().unwrap();
    for file in files_under(f.dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for canary in [secret, token.as_str(), second_token.as_str()] {
            assert_no_secret(&bytes, canary, &file.display().to_string());
        }
    }
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 3);
}

/// 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000;

async fn bundled(slug: &str) -> Plugin {
    let host = PluginHost::new(RuntimeConfig::default()).unwrap();
    let (_, wasm) = platos_host::bundled::BUNDLED_PLUGINS
        .iter()
        .find(|(name, _)| *name == slug)
        .unwrap_or_else(|| panic!("{slug} is bundled"));
    host.load(wasm, &format!("bundled:{slug}")).await.unwrap()
}

fn test_key(name: &str) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/test-only-keys").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The pairs of a form-encoded body, percent-decoded.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'%' {
                out.push(u8::from_str_radix(&text[index + 1..index + 3], 16).unwrap());
                index += 3;
            } else {
                out.push(if bytes[index] == b'+' { b' ' } else { bytes[index] });
                index += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (decode(name), decode(value))
        })
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).unwrap()
}

fn json_part(part: &str) -> serde_json::Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn response(status: u16, body: &str) -> platos_host::provider::HttpResponse {
    platos_host::provider::HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

const EMAIL: &str = "platos-test@acme-prod-123.iam.gserviceaccount.com";

fn vertex_key(private_key: &str) -> Credentials {
    Credentials::new()
        .with("GOOGLE_VERTEX_PROJECT", "acme-prod-123")
        .with("GOOGLE_VERTEX_LOCATION", "europe-west4")
        .with("GOOGLE_CLIENT_EMAIL", EMAIL)
        .with("GOOGLE_PRIVATE_KEY", private_key)
        .with("GOOGLE_PRIVATE_KEY_ID", "0123456789abcdef")
}

#[tokio::test]
async fn vertex_signs_a_jwt_that_an_independent_rsa_verifies() {
    use base64::Engine as _;
    let plugin = bundled("vertex").await;
    let pkcs8 = String::from_utf8(test_key("vertex-test-only-private-key.pem")).unwrap();
    let pkcs1 = String::from_utf8(test_key("vertex-test-only-private-key-pkcs1.pem")).unwrap();
    let public = test_key("vertex-test-only-public-key.der");
    let verifier = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public,
    );
    // As the service account JSON holds it, as a .env line with literal \n
    // (and quotes), and as PKCS#1.
    let escaped = pkcs8.trim_end().replace('\n', "\\n");
    for pem in [pkcs8.clone(), escaped.clone(), format!("\"{escaped}\""), pkcs1] {
        let request = plugin.token_request(&vertex_key(&pem), NOW).await.unwrap();
        assert_eq!(request.method, platos_host::provider::Method::Post);
        assert_eq!(request.url, "https://oauth2.googleapis.com/token");
        assert_eq!(
            request.header_values("content-type").collect::<Vec<_>>(),
            ["application/x-www-form-urlencoded"]
        );
        let body = request.body.as_deref().unwrap();
        let pairs = form(body);
        assert_eq!(field(&pairs, "grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer");
        let assertion = field(&pairs, "assertion");
        let parts: Vec<&str> = assertion.split('.').collect();
        assert_eq!(parts.len(), 3, "{assertion}");
        assert_eq!(
            json_part(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef"})
        );
        assert_eq!(
            json_part(parts[1]),
            serde_json::json!({
                "iss": EMAIL,
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": NOW,
                "exp": NOW + 3_600,
            })
        );
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        verifier.verify(signing_input.as_bytes(), &signature).expect("ring verifies the signature");
        let forged = format!("{}.{}", parts[0], parts[1].replace('A', "B"));
        assert!(verifier.verify(forged.as_bytes(), &signature).is_err(), "the check can fail");
        // The private key itself never goes on the wire.
        for line in pkcs8.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!String::from_utf8_lossy(body).contains(line), "a key line is in the body");
        }
    }
    // Without a key id the header has none.
    let no_kid = vertex_key(&pkcs8).only(|name| name != "GOOGLE_PRIVATE_KEY_ID");
    let request = plugin.token_request(&no_kid, NOW).await.unwrap();
    let pairs = form(request.body.as_deref().unwrap());
    let header = field(&pairs, "assertion").split('.').next().unwrap().to_owned();
    assert_eq!(json_part(&header), serde_json::json!({"alg": "RS256", "typ": "JWT"}));

    // A value that is no key, and a missing one, are refused without quoting it.
    let canary = "-----BEGIN PRIVATE KEY-----\\nnot-a-key-canary-5Hq\\n-----END PRIVATE KEY-----";
    let error = plugin.token_request(&vertex_key(canary), NOW).await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("GOOGLE_PRIVATE_KEY is not a PEM RSA private key"), "{text}");
    assert!(!text.contains("not-a-key-canary"), "{text}");
    let missing = vertex_key(&pkcs8).only(|name| name != "GOOGLE_CLIENT_EMAIL");
    let error = plugin.token_request(&missing, NOW).await.unwrap_err();
    assert!(error.to_string().contains("GOOGLE_CLIENT_EMAIL is not set"), "{error}");
}

#[tokio::test]
async fn vertex_reads_tokens_authorizes_with_them_and_probes_the_location() {
    let plugin = bundled("vertex").await;
    let pkcs8 = String::from_utf8(test_key("vertex-test-only-private-key.pem")).unwrap();
    let key = vertex_key(&pkcs8);
    let answer = r#"{"access_token":"ya29.canary-Vx81","expires_in":3599,"token_type":"Bearer"}"#;
    let token = plugin.read_token(&key, &response(200, answer), NOW).await.unwrap().unwrap();
    assert_eq!(token.expires_at, NOW + 3_599);
    assert_eq!(secrecy::ExposeSecret::expose_secret(&token.value), "ya29.canary-Vx81");
    for (status, body, wanted) in [
        (
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            "invalid-credential",
        ),
        (401, r#"{"error":"unauthorized_client"}"#, "invalid-credential"),
        (429, "{}", "quota-limited"),
        (503, "busy", "degraded"),
        (0, "could not connect", "unreachable"),
    ] {
        let failure =
            plugin.read_token(&key, &response(status, body), NOW).await.unwrap().unwrap_err();
        assert_eq!(
            platos_host::policy::verdicts::class_name(&failure),
            wanted,
            "{status}: {failure:?}"
        );
    }

    let probe = plugin.health_probe(&key).await.unwrap();
    assert_eq!(
        probe.url,
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/acme-prod-123/locations/europe-west4/endpoints?pageSize=1"
    );
    let with_token = platos_host::exchange::with_token(&key, &token);
    let authorized = plugin.authorize(&with_token, &probe, NOW).await.unwrap();
    assert_eq!(bearer(&authorized), "Bearer ya29.canary-Vx81");
    assert_eq!(authorized.headers.len(), 1, "the bearer token and nothing else");
    // Without a token there is nothing to authorize with.
    let error = plugin.authorize(&key, &probe, NOW).await.unwrap_err();
    assert!(error.to_string().contains("PLATOS_ACCESS_TOKEN is not set"), "{error}");
    // The global location, and a location that would shape another host.
    let global = key.clone().with("GOOGLE_VERTEX_LOCATION", "global");
    assert!(plugin.health_probe(&global).await.unwrap().url.starts_with(
        "https://aiplatform.googleapis.com/v1/projects/acme-prod-123/locations/global/"
    ));
    let hostile = key.clone().with("GOOGLE_VERTEX_LOCATION", "evil.example#");
    let error = plugin.health_probe(&hostile).await.unwrap_err();
    assert!(error.to_string().contains("GOOGLE_VERTEX_LOCATION must be"), "{error}");
    // A caller's request to another host is refused, never authorized.
    let foreign = HttpRequest::get("https://evil.example.com/v1/models");
    assert!(plugin.authorize(&with_token, &foreign, NOW).await.is_err());

    for (status, body, wanted) in [
        (200, r#"{"endpoints":[]}"#, "healthy"),
        (200, "{}", "healthy"),
        (200, "", "degraded"),
        (200, "<html>", "degraded"),
        (200, r#"{"endpoints":"no"}"#, "degraded"),
        (401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#, "invalid-credential"),
        (403, r#"{"error":{"status":"PERMISSION_DENIED"}}"#, "invalid-credential"),
        (404, r#"{"error":{"status":"NOT_FOUND"}}"#, "invalid-credential"),
        (429, r#"{"error":{"status":"RESOURCE_EXHAUSTED"}}"#, "quota-limited"),
        (500, "oops", "degraded"),
        (0, "timed out", "unreachable"),
    ] {
        let verdict = plugin.interpret_health(&with_token, &response(status, body)).await.unwrap();
        assert_eq!(platos_host::policy::verdicts::class_name(&verdict), wanted, "{status}");
    }
}

fn entra_key() -> Credentials {
    Credentials::new()
        .with("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
        .with("AZURE_CLIENT_ID", "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")
        .with("AZURE_CLIENT_SECRET", "Qx8~canary.secret_with+odd/chars=")
        .with("AZURE_OPENAI_ENTRA_ENDPOINT", "https://contoso.openai.azure.com/")
}

#[tokio::test]
async fn azure_entra_trades_client_credentials_and_authorizes_with_the_token() {
    let plugin = bundled("azure-openai-entra").await;
    let key = entra_key();
    let request = plugin.token_request(&key, NOW).await.unwrap();
    assert_eq!(request.method, platos_host::provider::Method::Post);
    assert_eq!(
        request.url,
        "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
    );
    let pairs = form(request.body.as_deref().unwrap());
    assert_eq!(
        pairs,
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d".to_owned()),
            ("client_secret".to_owned(), "Qx8~canary.secret_with+odd/chars=".to_owned()),
            ("scope".to_owned(), "https://cognitiveservices.azure.com/.default".to_owned()),
        ]
    );
    let hostile = key.clone().with("AZURE_TENANT_ID", "evil.example/x#");
    let error = plugin.token_request(&hostile, NOW).await.unwrap_err();
    assert!(error.to_string().contains("AZURE_TENANT_ID must be"), "{error}");
    assert!(!error.to_string().contains("canary"), "{error}");

    let answer = r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.canary-Az1"}"#;
    let token = plugin.read_token(&key, &response(200, answer), NOW).await.unwrap().unwrap();
    assert_eq!(token.expires_at, NOW + 3_599);
    for (status, body, wanted) in [
        (401, r#"{"error":"invalid_client","error_codes":[7000215]}"#, "invalid-credential"),
        (400, r#"{"error":"invalid_client","error_codes":[7000215]}"#, "invalid-credential"),
        (400, r#"{"error":"unauthorized_client","error_codes":[700016]}"#, "invalid-credential"),
        (400, r#"{"error":"invalid_request","error_codes":[90002]}"#, "invalid-credential"),
        (400, r#"{"error":"invalid_scope","error_codes":[70011]}"#, "degraded"),
        (429, "{}", "quota-limited"),
        (0, "could not connect", "unreachable"),
    ] {
        let failure =
            plugin.read_token(&key, &response(status, body), NOW).await.unwrap().unwrap_err();
        assert_eq!(platos_host::policy::verdicts::class_name(&failure), wanted, "{status} {body}");
    }

    let with_token = platos_host::exchange::with_token(&key, &token);
    let chat = HttpRequest::get(
        "https://contoso.openai.azure.com/openai/deployments/gpt-4o/chat/completions",
    );
    let authorized = plugin.authorize(&with_token, &chat, NOW).await.unwrap();
    assert_eq!(authorized.url, format!("{}?api-version=2024-10-21", chat.url));
    assert_eq!(bearer(&authorized), "Bearer eyJ0eXAi.canary-Az1");
    let v1 = HttpRequest::get("https://contoso.openai.azure.com/openai/v1/chat/completions");
    assert_eq!(
        plugin.authorize(&with_token, &v1, NOW).await.unwrap().url,
        v1.url,
        "no dated api-version on /openai/v1/"
    );
    let error = plugin.authorize(&key, &chat, NOW).await.unwrap_err();
    assert!(error.to_string().contains("PLATOS_ACCESS_TOKEN is not set"), "{error}");

    let probe = plugin.health_probe(&key).await.unwrap();
    assert_eq!(probe.url, "https://contoso.openai.azure.com/openai/models?api-version=2024-10-21");
    for (status, body, wanted) in [
        (200, r#"{"data":[{"id":"gpt-4o"}]}"#, "healthy"),
        (401, r#"{"error":{"code":"PermissionDenied"}}"#, "invalid-credential"),
        (403, r#"{"error":{"code":"PermissionDenied"}}"#, "invalid-credential"),
        (429, "{}", "quota-limited"),
        (404, "{}", "degraded"),
    ] {
        let verdict = plugin.interpret_health(&with_token, &response(status, body)).await.unwrap();
        assert_eq!(platos_host::policy::verdicts::class_name(&verdict), wanted, "{status}");
    }
}

/// Through the HTTP API: the fixture as a third-party plugin, authorize by
/// lease signs with a cached token, the test-key probe exchanges, a refused
/// exchange answers 502 `token_exchange_failed`, and `/metrics` counts.
#[tokio::test]
async fn authorize_by_lease_and_the_probe_over_http() {
    use platos_host::api::server::{Server, ServerConfig};
    use serde_json::json;

    let (base, mock) = mock_endpoint().await;
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(BUILT_PLUGIN_DIR).join("platos_fixture_d_token_mock.wasm"),
        plugins.path().join("d-token-mock.wasm"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.health_interval = Duration::ZERO;
    config.outbound = OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        timeout: Duration::from_secs(5),
        ..OutboundConfig::default()
    };
    config.plugins.plugin_dir = Some(plugins.path().to_owned());
    let server = Server::start(config).await.expect("the server starts");
    assert_eq!(server.report().refused_plugins, 0);
    let op = std::fs::read_to_string(dir.path().join("operator.token")).unwrap().trim().to_owned();
    let client = support::Client::new(server.address());
    let scope = "acme/tx/prod";
    let secret = "cs-good-canary-Http7Wq";
    for (name, value) in [(BASE_VAR, base.as_str()), (SECRET_VAR, secret)] {
        let path = format!("/v1/scopes/{scope}/env/{name}");
        let (status, body) =
            client.call("PUT", &path, Some(&op), Some(&json!({"value": value}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let resolve = |client: support::Client, op: String| async move {
        let path = format!("/v1/scopes/{scope}/resolve");
        let (status, body) =
            client.call("POST", &path, Some(&op), Some(&json!({"provider": "d-token-mock"}))).await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let resolved = resolve(client.clone(), op.clone()).await;
    // The agent's bag is the long-lived values (it may trade them itself).
    assert_eq!(resolved["env"][SECRET_VAR], secret);
    assert!(resolved["env"].get("PLATOS_ACCESS_TOKEN").is_none(), "{resolved}");
    let lease = resolved["lease"]["id"].as_str().unwrap().to_owned();
    let request = json!({"request": {"method": "GET", "url": format!("{base}/v1/models")}});
    let authorize = |lease: String| {
        let (client, op, request) = (client.clone(), op.clone(), request.clone());
        async move {
            let path = format!("/v1/scopes/{scope}/leases/{lease}/authorize");
            client.call("POST", &path, Some(&op), Some(&request)).await
        }
    };
    for _ in 0..3 {
        let (status, body) = authorize(lease.clone()).await;
        assert_eq!(status, 200, "{body}");
        let headers = body["request"]["headers"].to_string();
        assert!(headers.contains(&format!("Bearer {TOKEN_PREFIX}1")), "{headers}");
    }
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 1);

    let probe_path = format!("/v1/scopes/{scope}/providers/d-token-mock/keys/{SECRET_VAR}/probe");
    let (status, probed) = client.call("POST", &probe_path, Some(&op), None).await;
    assert_eq!(status, 200, "{probed}");
    assert_eq!(probed["verdict"], "healthy", "{probed}");
    assert_eq!(mock.exchanges.load(Ordering::SeqCst), 2, "the probe made its own exchange");

    let bad = "cs-bad-canary-Http7Wq";
    let path = format!("/v1/scopes/{scope}/env/{SECRET_VAR}");
    client.call("PUT", &path, Some(&op), Some(&json!({"value": bad}))).await;
    let lease =
        resolve(client.clone(), op.clone()).await["lease"]["id"].as_str().unwrap().to_owned();
    let (status, refused) = authorize(lease).await;
    assert_eq!(status, 502, "{refused}");
    assert_eq!(support::code(&refused), "token_exchange_failed");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 401 (invalid_client)"), "{message}");
    let (status, probed) = client.call("POST", &probe_path, Some(&op), None).await;
    assert_eq!(status, 200, "{probed}");
    assert_eq!(probed["verdict"], "invalid-credential", "{probed}");
    for text in [refused.to_string(), probed.to_string()] {
        for canary in [secret, bad, TOKEN_PREFIX] {
            assert_no_secret(&text, canary, "an answer");
        }
    }
    let (_, metrics) = client.raw("GET", "/metrics", Some(&op), None).await;
    assert!(metrics.contains("platos_token_exchanges_total 2\n"), "{metrics}");
    assert!(metrics.contains("platos_access_tokens_cached "), "{metrics}");
}

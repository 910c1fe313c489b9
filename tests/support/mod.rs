//! Shared by the end-to-end tests: mock upstreams on loopback (an
//! OpenAI-compatible one, one that echoes the key), a small JSON client, a
//! log capture and the search for a secret in every encoding.

#![allow(dead_code)]

pub mod binary;
pub mod crash;
pub mod recording;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

/// What the mock saw.
#[derive(Default)]
pub struct MockLog {
    /// Every `Authorization` header received.
    pub authorizations: Mutex<Vec<String>>,
}

/// `GET /v1/models`: a key starting `sk-good` lists models, `sk-quota` is out
/// of quota, anything else is refused with 401.
async fn models(State(log): State<Arc<MockLog>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    log.authorizations.lock().unwrap().push(auth.clone());
    let key = auth.strip_prefix("Bearer ").unwrap_or("");
    if key.starts_with("sk-good") {
        (StatusCode::OK, r#"{"object":"list","data":[{"id":"gpt-5"},{"id":"mock-chat-1"},{"id":"text-embedding-3-small"}]}"#)
            .into_response()
    } else if key.starts_with("sk-quota") {
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":{"type":"insufficient_quota","message":"quota"}}"#,
        )
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"code":"invalid_api_key","message":"Incorrect API key provided"}}"#,
        )
            .into_response()
    }
}

/// `POST /v1/embeddings` (the Voyage probe): a key starting `pa-good`
/// embeds, anything else is refused with 401.
async fn embeddings(State(log): State<Arc<MockLog>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    log.authorizations.lock().unwrap().push(auth.clone());
    if auth.strip_prefix("Bearer ").is_some_and(|key| key.starts_with("pa-good")) {
        (
            StatusCode::OK,
            r#"{"object":"list","data":[{"object":"embedding","embedding":[0.1,0.2],"index":0}],"model":"voyage-3.5","usage":{"total_tokens":1}}"#,
        )
            .into_response()
    } else {
        (StatusCode::UNAUTHORIZED, r#"{"detail":"Provided API key is invalid."}"#).into_response()
    }
}

/// `POST /v1/chat/completions`: a chat completion with usage, whatever the
/// key (for the forward example of the OpenAPI document).
async fn chat_completions() -> Response {
    let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-5","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"}}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#;
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], answer).into_response()
}

/// `GET /v1/models` echoing the `Authorization` header it got: with
/// `?mode=<m>` (the h1-secret-echo fixture's probe) as `mode=<m>;echo=<value>`
/// with 200; without (the OpenAI plugin's probe) in a 502 error body, the way
/// a misconfigured gateway does.
async fn echo_models(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match query.get("mode") {
        Some(mode) => (StatusCode::OK, format!("mode={mode};echo={auth}")).into_response(),
        None => (
            StatusCode::BAD_GATEWAY,
            format!("{{\"error\":\"gateway refused header Authorization: {auth}\"}}"),
        )
            .into_response(),
    }
}

/// Starts the echoing mock ([`echo_models`]) on 127.0.0.1; returns its base
/// URL (`http://addr/v1`).
pub async fn echoing_upstream() -> String {
    let app = Router::new().route("/v1/models", get(echo_models));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

/// Starts the mock ([`models`], [`embeddings`] and [`chat_completions`]) on 127.0.0.1; returns its
/// base URL (`http://addr/v1`).
pub async fn mock_upstream() -> (String, Arc<MockLog>) {
    let log = Arc::new(MockLog::default());
    let app = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/embeddings", axum::routing::post(embeddings))
        .route("/v1/chat/completions", axum::routing::post(chat_completions))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), log)
}

/// A JSON client for one server.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(address: SocketAddr) -> Self {
        Client { base: format!("http://{address}"), http: reqwest::Client::new() }
    }

    /// Sends `method path` with an optional bearer token and JSON body;
    /// returns the status and the body as JSON (`Value::Null` if not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, text) = self.raw(method, path, token, body.map(|body| body.to_string())).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Like [`Client::call`], returning the body's text.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// Runs `command` with `stdin` written to its input, its output and errors
/// captured, and waits for it.
pub fn output_with_input(mut command: std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Every form of `secret` a leak could take: plain, lower- and upper-case,
/// percent-encoded (every byte), standard and url-safe base64 (padded and
/// not), and hex in both cases.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let percent: String = secret.bytes().map(|byte| format!("%{byte:02X}")).collect();
    let hex: String = secret.bytes().map(|byte| format!("{byte:02x}")).collect();
    use base64::Engine as _;
    let standard = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
    let url_safe = base64::engine::general_purpose::URL_SAFE.encode(secret.as_bytes());
    vec![
        secret.to_owned(),
        secret.to_lowercase(),
        secret.to_uppercase(),
        percent.clone(),
        percent.to_lowercase(),
        standard.trim_end_matches('=').to_owned(),
        url_safe.trim_end_matches('=').to_owned(),
        hex.clone(),
        hex.to_uppercase(),
    ]
}

/// The first form of `secret` (see [`secret_forms`]) found in `haystack`.
pub fn find_secret(haystack: &[u8], secret: &str) -> Option<String> {
    secret_forms(secret)
        .into_iter()
        .find(|form| haystack.windows(form.len()).any(|window| window == form.as_bytes()))
}

/// Panics naming the form and the place when `haystack` holds `secret`.
pub fn assert_no_secret(haystack: impl AsRef<[u8]>, secret: &str, place: &str) {
    if let Some(form) = find_secret(haystack.as_ref(), secret) {
        let text = String::from_utf8_lossy(haystack.as_ref());
        let at = text.find(&form).unwrap_or(0);
        let context: String = text[at.saturating_sub(80)..].chars().take(200).collect();
        panic!("{place} holds the secret as {form:?}: ...{context}...");
    }
}

/// Sends this thread's logs, at every level, into the returned buffer until
/// the guard drops.
///
/// tracing caches each callsite's interest globally, and while just one
/// dispatcher is registered it asks the registering thread's default. A
/// callsite first reached by another test's thread (which has no
/// subscriber) would then be cached as disabled for this one too. A second
/// dispatcher that lives as long as the process makes tracing ask every
/// registered dispatcher instead.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || LogWriter(writer.clone()))
        .finish();
    static SECOND_DISPATCHER: std::sync::LazyLock<tracing::Dispatch> =
        std::sync::LazyLock::new(|| {
            tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default())
        });
    std::sync::LazyLock::force(&SECOND_DISPATCHER);
    (tracing::subscriber::set_default(subscriber), buffer)
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A fresh sled store in a temporary directory, linking the keys of the
/// plugins in `registry`, under a fixed test master key. Keep the directory
/// alive as long as the store.
pub fn store_for(
    registry: &platos_host::runtime::PluginRegistry,
) -> (tempfile::TempDir, Arc<platos_host::store::SledStore>) {
    use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
    use platos_host::store::{ProviderVars, SledStore, StoreOptions};
    let provider_vars =
        ProviderVars::from_manifests(registry.iter().map(|plugin| plugin.manifest()));
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::new(
        EncryptionKey::parse(ENCRYPTION_KEY_VAR, "0123456789abcdef0123456789abcdef").unwrap(),
        None,
    );
    let options = StoreOptions { provider_vars, ..StoreOptions::default() };
    let store = Arc::new(SledStore::open(dir.path(), keyring, options).unwrap());
    (dir, store)
}

/// The test PostgreSQL server's URL: `PLATOS_TEST_POSTGRES` (which
/// `scripts/test.sh` sets), else the server `scripts/postgres-test-server.sh`
/// starts (or reuses) for this process. Fails, saying how to get one, when
/// there is none: a test needing PostgreSQL never passes without it.
pub fn postgres_server() -> String {
    static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("PLATOS_TEST_POSTGRES")
                && !url.is_empty()
            {
                return url;
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres-test-server.sh");
            let output = std::process::Command::new("bash").arg(script).output();
            let how = "this test needs PostgreSQL: run `bash scripts/test.sh`, or start the test \
                       server with `bash scripts/postgres-test-server.sh` and set \
                       PLATOS_TEST_POSTGRES to the URL it prints (its server comes from \
                       `sudo apt-get install -y postgresql`)";
            match output {
                Ok(output) if output.status.success() => {
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    let url = stdout.lines().last().unwrap_or("").trim().to_owned();
                    assert!(url.starts_with("postgres://"), "{how}; the script printed {stdout:?}");
                    url
                }
                Ok(output) => {
                    panic!("{how}; the script failed: {}", String::from_utf8_lossy(&output.stderr))
                }
                Err(error) => panic!("{how}; cannot run the script: {error}"),
            }
        })
        .clone()
}

/// A fresh, empty database of its own on the test PostgreSQL server
/// ([`postgres_server`]); returns its URL. Databases of test processes that
/// have ended are dropped on the way.
pub async fn postgres_database() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = postgres_server();
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot reach the test PostgreSQL at {server}: {error}; restart it with `bash scripts/postgres-test-server.sh`")
        });
    tokio::spawn(connection);
    let pid = std::process::id();
    let stale = client
        .query("SELECT datname FROM pg_database WHERE datname LIKE 'platos\\_test\\_%'", &[])
        .await
        .unwrap();
    for row in stale {
        let name: String = row.get(0);
        let owner = name.split('_').nth(2).and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|owner| {
            owner != pid && !std::path::Path::new(&format!("/proc/{owner}")).exists()
        }) {
            // Another ended process may be dropping it too: errors are fine.
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
    let name = format!("platos_test_{pid}_{}", NEXT.fetch_add(1, Ordering::SeqCst));
    client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
    let (base, _) = server.rsplit_once('/').expect("the server URL ends in /DATABASE");
    format!("{base}/{name}")
}

/// `store` as the async store a resolver takes, the test keeping its
/// blocking handle for direct writes.
pub fn async_store(
    store: &Arc<platos_host::store::SledStore>,
) -> Arc<dyn platos_host::store::SecretStore> {
    Arc::new(platos_host::store::Blocking::shared(Arc::clone(store)))
}

/// A server on a free loopback port over `data_dir` that may send to
/// loopback (the tests' mock upstreams), with no background health rounds;
/// compiled plugins are cached under `CARGO_TARGET_TMPDIR/<cache>` (one
/// compile per test binary).
pub fn loopback_server_config(
    data_dir: &std::path::Path,
    cache: &str,
) -> platos_host::api::server::ServerConfig {
    use platos_host::outbound::OutboundConfig;
    use platos_host::policy::addresses::AddressPolicy;
    let mut config = platos_host::api::server::ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        data_dir.to_owned(),
    );
    config.cache_dir = Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(cache));
    config.health_interval = std::time::Duration::ZERO;
    config.outbound = OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        timeout: std::time::Duration::from_secs(5),
        ..OutboundConfig::default()
    };
    config
}

/// A server on a fresh data directory, started with
/// [`loopback_server_config`], and its operator token.
pub struct Running {
    /// The data directory, removed on drop.
    pub dir: tempfile::TempDir,
    /// The server.
    pub server: platos_host::api::server::Server,
    /// A client of it.
    pub client: Client,
    /// The operator token its first start wrote.
    pub operator: String,
}

impl Running {
    /// Starts a server with its plugins compiled once into `cache`, its
    /// configuration changed by `adjust` first.
    pub async fn start(
        cache: &str,
        adjust: impl FnOnce(&mut platos_host::api::server::ServerConfig),
    ) -> Running {
        Running::start_in(tempfile::tempdir().unwrap(), cache, adjust).await
    }

    /// [`Running::start`] on `dir` (a restart keeps its data directory).
    pub async fn start_in(
        dir: tempfile::TempDir,
        cache: &str,
        adjust: impl FnOnce(&mut platos_host::api::server::ServerConfig),
    ) -> Running {
        let mut config = loopback_server_config(dir.path(), cache);
        adjust(&mut config);
        let server =
            platos_host::api::server::Server::start(config).await.expect("the server starts");
        let operator =
            std::fs::read_to_string(dir.path().join("operator.token")).unwrap().trim().to_owned();
        let client = Client::new(server.address());
        Running { dir, server, client, operator }
    }
}

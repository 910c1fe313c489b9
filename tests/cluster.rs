//! Several hosts on one PostgreSQL database (issue 11's cluster suite): a
//! write on one node is what every node resolves at once, a lease made on
//! one node authorizes on every other until a release on any of them, a
//! node killed with SIGKILL during writes loses no acknowledged write and
//! its leases live on, and a database restarted under load gives clear
//! 503s meanwhile, never a wrong answer, and the nodes reconnect by
//! themselves. API tokens are shared too: a token made on one node works on
//! every node, its pins set on one apply on all, a revoke on any is refused
//! by all at once, and nodes starting together on an empty database make
//! one operator token.
//!
//! Nodes run in-process (`Server::start` on their own data directories with
//! the same master key and `--store postgres://…`), and one as the real
//! binary for the kill. Everything binds to 127.0.0.1.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platos_host::api::server::Server;
use platos_host::crypto::{ENCRYPTION_KEY_VAR, EncryptionKey, Keyring};
use platos_host::store::{PostgresStore, SecretStore, StoreBackend, StoreOptions};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use support::binary::Binary;
use support::{Client, code};

/// The master key every node of a cluster holds.
const KEY: &str = "0123456789abcdef0123456789abcdef";
const SCOPE: &str = "acme/shop/prod";
/// Compiled plugins shared by the nodes of this test binary.
const PLUGIN_CACHE: &str = "cluster-plugin-cache";

/// One host of a cluster.
struct Node {
    server: Server,
    client: Client,
    operator: String,
    dir: tempfile::TempDir,
}

/// A new data directory holding the cluster's master key.
fn node_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    platos_host::api::bootstrap::write_private_file(
        &dir.path().join(platos_host::api::bootstrap::ENCRYPTION_KEY_FILE),
        format!("{KEY}\n").as_bytes(),
    )
    .unwrap();
    dir
}

/// The configuration of a node over `url` on `dir`.
fn node_config(url: &str, dir: &Path) -> platos_host::api::server::ServerConfig {
    let mut config = support::loopback_server_config(dir, PLUGIN_CACHE);
    config.store = StoreBackend::Postgres(url.to_owned());
    config
}

/// The operator token in `dir`, if its node made it.
fn operator_file(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("operator.token")).ok().map(|text| text.trim().to_owned())
}

impl Node {
    /// Starts the first node over `url` (an empty database), on a new data
    /// directory: it makes the cluster's operator token.
    async fn start(url: &str) -> Node {
        Node::start_on(url, node_dir(), None).await
    }

    /// Starts another node over `url`, on a new data directory: it finds
    /// the cluster's `operator` token in the database and makes none.
    async fn join(url: &str, operator: &str) -> Node {
        let node = Node::start_on(url, node_dir(), Some(operator)).await;
        assert_eq!(operator_file(node.dir.path()), None, "a joining node makes no operator token");
        node
    }

    /// [`Node::join`] for a node that runs health rounds every
    /// `health_interval` (at start, then once in every slot).
    async fn join_probing(url: &str, operator: &str, health_interval: Duration) -> Node {
        let dir = node_dir();
        let mut config = node_config(url, dir.path());
        config.health_interval = health_interval;
        let server = Server::start(config).await.expect("the node starts");
        assert_eq!(operator_file(dir.path()), None, "a joining node makes no operator token");
        let client = Client::new(server.address());
        Node { server, client, operator: operator.to_owned(), dir }
    }

    /// Starts a node over `url` on `dir` (a restart keeps its directory),
    /// with the operator token of its file, else `operator`.
    async fn start_on(url: &str, dir: tempfile::TempDir, operator: Option<&str>) -> Node {
        let server = Server::start(node_config(url, dir.path())).await.expect("the node starts");
        let operator = operator_file(dir.path())
            .or(operator.map(str::to_owned))
            .expect("the first node's start writes the cluster's operator token");
        let client = Client::new(server.address());
        Node { server, client, operator, dir }
    }

    /// Stops the node gracefully; returns its data directory.
    async fn stop(self) -> tempfile::TempDir {
        self.server.shutdown(Duration::from_secs(5)).await.unwrap();
        self.dir
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.client
            .call(method, &format!("/v1/scopes/{SCOPE}{path}"), Some(&self.operator), body.as_ref())
            .await
    }

    async fn set(&self, name: &str, value: &str) -> Value {
        let (status, answer) =
            self.call("PUT", &format!("/env/{name}"), Some(json!({ "value": value }))).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn resolve(&self) -> (u16, Value) {
        self.call("POST", "/resolve", Some(json!({ "provider": "openai" }))).await
    }

    /// The lease and the key value of a resolve that must succeed.
    async fn resolved(&self) -> (String, String) {
        let (status, answer) = self.resolve().await;
        assert_eq!(status, 200, "{answer}");
        let lease = answer["lease"]["id"].as_str().unwrap().to_owned();
        (lease, answer["env"]["OPENAI_API_KEY"].as_str().unwrap().to_owned())
    }

    /// Authorizes a chat request with `lease`: the status, and the
    /// `Authorization` the node signed it with (or the error code).
    async fn authorize(&self, lease: &str) -> (u16, String) {
        let request = json!({ "request": {
            "method": "POST",
            "url": "https://api.openai.com/v1/chat/completions",
            "headers": [["content-type", "application/json"]],
            "body": "{\"model\":\"gpt-5\"}",
        }});
        let (status, answer) =
            self.call("POST", &format!("/leases/{lease}/authorize"), Some(request)).await;
        if status != 200 {
            return (status, code(&answer).to_owned());
        }
        let headers = answer["request"]["headers"].as_array().unwrap();
        let auth = headers
            .iter()
            .find(|pair| {
                pair[0].as_str().is_some_and(|name| name.eq_ignore_ascii_case("authorization"))
            })
            .map(|pair| pair[1].as_str().unwrap().to_owned());
        (status, auth.unwrap_or_default())
    }

    async fn release(&self, lease: &str) -> (u16, Value) {
        self.call("DELETE", &format!("/leases/{lease}"), None).await
    }
}

async fn cluster(url: &str, nodes: usize) -> Vec<Node> {
    let mut started = vec![Node::start(url).await];
    for _ in 1..nodes {
        let operator = started[0].operator.clone();
        started.push(Node::join(url, &operator).await);
    }
    started
}

fn keyring() -> Keyring {
    Keyring::new(EncryptionKey::parse(ENCRYPTION_KEY_VAR, KEY).unwrap(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_sees_a_write_and_a_rotation_at_once() {
    let url = support::postgres_database().await;
    let nodes = cluster(&url, 3).await;
    let [a, b, c] = &nodes[..] else { unreachable!() };

    // Written on A: every node resolves it right after A acknowledged it.
    a.set("OPENAI_API_KEY", "sk-cluster-one").await;
    for node in [a, b, c] {
        assert_eq!(node.resolved().await.1, "sk-cluster-one");
    }
    // Rotated on B: the new value everywhere, with no wait.
    b.set("OPENAI_API_KEY", "sk-cluster-two").await;
    for node in [a, b, c] {
        assert_eq!(node.resolved().await.1, "sk-cluster-two");
    }
    // A second key and the operator's default choice on C: A and B follow.
    c.set("OPENAI_API_KEY_2", "sk-cluster-second").await;
    let (status, answer) = c
        .call(
            "PATCH",
            "/providers/openai/keys/OPENAI_API_KEY_2",
            Some(json!({ "scope_default": true, "label": "backup" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    for node in [a, b, c] {
        assert_eq!(node.resolved().await.1, "sk-cluster-second");
        let (status, keys) = node.call("GET", "/providers/openai/keys", None).await;
        assert_eq!(status, 200, "{keys}");
        let labels: Vec<&str> = keys["provider"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["label"].as_str().unwrap())
            .collect();
        assert!(labels.contains(&"backup"), "{keys}");
    }
    // Unset on A: nobody resolves the unset key any more.
    let (status, _) = a.call("DELETE", "/env/OPENAI_API_KEY_2", None).await;
    assert_eq!(status, 200);
    for node in [a, b, c] {
        assert_eq!(node.resolved().await.1, "sk-cluster-two");
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_from_one_node_authorizes_on_every_node_until_released_on_any() {
    let url = support::postgres_database().await;
    let nodes = cluster(&url, 3).await;
    let [a, b, c] = &nodes[..] else { unreachable!() };
    a.set("OPENAI_API_KEY", "sk-lease-one").await;

    let (lease, _) = a.resolved().await;
    for node in [a, b, c] {
        assert_eq!(node.authorize(&lease).await, (200, "Bearer sk-lease-one".to_owned()));
    }
    // A rotation on C does not pull the leased value from under the turn.
    c.set("OPENAI_API_KEY", "sk-lease-two").await;
    assert_eq!(b.authorize(&lease).await, (200, "Bearer sk-lease-one".to_owned()));

    // Released on C: refused on every node, and a second release is refused.
    let (status, answer) = c.release(&lease).await;
    assert_eq!((status, &answer), (200, &json!({ "released": true })));
    for node in [a, b, c] {
        assert_eq!(node.authorize(&lease).await, (404, "lease_not_found".to_owned()));
    }
    let (status, answer) = a.release(&lease).await;
    assert_eq!((status, code(&answer)), (404, "lease_not_found"));

    // A key disabled on A stops B's lease on C.
    let (lease, _) = b.resolved().await;
    let (status, answer) = a
        .call(
            "PATCH",
            "/providers/openai/keys/OPENAI_API_KEY",
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(c.authorize(&lease).await, (404, "lease_not_found".to_owned()));
    let (status, answer) = a
        .call("PATCH", "/providers/openai/keys/OPENAI_API_KEY", Some(json!({ "status": "active" })))
        .await;
    assert_eq!(status, 200, "{answer}");

    // A lease from B outlives B: after B's restart it authorizes on B and A.
    let (lease, value) = b.resolved().await;
    assert_eq!(value, "sk-lease-two");
    let [a, b, c]: [Node; 3] = nodes.try_into().unwrap_or_else(|_| unreachable!());
    let operator = b.operator.clone();
    let b = Node::start_on(&url, b.stop().await, Some(&operator)).await;
    for node in [&b, &a, &c] {
        assert_eq!(node.authorize(&lease).await, (200, "Bearer sk-lease-two".to_owned()));
    }
    for node in [a, b, c] {
        node.stop().await;
    }
}

/// `platos-host serve --store URL` (and `extra_args`) on `data` as a child process, with the
/// cluster's master key in its environment and the in-process nodes'
/// compiled plugins copied into its cache.
fn spawn_node(url: &str, data: &Path, extra_args: &[&str]) -> Binary {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(PLUGIN_CACHE);
    let own = data.join("cache").join("components");
    std::fs::create_dir_all(&own).unwrap();
    for entry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            std::fs::copy(entry.path(), own.join(entry.file_name())).unwrap();
        }
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_platos-host"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--import-process-env", "false"])
        .args(["--health-interval", "0s"])
        .args(extra_args)
        .env("PLATOS_STORE", url)
        .env("PLATOS_DATA_DIR", data)
        .env(ENCRYPTION_KEY_VAR, KEY)
        .env("PLATOS_LOG", "info,cranelift=warn,wasmtime=warn")
        .env("NO_COLOR", "1")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .env_remove("PLATOS_LISTEN")
        .env_remove("PLATOS_PLUGIN_DIR")
        .env_remove("PLATOS_ENV_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Binary::start(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_writes_loses_no_acknowledged_write_and_its_leases_live_on() {
    let url = support::postgres_database().await;
    let a = Node::start(&url).await;
    a.set("OPENAI_API_KEY", "sk-killed-node").await;

    let data = tempfile::tempdir().unwrap();
    let binary = spawn_node(&url, data.path(), &[]);
    let victim = Client::new(binary.address);
    // The cluster's operator token, made by A: the victim made none.
    let victim_token = a.operator.clone();
    assert_eq!(operator_file(data.path()), None);
    let (status, answer) = victim
        .call(
            "POST",
            &format!("/v1/scopes/{SCOPE}/resolve"),
            Some(&victim_token),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let lease = answer["lease"]["id"].as_str().unwrap().to_owned();

    // Four writers on the victim, each its own variable, one write after
    // another; each remembers the last write the victim acknowledged.
    let acknowledged: Arc<Mutex<BTreeMap<usize, usize>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (victim, token) = (victim.clone(), victim_token.clone());
            let (acknowledged, killed) = (acknowledged.clone(), killed.clone());
            tokio::spawn(async move {
                for index in 1.. {
                    let body = json!({ "value": format!("w{writer}-{index}") });
                    let path = format!("/v1/scopes/{SCOPE}/env/WRITER_{writer}");
                    let sent = victim
                        .http
                        .put(format!("{}{path}", victim.base))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            acknowledged.lock().unwrap().insert(writer, index);
                        }
                        Ok(response) if !killed.load(Ordering::SeqCst) => {
                            panic!("write refused before the kill: {}", response.status())
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    // Kill once every writer has some acknowledged writes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().values().filter(|&&acked| acked >= 5).count() < 4 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed.store(true, Ordering::SeqCst);
    binary.kill();
    for writer in writers {
        writer.await.unwrap();
    }

    // Every acknowledged write is in the database: each variable holds the
    // last acknowledged value or a later one (a write the kill interrupted
    // after its commit), and versions count the writes one by one.
    let store = PostgresStore::open(&url, keyring(), StoreOptions::default()).await.unwrap();
    let scope = SCOPE.parse().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    for (writer, acked) in acknowledged {
        let value = store.get_var(&scope, &format!("WRITER_{writer}")).await.unwrap().unwrap();
        let text = value.value.expose_secret();
        let index: usize = text.strip_prefix(&format!("w{writer}-")).unwrap().parse().unwrap();
        assert!(
            index == acked || index == acked + 1,
            "writer {writer}: {acked} acknowledged, {text} stored"
        );
        assert_eq!(value.version, index as u64, "writer {writer}: one version per write");
    }
    // The killed node's lease authorizes on the node that lives on.
    assert_eq!(a.authorize(&lease).await, (200, "Bearer sk-killed-node".to_owned()));
    a.stop().await;
}

/// A PostgreSQL server of this test's own (not the shared test server),
/// stopped when dropped.
struct OwnPostgres {
    base: PathBuf,
    url: String,
}

impl OwnPostgres {
    fn script(&self, args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres-test-server.sh");
        let output = Command::new("bash")
            .arg(script)
            .args(args)
            .env("PLATOS_TEST_POSTGRES_BASE", &self.base)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or("").trim().to_owned()
    }

    /// Starts (or reuses) it with a fresh database `platos_restart`.
    async fn start() -> OwnPostgres {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-restart-postgres");
        let mut own = OwnPostgres { base, url: String::new() };
        let server = own.script(&[]);
        assert!(server.starts_with("postgres://"), "{server}");
        let (client, connection) =
            tokio_postgres::connect(&server, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        for statement in [
            "DROP DATABASE IF EXISTS platos_restart WITH (FORCE)",
            "CREATE DATABASE platos_restart",
        ] {
            client.batch_execute(statement).await.unwrap();
        }
        let (root, _) = server.rsplit_once('/').unwrap();
        own.url = format!("{root}/platos_restart");
        own
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.script(&["stop"]);
    }
}

/// What the load saw, by outcome.
#[derive(Default, Debug)]
struct Outcomes {
    right: usize,
    unavailable: usize,
    wrong: Vec<String>,
    slowest: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restarted_under_load_gives_clear_503s_then_the_nodes_reconnect() {
    let postgres = OwnPostgres::start().await;
    let nodes = Arc::new(cluster(&postgres.url, 2).await);
    nodes[0].set("OPENAI_API_KEY", "sk-restart").await;

    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|task| {
            let (nodes, outcomes, stop) = (nodes.clone(), outcomes.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let node = &nodes[task % 2];
                    let started = Instant::now();
                    let (status, answer) = node.resolve().await;
                    let took = started.elapsed();
                    {
                        let mut outcomes = outcomes.lock().unwrap();
                        outcomes.slowest = outcomes.slowest.max(took);
                        match (status, code(&answer)) {
                            (200, _) if answer["env"]["OPENAI_API_KEY"] == "sk-restart" => {
                                outcomes.right += 1
                            }
                            (503, "store_unavailable") => outcomes.unavailable += 1,
                            _ => outcomes.wrong.push(format!("{status} {answer}")),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let snapshot = |outcomes: &Mutex<Outcomes>| {
        let outcomes = outcomes.lock().unwrap();
        (outcomes.right, outcomes.unavailable)
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, _) = snapshot(&outcomes);
    assert!(before > 0, "the load runs");

    // The database goes away for two seconds: clear 503s, not hangs.
    tokio::task::block_in_place(|| postgres.script(&["stop"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, during) = snapshot(&outcomes);
    assert!(during > 0, "requests while the database is away answer 503 store_unavailable");
    // A token check alone (whoami reads nothing else) is that 503 too, not a 401.
    let (status, answer) =
        nodes[1].client.call("GET", "/v1/whoami", Some(&nodes[1].operator), None).await;
    assert_eq!((status, code(&answer)), (503, "store_unavailable"), "{answer}");
    // Back: every node answers right again by itself, within a few seconds.
    tokio::task::block_in_place(|| postgres.script(&[]));
    let back = Instant::now();
    for node in nodes.iter() {
        loop {
            let (status, answer) = node.resolve().await;
            if status == 200 {
                assert_eq!(answer["env"]["OPENAI_API_KEY"], "sk-restart");
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(20), "no reconnect: {status} {answer}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (after_restart, _) = snapshot(&outcomes);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    {
        let outcomes = outcomes.lock().unwrap();
        assert!(outcomes.wrong.is_empty(), "wrong answers: {:?}", outcomes.wrong);
        assert!(outcomes.right > after_restart, "the load is served again: {outcomes:?}");
        assert!(outcomes.slowest < Duration::from_secs(10), "a request hung: {outcomes:?}");
    }
    let nodes = Arc::into_inner(nodes).unwrap();
    for node in nodes {
        node.stop().await;
    }
}

/// A mock chat completions upstream on 127.0.0.1 (its base URL, and how many
/// requests it got): each answer reports 7 prompt tokens and all of the
/// request's `max_tokens` as completion tokens; `"model": "hang"` is never
/// answered.
async fn chat_upstream() -> (String, Arc<AtomicUsize>) {
    async fn chat(
        axum::extract::State(count): axum::extract::State<Arc<AtomicUsize>>,
        body: String,
    ) -> axum::Json<Value> {
        count.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if body["model"] == "hang" {
            std::future::pending::<()>().await;
        }
        let completion = body["max_tokens"].as_u64().unwrap_or(1);
        axum::Json(json!({ "id": "c1", "object": "chat.completion", "model": "gpt-5",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hi" } }],
            "usage": { "prompt_tokens": 7, "completion_tokens": completion } }))
    }
    let count = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .with_state(count.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), count)
}

/// A forward of a gpt-5 chat request with `max_tokens` through `client`:
/// the status and the answer read whole.
async fn forward(
    client: &Client,
    token: &str,
    lease: &str,
    base: &str,
    model: &str,
) -> (u16, String) {
    let body = json!({ "model": model, "max_tokens": 1000, "messages": [] }).to_string();
    let request = json!({ "request": { "method": "POST", "url": format!("{base}/chat/completions"),
        "headers": [["content-type", "application/json"]], "body": body } });
    let response = client
        .http
        .post(format!("{}/v1/scopes/{SCOPE}/leases/{lease}/forward", client.base))
        .bearer_auth(token)
        .json(&request)
        .send()
        .await
        .expect("the node answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// The cost of one forward of [`forward`] at gpt-5's prices ($1.25 and $10
/// per million prompt and output tokens), as the mock reports it.
const FORWARD_COST: u64 = (7 * 1_250_000 + 1000 * 10_000_000_u64).div_ceil(1_000_000);

/// The micro-dollars of a USD amount in an answer.
fn micro(usd: &Value) -> u64 {
    (usd.as_f64().expect("a dollar amount") * 1e6).round() as u64
}

const KEY_BUDGET: &str = "/providers/openai/keys/OPENAI_API_KEY/budget";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_on_three_nodes_never_together_spend_more_than_a_cap() {
    let url = support::postgres_database().await;
    let (base, sent_upstream) = chat_upstream().await;
    let nodes = cluster(&url, 3).await;
    nodes[0].set("OPENAI_API_KEY", "sk-canary-cluster-budget").await;
    nodes[0].set("OPENAI_API_BASE", &base).await;
    let (status, answer) =
        nodes[1].call("PUT", KEY_BUDGET, Some(json!({ "limit_usd": 1.5, "period": "day" }))).await;
    assert_eq!(status, 200, "{answer}");
    let mut leases = Vec::new();
    for node in &nodes {
        leases.push(node.resolved().await.0);
    }

    // 60 in flight at a time, 20 per node: within each node's database pool
    // (16 connections), so a wait for a connection is never the outcome.
    use futures_util::StreamExt;
    let outcomes: Vec<(u16, String)> = futures_util::stream::iter((0..600).map(|index| {
        let (node, lease) = (&nodes[index % 3], &leases[index % 3]);
        forward(&node.client, &node.operator, lease, &base, "gpt-5")
    }))
    .buffer_unordered(60)
    .collect()
    .await;
    let sent = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let refused = outcomes
        .iter()
        .filter(|(status, text)| *status == 402 && text.contains("budget_exceeded"))
        .count();
    let others: Vec<&(u16, String)> = outcomes
        .iter()
        .filter(|(status, text)| {
            *status != 200 && !(*status == 402 && text.contains("budget_exceeded"))
        })
        .take(3)
        .collect();
    assert_eq!(sent + refused, 600, "every forward is sent or refused for the budget: {others:?}");
    assert_eq!(sent_upstream.load(Ordering::SeqCst), sent, "nothing refused reached the upstream");
    for node in &nodes {
        let (status, answer) = node.call("GET", KEY_BUDGET, None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(micro(&answer["spent_usd"]), sent as u64 * FORWARD_COST, "{answer}");
        assert_eq!(micro(&answer["reserved_usd"]), 0, "{answer}");
    }
    assert!(sent as u64 * FORWARD_COST <= 1_500_000, "{sent} forwards overshot the cap");
    // Not tripped early: at most one forward's reservation was left unspent.
    assert!(sent as u64 >= 1_500_000 / 10_100, "only {sent} forwards were let through");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_reservations_open_leaves_nothing_reserved_after_the_ttl() {
    let url = support::postgres_database().await;
    let (base, sent_upstream) = chat_upstream().await;
    let a = Node::start(&url).await;
    a.set("OPENAI_API_KEY", "sk-canary-killed-budget").await;
    a.set("OPENAI_API_BASE", &base).await;
    let (status, answer) =
        a.call("PUT", KEY_BUDGET, Some(json!({ "limit_usd": 100.0, "period": "month" }))).await;
    assert_eq!(status, 200, "{answer}");

    let data = tempfile::tempdir().unwrap();
    let binary = spawn_node(
        &url,
        data.path(),
        &["--reservation-ttl", "2s", "--allow-loopback-upstreams", "--lease-ttl", "1m"],
    );
    let victim = Client::new(binary.address);
    let token = a.operator.clone();
    let (status, answer) = victim
        .call(
            "POST",
            &format!("/v1/scopes/{SCOPE}/resolve"),
            Some(&token),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let lease = answer["lease"]["id"].as_str().unwrap().to_owned();
    // Three forwards answered whole: their spend is settled before their end.
    for _ in 0..3 {
        let (status, text) = forward(&victim, &token, &lease, &base, "gpt-5").await;
        assert_eq!(status, 200, "{text}");
    }
    // Two that the upstream never answers hold their reservations.
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let (victim, token, lease, base) =
                (victim.clone(), token.clone(), lease.clone(), base.clone());
            tokio::spawn(async move { forward(&victim, &token, &lease, &base, "hang").await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent_upstream.load(Ordering::SeqCst) < 5 {
        assert!(Instant::now() < deadline, "the hanging forwards never reached the upstream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, held) = a.call("GET", KEY_BUDGET, None).await;
    assert!(micro(&held["reserved_usd"]) >= 2 * FORWARD_COST, "{held}");
    binary.kill();
    for forward in hanging {
        let _ = forward.await;
    }

    // After the TTL nothing stays reserved, and the settled spend is whole.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, answer) = a.call("GET", KEY_BUDGET, None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(micro(&answer["spent_usd"]), 3 * FORWARD_COST, "{answer}");
        if micro(&answer["reserved_usd"]) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "reservations outlived their TTL: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop().await;
}

/// `GET /v1/whoami` on `node` with `token`: the status and the answer.
async fn whoami(node: &Node, token: &str) -> (u16, Value) {
    node.client.call("GET", "/v1/whoami", Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_on_one_node_works_on_every_node_and_a_revoke_on_any_counts_at_once() {
    let url = support::postgres_database().await;
    let nodes = cluster(&url, 3).await;
    let [a, b, c] = &nodes[..] else { unreachable!() };
    a.set("OPENAI_API_KEY", "sk-shared-token-one").await;
    a.set("OPENAI_API_KEY_2", "sk-shared-token-two").await;

    // Made on A through the API: B and C know it.
    let (status, created) = a
        .client
        .call(
            "POST",
            "/v1/tokens",
            Some(&a.operator),
            Some(&json!({ "scope": SCOPE, "label": "shared-agent" })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (agent, id) = (created["token"].as_str().unwrap(), created["info"]["id"].as_str().unwrap());
    for node in [b, c] {
        let (status, answer) = whoami(node, agent).await;
        assert_eq!((status, answer["token_id"].as_str()), (200, Some(id)), "{answer}");
    }
    // Every node lists the same tokens: the one operator token and the agent.
    for node in [a, b, c] {
        let (status, list) =
            node.client.call("GET", "/v1/tokens", Some(&node.operator), None).await;
        assert_eq!(status, 200, "{list}");
        let kinds: Vec<&str> = list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["operator", "agent"], "{list}");
    }

    // Pins set on B apply on C's next resolve.
    let (status, answer) = b
        .client
        .call(
            "PUT",
            &format!("/v1/tokens/{id}/pins"),
            Some(&b.operator),
            Some(&json!({ "openai": "OPENAI_API_KEY_2" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = c
        .client
        .call(
            "POST",
            &format!("/v1/scopes/{SCOPE}/resolve"),
            Some(agent),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["pinned_by"], "token", "{answer}");
    assert_eq!(answer["env"]["OPENAI_API_KEY"], "sk-shared-token-two", "{answer}");

    // Revoked on C: refused by A and B right away.
    let (status, answer) =
        c.client.call("DELETE", &format!("/v1/tokens/{id}"), Some(&c.operator), None).await;
    assert_eq!(status, 200, "{answer}");
    for node in [a, b] {
        let (status, answer) = whoami(node, agent).await;
        assert_eq!((status, code(&answer)), (401, "invalid_token"), "{answer}");
    }
    // The last operator token is kept, whichever node is asked.
    let (_, me) = whoami(b, &b.operator).await;
    let operator_id = me["token_id"].as_str().unwrap().to_owned();
    let (status, answer) = b
        .client
        .call("DELETE", &format!("/v1/tokens/{operator_id}"), Some(&b.operator), None)
        .await;
    assert_eq!((status, code(&answer)), (409, "last_operator_token"), "{answer}");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_together_on_an_empty_database_make_one_operator_token() {
    let url = support::postgres_database().await;
    let (one, two) = (node_dir(), node_dir());
    // Each start on its own task: they run in parallel, up to the token table.
    let starts =
        [one.path(), two.path()].map(|dir| tokio::spawn(Server::start(node_config(&url, dir))));
    let mut servers = Vec::new();
    for start in starts {
        servers.push(start.await.unwrap().expect("a node starts"));
    }
    let files: Vec<String> =
        [one.path(), two.path()].into_iter().filter_map(operator_file).collect();
    assert_eq!(files.len(), 1, "exactly one node wrote operator.token");
    let created = servers
        .iter()
        .filter(|server| {
            matches!(
                server.report().operator_token,
                platos_host::api::bootstrap::OperatorToken::Created(_)
            )
        })
        .count();
    assert_eq!(created, 1);
    for server in &servers {
        let client = Client::new(server.address());
        let (status, list) = client.call("GET", "/v1/tokens", Some(&files[0]), None).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["tokens"].as_array().unwrap().len(), 1, "one operator token: {list}");
    }
    for server in servers {
        server.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

/// A mock OpenAI models endpoint on 127.0.0.1 that answers each probe after
/// 100 ms (200 for a key starting `sk-good`, 401 otherwise) and counts the
/// probes of each key, with when each arrived.
async fn counting_upstream() -> (String, Arc<Mutex<BTreeMap<String, Vec<Instant>>>>) {
    type Seen = Arc<Mutex<BTreeMap<String, Vec<Instant>>>>;
    async fn models(
        axum::extract::State(seen): axum::extract::State<Seen>,
        headers: axum::http::HeaderMap,
    ) -> (axum::http::StatusCode, &'static str) {
        let auth = headers.get("authorization").and_then(|value| value.to_str().ok());
        let key = auth.and_then(|auth| auth.strip_prefix("Bearer ")).unwrap_or("").to_owned();
        seen.lock().unwrap().entry(key.clone()).or_default().push(Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
        if key.starts_with("sk-good") {
            (axum::http::StatusCode::OK, r#"{"object":"list","data":[{"id":"gpt-5"}]}"#)
        } else {
            (
                axum::http::StatusCode::UNAUTHORIZED,
                r#"{"error":{"code":"invalid_api_key","message":"Incorrect API key provided"}}"#,
            )
        }
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/v1/models", axum::routing::get(models))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), seen)
}

/// The health interval of the probe tests: a day, so that a test's rounds
/// all fall in one slot of the schedule.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Waits, if the current slot of `DAY` ends within a minute, until the next
/// one starts (slots are aligned on the Unix epoch: midnight UTC).
async fn a_slot_with_room() {
    let now = platos_host::store::now_millis();
    let ends_at = platos_host::store::ProbeSlot::of(now, DAY).ends_at;
    if ends_at - now < 60_000 {
        tokio::time::sleep(Duration::from_millis(ends_at - now + 100)).await;
    }
}

/// `OPENAI_API_BASE` pointing at `base` and one OpenAI key per value
/// (`OPENAI_API_KEY`, `OPENAI_API_KEY_2`, …) in the cluster's scope, written
/// straight to the database (no node runs a round for the change).
async fn seed_keys(url: &str, base: &str, values: &[String]) {
    let store = PostgresStore::open(url, keyring(), StoreOptions::default()).await.unwrap();
    let scope = SCOPE.parse().unwrap();
    let set = |name: String, value: &str| {
        let store = &store;
        let value = secrecy::SecretString::from(value.to_owned());
        let scope = &scope;
        async move {
            store.set_var(scope, &name, &value, platos_host::store::VarSource::Api).await.unwrap();
        }
    };
    set("OPENAI_API_BASE".to_owned(), base).await;
    for (index, value) in values.iter().enumerate() {
        let name = match index {
            0 => "OPENAI_API_KEY".to_owned(),
            _ => format!("OPENAI_API_KEY_{}", index + 1),
        };
        set(name, value).await;
    }
}

/// The node's round that started with it, once done.
async fn start_round_done(node: &Node) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) =
            node.client.call("GET", "/v1/health/rounds", Some(&node.operator), None).await;
        assert_eq!(status, 200, "{answer}");
        let start = answer["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|round| round["trigger"] == "start" && round["state"] != "running")
            .cloned();
        if let Some(round) = start {
            assert_eq!(round["state"], "done", "{round}");
            return round;
        }
        assert!(Instant::now() < deadline, "no start round done within 30 s: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each OpenAI key of the cluster's scope with its health, as `node` shows it.
async fn badges(node: &Node) -> BTreeMap<String, Value> {
    let (status, answer) = node.call("GET", "/providers/openai/keys", None).await;
    assert_eq!(status, 200, "{answer}");
    answer["provider"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| (key["key_id"].as_str().unwrap().to_owned(), key["health"].clone()))
        .collect()
}

/// How many probes of each key the mock saw.
fn probe_counts(seen: &Mutex<BTreeMap<String, Vec<Instant>>>) -> BTreeMap<String, usize> {
    seen.lock().unwrap().iter().map(|(key, times)| (key.clone(), times.len())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_probe_each_credential_once_per_interval_and_show_the_same_badges() {
    let url = support::postgres_database().await;
    let (base, seen) = counting_upstream().await;
    let values: Vec<String> = (1..=8)
        .map(|n| if n % 4 == 0 { format!("sk-bad-{n}") } else { format!("sk-good-{n}") })
        .collect();
    seed_keys(&url, &base, &values).await;
    a_slot_with_room().await;

    // A node without rounds makes the cluster's operator token; then three
    // nodes with rounds start at once: their start rounds overlap.
    let first = Node::start(&url).await;
    let operator = first.operator.clone();
    let (a, b, c) = tokio::join!(
        Node::join_probing(&url, &operator, DAY),
        Node::join_probing(&url, &operator, DAY),
        Node::join_probing(&url, &operator, DAY)
    );
    let nodes = [a, b, c];
    let mut probed = 0;
    for node in &nodes {
        let round = start_round_done(node).await;
        assert_eq!(round["keys"], values.len(), "{round}");
        let (own, shared) = (round["probed"].as_u64().unwrap(), round["shared"].as_u64().unwrap());
        assert_eq!(own + shared, values.len() as u64, "every key probed or shared: {round}");
        probed += own;
    }
    assert_eq!(probed, values.len() as u64, "the nodes probed the keys once between them");
    let expected: BTreeMap<String, usize> = values.iter().map(|value| (value.clone(), 1)).collect();
    assert_eq!(probe_counts(&seen), expected, "each secret reached the upstream once");

    // One database, one badge per key, whichever node shows it.
    let shown = badges(&first).await;
    assert_eq!(shown.len(), values.len(), "{shown:?}");
    for (key, health) in &shown {
        let bad = key.ends_with("_4") || key.ends_with("_8");
        let verdict = if bad { "invalid-credential" } else { "healthy" };
        assert_eq!(health["verdict"], verdict, "{key}: {health}");
    }
    for node in &nodes {
        assert_eq!(badges(node).await, shown);
    }

    // An operator's round is a person asking: it probes every credential
    // again, whatever the slot's claims say.
    let (status, started) =
        nodes[1].client.call("POST", "/v1/health/rounds", Some(&nodes[1].operator), None).await;
    assert_eq!(status, 202, "{started}");
    let path = format!("/v1/health/rounds/{}", started["round"]["id"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let round = loop {
        let (_, shown) = nodes[1].client.call("GET", &path, Some(&nodes[1].operator), None).await;
        if shown["round"]["state"] != "running" {
            break shown["round"].clone();
        }
        assert!(Instant::now() < deadline, "the operator's round did not end: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((round["probed"].as_u64(), round["shared"].as_u64()), (Some(8), Some(0)), "{round}");
    let twice: BTreeMap<String, usize> = values.iter().map(|value| (value.clone(), 2)).collect();
    assert_eq!(probe_counts(&seen), twice);
    first.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_whose_claimant_died_is_probed_by_another_node_once_its_claim_ends() {
    let url = support::postgres_database().await;
    let (base, seen) = counting_upstream().await;
    let values: Vec<String> = (1..=3).map(|n| format!("sk-good-{n}")).collect();
    seed_keys(&url, &base, &values).await;
    a_slot_with_room().await;

    let viewer = Node::start(&url).await; // no rounds: it makes the operator token
    let first = Node::join_probing(&url, &viewer.operator, DAY).await;
    assert_eq!(start_round_done(&first).await["probed"], 3);
    // As if a node had claimed one of the credentials in this slot and died
    // before it was done: its claim, not done, ends in two seconds.
    let (sql, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let planted_until = platos_host::store::now_millis() + 2_000;
    let planted = Instant::now() + Duration::from_millis(2_000);
    let planted_rows = sql
        .execute(
            "UPDATE platos_probe_claims SET done = false, until_ms = $1
             WHERE tag = (SELECT tag FROM platos_probe_claims ORDER BY tag LIMIT 1)",
            &[&(planted_until as i64)],
        )
        .await
        .unwrap();
    assert_eq!(planted_rows, 1);

    // Two more nodes start: they skip the two done credentials, wait for the
    // dead claim to end, and one of them probes it.
    let (second, third) = tokio::join!(
        Node::join_probing(&url, &viewer.operator, DAY),
        Node::join_probing(&url, &viewer.operator, DAY)
    );
    let mut probed = 0;
    for node in [&second, &third] {
        let round = start_round_done(node).await;
        let (own, shared) = (round["probed"].as_u64().unwrap(), round["shared"].as_u64().unwrap());
        assert_eq!(own + shared, 3, "{round}");
        probed += own;
    }
    assert_eq!(probed, 1, "one node took the dead claim over");
    let seen = seen.lock().unwrap().clone();
    let again: Vec<_> = seen.iter().filter(|(_, times)| times.len() == 2).collect();
    assert_eq!(again.len(), 1, "one secret probed again, the others not: {seen:?}");
    assert!(seen.values().all(|times| times.len() <= 2), "{seen:?}");
    let retaken = again[0].1[1];
    // (Less 10 ms: the claim's end is in whole milliseconds.)
    assert!(retaken >= planted - Duration::from_millis(10), "taken over once the dead claim ended");
    assert!(retaken < planted + Duration::from_secs(5), "taken over soon after it ended");
    let shown = badges(&viewer).await;
    assert!(shown.values().all(|health| health["verdict"] == "healthy"), "{shown:?}");
    for node in [&first, &second, &third] {
        assert_eq!(badges(node).await, shown);
    }
    for node in [viewer, first, second, third] {
        node.stop().await;
    }
}

//! Resolve over HTTP on sled and on PostgreSQL, one node and three, in one
//! run (issue 11's benchmarks): the release `platos-host` binary as separate
//! processes on 127.0.0.1, this program as the load generator. For each
//! setup: the highest rate 32 keep-alive connections sustain (closed loop),
//! then a fixed 10,000 resolves/s in total (open loop, latency counted from
//! each request's scheduled send, so a backlog shows), and each node's
//! resident memory before and after. With `PLATOS_BENCH_RESOLVES=N` it then
//! resolves N times more without release on the three PostgreSQL nodes and
//! reads their memory again (leases cost no memory).
//!
//! Run: `cargo bench -p platos-host --bench cluster_http` (PostgreSQL from
//! `scripts/postgres-test-server.sh`, installed and started if missing).
//! `PLATOS_BENCH_SECONDS` sets the seconds per run (default 10). Writes the
//! figures to docs/benchmarks.md under "## Cluster".

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::{fresh_database, postgres_server};

const KEY: &str = "0123456789abcdef0123456789abcdef";
const SCOPE: &str = "bench/cluster/prod";
const RATE: u64 = 10_000;
const CONNECTIONS: usize = 32;
/// Requests in flight at most in the open loop (beyond it, requests wait
/// and their wait counts as latency).
const IN_FLIGHT: usize = 512;

/// A `platos-host serve` process.
struct Node {
    child: Child,
    address: SocketAddr,
    operator: String,
    agent: String,
    _data: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }

    fn resolve_url(&self) -> String {
        format!("http://{}/v1/scopes/{SCOPE}/resolve", self.address)
    }
}

/// Starts a node on `store` (`sled` or a PostgreSQL URL).
fn spawn(store: &str) -> Node {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--import-process-env", "false"])
        .args(["--health-interval", "0s", "--max-connections", "4096"])
        .env("PLATOS_STORE", store)
        .env("PLATOS_DATA_DIR", data.path())
        .env("ENCRYPTION_KEY", KEY)
        .env("PLATOS_LOG", "warn,platos_host::api::server=info")
        .env("NO_COLOR", "1")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .env_remove("PLATOS_LISTEN")
        .env_remove("PLATOS_PLUGIN_DIR")
        .env_remove("PLATOS_ENV_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the release binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let address = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the node exited before listening:\n{}", seen.join("\n"))
        };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let address: String =
                rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
            break address.parse().unwrap();
        }
        seen.push(line);
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    // Only the first node on a database writes the operator token (the
    // others share it through the database's token table).
    let operator = std::fs::read_to_string(data.path().join("operator.token"))
        .map(|token| token.trim().to_owned())
        .unwrap_or_default();
    Node { child, address, operator, agent: String::new(), _data: data }
}

async fn call(http: &reqwest::Client, node: &Node, method: &str, path: &str, body: Value) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = http
        .request(method, format!("http://{}{path}", node.address))
        .bearer_auth(&node.operator)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Starts `count` nodes on `store`, sets the key through the first and
/// gives every node an agent token of its own.
async fn setup(http: &reqwest::Client, store: &str, count: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..count).map(|_| spawn(store)).collect();
    let operator = nodes[0].operator.clone();
    assert!(!operator.is_empty(), "the first node wrote no operator token");
    for node in &mut nodes {
        node.operator.clone_from(&operator);
    }
    let path = format!("/v1/scopes/{SCOPE}/env/OPENAI_API_KEY");
    call(http, &nodes[0], "PUT", &path, json!({ "value": "sk-bench-not-a-real-key-0123456789" }))
        .await;
    for node in &mut nodes {
        let token =
            call(http, node, "POST", "/v1/tokens", json!({ "scope": SCOPE, "label": "bench" }))
                .await;
        node.agent = token["token"].as_str().unwrap().to_owned();
    }
    nodes
}

/// Latencies of the answers, and what went wrong.
#[derive(Default)]
struct Samples {
    micros: Vec<u64>,
    failures: usize,
    elapsed: Duration,
}

impl Samples {
    fn percentile(&mut self, fraction: f64) -> f64 {
        self.micros.sort_unstable();
        if self.micros.is_empty() {
            return 0.0;
        }
        let index = ((self.micros.len() as f64 - 1.0) * fraction).round() as usize;
        self.micros[index] as f64 / 1000.0
    }

    fn rate(&self) -> f64 {
        self.micros.len() as f64 / self.elapsed.as_secs_f64()
    }
}

async fn resolve_once(http: &reqwest::Client, url: &str, token: &str) -> bool {
    let sent = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(r#"{"provider":"openai"}"#)
        .send()
        .await;
    match sent {
        Ok(response) if response.status() == 200 => response.bytes().await.is_ok(),
        _ => false,
    }
}

/// `CONNECTIONS` workers resolving back to back for `duration`, spread
/// over the nodes; or, with `count`, until `count` resolves are done.
async fn closed_loop(
    http: &reqwest::Client,
    nodes: &[Node],
    duration: Duration,
    count: Option<u64>,
) -> Samples {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let left = Arc::new(std::sync::atomic::AtomicU64::new(count.unwrap_or(u64::MAX)));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            let node = &nodes[worker % nodes.len()];
            let (url, token) = (node.resolve_url(), node.agent.clone());
            let (http, samples, left) = (http.clone(), samples.clone(), left.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut failures = 0;
                while started.elapsed() < duration
                    && left
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok()
                {
                    let sent = Instant::now();
                    if resolve_once(&http, &url, &token).await {
                        mine.push(sent.elapsed().as_micros() as u64);
                    } else {
                        failures += 1;
                    }
                }
                let mut samples = samples.lock().unwrap();
                samples.micros.extend(mine);
                samples.failures += failures;
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let mut samples = Arc::into_inner(samples).unwrap().into_inner().unwrap();
    samples.elapsed = started.elapsed();
    samples
}

/// `RATE` resolves/s in total for `duration`, round robin over the nodes,
/// each request's latency counted from its scheduled send.
async fn open_loop(http: &reqwest::Client, nodes: &[Node], duration: Duration) -> Samples {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let targets: Vec<(String, String)> =
        nodes.iter().map(|node| (node.resolve_url(), node.agent.clone())).collect();
    let total = RATE * duration.as_secs();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..total {
        let scheduled = started + Duration::from_micros(index * 1_000_000 / RATE);
        tokio::time::sleep_until(scheduled.into()).await;
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (url, token) = targets[index as usize % targets.len()].clone();
        let (http, samples) = (http.clone(), samples.clone());
        tasks.spawn(async move {
            let ok = resolve_once(&http, &url, &token).await;
            let took = scheduled.elapsed().as_micros() as u64;
            drop(permit);
            let mut samples = samples.lock().unwrap();
            if ok {
                samples.micros.push(took);
            } else {
                samples.failures += 1;
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut samples = Arc::into_inner(samples).unwrap().into_inner().unwrap();
    samples.elapsed = started.elapsed();
    samples
}

/// One setup's figures.
struct Figures {
    name: String,
    max: Samples,
    fixed: Samples,
    rss_before: Vec<f64>,
    rss_after: Vec<f64>,
}

async fn measure(http: &reqwest::Client, name: &str, nodes: &[Node], seconds: u64) -> Figures {
    let warm = closed_loop(http, nodes, Duration::from_secs(2), None).await;
    assert_eq!(warm.failures, 0, "{name}: the warm-up failed");
    let rss_before = nodes.iter().map(Node::rss_mib).collect();
    let max = closed_loop(http, nodes, Duration::from_secs(seconds), None).await;
    let fixed = open_loop(http, nodes, Duration::from_secs(seconds)).await;
    let rss_after = nodes.iter().map(Node::rss_mib).collect();
    println!(
        "{name}: highest {:.0}/s, at {RATE}/s {:.0}/s answered, {} failures",
        max.rate(),
        fixed.rate(),
        max.failures + fixed.failures
    );
    Figures { name: name.to_owned(), max, fixed, rss_before, rss_after }
}

fn mib(values: &[f64]) -> String {
    values.iter().map(|value| format!("{value:.0}")).collect::<Vec<_>>().join(" / ")
}

fn write_section(figures: &mut [Figures], seconds: u64, long: Option<(u64, Vec<f64>, Vec<f64>)>) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let mut rows = String::new();
    for f in figures.iter_mut() {
        let (max_p50, max_p99) = (f.max.percentile(0.5), f.max.percentile(0.99));
        let (fixed_p50, fixed_p99) = (f.fixed.percentile(0.5), f.fixed.percentile(0.99));
        rows.push_str(&format!(
            "| {} | {:.0} | {max_p50:.2} | {max_p99:.2} | {:.0} | {fixed_p50:.2} | {fixed_p99:.2} | {} | {} → {} |\n",
            f.name,
            f.max.rate(),
            f.fixed.rate(),
            f.max.failures + f.fixed.failures,
            mib(&f.rss_before),
            mib(&f.rss_after),
        ));
    }
    let long = long.map_or(String::new(), |(count, before, after)| {
        format!(
            "\nThen {count} resolves more without release on the three PostgreSQL nodes: resident memory per node {} MiB before, {} MiB after (a lease is a token the agent holds; a node keeps nothing per lease).\n",
            mib(&before),
            mib(&after)
        )
    });
    let section = format!(
        "## Cluster\n\n`cargo bench -p platos-host --bench cluster_http` ({date}): release `platos-host` processes on \
127.0.0.1 with the load generator (this bench, reqwest) and PostgreSQL (the test server, fsync off) on the same \
{cores} cores ({cpu}; load average {load} at the end). Every node holds the same master key and reads the same token table; one agent token per \
node; each request is `POST /v1/scopes/{{scope}}/resolve {{\"provider\":\"openai\"}}` spread round robin over the \
nodes. Highest rate: {CONNECTIONS} keep-alive connections back to back for {seconds} s. Fixed rate: {RATE} resolves/s \
in total for {seconds} s, latency counted from each request's scheduled send (a backlog shows as latency).\n\n\
| Setup | Highest rate (/s) | p50 (ms) | p99 (ms) | At {RATE}/s answered (/s) | p50 (ms) | p99 (ms) | Failures | RSS per node before → after (MiB) |\n\
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n{rows}{long}\n\
What the figures say: on sled a resolve reads memory-mapped trees in the node's own process; on PostgreSQL each \
resolve is three round trips to the database (the token's row, the key rows, the batch read of the variables; \
each a statement prepared once per connection), so a node spends more time per request waiting and the database takes CPU of its own from the same two cores. Three nodes on two \
cores do not add capacity here; on separate machines they would, the database being the shared part.\n",
        date = today(),
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = match text.find("## Cluster\n") {
        Some(start) => {
            let end = text[start + 1..].find("\n## ").map_or(text.len(), |end| start + 1 + end + 1);
            format!("{}{section}{}", &text[..start], &text[end..])
        }
        None => format!("{}\n\n{section}", text.trim_end()),
    };
    std::fs::write(path, text).unwrap();
    println!("{section}");
}

fn today() -> String {
    let output = Command::new("date").arg("+%Y-%m-%d").output();
    output
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: do nothing there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let seconds: u64 =
        std::env::var("PLATOS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let long: Option<u64> =
        std::env::var("PLATOS_BENCH_RESOLVES").ok().and_then(|s| s.parse().ok());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build().unwrap();
        let server = postgres_server();
        let mut figures = Vec::new();
        {
            let nodes = setup(&http, "sled", 1).await;
            figures.push(measure(&http, "sled, 1 node", &nodes, seconds).await);
        }
        {
            let url = fresh_database(&server, "platos_bench_one").await;
            let nodes = setup(&http, &url, 1).await;
            figures.push(measure(&http, "PostgreSQL, 1 node", &nodes, seconds).await);
        }
        let url = fresh_database(&server, "platos_bench_three").await;
        let nodes = setup(&http, &url, 3).await;
        figures.push(measure(&http, "PostgreSQL, 3 nodes", &nodes, seconds).await);
        let long = match long {
            Some(count) => {
                let before = nodes.iter().map(Node::rss_mib).collect();
                let run =
                    closed_loop(&http, &nodes, Duration::from_secs(86_400), Some(count)).await;
                assert_eq!(run.failures, 0, "resolves failed in the long run");
                Some((count, before, nodes.iter().map(Node::rss_mib).collect()))
            }
            None => None,
        };
        write_section(&mut figures, seconds, long);
    });
}

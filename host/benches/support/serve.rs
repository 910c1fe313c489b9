//! What the HTTP benches share: release `platos-host serve` processes on
//! 127.0.0.1 (with extra serve flags), the closed and open loops that drive
//! `POST /v1/scopes/{scope}/resolve` at them, their resident memory, and
//! the writing of a section of docs/benchmarks.md.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The master key every node holds.
const KEY: &str = "0123456789abcdef0123456789abcdef";
/// The scope the benches resolve in.
pub const SCOPE: &str = "bench/cluster/prod";
/// Keep-alive connections of the closed loop.
pub const CONNECTIONS: usize = 32;
/// Requests in flight at most in the open loop (beyond it, requests wait
/// and their wait counts as latency); also the client's idle pool per host.
pub const IN_FLIGHT: usize = 512;

/// A `platos-host serve` process.
pub struct Node {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// The operator token (shared by the nodes of one database).
    pub operator: String,
    /// An agent token of [`SCOPE`] for this node.
    pub agent: String,
    _data: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Its resident memory, MiB.
    pub fn rss_mib(&self) -> f64 {
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

/// Starts a node on `store` (`sled` or a PostgreSQL URL) with the serve
/// flags `extra` after the benches' own, and the variables `vars`.
fn spawn(store: &str, extra: &[String], vars: &[(&str, &str)]) -> Node {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--import-process-env", "false"])
        .args(["--health-interval", "0s", "--max-connections", "4096"])
        .args(extra)
        .env("PLATOS_STORE", store)
        .env("PLATOS_DATA_DIR", data.path())
        .env("ENCRYPTION_KEY", KEY)
        .env("PLATOS_LOG", "warn,platos_host::api::server=info")
        .env("NO_COLOR", "1")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .env_remove("PLATOS_LISTEN")
        .env_remove("PLATOS_PLUGIN_DIR")
        .env_remove("PLATOS_ENV_FILE")
        .env_remove("PLATOS_AUDIT")
        .env_remove("PLATOS_AUDIT_LOG")
        .envs(vars.iter().copied())
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

/// `method path` with `body` as the operator; the answer, which must be a
/// success.
pub async fn call(
    http: &reqwest::Client,
    node: &Node,
    method: &str,
    path: &str,
    body: Value,
) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http
        .request(method.clone(), format!("http://{}{path}", node.address))
        .bearer_auth(&node.operator);
    if method != reqwest::Method::GET {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Starts `count` nodes on `store` with the serve flags `extra` and the
/// variables `vars`, sets the key through the first and gives every node an
/// agent token of its own.
pub async fn setup(
    http: &reqwest::Client,
    store: &str,
    count: usize,
    extra: &[String],
    vars: &[(&str, &str)],
) -> Vec<Node> {
    let mut nodes: Vec<Node> = (0..count).map(|_| spawn(store, extra, vars)).collect();
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
pub struct Samples {
    micros: Vec<u64>,
    /// Requests that got no 200.
    pub failures: usize,
    elapsed: Duration,
}

impl Samples {
    /// The latency at `fraction` (0.5: the median), ms.
    pub fn percentile(&mut self, fraction: f64) -> f64 {
        self.micros.sort_unstable();
        if self.micros.is_empty() {
            return 0.0;
        }
        let index = ((self.micros.len() as f64 - 1.0) * fraction).round() as usize;
        self.micros[index] as f64 / 1000.0
    }

    /// Answers per second.
    pub fn rate(&self) -> f64 {
        self.micros.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// How many requests were answered with 200.
    #[allow(dead_code)] // only audit_http checks every answer
    pub fn answered(&self) -> u64 {
        self.micros.len() as u64
    }

    /// How long the run took.
    #[allow(dead_code)] // only audit_http divides by it
    pub fn elapsed(&self) -> Duration {
        self.elapsed
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

/// [`CONNECTIONS`] workers resolving back to back for `duration`, spread
/// over the nodes; or, with `count`, until `count` resolves are done.
pub async fn closed_loop(
    http: &reqwest::Client,
    nodes: &[Node],
    duration: Duration,
    count: Option<u64>,
) -> Samples {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let left = Arc::new(AtomicU64::new(count.unwrap_or(u64::MAX)));
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
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
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

/// `rate` resolves/s in total for `duration`, round robin over the nodes,
/// each request's latency counted from its scheduled send.
#[allow(dead_code)] // only cluster_http runs a fixed rate
pub async fn open_loop(
    http: &reqwest::Client,
    nodes: &[Node],
    duration: Duration,
    rate: u64,
) -> Samples {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let targets: Vec<(String, String)> =
        nodes.iter().map(|node| (node.resolve_url(), node.agent.clone())).collect();
    let total = rate * duration.as_secs();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..total {
        let scheduled = started + Duration::from_micros(index * 1_000_000 / rate);
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

/// Resident memories, MiB, as `a / b / c`.
pub fn mib(values: &[f64]) -> String {
    values.iter().map(|value| format!("{value:.0}")).collect::<Vec<_>>().join(" / ")
}

/// The machine a run is on, for the notes of a section.
pub struct Machine {
    /// Cores this process may use.
    pub cores: usize,
    /// The CPU's model name.
    pub cpu: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default();
        Machine { cores: std::thread::available_parallelism().map_or(0, |n| n.get()), cpu }
    }
}

/// The one-minute load average now.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().next().unwrap_or("?").to_owned()
}

/// Today's date, `YYYY-MM-DD`.
pub fn today() -> String {
    let output = Command::new("date").arg("+%Y-%m-%d").output();
    output
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Puts `section`, which starts with its `## ` heading line, into
/// docs/benchmarks.md: in place of the section of the same heading, or at
/// the end; and prints it.
pub fn write_section(section: &str) {
    let heading = section.lines().next().expect("a section starts with its heading");
    let heading = format!("{heading}\n");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = match text.find(&heading) {
        Some(start) => {
            let end = text[start + 1..].find("\n## ").map_or(text.len(), |end| start + 1 + end + 1);
            format!("{}{section}{}", &text[..start], &text[end..])
        }
        None => format!("{}\n\n{section}", text.trim_end()),
    };
    std::fs::write(path, text).unwrap();
    println!("{section}");
}

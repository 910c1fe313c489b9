//! Resolve over HTTP with the audit trail off and on, side by side in one
//! run (the audit issue's goal: resolve-heavy traffic within 10 % of its
//! throughput without auditing). One release `platos-host serve` node per
//! setup on 127.0.0.1, all of a backend's nodes up at once: sled with
//! auditing off, on, and on with `--audit-log FILE` (the JSON-lines copy);
//! PostgreSQL off and on, each on a database of its own. Auditing is set
//! with `PLATOS_AUDIT=off|on` (what `--audit` reads). The runs of one backend are interleaved (off, on,
//! copy, off, on, copy, …), each the highest rate 32 keep-alive connections
//! sustain (closed loop), so the machine's noise falls on every setup
//! alike; the median per setup is reported, and its ratio to `off`.
//!
//! After every audited run the trail is read back through `GET /v1/audit`
//! (paging with `after`) and, for the copy, the new lines of its file: each
//! must hold exactly one `ok` `resolve` record per resolve answered 200
//! since the last check, each of its own request, so nothing is dropped to
//! gain speed. The audit writer's rate is
//! `platos_audit_records_total{result="written"}` over the run.
//!
//! Run: `cargo bench -p platos-host --bench audit_http` (PostgreSQL from
//! `scripts/postgres-test-server.sh`, installed and started if missing).
//! `PLATOS_BENCH_SECONDS` sets the seconds per run (default 8),
//! `PLATOS_BENCH_ROUNDS` the runs per setup (default 3, at least 3). Writes
//! the figures to docs/benchmarks.md under "## Audit trail".

#[path = "support/mod.rs"]
mod support;

#[path = "support/serve.rs"]
mod serve;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use serve::{CONNECTIONS, Machine, Node, call, closed_loop, mib, setup};
use support::{fresh_database, postgres_server};

/// The slowest an audited setup may be, as a share of the rate with auditing off.
const GOAL: f64 = 0.90;

/// How a setup audits.
enum Audit {
    Off,
    /// The store's trail.
    Trail,
    /// The trail and the JSON-lines copy in this file (its directory kept
    /// alive with it), read up to `offset` so far.
    Copy {
        file: PathBuf,
        offset: u64,
        _dir: tempfile::TempDir,
    },
}

/// One run's figures.
struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Audit records written per second over the run.
    written: Option<f64>,
}

/// A node and what was measured and checked on it.
struct Setup {
    name: &'static str,
    node: Node,
    audit: Audit,
    runs: Vec<Run>,
    /// Resolves answered 200 since the trail was last checked.
    unchecked: u64,
    /// Every resolve record's request found in the trail so far.
    requests: HashSet<String>,
    /// The trail's cursor after the last check.
    cursor: Option<String>,
    rss_before: f64,
    rss_after: f64,
}

impl Setup {
    async fn start(http: &reqwest::Client, name: &'static str, store: &str, audit: Audit) -> Self {
        // `PLATOS_AUDIT`, not `--audit on|off`: the flag takes no value
        // (clap reads a `bool` field as a switch), so `--audit off` is refused.
        let on = if matches!(audit, Audit::Off) { "off" } else { "on" };
        let flags: Vec<String> = match &audit {
            Audit::Copy { file, .. } => vec!["--audit-log".into(), file.display().to_string()],
            Audit::Off | Audit::Trail => Vec::new(),
        };
        let node = setup(http, store, 1, &flags, &[("PLATOS_AUDIT", on)]).await.pop().unwrap();
        Setup {
            name,
            node,
            audit,
            runs: Vec::new(),
            unchecked: 0,
            requests: HashSet::new(),
            cursor: None,
            rss_before: 0.0,
            rss_after: 0.0,
        }
    }

    fn audited(&self) -> bool {
        !matches!(self.audit, Audit::Off)
    }

    /// Warms the node up (its resolves join the next check).
    async fn warm(&mut self, http: &reqwest::Client) {
        let warm =
            closed_loop(http, std::slice::from_ref(&self.node), Duration::from_secs(2), None).await;
        assert_eq!(warm.failures, 0, "{}: the warm-up failed", self.name);
        self.unchecked += warm.answered();
        self.rss_before = self.node.rss_mib();
    }

    /// One closed-loop run of `seconds`, then the check of the trail.
    async fn run(&mut self, http: &reqwest::Client, seconds: u64) {
        let before = written(http, &self.node).await;
        let mut samples =
            closed_loop(http, std::slice::from_ref(&self.node), Duration::from_secs(seconds), None)
                .await;
        let after = written(http, &self.node).await;
        assert_eq!(samples.failures, 0, "{}: resolves failed", self.name);
        self.unchecked += samples.answered();
        let elapsed = samples.elapsed().as_secs_f64();
        let run = Run {
            rate: samples.rate(),
            p50: samples.percentile(0.5),
            p99: samples.percentile(0.99),
            written: before.zip(after).map(|(before, after)| (after - before) as f64 / elapsed),
        };
        println!(
            "{}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms{}",
            self.name,
            run.rate,
            run.p50,
            run.p99,
            run.written.map_or(String::new(), |w| format!(", {w:.0} audit records/s"))
        );
        self.runs.push(run);
        self.rss_after = self.node.rss_mib();
        if self.audited() {
            self.check(http).await;
        }
    }

    /// Asserts that the trail (and the copy) gained exactly one `ok`
    /// `resolve` record, each of its own request, per resolve answered
    /// since the last check.
    async fn check(&mut self, http: &reqwest::Client) {
        let mut found = 0u64;
        loop {
            let path = match &self.cursor {
                Some(after) => format!("/v1/audit?limit=1000&after={after}"),
                None => "/v1/audit?limit=1000".to_owned(),
            };
            let page = call(http, &self.node, "GET", &path, Value::Null).await;
            assert_eq!(page["enabled"], json!(true), "{}: the trail is off", self.name);
            for record in page["records"].as_array().unwrap() {
                if record["action"] != "resolve" {
                    continue;
                }
                assert_eq!(record["outcome"], "ok", "{}: {record}", self.name);
                let request = record["request"].as_str().unwrap().to_owned();
                assert!(self.requests.insert(request), "{}: a resolve recorded twice", self.name);
                found += 1;
            }
            match page["next"].as_str() {
                Some(next) => self.cursor = Some(next.to_owned()),
                None => {
                    // The last page: the next check starts after its last record.
                    if let Some(last) = page["records"].as_array().unwrap().last() {
                        self.cursor = Some(format!(
                            "{}-{}",
                            last["at"].as_u64().unwrap(),
                            last["id"].as_str().unwrap()
                        ));
                    }
                    break;
                }
            }
        }
        assert_eq!(
            found, self.unchecked,
            "{}: the trail holds {found} resolve records for {} resolves answered",
            self.name, self.unchecked
        );
        if let Audit::Copy { file, offset, .. } = &mut self.audit {
            let lines = copied_resolves(file, offset);
            assert_eq!(
                lines, self.unchecked,
                "{}: the copy holds {lines} resolve lines for {} resolves answered",
                self.name, self.unchecked
            );
        }
        self.unchecked = 0;
    }

    fn median(&self, of: impl Fn(&Run) -> f64) -> f64 {
        let mut values: Vec<f64> = self.runs.iter().map(of).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }
}

/// The `ok` resolve lines of the JSON-lines copy `file` after `offset`;
/// moves `offset` to its end.
fn copied_resolves(file: &Path, offset: &mut u64) -> u64 {
    let mut reader = BufReader::new(std::fs::File::open(file).unwrap());
    reader.seek(SeekFrom::Start(*offset)).unwrap();
    let mut count = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        assert!(line.ends_with('\n'), "a partial line in the copy: {line}");
        *offset += line.len() as u64;
        let record: Value = serde_json::from_str(&line).unwrap();
        if record["action"] == "resolve" && record["outcome"] == "ok" {
            count += 1;
        }
        line.clear();
    }
    count
}

/// `platos_audit_records_total{result="written"}` of `node`; `None` when
/// it does not audit. No record may have failed.
async fn written(http: &reqwest::Client, node: &Node) -> Option<u64> {
    let response = http
        .get(format!("http://{}/metrics", node.address))
        .bearer_auth(&node.operator)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "/metrics: {}", response.status());
    let text = response.text().await.unwrap();
    let counter = |result: &str| {
        let name = format!("platos_audit_records_total{{result=\"{result}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(name.as_str())?.trim().parse::<u64>().ok())
    };
    if let Some(failed) = counter("failed") {
        assert_eq!(failed, 0, "audit records failed");
    }
    counter("written")
}

/// Runs the setups of one backend interleaved, `rounds` each.
async fn interleave(http: &reqwest::Client, setups: &mut [Setup], rounds: usize, seconds: u64) {
    for setup in setups.iter_mut() {
        setup.warm(http).await;
        if setup.audited() {
            setup.check(http).await;
        }
    }
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        for setup in setups.iter_mut() {
            setup.run(http, seconds).await;
        }
    }
}

/// The table rows of one backend (its first setup is `off`) and the
/// verdicts on the goal.
fn rows(setups: &[Setup], table: &mut String, verdicts: &mut Vec<String>) {
    let reference = setups[0].median(|run| run.rate);
    for setup in setups {
        let rate = setup.median(|run| run.rate);
        let ratio = rate / reference;
        let runs: Vec<String> = setup.runs.iter().map(|run| format!("{:.0}", run.rate)).collect();
        let written = if setup.audited() {
            format!("{:.0}", setup.median(|run| run.written.unwrap_or(0.0)))
        } else {
            "–".to_owned()
        };
        let checked = if setup.audited() {
            format!("{} (exact)", setup.requests.len())
        } else {
            "–".to_owned()
        };
        table.push_str(&format!(
            "| {} | {} | {rate:.0} | {:.1} % | {:.2} | {:.2} | {written} | {checked} | {} → {} |\n",
            setup.name,
            runs.join(", "),
            ratio * 100.0,
            setup.median(|run| run.p50),
            setup.median(|run| run.p99),
            mib(&[setup.rss_before]),
            mib(&[setup.rss_after]),
        ));
        if setup.audited() {
            let met = if ratio >= GOAL { "met" } else { "**not met**" };
            verdicts.push(format!(
                "- {}: {:.1} % of audit off ({rate:.0} against {reference:.0} resolves/s): {met}.",
                setup.name,
                ratio * 100.0
            ));
        }
    }
}

fn write_section(backends: &[Vec<Setup>], rounds: usize, seconds: u64, load_start: &str) {
    let Machine { cores, cpu } = Machine::here();
    let load_end = serve::load_average();
    let mut table = String::new();
    let mut verdicts = Vec::new();
    for setups in backends {
        rows(setups, &mut table, &mut verdicts);
    }
    let section = format!(
        "## Audit trail\n\n`cargo bench -p platos-host --bench audit_http` ({date}): one release `platos-host` node per \
setup on 127.0.0.1, with the load generator (this bench, reqwest) and PostgreSQL (the test server, fsync off) on the \
same {cores} shared cores ({cpu}; load average {load_start} at the start, {load_end} at the end; the coordinator's \
builds share the machine). Each run is {CONNECTIONS} keep-alive connections resolving back to back for {seconds} s \
(`POST /v1/scopes/{{scope}}/resolve {{\"provider\":\"openai\"}}`); the runs of a backend are interleaved, setup after \
setup, {rounds} rounds, so noise falls on every setup alike. Rate, p50 and p99 are the medians over the runs; \
\"vs off\" is the median rate against audit off's on the same backend. Auditing is set with `PLATOS_AUDIT=off|on`; the copy is `--audit-log FILE`. After each audited run the trail was read \
back through `GET /v1/audit` (and the copy's file line by line): exactly one `ok` `resolve` record per resolve answered, \
each of its own request, nothing dropped. Audit records/s: `platos_audit_records_total{{result=\"written\"}}` over the \
run (none failed).\n\n\
| Setup | Runs (/s) | Rate (/s) | vs off | p50 (ms) | p99 (ms) | Audit records/s | Resolve records checked | RSS before → after (MiB) |\n\
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n{table}\n\
Goal, within 10 % of the throughput with auditing off:\n\n{verdicts}\n\n\
How a record is written: a resolve queues its record and waits; one writer task takes everything queued (up to \
1,024, here at most the {CONNECTIONS} in flight) and writes it before it answers every waiter: beside sled the batch \
as one line of the trail's segment file (one `write` to the page cache, in place; synced by a background sync within \
a second, as resolves change nothing), on PostgreSQL the batch in one `INSERT … SELECT unnest(…)` committed before it \
returns, and for the copy the batch in one `write` to its file, in place.\n\n\
History: releases up to commit 2115845 kept the embedded trail in a sled database of its own. Every record then went through sled's \
log and page cache, tens of microseconds of CPU against a resolve of a few, and the audited sled node kept about 60 % \
of its rate (and about 26 % while each batch was a sled transaction, which in sled 0.34 seals and syncs the log \
buffer under the process-wide lock the store's reads wait for); docs/audit.md, \"Throughput\".\n",
        date = serve::today(),
        verdicts = verdicts.join("\n"),
    );
    serve::write_section(&section);
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: do nothing there.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let seconds: u64 =
        std::env::var("PLATOS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let rounds: usize =
        std::env::var("PLATOS_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3).max(3);
    let load_start = serve::load_average();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap();
        let server = postgres_server();
        let mut backends = Vec::new();
        {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("audit.jsonl");
            let copy = Audit::Copy { file, offset: 0, _dir: dir };
            let mut setups = vec![
                Setup::start(&http, "sled, audit off", "sled", Audit::Off).await,
                Setup::start(&http, "sled, audit on", "sled", Audit::Trail).await,
                Setup::start(&http, "sled, audit on + JSON-lines copy", "sled", copy).await,
            ];
            interleave(&http, &mut setups, rounds, seconds).await;
            backends.push(setups);
        }
        {
            let off = fresh_database(&server, "platos_bench_audit_off").await;
            let on = fresh_database(&server, "platos_bench_audit_on").await;
            let mut setups = vec![
                Setup::start(&http, "PostgreSQL, audit off", &off, Audit::Off).await,
                Setup::start(&http, "PostgreSQL, audit on", &on, Audit::Trail).await,
            ];
            interleave(&http, &mut setups, rounds, seconds).await;
            backends.push(setups);
        }
        write_section(&backends, rounds, seconds, &load_start);
    });
}

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

#[path = "support/serve.rs"]
mod serve;

use std::time::Duration;

use serve::{CONNECTIONS, IN_FLIGHT, Machine, Node, Samples, closed_loop, mib, open_loop, setup};
use support::{fresh_database, postgres_server};

const RATE: u64 = 10_000;

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
    let fixed = open_loop(http, nodes, Duration::from_secs(seconds), RATE).await;
    let rss_after = nodes.iter().map(Node::rss_mib).collect();
    println!(
        "{name}: highest {:.0}/s, at {RATE}/s {:.0}/s answered, {} failures",
        max.rate(),
        fixed.rate(),
        max.failures + fixed.failures
    );
    Figures { name: name.to_owned(), max, fixed, rss_before, rss_after }
}

fn write_section(figures: &mut [Figures], seconds: u64, long: Option<(u64, Vec<f64>, Vec<f64>)>) {
    let Machine { cores, cpu } = Machine::here();
    let load = serve::load_average();
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
        date = serve::today(),
    );
    serve::write_section(&section);
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
            let nodes = setup(&http, "sled", 1, &[], &[]).await;
            figures.push(measure(&http, "sled, 1 node", &nodes, seconds).await);
        }
        {
            let url = fresh_database(&server, "platos_bench_one").await;
            let nodes = setup(&http, &url, 1, &[], &[]).await;
            figures.push(measure(&http, "PostgreSQL, 1 node", &nodes, seconds).await);
        }
        let url = fresh_database(&server, "platos_bench_three").await;
        let nodes = setup(&http, &url, 3, &[], &[]).await;
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

//! Forward by lease against calling the upstream directly, in one run: an
//! in-process host and a mock OpenAI upstream, both on 127.0.0.1, the same
//! keep-alive client for both. The upstream streams a chat completion as
//! eight server-sent events 1 ms apart (plus the usage event the host asks
//! for), so a forward pays for authorize, its budget reservation (made and
//! settled on every forward), the send, the redaction of every chunk, the
//! usage read and the metering; a third path forwards in a scope whose key
//! has a budget.
//!
//! Run: `cargo bench -p platos-host --bench forward`. Prints, for each
//! path, p50 and p99 of the whole answer and of its first byte over
//! `PLATOS_BENCH_FORWARDS` requests (default 500), then runs criterion on
//! the whole answer. The figures go in docs/benchmarks.md under "## Forward".

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use criterion::{Criterion, criterion_group, criterion_main};
use platos_host::api::server::{Server, ServerConfig};
use platos_host::outbound::OutboundConfig;
use platos_host::policy::addresses::AddressPolicy;
use serde_json::{Value, json};

const KEY: &str = "sk-bench-forward-0123456789abcdef";
const SCOPE: &str = "bench/forward/prod";
/// A scope whose key has a budget.
const BUDGET_SCOPE: &str = "bench/budget/prod";
const EVENTS: usize = 8;

/// The mock's chat completion stream: `EVENTS` deltas 1 ms apart, the usage
/// event when asked, then `[DONE]`.
async fn chat(body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let with_usage = body["stream_options"]["include_usage"] == true;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        for index in 0..EVENTS {
            let event = format!(
                "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {index} \"}}}}]}}\n\n"
            );
            let _ = sender.send(Ok(Bytes::from(event))).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if with_usage {
            let usage = "data: {\"id\":\"c1\",\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":8}}\n\n";
            let _ = sender.send(Ok(Bytes::from(usage))).await;
        }
        let _ = sender.send(Ok(Bytes::from("data: [DONE]\n\n"))).await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// One way to get the answer: a prepared request.
struct Path {
    name: &'static str,
    request: reqwest::Request,
}

/// The time to the first body byte and to the end of the answer.
async fn once(client: &reqwest::Client, path: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let mut response =
        client.execute(path.request.try_clone().unwrap()).await.expect("the request is answered");
    assert_eq!(response.status(), 200, "{}", path.name);
    let mut first = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        if first.is_none() && !chunk.is_empty() {
            first = Some(started.elapsed());
        }
    }
    (first.expect("a body"), started.elapsed())
}

fn percentile(sorted: &[Duration], at: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * at).round() as usize]
}

fn forward_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (base, server) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Without it, Nagle's algorithm holds each small event until the
        // client's delayed ACK (~40 ms), on both paths alike.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new().route("/v1/chat/completions", post(chat));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
        config.health_interval = Duration::ZERO;
        config.outbound = OutboundConfig {
            addresses: AddressPolicy { allow_loopback: true, allow_private: false },
            ..OutboundConfig::default()
        };
        let server = Server::start(config).await.expect("the host starts");
        (format!("http://{address}/v1"), server)
    });
    let operator =
        std::fs::read_to_string(dir.path().join("operator.token")).unwrap().trim().to_owned();
    let host = format!("http://{}", server.address());
    let client = reqwest::Client::new();
    // A lease in each scope; the budget scope's key has a cap that never
    // binds, so its forwards are checked against it and settled.
    let (lease, budget_lease) = runtime.block_on(async {
        let mut leases = Vec::new();
        for scope in [SCOPE, BUDGET_SCOPE] {
            for (name, value) in [("OPENAI_API_KEY", KEY), ("OPENAI_API_BASE", base.as_str())] {
                let response = client
                    .put(format!("{host}/v1/scopes/{scope}/env/{name}"))
                    .bearer_auth(&operator)
                    .json(&json!({ "value": value }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
            let answer: Value = client
                .post(format!("{host}/v1/scopes/{scope}/resolve"))
                .bearer_auth(&operator)
                .json(&json!({ "provider": "openai" }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            leases.push(answer["lease"]["id"].as_str().unwrap().to_owned());
        }
        let response = client
            .put(format!(
                "{host}/v1/scopes/{BUDGET_SCOPE}/providers/openai/keys/OPENAI_API_KEY/budget"
            ))
            .bearer_auth(&operator)
            .json(&json!({ "limit_usd": 1_000_000.0, "period": "month" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        (leases[0].clone(), leases[1].clone())
    });

    let chat_body = json!({ "model": "gpt-5", "stream": true, "messages": [] }).to_string();
    let url = format!("{base}/chat/completions");
    let direct = client
        .post(&url)
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(chat_body.clone())
        .build()
        .unwrap();
    let forwarded = client
        .post(format!("{host}/v1/scopes/{SCOPE}/leases/{lease}/forward"))
        .bearer_auth(&operator)
        .json(&json!({ "request": { "method": "POST", "url": url,
            "headers": [["content-type", "application/json"]], "body": chat_body } }))
        .build()
        .unwrap();
    let capped_body =
        json!({ "model": "gpt-5", "stream": true, "max_tokens": 64, "messages": [] }).to_string();
    let budgeted = client
        .post(format!("{host}/v1/scopes/{BUDGET_SCOPE}/leases/{budget_lease}/forward"))
        .bearer_auth(&operator)
        .json(&json!({ "request": { "method": "POST", "url": url,
            "headers": [["content-type", "application/json"]], "body": capped_body } }))
        .build()
        .unwrap();
    let paths = [
        Path { name: "direct to the upstream", request: direct },
        Path { name: "forward through the host", request: forwarded },
        Path { name: "forward under a key budget", request: budgeted },
    ];

    let count: usize = std::env::var("PLATOS_BENCH_FORWARDS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(500);
    println!("| Path | first byte p50 | first byte p99 | whole answer p50 | whole answer p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for path in &paths {
        let (mut firsts, mut wholes) = (Vec::new(), Vec::new());
        runtime.block_on(async {
            for _ in 0..20 {
                once(&client, path).await;
            }
            for _ in 0..count {
                let (first, whole) = once(&client, path).await;
                firsts.push(first);
                wholes.push(whole);
            }
        });
        firsts.sort();
        wholes.sort();
        println!(
            "| {} | {:.3?} | {:.3?} | {:.3?} | {:.3?} |",
            path.name,
            percentile(&firsts, 0.5),
            percentile(&firsts, 0.99),
            percentile(&wholes, 0.5),
            percentile(&wholes, 0.99),
        );
    }

    let mut group = c.benchmark_group("forward (streamed chat completion)");
    for path in &paths {
        group.bench_function(path.name, |b| {
            b.to_async(&runtime).iter(|| once(&client, path));
        });
    }
    group.finish();
    runtime.block_on(server.shutdown(Duration::from_secs(5))).unwrap();
}

criterion_group!(benches, forward_benches);
criterion_main!(benches);

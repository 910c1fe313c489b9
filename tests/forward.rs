//! Forward by lease end to end: the real server on a loopback port and a
//! mock OpenAI upstream on another, which answers JSON with usage, a server-
//! sent event stream in chunks (held mid-stream until the test says), and
//! errors that echo the key. The agent gets the answer as it arrives and
//! never the key.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use support::{Running, assert_no_secret, code};

/// The canary key: it must reach the mock and nothing the agent sees.
const KEY: &str = "sk-canary-forward-7f3a9c1e5b";

/// What the mock saw, and the signal that lets a held stream finish.
#[derive(Default)]
struct Upstream {
    requests: AtomicUsize,
    seen: Mutex<Vec<(String, Value)>>,
    encodings: Mutex<Vec<String>>,
    release: tokio::sync::Notify,
}

const FIRST: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
const SECOND: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-5\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n";
const USAGE: &str = "data: {\"id\":\"c1\",\"model\":\"gpt-5\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,\"total_tokens\":13}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// `POST /v1/chat/completions`. `model` picks the answer: `echo` is a 401
/// quoting the `Authorization` header in its body and a header;
/// `split-echo` streams the header split across two chunks; `gzip` answers
/// the header marked `content-encoding: gzip`; any other
/// streams when `stream` is true (`wait`: holds after the first chunk until
/// released) and answers JSON with usage otherwise (7 prompt tokens, and
/// all of `max_tokens` or 3 completion tokens).
async fn chat(State(up): State<Arc<Upstream>>, headers: HeaderMap, body: String) -> Response {
    up.requests.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    up.seen.lock().unwrap().push((auth.clone(), body.clone()));
    let encodings = headers.get_all(header::ACCEPT_ENCODING).iter();
    up.encodings
        .lock()
        .unwrap()
        .extend(encodings.map(|value| value.to_str().unwrap_or_default().to_owned()));
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if model == "echo" {
        let text = format!("{{\"error\":{{\"message\":\"Incorrect API key provided: {auth}\"}}}}");
        return (StatusCode::UNAUTHORIZED, [("x-echo", auth)], text).into_response();
    }
    if model == "gzip" {
        // Compressed (it claims) although identity was asked for, quoting the key.
        return (StatusCode::OK, [("content-encoding", "gzip")], auth).into_response();
    }
    if model == "slow" {
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    if body["stream"] != true {
        // A request with an output cap is reported as having used all of it.
        let completion = body["max_tokens"].as_u64().unwrap_or(3);
        let answer = json!({ "id": "c1", "object": "chat.completion", "model": "gpt-5",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello" } }],
            "usage": { "prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion } });
        return (
            StatusCode::OK,
            [("content-type", "application/json"), ("set-cookie", "s=1")],
            answer.to_string(),
        )
            .into_response();
    }
    let with_usage = body["stream_options"]["include_usage"] == true;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(8);
    tokio::spawn(async move {
        let send = |text: String| {
            let sender = sender.clone();
            async move { sender.send(Ok(Bytes::from(text))).await.is_ok() }
        };
        if model == "split-echo" {
            let (start, end) = auth.split_at(auth.len() / 2);
            send(format!("data: {{\"echo\":\"{start}")).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            send(format!("{end}\"}}\n\n")).await;
        }
        send(FIRST.to_owned()).await;
        if model == "wait" {
            let _ = tokio::time::timeout(Duration::from_secs(10), up.release.notified()).await;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        send(SECOND.to_owned()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if with_usage {
            send(USAGE.to_owned()).await;
        }
        send(DONE.to_owned()).await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Starts the mock on 127.0.0.1; its base URL (`http://addr/v1`).
async fn upstream() -> (String, Arc<Upstream>) {
    let up = Arc::new(Upstream::default());
    let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), up)
}

async fn start() -> Running {
    start_with(|_| ()).await
}

async fn start_with(adjust: impl FnOnce(&mut platos_host::api::server::ServerConfig)) -> Running {
    Running::start("forward-test-plugin-cache", adjust).await
}

impl Running {
    /// Sets the key and base URL in `scope` and resolves: the lease.
    async fn lease(&self, scope: &str, base: &str) -> String {
        for (name, value) in [("OPENAI_API_KEY", KEY), ("OPENAI_API_BASE", base)] {
            let (status, body) = self
                .client
                .call(
                    "PUT",
                    &format!("/v1/scopes/{scope}/env/{name}"),
                    Some(&self.operator),
                    Some(&json!({ "value": value })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, body) = self
            .client
            .call(
                "POST",
                &format!("/v1/scopes/{scope}/resolve"),
                Some(&self.operator),
                Some(&json!({ "provider": "openai" })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["lease"]["id"].as_str().unwrap().to_owned()
    }

    /// Sends a forward; the answer unread.
    async fn forward(&self, scope: &str, lease: &str, url: &str, body: Value) -> reqwest::Response {
        let request = json!({ "request": {
            "method": "POST",
            "url": url,
            "headers": [["content-type", "application/json"], ["accept-encoding", "gzip"]],
            "body": body.to_string(),
        }});
        self.client
            .http
            .post(format!("{}/v1/scopes/{scope}/leases/{lease}/forward", self.client.base))
            .bearer_auth(&self.operator)
            .json(&request)
            .send()
            .await
            .expect("the host answers")
    }

    async fn metrics(&self) -> String {
        self.client.raw("GET", "/metrics", Some(&self.operator), None).await.1
    }
}

/// Reads the rest of `response`'s body.
async fn rest(response: &mut reqwest::Response) -> String {
    let mut text = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("the body reads") {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).unwrap()
}

/// The metric line `name` in `metrics`, as a number (0 when absent).
fn metric(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|line| line.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_stream_is_relayed_as_it_arrives_with_the_usage_asked_for_and_stripped() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let url = format!("{base}/chat/completions");

    let mut response = host
        .forward(scope, &lease, &url, json!({ "model": "wait", "stream": true, "messages": [] }))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().get("content-length").is_none());
    // The mock holds the rest until released: the first chunk got here first.
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the first chunk arrives while the upstream still holds the rest")
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(first.contains("\"Hel\""), "{first}");
    assert!(!first.contains("\"lo\""), "{first}");
    up.release.notify_one();
    let whole = format!("{first}{}", rest(&mut response).await);
    assert_eq!(
        whole,
        format!("{FIRST}{SECOND}{DONE}"),
        "the usage event the host asked for is gone"
    );

    let (auth, sent) = up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(auth, format!("Bearer {KEY}"), "the upstream got the key");
    assert_eq!(sent["stream_options"], json!({ "include_usage": true }), "{sent}");
    assert_eq!(sent["model"], "wait");

    // An agent that asked for usage gets its event.
    let mut response = host
        .forward(
            scope,
            &lease,
            &url,
            json!({ "model": "gpt-5", "stream": true, "stream_options": { "include_usage": true } }),
        )
        .await;
    assert_eq!(rest(&mut response).await, format!("{FIRST}{SECOND}{USAGE}{DONE}"));

    // Both streams' usage was read and metered.
    let metrics = host.metrics().await;
    assert_eq!(
        metric(&metrics, "platos_forward_tokens_total{provider=\"openai\",kind=\"input\"}"),
        22,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "platos_forward_tokens_total{provider=\"openai\",kind=\"output\"}"),
        4
    );
    assert_eq!(metric(&metrics, "platos_forwards_total{outcome=\"completed\"}"), 2);
    assert_eq!(metric(&metrics, "platos_forwards_in_flight"), 0);
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_json_answer_is_relayed_with_safe_headers_and_its_usage_metered() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let mut response = host
        .forward(scope, &lease, &format!("{base}/chat/completions"), json!({ "model": "gpt-5" }))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    let answer: Value = serde_json::from_str(&rest(&mut response).await).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
    let (_, sent) = up.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(sent, json!({ "model": "gpt-5" }), "a request that does not stream is sent as is");
    assert_eq!(*up.encodings.lock().unwrap(), ["identity"], "the agent's gzip is not asked for");
    let metrics = host.metrics().await;
    assert_eq!(
        metric(&metrics, "platos_forward_tokens_total{provider=\"openai\",kind=\"input\"}"),
        7,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "platos_forward_tokens_total{provider=\"openai\",kind=\"output\"}"),
        3
    );
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_key_the_upstream_echoes_never_reaches_the_agent() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let url = format!("{base}/chat/completions");

    let mut response = host.forward(scope, &lease, &url, json!({ "model": "echo" })).await;
    assert_eq!(response.status(), 401);
    let echoed = response.headers()["x-echo"].to_str().unwrap().to_owned();
    assert_eq!(echoed, "Bearer [redacted]");
    let body = rest(&mut response).await;
    assert!(body.contains("Incorrect API key provided: Bearer [redacted]"), "{body}");
    assert_no_secret(&body, KEY, "an echoing error body");

    let mut response =
        host.forward(scope, &lease, &url, json!({ "model": "split-echo", "stream": true })).await;
    let body = rest(&mut response).await;
    assert!(body.starts_with("data: {\"echo\":\"Bearer [redacted]\"}\n\n"), "{body}");
    assert_no_secret(&body, KEY, "a stream echoing the key across two chunks");
    assert_eq!(up.seen.lock().unwrap().len(), 2);
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn refused_hosts_dead_leases_and_unreachable_upstreams_send_nothing() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let body = json!({ "model": "gpt-5" });

    // A host the provider may not reach: refused before anything is sent.
    let response =
        host.forward(scope, &lease, "https://evil.example/v1/chat/completions", body.clone()).await;
    assert_eq!(response.status(), 422);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(code(&answer), "refused_request", "{answer}");
    assert_no_secret(answer.to_string(), KEY, "a refusal");
    assert_eq!(up.requests.load(Ordering::SeqCst), 0);

    // A released lease, or no lease at all: 404.
    let path = format!("/v1/scopes/{scope}/leases/{lease}");
    assert_eq!(host.client.call("DELETE", &path, Some(&host.operator), None).await.0, 200);
    let url = format!("{base}/chat/completions");
    for lease in [lease.as_str(), "00000000000000000000000000000000"] {
        let response = host.forward(scope, lease, &url, body.clone()).await;
        assert_eq!(response.status(), 404);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(code(&answer), "lease_not_found", "{answer}");
    }
    assert_eq!(up.requests.load(Ordering::SeqCst), 0);

    // Nobody listens at the base URL: 502, saying why, no key.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let scope = "acme/shop/dead";
    let lease = host.lease(scope, &dead).await;
    let response = host.forward(scope, &lease, &format!("{dead}/chat/completions"), body).await;
    assert_eq!(response.status(), 502);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(code(&answer), "upstream_unreachable", "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("could not connect"), "{answer}");
    assert_no_secret(answer.to_string(), KEY, "an unreachable answer");
    let metrics = host.metrics().await;
    assert_eq!(metric(&metrics, "platos_forwards_total{outcome=\"unreachable\"}"), 1, "{metrics}");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_agent_that_goes_away_mid_stream_is_metered_as_cancelled() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let url = format!("{base}/chat/completions");
    let mut response =
        host.forward(scope, &lease, &url, json!({ "model": "wait", "stream": true })).await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"Hel\""));
    assert_eq!(metric(&host.metrics().await, "platos_forwards_in_flight"), 1);
    drop(response);
    up.release.notify_one();
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = host.metrics().await;
        if metric(&metrics, "platos_forwards_total{outcome=\"cancelled\"}") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&metrics, "platos_forwards_total{outcome=\"cancelled\"}"), 1, "{metrics}");
    assert_eq!(metric(&metrics, "platos_forwards_total{outcome=\"completed\"}"), 0);
    assert_eq!(metric(&metrics, "platos_forwards_in_flight"), 0);
    // Its usage is unknown, so it is charged its whole reservation (the
    // default: the body names no output cap), and nothing stays reserved.
    let budget = "/providers/openai/keys/OPENAI_API_KEY/budget";
    let mut status = Value::Null;
    for _ in 0..100 {
        status = host.scoped("GET", scope, budget, None).await.1;
        if micro(&status["reserved_usd"]) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(micro(&status["reserved_usd"]), 0, "{status}");
    assert_eq!(micro(&status["spent_usd"]), 500_000, "{status}");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_slow_first_byte_gets_the_forward_timeout_not_the_request_timeout() {
    let (base, _up) = upstream().await;
    let host = start_with(|config| {
        config.api.request_timeout = Duration::from_millis(300);
        config.api.forward.first_byte = Duration::from_secs(5);
    })
    .await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let url = format!("{base}/chat/completions");
    let mut response = host.forward(scope, &lease, &url, json!({ "model": "slow" })).await;
    assert_eq!(response.status(), 200, "600 ms to the first byte is within the forward's 5 s");
    assert!(rest(&mut response).await.contains("Hello"));
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

impl Running {
    /// Calls `path` under the scope with the operator token.
    async fn scoped(
        &self,
        method: &str,
        scope: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = format!("/v1/scopes/{scope}{path}");
        self.client.call(method, &path, Some(&self.operator), body.as_ref()).await
    }
}

/// The micro-dollars of a USD amount in an answer.
fn micro(usd: &Value) -> u64 {
    (usd.as_f64().expect("a dollar amount") * 1e6).round() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_forwards_never_spend_more_than_the_cap_and_nothing_is_sent_past_it() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let budget_path = "/providers/openai/keys/OPENAI_API_KEY/budget";
    let (status, answer) = host
        .scoped("PUT", scope, budget_path, Some(json!({ "limit_usd": 3.0, "period": "day" })))
        .await;
    assert_eq!(status, 200, "{answer}");

    // gpt-5: $1.25 per million prompt tokens, $10 per million output tokens.
    // Each forward reserves its body's bytes as prompt tokens and its 1,000
    // output tokens; the mock reports 7 prompt tokens and all 1,000 output.
    let body = json!({ "model": "gpt-5", "max_tokens": 1000, "messages": [] });
    let reservation =
        (body.to_string().len() as u64 * 1_250_000 + 1000 * 10_000_000).div_ceil(1_000_000);
    let cost = (7 * 1_250_000 + 1000 * 10_000_000_u64).div_ceil(1_000_000);
    let url = format!("{base}/chat/completions");
    let outcomes = futures_util::future::join_all((0..1000).map(|_| async {
        let mut response = host.forward(scope, &lease, &url, body.clone()).await;
        (response.status().as_u16(), rest(&mut response).await)
    }))
    .await;

    let sent = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let refused: Vec<&String> =
        outcomes.iter().filter(|(status, _)| *status == 402).map(|(_, text)| text).collect();
    assert_eq!(sent + refused.len(), 1000, "every forward is sent or refused for the budget");
    assert_eq!(up.requests.load(Ordering::SeqCst), sent, "nothing refused reached the upstream");
    let refusal: Value = serde_json::from_str(refused[0]).unwrap();
    assert_eq!(code(&refusal), "budget_exceeded");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(message.contains("key OPENAI_API_KEY of openai in acme/shop/prod"), "{message}");
    assert!(message.contains("$3.00 per day"), "{message}");
    assert!(message.contains("left") && message.ends_with("nothing was sent"), "{message}");

    let (status, spent) = host.scoped("GET", scope, budget_path, None).await;
    assert_eq!(status, 200, "{spent}");
    assert_eq!(micro(&spent["reserved_usd"]), 0, "every reservation was settled: {spent}");
    assert_eq!(micro(&spent["spent_usd"]), sent as u64 * cost, "{spent}");
    assert!(micro(&spent["spent_usd"]) <= 3_000_000, "the cap holds: {spent}");
    // Not tripped early: every forward that could fit was sent.
    assert!(
        sent as u64 >= 3_000_000 / reservation,
        "{sent} sent of {} possible",
        3_000_000 / reservation
    );
    let (_, scope_spend) = host.scoped("GET", scope, "/spend", None).await;
    assert_eq!(micro(&scope_spend["spend"]["day_usd"]), sent as u64 * cost, "{scope_spend}");
    let metrics = host.metrics().await;
    assert_eq!(
        metric(&metrics, "platos_budget_refusals_total{provider=\"openai\"}"),
        refused.len() as u64,
        "{metrics}"
    );
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn reported_usage_counts_and_a_pin_at_its_cap_falls_back_or_fails() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    host.lease(scope, &base).await;
    let (status, answer) = host
        .scoped(
            "PUT",
            scope,
            "/env/OPENAI_API_KEY_2",
            Some(json!({ "value": "sk-canary-second-91d2" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let budget_path = "/providers/openai/keys/OPENAI_API_KEY_2/budget";
    let (status, answer) = host
        .scoped("PUT", scope, budget_path, Some(json!({ "limit_usd": 0.01, "period": "month" })))
        .await;
    assert_eq!(status, 200, "{answer}");
    let pinned = |strict| json!({ "provider": "openai", "pinned_key": "OPENAI_API_KEY_2", "strict": strict });
    let (status, answer) = host.scoped("POST", scope, "/resolve", Some(pinned(true))).await;
    assert_eq!((status, answer["chosen_by"].as_str()), (200, Some("pinned")), "{answer}");
    let lease = answer["lease"]["id"].as_str().unwrap().to_owned();

    // A malformed report is refused and the lease stays live.
    let release = format!("/leases/{lease}");
    let (status, answer) = host
        .scoped("DELETE", scope, &release, Some(json!({ "usage": { "output_tokens": -1 } })))
        .await;
    assert_eq!((status, code(&answer)), (400, "invalid_json"), "{answer}");
    // 1,000 output tokens of gpt-5: exactly the cent the key may spend.
    let usage = json!({ "usage": { "input_tokens": 0, "output_tokens": 1000, "model": "gpt-5" } });
    let (status, answer) = host.scoped("DELETE", scope, &release, Some(usage.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(micro(&answer["charged"]["cost_usd"]), 10_000, "{answer}");
    assert_eq!(answer["charged"]["price"], json!({ "basis": "listed", "model": "gpt-5" }));
    // A retried release counts nothing twice.
    let (status, answer) = host.scoped("DELETE", scope, &release, Some(usage)).await;
    assert_eq!((status, code(&answer)), (404, "lease_not_found"), "{answer}");
    let (_, status_now) = host.scoped("GET", scope, budget_path, None).await;
    assert_eq!(micro(&status_now["spent_usd"]), 10_000, "{status_now}");
    assert_eq!(micro(&status_now["left_usd"]), 0, "{status_now}");

    // At its cap: a pin falls back, loudly; strict fails.
    let (status, answer) = host.scoped("POST", scope, "/resolve", Some(pinned(false))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["chosen_by"], "fallback-pin-at-cap");
    assert_eq!(answer["key"]["key_id"], "OPENAI_API_KEY");
    assert!(answer["warning"].as_str().unwrap().contains("nothing left of its budget"), "{answer}");
    let (status, answer) = host.scoped("POST", scope, "/resolve", Some(pinned(true))).await;
    assert_eq!((status, code(&answer)), (409, "pinned_key_at_cap"), "{answer}");

    // A lease taken before the cap was reached sends nothing more.
    let (status, answer) = host
        .scoped(
            "POST",
            scope,
            "/resolve",
            Some(json!({ "provider": "openai", "pinned_key": "OPENAI_API_KEY_2" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let before = up.requests.load(Ordering::SeqCst);
    let (status, answer) = host
        .scoped("PUT", scope, budget_path, Some(json!({ "limit_usd": 0.02, "period": "month" })))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = host.scoped("POST", scope, "/resolve", Some(pinned(true))).await;
    let capped_lease = answer["lease"]["id"].as_str().unwrap().to_owned();
    host.scoped("PUT", scope, budget_path, Some(json!({ "limit_usd": 0.01, "period": "month" })))
        .await;
    let mut response = host
        .forward(
            scope,
            &capped_lease,
            &format!("{base}/chat/completions"),
            json!({ "model": "gpt-5", "max_tokens": 10 }),
        )
        .await;
    assert_eq!(response.status(), 402);
    let refusal: Value = serde_json::from_str(&rest(&mut response).await).unwrap();
    assert_eq!(code(&refusal), "budget_exceeded", "{refusal}");
    assert_eq!(up.requests.load(Ordering::SeqCst), before, "nothing was sent");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_answer_compressed_against_the_request_is_not_relayed() {
    let (base, up) = upstream().await;
    let host = start().await;
    let scope = "acme/shop/prod";
    let lease = host.lease(scope, &base).await;
    let mut response = host
        .forward(scope, &lease, &format!("{base}/chat/completions"), json!({ "model": "gzip" }))
        .await;
    assert_eq!(response.status(), 502);
    let text = rest(&mut response).await;
    assert_no_secret(&text, KEY, "a compressed answer refused");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(code(&answer), "upstream_encoded", "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("content-encoding gzip"),
        "{answer}"
    );
    assert_eq!(up.requests.load(Ordering::SeqCst), 1);
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

//! A loopback upstream that records every request (method, path with query,
//! headers) and answers each provider's calls plausibly enough for the real
//! client libraries to succeed: OpenAI (models, chat completions, responses,
//! embeddings), Azure OpenAI (the same under `/openai/...`), Anthropic
//! (messages), Gemini (generateContent), Voyage (embeddings), Bedrock
//! (Converse) and Cohere (v2 chat); the OpenAI-compatible providers' calls
//! are OpenAI's under their own prefixes. Anything else gets a 404 naming the
//! path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as sent, percent-encoding kept.
    pub path: String,
    /// The query string, empty when none.
    pub query: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }
}

/// A running recording upstream.
pub struct RecordingUpstream {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub origin: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl RecordingUpstream {
    /// Starts it on 127.0.0.1 (a free port).
    pub async fn start() -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(answer).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        RecordingUpstream { origin: format!("http://{address}"), log }
    }

    /// Every request so far whose path starts with `prefix`.
    pub fn under(&self, prefix: &str) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

async fn answer(State(log): State<Arc<Mutex<Vec<Recorded>>>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect();
    log.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query,
        headers,
    });
    match reply_for(&method, &path) {
        Some(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({ "error": { "message": format!("the mock has no {method} {path}") } }),
            ),
        )
            .into_response(),
    }
}

/// The answer to `method path`, by how the path ends.
fn reply_for(method: &str, path: &str) -> Option<Value> {
    let post = method == "POST";
    Some(if method == "GET" && path.ends_with("/models") {
        json!({ "object": "list", "data": [
            { "id": "mock-model", "object": "model", "created": 0, "owned_by": "mock" }
        ] })
    } else if post && path.ends_with("/chat/completions") {
        json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": "mock-model",
            "choices": [{ "index": 0, "finish_reason": "stop",
                "message": { "role": "assistant", "content": "pong" } }],
            "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 }
        })
    } else if post && path.ends_with("/responses") {
        json!({
            "id": "resp_mock", "object": "response", "created_at": 0, "status": "completed",
            "model": "mock-model",
            "output": [{ "type": "message", "id": "msg_mock", "status": "completed",
                "role": "assistant",
                "content": [{ "type": "output_text", "text": "pong", "annotations": [] }] }],
            "usage": { "input_tokens": 1, "output_tokens": 1, "total_tokens": 2 }
        })
    } else if post && path.ends_with("/embeddings") {
        json!({
            "object": "list", "model": "mock-model",
            "data": [{ "object": "embedding", "index": 0, "embedding": [0.25, 0.5] }],
            "usage": { "prompt_tokens": 1, "total_tokens": 1 }
        })
    } else if post && path.ends_with("/messages") {
        json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": "mock-model",
            "content": [{ "type": "text", "text": "pong" }],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": { "input_tokens": 1, "output_tokens": 1 }
        })
    } else if post && path.ends_with(":generateContent") {
        json!({
            "candidates": [{ "index": 0, "finishReason": "STOP",
                "content": { "role": "model", "parts": [{ "text": "pong" }] } }],
            "usageMetadata": { "promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2 },
            "modelVersion": "mock-model"
        })
    } else if post && path.ends_with("/converse") {
        json!({
            "output": { "message": { "role": "assistant", "content": [{ "text": "pong" }] } },
            "stopReason": "end_turn",
            "usage": { "inputTokens": 1, "outputTokens": 1, "totalTokens": 2 },
            "metrics": { "latencyMs": 1 }
        })
    } else if post && path.ends_with("/v2/chat") {
        json!({
            "id": "chat-mock", "finish_reason": "COMPLETE",
            "message": { "role": "assistant", "content": [{ "type": "text", "text": "pong" }] },
            "usage": { "billed_units": { "input_tokens": 1, "output_tokens": 1 },
                "tokens": { "input_tokens": 1, "output_tokens": 1 } }
        })
    } else {
        return None;
    })
}

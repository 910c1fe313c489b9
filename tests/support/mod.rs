//! Shared by the API and browser tests: a mock OpenAI-compatible upstream
//! on loopback, and a small JSON client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
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

/// Starts the mock on 127.0.0.1; returns its base URL (`http://addr/v1`).
pub async fn mock_upstream() -> (String, Arc<MockLog>) {
    let log = Arc::new(MockLog::default());
    let app = Router::new().route("/v1/models", get(models)).with_state(log.clone());
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

/// The code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

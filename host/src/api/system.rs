//! Routes about the host itself: liveness, the bare authenticated ping,
//! the caller's identity, the loaded plugins, and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::extract::{Authed, OperatorCaller};

/// `GET /healthz`: the process answers.
pub async fn healthz(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "status": "ok", "plugins": state.resolver().registry().len() }))
}

/// `GET /v1/ping`: authentication and nothing else (the load benchmark's
/// bare handler).
pub async fn ping(Authed(_): Authed) -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// `GET /v1/whoami`: what the presented token is.
pub async fn whoami(Authed(caller): Authed) -> Json<Value> {
    let scope = caller.grant.scope().map(ToString::to_string);
    Json(json!({ "token_id": caller.token_id, "kind": caller.grant.kind(), "scope": scope }))
}

/// `GET /v1/plugins`: every loaded plugin and its manifest, and every refused
/// plugin with its reason.
pub async fn plugins(Authed(_): Authed, State(state): State<ApiState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .resolver()
        .registry()
        .iter()
        .map(|plugin| {
            json!({
                "id": plugin.id(),
                "api": plugin.api_version(),
                "sha256": plugin.sha256(),
                "origin": plugin.origin(),
                "manifest": plugin.manifest(),
            })
        })
        .collect();
    Json(json!({ "plugins": plugins, "refused": state.resolver().registry().refused() }))
}

/// `GET /metrics`: Prometheus text (operator token).
pub async fn metrics(OperatorCaller(_): OperatorCaller, State(state): State<ApiState>) -> Response {
    let mut response = super::metrics::render(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

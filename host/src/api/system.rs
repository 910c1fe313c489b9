//! Routes about the host itself: liveness, the bare authenticated ping,
//! the caller's identity, the loaded plugins, and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::{Pins, TokenKind};
use super::extract::{Authed, OperatorCaller};
use crate::provider::Manifest;
use crate::runtime::registry::RefusedPlugin;

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` while the process serves.
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
    /// How many plugins are loaded.
    pub plugins: usize,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "host",
    operation_id = "healthz",
    summary = "Liveness",
    description = "Answers while the process serves; no token.",
    responses((status = 200, description = "The host is up.", body = Liveness,
        example = json!({ "status": "ok", "plugins": 17 }))),
)]
pub async fn healthz(State(state): State<ApiState>) -> Json<Liveness> {
    Json(Liveness { status: "ok", plugins: state.resolver().registry().len() })
}

/// The answer of `GET /v1/ping`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pong {
    /// Always true: the token is valid.
    pub ok: bool,
}

/// `GET /v1/ping`: authentication and nothing else (the load benchmark's
/// bare handler).
#[utoipa::path(
    get,
    path = "/v1/ping",
    tag = "host",
    operation_id = "ping",
    summary = "Authenticated no-op",
    description = "Checks the token and answers; the load benchmark's bare handler.",
    responses((status = 200, description = "The token is valid.", body = Pong,
        example = json!({ "ok": true }))),
)]
pub async fn ping(Authed(_): Authed) -> Json<Pong> {
    Json(Pong { ok: true })
}

/// The answer of `GET /v1/whoami`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    /// The token's public id.
    pub token_id: String,
    /// Operator, admin or agent.
    pub kind: TokenKind,
    /// The scope of an admin or agent token; null for an operator token.
    pub scope: Option<String>,
    /// The token's default pins, provider slug to key id; absent when it
    /// has none.
    #[serde(skip_serializing_if = "Pins::is_empty")]
    #[schema(example = json!({ "openai": "OPENAI_API_KEY_2" }))]
    pub pins: Pins,
}

/// `GET /v1/whoami`: what the presented token is.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "tokens",
    operation_id = "whoami",
    summary = "The presented token",
    description = "Its id, kind, (for an admin or agent token) scope, and default pins (absent when it has none).",
    responses((status = 200, description = "The caller.", body = Whoami,
        example = json!({ "token_id": "3f2a9c01b7de", "kind": "operator", "scope": null }))),
)]
pub async fn whoami(Authed(caller): Authed) -> Json<Whoami> {
    Json(Whoami {
        token_id: caller.token_id.clone(),
        kind: caller.grant.kind(),
        scope: caller.grant.scope().map(ToString::to_string),
        pins: caller.pins,
    })
}

/// One loaded plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    /// `slug@version`.
    pub id: String,
    /// The contract version it was built against.
    pub api: &'static str,
    /// The sha256 of its component, hex.
    pub sha256: String,
    /// Where it was loaded from (`bundled:<slug>` or its file).
    pub origin: String,
    /// Its manifest.
    pub manifest: Manifest,
}

/// The answer of `GET /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plugins {
    /// The loaded plugins.
    pub plugins: Vec<PluginView>,
    /// The plugins refused at start, and why.
    pub refused: Vec<RefusedPlugin>,
}

/// `GET /v1/plugins`: every loaded plugin and its manifest, and every refused
/// plugin with its reason.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "host",
    operation_id = "plugins",
    summary = "Loaded plugins",
    description = "Every loaded provider plugin with its manifest (its variables, the names each client library reads them under, auth shape, model classes, default models, allowed hosts), and every plugin refused at start with its reason code.",
    responses((status = 200, description = "The plugins.", body = Plugins, example = json!({
        "plugins": [{
            "id": "openai@0.2.0", "api": "0.2.0", "sha256": "9b1c0e6f2a7d4c8e1f3a5b7c9d0e2f4a6b8c0d1e3f5a7b9c1d2e4f6a8b0c2d4e",
            "origin": "bundled:openai",
            "manifest": {
                "slug": "openai", "display_name": "OpenAI", "plugin_version": "0.2.0",
                "env_vars": [{ "name": "OPENAI_API_KEY", "role": "secret", "required": true, "description": "The API key." }],
                "auth": { "type": "bearer", "env_var": "OPENAI_API_KEY" },
                "model_classes": ["chat", "embedding"],
                "default_models": [{ "id": "gpt-5", "class": "chat", "display_name": "GPT-5" }],
                "allowed_hosts": ["api.openai.com"],
                "docs_url": "https://platform.openai.com/api-keys"
            }
        }],
        "refused": []
    }))),
)]
pub async fn plugins(Authed(_): Authed, State(state): State<ApiState>) -> Json<Plugins> {
    let registry = state.resolver().registry();
    let plugins = registry
        .iter()
        .map(|plugin| PluginView {
            id: plugin.id().to_owned(),
            api: plugin.api_version(),
            sha256: plugin.sha256().to_owned(),
            origin: plugin.origin().to_owned(),
            manifest: plugin.manifest().clone(),
        })
        .collect();
    Json(Plugins { plugins, refused: registry.refused().to_vec() })
}

/// `GET /metrics`: Prometheus text (operator token).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "host",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Resolves by outcome, fallbacks, probe verdicts by class, plugin call and probe latency, HTTP requests by route and status with latency, leases issued and released. Operator token.",
    responses((status = 200, description = "Prometheus text exposition 0.0.4.", body = String,
        content_type = "text/plain",
        example = json!("# HELP platos_plugins_loaded Loaded provider plugins.\n# TYPE platos_plugins_loaded gauge\nplatos_plugins_loaded 17\n"))),
)]
pub async fn metrics(OperatorCaller(_): OperatorCaller, State(state): State<ApiState>) -> Response {
    let tokens = state
        .tokens()
        .list()
        .await
        .map_err(|error| tracing::warn!(%error, "/metrics: no token counts (the token records did not answer)"))
        .ok();
    let mut response = super::metrics::render(&state, tokens.as_deref()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

//! Resolution for agents: resolve (the key, why, the lease and the env bag
//! with values), authorize a request with a lease's values, release a lease.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, lease_not_found};
use super::extract::{JsonBody, Scoped};
use super::scopes::check_key_name;
use crate::policy::client_env::EnvWarning;
use crate::provider::{ClientInfo, Credentials, HttpRequest, Method};
use crate::resolution::{ChosenBy, ChosenKey, ResolveRequest};
use crate::store::UnixMillis;

/// The body of `POST .../resolve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// The provider's slug.
    provider: String,
    /// A pinned key id (its variable name).
    #[serde(default)]
    pinned_key: Option<String>,
    /// Fail instead of falling back when the pin no longer exists.
    #[serde(default)]
    strict: bool,
    /// The client library whose names and forms the env bag takes, one of
    /// the provider's `clients` (e.g. `ai-sdk`); absent: its default client.
    #[serde(default)]
    client: Option<String>,
}

/// `POST .../resolve`: the key a turn spends, with a lease on its values.
/// The answer carries the env bag's values: it is for the agent only.
pub async fn resolve(
    scoped: Scoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> Result<Response, ApiError> {
    let pinned_key = body.pinned_key.filter(|pin| !pin.is_empty());
    if let Some(pin) = &pinned_key {
        check_key_name(pin)?;
    }
    let request = ResolveRequest {
        scope: scoped.scope.clone(),
        provider: body.provider.chars().take(128).collect(),
        pinned_key,
        strict: body.strict,
        client: body.client,
    };
    let resolution = state.resolver().resolve(&request).await?;
    let answer = ResolveAnswer {
        key: &resolution.key,
        chosen_by: resolution.chosen_by,
        warning: resolution.warning.as_deref(),
        lease: LeaseAnswer { id: &resolution.lease_id, expires_at: resolution.lease_expires_at },
        client: resolution.client.as_ref(),
        env: EnvBag(&resolution.env),
        warnings: &resolution.env_warnings,
    };
    Ok(Json(answer).into_response())
}

/// The answer to a resolve, serialized straight from the resolution.
#[derive(Serialize)]
struct ResolveAnswer<'a> {
    key: &'a ChosenKey,
    chosen_by: ChosenBy,
    warning: Option<&'a str>,
    lease: LeaseAnswer<'a>,
    client: Option<&'a ClientInfo>,
    env: EnvBag<'a>,
    warnings: &'a [EnvWarning],
}

#[derive(Serialize)]
struct LeaseAnswer<'a> {
    id: &'a str,
    expires_at: UnixMillis,
}

/// The env bag as a JSON object of names and values.
struct EnvBag<'a>(&'a Credentials);

impl Serialize for EnvBag<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.expose())
    }
}

/// A request as the API carries it: the body as text.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRequest {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` or `DELETE`.
    method: Method,
    /// The absolute URL.
    url: String,
    /// `[name, value]` pairs, in order.
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// The body, as text.
    #[serde(default)]
    body: Option<String>,
}

impl std::fmt::Debug for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest").field("method", &self.method).finish_non_exhaustive()
    }
}

/// The body of `POST .../leases/{lease}/authorize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    /// The request to authorize.
    request: ApiRequest,
}

/// `POST .../leases/{lease}/authorize`: the provider's plugin authorizes
/// the request with the values the lease holds (even after a rotation), so
/// the agent never needs the raw key.
pub async fn authorize(
    scoped: Scoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<AuthorizeBody>,
) -> Result<Json<Value>, ApiError> {
    let resolver = state.resolver();
    let lease = resolver.live_lease(&scoped.scope, scoped.param("lease")).await?;
    let request = body.request;
    if url::Url::parse(&request.url).is_err() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "request.url is not an absolute URL: expected e.g. https://api.openai.com/v1/chat/completions",
        ));
    }
    let request = HttpRequest {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body.map(String::into_bytes),
    };
    let started = Instant::now();
    let result = resolver.authorize_lease(&lease, &request, state.health().outbound()).await;
    let provider = lease.provider.as_str();
    let plugin_id = resolver.registry().get(provider).map_or(provider, |plugin| plugin.id());
    state.metrics().record_plugin_call(plugin_id, "authorize", started.elapsed());
    let authorized = result?;
    let out = ApiRequest {
        method: authorized.method,
        url: authorized.url.clone(),
        headers: authorized.headers.clone(),
        body: authorized.body.as_ref().map(|body| String::from_utf8_lossy(body).into_owned()),
    };
    Ok(Json(json!({ "request": out })))
}

/// `DELETE .../leases/{lease}`: ends a lease early, on every host sharing
/// the store (the release is durable before the answer).
pub async fn release(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    if state.resolver().release(&scoped.scope, scoped.param("lease")).await? {
        Ok(Json(json!({ "released": true })))
    } else {
        Err(lease_not_found())
    }
}

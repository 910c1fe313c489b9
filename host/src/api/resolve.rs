//! Resolution for agents: resolve (the key, why, the lease and the env bag
//! with values), authorize a request with a lease's values, release a lease.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, lease_not_found};
use super::extract::params::{LeaseParam, env_var_name_schema};
use super::extract::{JsonBody, Scoped};
use super::scopes::check_key_name;
use super::{ApiState, audit};
use crate::metering;
use crate::policy::client_env::EnvWarning;
use crate::policy::spend::PriceBasis;
use crate::provider::{ClientInfo, Credentials, HttpRequest, Method, MicroUsd, Usage};
use crate::resolution::leases::Lease;
use crate::resolution::{ChosenBy, ChosenKey, PinnedBy, RequestPin, ResolveRequest, effective_pin};
use crate::store::{AuditAction, UnixMillis};

/// A pin as a body or query carries it: a key id; absent for the calling
/// token's pin; null or empty for none at all.
pub fn pin_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let name = env_var_name_schema();
    let none = ObjectBuilder::new().schema_type(Type::Null);
    let empty = ObjectBuilder::new().schema_type(Type::String).max_length(Some(0));
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(name)
        .item(empty)
        .item(none)
        .description(Some(
            "A key id (its variable name, 400 `invalid_name` otherwise), e.g. OPENAI_API_KEY_2. Absent: the calling token's pin for the provider, if it has one (`pinned_by: token`); null or empty: no pin at all, whatever the token pins (the scope default).",
        ))
        .into()
}

/// The body of `POST .../resolve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// The provider's slug.
    provider: String,
    /// A pinned key id (its variable name): absent (`None`), the token's
    /// pin; null (`Some(None)`) or empty, none.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = pin_schema)]
    pinned_key: Option<Option<String>>,
    /// Fail instead of falling back when the pin no longer exists.
    #[serde(default)]
    strict: bool,
    /// The client library whose names and forms the env bag takes, one of
    /// the provider's `clients` (e.g. `ai-sdk`); absent: its default client.
    #[serde(default)]
    client: Option<String>,
}

/// A field that is present: `Some` of its value, null included (an absent
/// field is the `#[serde(default)]`, `None`).
fn present<'de, D: Deserializer<'de>>(field: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(field).map(Some)
}

/// `POST .../resolve`: the key a turn spends, with a lease on its values.
/// The answer carries the env bag's values: it is for the agent only.
#[utoipa::path(
    post,
    path = scoped!("/resolve"),
    tag = "resolution",
    operation_id = "resolve",
    summary = "Resolve a key for a turn",
    description = "`client` names the client library whose names and value forms the env bag takes (one of the provider's clients; its default otherwise); a value the client cannot be given, such as a base URL it would ignore, is listed in `warnings`. The pinned key, or the scope default (the lowest active variant). The pin is the request's `pinned_key`, or, when the request has no `pinned_key` field, the calling token's default pin for the provider (`pinned_by` says which; an explicit null or empty `pinned_key` opts out of the token's pin). A pin that no longer exists, is disabled or has nothing left of its own budget falls back to the default with a warning, or fails with `strict` (`pinned_key_missing`, `pinned_key_disabled`, `pinned_key_at_cap`); a disabled key is never spent. The answer holds a lease on the values read and carries the env bag with values: it is for the agent.",
    request_body(content = ResolveBody, description = "What to resolve.",
        example = json!({ "provider": "openai", "client": "ai-sdk" })),
    responses((status = 200, description = "The key, why, the lease and the env bag.", body = ResolveAnswer, example = json!({
        "key": { "provider": "openai", "key_id": "OPENAI_API_KEY", "variant": 1, "label": "OPENAI_API_KEY" },
        "chosen_by": "scope-default",
        "pinned_by": null,
        "warning": null,
        "lease": { "id": "5c1e0f9a2b7d4e6f8a9b0c1d2e3f4a5b", "expires_at": 1767226500000u64 },
        "client": { "id": "ai-sdk", "display_name": "Vercel AI SDK, @ai-sdk/openai" },
        "env": { "OPENAI_API_KEY": "sk-canary-0000-not-a-real-key" },
        "warnings": []
    }))),
)]
pub async fn resolve(
    scoped: Scoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> Result<Response, ApiError> {
    let provider: String = body.provider.chars().take(128).collect();
    let draft =
        audit::draft(AuditAction::Resolve, &scoped.caller).scope(&scoped.scope).provider(&provider);
    let request_pin = RequestPin::of(body.pinned_key.as_ref().map(Option::as_deref));
    let token_pin = scoped.caller.pins.get(&provider).cloned();
    let (pinned_key, pinned_by) = effective_pin(request_pin, token_pin.as_deref());
    let resolved = async {
        if let RequestPin::Key(pin) = request_pin {
            check_key_name(pin)?;
        }
        let request = ResolveRequest {
            scope: scoped.scope.clone(),
            pinned_key: pinned_key.map(str::to_owned),
            provider: provider.clone(),
            strict: body.strict,
            client: body.client,
        };
        Ok(state.resolver().resolve(&request).await?)
    }
    .await;
    let resolution = state.refuse_on(&draft, resolved).await?;
    // The values leave only once their record is written.
    let mut draft = draft
        .variable(&resolution.key.key_id)
        .variant(resolution.key.variant)
        .version(resolution.key_version)
        .detail("chosen_by", resolution.chosen_by.as_str());
    if let Some(pinned_by) = pinned_by {
        draft = draft.detail("pinned_by", pinned_by.as_str());
    }
    state.audit().allow(&draft).await.map_err(|error| audit::audit_unavailable(&error))?;
    let answer = ResolveAnswer {
        key: &resolution.key,
        chosen_by: resolution.chosen_by,
        pinned_by,
        warning: resolution.warning.as_deref(),
        lease: LeaseAnswer { id: &resolution.lease_id, expires_at: resolution.lease_expires_at },
        client: resolution.client.as_ref(),
        env: EnvBag(&resolution.env),
        warnings: &resolution.env_warnings,
    };
    Ok(Json(answer).into_response())
}

/// The answer to a resolve, serialized straight from the resolution.
#[derive(Serialize, ToSchema)]
pub struct ResolveAnswer<'a> {
    /// The key chosen.
    key: &'a ChosenKey,
    /// How it was chosen.
    chosen_by: ChosenBy,
    /// Who set the pin: `request` (its `pinned_key`), `token` (the calling
    /// token's pin for the provider), or null (no pin). Still set when the
    /// pin fell back (`chosen_by` says so).
    pinned_by: Option<PinnedBy>,
    /// Set when a pin fell back to the scope default.
    warning: Option<&'a str>,
    /// The lease on the values read.
    lease: LeaseAnswer<'a>,
    /// The client whose form the env bag has; null for a provider that
    /// lists no clients.
    client: Option<&'a ClientInfo>,
    /// The env bag in the client's form, with values: the manifest's plain
    /// names and every alias the client reads.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    env: EnvBag<'a>,
    /// Values the env bag cannot carry in the client's form; a base URL the
    /// client would ignore is always here.
    warnings: &'a [EnvWarning],
}

/// The lease of a resolve.
#[derive(Serialize, ToSchema)]
pub struct LeaseAnswer<'a> {
    /// Its id, for authorize and release.
    id: &'a str,
    /// When it expires, Unix milliseconds.
    #[schema(value_type = u64)]
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
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HttpRequest)]
pub struct ApiRequest {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` or `DELETE`.
    method: Method,
    /// The absolute URL (400 `invalid_request` otherwise).
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    /// The request to authorize.
    request: ApiRequest,
}

impl AuthorizeBody {
    /// The request to authorize, its URL checked to be absolute
    /// (400 `invalid_request` otherwise).
    pub(super) fn into_request(self) -> Result<HttpRequest, ApiError> {
        let request = self.request;
        if url::Url::parse(&request.url).is_err() {
            return Err(ApiError::bad_request(
                "invalid_request",
                "request.url is not an absolute URL: expected e.g. https://api.openai.com/v1/chat/completions",
            ));
        }
        Ok(HttpRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body.map(String::into_bytes),
        })
    }
}

/// The answer of `POST .../leases/{lease}/authorize`.
#[derive(Serialize, ToSchema)]
pub struct Authorized {
    /// The request with the provider's credentials added: send it as is.
    request: ApiRequest,
}

/// `POST .../leases/{lease}/authorize`: the provider's plugin authorizes
/// the request with the values the lease holds (even after a rotation), so
/// the agent never needs the raw key.
#[utoipa::path(
    post,
    path = scoped!("/leases/{lease}/authorize"),
    tag = "resolution",
    operation_id = "authorizeByLease",
    summary = "Authorize a request with a lease",
    description = "The provider's plugin adds its credentials to the request using the values the lease holds, even after a rotation; the caller's own auth headers are removed first. The host checks the destination against the provider's allowed hosts, and that the request carries secrets only where the provider's declared auth shape puts them. The lease must be live in this scope: not expired, not released on any host sharing the store, its key still linked and active, its value versions still kept (404 `lease_not_found`, the message saying which). For a provider with a token exchange (Vertex AI, Azure OpenAI with Entra ID) the request is signed with a short-lived access token the host obtained for exactly the leased values and caches in memory (502 `token_exchange_failed` when the token endpoint refuses or cannot be reached).",
    params(LeaseParam),
    request_body(content = AuthorizeBody, description = "The request to authorize.", example = json!({
        "request": { "method": "POST", "url": "https://api.openai.com/v1/chat/completions",
            "headers": [["content-type", "application/json"]], "body": "{\"model\":\"gpt-5\"}" }
    })),
    responses((status = 200, description = "The authorized request.", body = Authorized, example = json!({
        "request": { "method": "POST", "url": "https://api.openai.com/v1/chat/completions",
            "headers": [["content-type", "application/json"], ["authorization", "Bearer sk-canary-0000-not-a-real-key"]],
            "body": "{\"model\":\"gpt-5\"}" }
    }))),
)]
pub async fn authorize(
    scoped: Scoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<AuthorizeBody>,
) -> Result<Json<Authorized>, ApiError> {
    let resolver = state.resolver();
    let draft = audit::draft(AuditAction::Authorize, &scoped.caller).scope(&scoped.scope);
    let lease = state.refuse_on(&draft, live_lease(&state, &scoped).await).await?;
    let draft = audit::lease_fields(&state, draft, &lease);
    let request = state.refuse_on(&draft, body.into_request()).await?;
    let draft = audit::request_fields(draft, &request);
    let started = Instant::now();
    let result = resolver.authorize_lease(&lease, &request, state.health().outbound()).await;
    let provider = lease.provider.as_str();
    let plugin_id = resolver.registry().get(provider).map_or(provider, |plugin| plugin.id());
    state.metrics().record_plugin_call(plugin_id, "authorize", started.elapsed());
    let authorized = state.refuse_on(&draft, result.map_err(ApiError::from)).await?;
    // The signed request leaves only once its record is written.
    state.audit().allow(&draft).await.map_err(|error| audit::audit_unavailable(&error))?;
    let out = ApiRequest {
        method: authorized.method,
        url: authorized.url.clone(),
        headers: authorized.headers.clone(),
        body: authorized.body.as_ref().map(|body| String::from_utf8_lossy(body).into_owned()),
    };
    Ok(Json(Authorized { request: out }))
}

/// The live lease of the path ([`crate::resolution::Resolver::live_lease`]).
pub(super) async fn live_lease(state: &ApiState, scoped: &Scoped) -> Result<Lease, ApiError> {
    Ok(state.resolver().live_lease(&scoped.scope, scoped.param("lease")).await?)
}

/// The body of `DELETE .../leases/{lease}`, which is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The tokens the turn consumed calling the provider itself: their cost
    /// counts against the key's and the scope's budgets as a forward's does.
    usage: ReportedUsage,
}

/// Tokens an agent reports.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedUsage {
    /// Prompt tokens not served from a cache (cache writes included).
    #[serde(default)]
    input_tokens: u64,
    /// Completion tokens, reasoning included.
    #[serde(default)]
    output_tokens: u64,
    /// Prompt tokens served from a cache.
    #[serde(default)]
    cached_input_tokens: u64,
    /// The model that served them; absent or unknown: the provider's
    /// dearest priced default.
    #[serde(default)]
    model: Option<String>,
}

/// The answer of `DELETE .../leases/{lease}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Released {
    /// Always true.
    pub released: bool,
    /// What the reported usage was charged; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charged: Option<Charged>,
}

/// What reported usage was charged.
#[derive(Debug, Serialize, ToSchema)]
pub struct Charged {
    /// US dollars.
    #[schema(value_type = f64)]
    pub cost_usd: MicroUsd,
    /// How the price was found; null when the provider prices no model and
    /// its default reservation was charged.
    pub price: Option<PriceBasis>,
}

/// `DELETE .../leases/{lease}`: ends a lease early, on every host sharing
/// the store (the release is durable before the answer), with the usage
/// the agent reports, if any.
#[utoipa::path(
    delete,
    path = scoped!("/leases/{lease}"),
    tag = "resolution",
    operation_id = "releaseLease",
    summary = "Release a lease",
    description = "Ends a lease early (a turn finished), on every host sharing the store; durable before the answer. A second release, or one of an expired lease, is `lease_not_found` (and nothing it reports is counted, so a retried release never counts twice). An agent that called the provider itself reports the tokens it used in the optional body: their cost (at the model's listed price, else the provider's dearest priced default) is added to the spend of the key and its scope, durably before the answer, and counts against their budgets as a forward's does.",
    params(LeaseParam),
    request_body(content = Option<ReleaseBody>, description = "Optional: the usage to report.", example = json!({
        "usage": { "input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 0, "model": "gpt-5" }
    })),
    responses((status = 200, description = "Released.", body = Released,
        example = json!({ "released": true, "charged": { "cost_usd": 0.0045, "price": { "basis": "listed", "model": "gpt-5" } } }))),
)]
pub async fn release(
    scoped: Scoped,
    State(state): State<ApiState>,
    body: Option<JsonBody<ReleaseBody>>,
) -> Result<Json<Released>, ApiError> {
    let resolver = state.resolver();
    let Some(lease) = resolver.release(&scoped.scope, scoped.param("lease")).await? else {
        return Err(lease_not_found());
    };
    let Some(JsonBody(ReleaseBody { usage })) = body else {
        return Ok(Json(Released { released: true, charged: None }));
    };
    let usage = Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cached_input_tokens: usage.cached_input_tokens,
        model: usage.model.map(|model| model.chars().take(128).collect()),
    };
    let models = resolver
        .registry()
        .get(&lease.provider)
        .map(|plugin| plugin.manifest().default_models.clone())
        .unwrap_or_default();
    let (cost, price) = metering::record_reported(
        resolver.store(),
        state.metrics().spend(),
        &state.options().spend,
        &lease,
        &models,
        &usage,
    )
    .await?;
    Ok(Json(Released { released: true, charged: Some(Charged { cost_usd: cost, price }) }))
}

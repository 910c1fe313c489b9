//! Token management: list, create (operator, admin or agent tokens, with
//! default pins), revoke (operator tokens only); replace a token's pins (an
//! operator, or an admin token of the token's scope).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{
    Grant, MAX_PINS, Pins, PreparedToken, TokenError, TokenInfo, TokenKind, check_pins,
    label_schema, valid_label,
};
use super::error::ApiError;
use super::extract::params::{TokenIdParam, env_var_name_schema, string_schema};
use super::extract::{Authed, JsonBody, OperatorCaller, PathId};
use super::{ApiState, audit};
use crate::policy::names::{MAX_SLUG_LEN, slug_pattern};
use crate::scope::{MAX_SCOPE_ID_LEN, Scope, id_pattern};
use crate::store::AuditAction;
use crate::store::tokens::Revoked;

/// The answer of `GET /v1/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Every token's description; never a token.
    pub tokens: Vec<TokenInfo>,
}

/// `GET /v1/tokens`.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    operation_id = "listTokens",
    summary = "List tokens",
    description = "Every token's id, kind, scope, label, creation time and pins (absent when it has none); never the token. Operator token.",
    responses((status = 200, description = "The tokens.", body = TokenList, example = json!({
        "tokens": [
            { "id": "3f2a9c01b7de", "kind": "operator", "label": "first operator token", "created_at": 1767225600000u64 },
            { "id": "8c41d2e0a9f3", "kind": "agent", "scope": "acme/shop/prod", "label": "checkout-agent", "created_at": 1767225660000u64,
              "pins": { "openai": "OPENAI_API_KEY_2" } }
        ]
    }))),
)]
pub async fn list(
    OperatorCaller(_): OperatorCaller,
    State(state): State<ApiState>,
) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList { tokens: state.tokens().list().await.map_err(token_error)? }))
}

/// A scope as a token request names it: `organization/project/environment`,
/// or null (absent) for an operator token.
fn scope_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let id = id_pattern();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(format!("^{id}/{id}/{id}$")))
        .max_length(Some(3 * MAX_SCOPE_ID_LEN + 2))
        .description(Some("The scope an agent or admin token is bound to: `organization/project/environment` (400 `invalid_scope` otherwise)."))
        .into()
}

/// A token's pins as a JSON schema: an object of provider slugs to key ids
/// ([`check_pins`](super::auth::check_pins)).
fn pins_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(string_schema(slug_pattern(), MAX_SLUG_LEN)))
        .additional_properties(Some(env_var_name_schema()))
        .description(Some(format!(
            "Default pins, provider slug to key id (e.g. `{{\"openai\": \"OPENAI_API_KEY_2\"}}`), at most {MAX_PINS}; scope-bound (agent or admin) tokens only (400 `invalid_pins` naming the entry otherwise). A resolve with the token whose request names no pin spends the pinned key; a key the scope does not have (any more) falls back to the scope default with a warning, or fails with `strict`."
        )))
        .into()
}

/// The body of `POST /v1/tokens`: `{"operator": true}` (or `{"role":
/// "operator"}`), or `{"scope": "org/project/env"}` with an optional `role`
/// (`agent`, the default, or `admin`), optional `pins`, and an optional
/// label.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// An operator token.
    #[serde(default)]
    operator: bool,
    /// The scope an agent or admin token is bound to.
    #[serde(default)]
    #[schema(schema_with = scope_schema)]
    scope: Option<String>,
    /// With a scope: `agent` (the default: read and resolve) or `admin`
    /// (also change the scope's variables and keys); `operator` without a
    /// scope.
    #[serde(default)]
    role: Option<TokenKind>,
    /// A name for people.
    #[serde(default)]
    #[schema(schema_with = label_schema)]
    label: Option<String>,
    /// Default pins of an agent or admin token.
    #[serde(default)]
    #[schema(schema_with = pins_schema)]
    pins: Pins,
}

/// The answer of `POST /v1/tokens`.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token, shown this once: `platos_<id>_<secret>`.
    pub token: String,
    /// Its description.
    pub info: TokenInfo,
}

/// The answer of `DELETE /v1/tokens/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedToken {
    /// Always true.
    pub revoked: bool,
    /// The revoked token's id.
    pub id: String,
}

/// `POST /v1/tokens`: the token is in the answer, once.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    operation_id = "createToken",
    summary = "Create a token",
    description = "An operator token (`{\"operator\": true}` or `{\"role\": \"operator\"}`), or a token bound to one scope (`{\"scope\": \"org/project/env\"}`) with a `role`: `agent` (the default: read the scope and resolve in it) or `admin` (also set and unset variables, relabel, enable, disable and probe keys), and optional default `pins` (provider slug to key id: the key a resolve with this token spends when the request names no pin; without pins the token resolves the scope default). The token is in this answer only. Operator token.",
    request_body(content = CreateToken, description = "What to create.",
        example = json!({ "scope": "acme/shop/prod", "role": "agent", "label": "checkout-agent", "pins": { "openai": "OPENAI_API_KEY_2" } })),
    responses((status = 201, description = "Created; `token` is shown once.", body = CreatedToken, example = json!({
        "token": "platos_8c41d2e0a9f3_canary0example0not0a0real0token0000000000000000",
        "info": { "id": "8c41d2e0a9f3", "kind": "agent", "scope": "acme/shop/prod", "label": "checkout-agent", "created_at": 1767225660000u64,
            "pins": { "openai": "OPENAI_API_KEY_2" } }
    }))),
)]
pub async fn create(
    OperatorCaller(caller): OperatorCaller,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let draft = audit::draft(AuditAction::TokenCreate, &caller);
    let prepared = state.refuse_on(&draft, prepare(body)).await?;
    let draft = audit::token_draft(draft, &prepared.info());
    let issued = state
        .audited(&draft, async { state.tokens().insert(prepared).await.map_err(token_error) })
        .await?;
    tracing::info!(by = %caller.token_id, id = %issued.info.id, kind = ?issued.info.kind, scope = issued.info.scope.as_deref().unwrap_or("-"), pins = issued.info.pins.len(), "token created through the API");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken { token: issued.token.expose_secret().to_owned(), info: issued.info }),
    ))
}

/// The token a create request asks for, checked.
fn prepare(body: CreateToken) -> Result<PreparedToken, ApiError> {
    let scope = body
        .scope
        .map(|scope| {
            scope
                .parse::<Scope>()
                .map_err(|error| ApiError::bad_request("invalid_scope", error.to_string()))
        })
        .transpose()?;
    let kind = match (body.operator, body.role) {
        (true, None | Some(TokenKind::Operator)) => Some(TokenKind::Operator),
        (true, Some(_)) => None,
        (false, Some(role)) => Some(role),
        (false, None) => Some(TokenKind::Agent),
    };
    let grant = kind.and_then(|kind| Grant::new(kind, scope)).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_token_request",
            "expected {\"operator\": true} (or {\"role\": \"operator\"}) without a scope, or {\"scope\": \"organization/project/environment\"} with an optional \"role\": \"agent\" (the default: read and resolve) or \"admin\" (also change the scope's variables and keys); and an optional \"label\"",
        )
    })?;
    let label = body.label.unwrap_or_else(|| grant.default_label());
    if !valid_label(&label) {
        return Err(ApiError::bad_request("invalid_label", TokenError::InvalidLabel.to_string()));
    }
    PreparedToken::new(&grant, &label, body.pins).map_err(token_error)
}

/// `DELETE /v1/tokens/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "revokeToken",
    summary = "Revoke a token",
    description = "Takes effect at once. The last operator token cannot be revoked. Operator token.",
    params(TokenIdParam),
    responses((status = 200, description = "Revoked.", body = RevokedToken,
        example = json!({ "revoked": true, "id": "8c41d2e0a9f3" }))),
)]
pub async fn revoke(
    OperatorCaller(caller): OperatorCaller,
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<RevokedToken>, ApiError> {
    let not_found = || {
        ApiError::not_found("token_not_found", "no token has this id: GET /v1/tokens lists them")
    };
    let last_operator = || {
        ApiError::conflict(
            "last_operator_token",
            "this is the last operator token: create another operator token first, then revoke this one",
        )
    };
    let draft = audit::draft(AuditAction::TokenRevoke, &caller).subject(&id);
    let checked = match state.tokens().revocable(&id).await.map_err(token_error) {
        Ok(Ok(info)) => Ok(audit::token_draft(draft.clone(), &info)),
        Ok(Err(Revoked::LastOperator)) => Err(last_operator()),
        Ok(Err(_)) => Err(not_found()),
        Err(error) => Err(error),
    };
    let draft = state.refuse_on(&draft, checked).await?;
    state
        .audited(&draft, async {
            // Checked again in one step by the records: a revoke meanwhile.
            match state.tokens().revoke(&id).await.map_err(token_error)? {
                Revoked::Revoked => Ok(()),
                Revoked::NotFound => Err(not_found()),
                Revoked::LastOperator => Err(last_operator()),
            }
        })
        .await?;
    tracing::info!(by = %caller.token_id, %id, "token revoked through the API");
    Ok(Json(RevokedToken { revoked: true, id }))
}

/// The body of `PUT /v1/tokens/{id}/pins`: the token's whole new map of
/// pins, provider slug to key id (`{}`: none).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct PinsBody(Pins);

impl utoipa::PartialSchema for PinsBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        pins_schema().into()
    }
}

impl ToSchema for PinsBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Pins".into()
    }
}

/// `PUT /v1/tokens/{id}/pins`: replaces a token's pins.
#[utoipa::path(
    put,
    path = "/v1/tokens/{id}/pins",
    tag = "tokens",
    operation_id = "setTokenPins",
    summary = "Replace a token's pins",
    description = "The body is the token's whole new map of default pins, provider slug to key id (`{}` removes them all); it takes effect at the token's next resolve. An operator token, or an admin token of the token's scope: an agent token cannot change pins, not even its own (403 `admin_only`), and to an admin token a token of another scope, or an operator token, is `token_not_found`, like one that does not exist. Only scope-bound tokens carry pins (400 `invalid_pins` naming the entry).",
    params(TokenIdParam),
    request_body(content = PinsBody, description = "The new pins.",
        example = json!({ "openai": "OPENAI_API_KEY_2", "anthropic": "ANTHROPIC_API_KEY" })),
    responses((status = 200, description = "The token with its new pins.", body = TokenInfo, example = json!({
        "id": "8c41d2e0a9f3", "kind": "agent", "scope": "acme/shop/prod", "label": "checkout-agent", "created_at": 1767225660000u64,
        "pins": { "anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY_2" }
    }))),
)]
pub async fn set_pins(
    Authed(caller): Authed,
    State(state): State<ApiState>,
    PathId(id): PathId,
    JsonBody(PinsBody(pins)): JsonBody<PinsBody>,
) -> Result<Json<TokenInfo>, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "token_not_found",
            "no token has this id (a scope-bound token sees only its own scope's tokens): GET /v1/tokens lists them",
        )
    };
    let draft = audit::draft(AuditAction::TokenPins, &caller).subject(&id);
    let checked = async {
        let info = state.tokens().get(&id).await.map_err(token_error)?.ok_or_else(not_found)?;
        let scope = info.scope.as_deref().and_then(|scope| scope.parse::<Scope>().ok());
        if !caller.is_operator() && !scope.as_ref().is_some_and(|scope| caller.can_access(scope))
        {
            return Err(not_found());
        }
        if !caller.is_operator()
            && !scope.as_ref().is_some_and(|scope| caller.can_administer(scope))
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "changing a token's pins needs an admin token of its scope or an operator token; an agent token cannot change pins, not even its own",
            ));
        }
        check_pins(info.kind, &pins).map_err(token_error)?;
        Ok(info)
    }
    .await;
    let info = state.refuse_on(&draft, checked).await?;
    let draft = audit::token_draft(draft, &TokenInfo { pins: pins.clone(), ..info });
    let updated = state
        .audited(&draft, async {
            state.tokens().set_pins(&id, pins).await.map_err(token_error)?.ok_or_else(not_found)
        })
        .await?;
    tracing::info!(by = %caller.token_id, id = %updated.id, pins = updated.pins.len(), "token pins replaced through the API");
    Ok(Json(updated))
}

/// A token error as the API answers it: a broken rule is a 400, and the
/// token records failing is what a store failure is (503
/// `store_unavailable` when the database cannot be reached, else 500
/// `store_error`, logged).
pub(super) fn token_error(error: TokenError) -> ApiError {
    match error {
        TokenError::InvalidLabel | TokenError::InvalidPins(_) => {
            ApiError::bad_request(error.code(), error.to_string())
        }
        TokenError::Store(error) => error.into(),
    }
}

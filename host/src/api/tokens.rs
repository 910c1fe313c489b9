//! Token management (operator tokens only): list, create (operator, admin
//! or agent tokens), revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::auth::{Grant, TokenError, TokenKind, valid_label};
use super::error::ApiError;
use super::extract::{JsonBody, OperatorCaller, PathId};
use crate::scope::Scope;

/// `GET /v1/tokens`.
pub async fn list(OperatorCaller(_): OperatorCaller, State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "tokens": state.tokens().list() }))
}

/// The body of `POST /v1/tokens`: `{"operator": true}` (or `{"role":
/// "operator"}`), or `{"scope": "org/project/env"}` with an optional `role`
/// (`agent`, the default, or `admin`), and an optional label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// An operator token.
    #[serde(default)]
    operator: bool,
    /// The scope an agent or admin token is bound to.
    #[serde(default)]
    scope: Option<String>,
    /// `operator`, `agent` or `admin`.
    #[serde(default)]
    role: Option<TokenKind>,
    /// A name for people.
    #[serde(default)]
    label: Option<String>,
}

/// `POST /v1/tokens`: the token is in the answer, once.
pub async fn create(
    OperatorCaller(caller): OperatorCaller,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let tokens = state.clone();
    let issued = tokio::task::spawn_blocking(move || tokens.tokens().create(&grant, &label))
        .await
        .map_err(|_| token_store_failed())?
        .map_err(token_error)?;
    tracing::info!(by = %caller.token_id, id = %issued.info.id, kind = ?issued.info.kind, scope = issued.info.scope.as_deref().unwrap_or("-"), "token created through the API");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": issued.token.expose_secret(), "info": issued.info })),
    ))
}

/// `DELETE /v1/tokens/{id}`.
pub async fn revoke(
    OperatorCaller(caller): OperatorCaller,
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let not_found = || {
        ApiError::not_found("token_not_found", "no token has this id: GET /v1/tokens lists them")
    };
    let info = state.tokens().get(&id).ok_or_else(not_found)?;
    if info.kind == TokenKind::Operator && state.tokens().operator_count() <= 1 {
        return Err(ApiError::conflict(
            "last_operator_token",
            "this is the last operator token: create another operator token first, then revoke this one",
        ));
    }
    let tokens = state.clone();
    let revoked = tokio::task::spawn_blocking(move || tokens.tokens().revoke(&id))
        .await
        .map_err(|_| token_store_failed())?
        .map_err(token_error)?;
    if !revoked {
        return Err(not_found());
    }
    tracing::info!(by = %caller.token_id, id = %info.id, "token revoked through the API");
    Ok(Json(json!({ "revoked": true, "id": info.id })))
}

fn token_error(error: TokenError) -> ApiError {
    match error {
        TokenError::InvalidLabel => ApiError::bad_request("invalid_label", error.to_string()),
        other => {
            tracing::error!(error = %other, "token database error");
            token_store_failed()
        }
    }
}

fn token_store_failed() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        "the token database could not complete the operation; the host's log says why",
    )
}

//! Extractors that answer every rejection with the API's JSON error: the
//! caller (token), the caller in a scope, JSON bodies and query strings.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, redact_quoted};
use crate::scope::Scope;

/// The verified caller of any authenticated route.
#[derive(Debug, Clone)]
pub struct Authed(pub Caller);

impl FromRequestParts<ApiState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "missing_token",
                "this route needs a token: send `Authorization: Bearer <token>` (the operator token is in <data dir>/operator.token; agent tokens come from `platos-host token create --scope org/project/env`)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|text| {
                let (scheme, token) = text.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .unwrap_or("");
        let caller = state.tokens().verify(token).await.map_err(super::tokens::token_error)?;
        caller.map(Authed).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is malformed, unknown or revoked: expected `Authorization: Bearer platos_<id>_<secret>`",
            )
        })
    }
}

/// An operator caller; any other token gets 403.
#[derive(Debug, Clone)]
pub struct OperatorCaller(pub Caller);

impl FromRequestParts<ApiState> for OperatorCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Authed(caller) = Authed::from_request_parts(parts, state).await?;
        if caller.is_operator() {
            Ok(OperatorCaller(caller))
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "operator_only",
                "this route needs an operator token; agent and admin tokens reach only their scope's routes under /v1/scopes/{organization}/{project}/{environment}",
            ))
        }
    }
}

/// A caller acting in the scope of the path
/// (`/v1/scopes/{organization}/{project}/{environment}/...`), and the path's
/// other parameters. A token may see only the scopes it is bound to; any
/// other scope gets the one answer a nonexistent scope gets.
#[derive(Debug, Clone)]
pub struct Scoped {
    /// The caller.
    pub caller: Caller,
    /// The path's scope.
    pub scope: Scope,
    /// Every path parameter.
    pub params: HashMap<String, String>,
}

impl Scoped {
    /// The path parameter `name` (the router guarantees it exists).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }
}

impl FromRequestParts<ApiState> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Authed(caller) = Authed::from_request_parts(parts, state).await?;
        let params = path_params(parts, state).await?;
        let part = |name: &str| params.get(name).map_or("", String::as_str);
        let scope = Scope::new(part("organization"), part("project"), part("environment"))
            .map_err(|error| ApiError::bad_request("invalid_scope", error.to_string()))?;
        if !caller.can_access(&scope) {
            return Err(ApiError::scope_not_found());
        }
        Ok(Scoped { caller, scope, params })
    }
}

/// A caller allowed to change the scope of the path: an operator, or an
/// admin token of that scope. The scope is checked first, so a token of
/// another scope still gets the answer of a scope that does not exist; an
/// agent token of this scope gets 403 `admin_only`.
#[derive(Debug, Clone)]
pub struct AdminScoped(pub Scoped);

impl FromRequestParts<ApiState> for AdminScoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let scoped = Scoped::from_request_parts(parts, state).await?;
        if scoped.caller.can_administer(&scoped.scope) {
            Ok(AdminScoped(scoped))
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "admin_only",
                "this route changes the scope (its variables, its keys' labels, status and budgets, or a probe of a key): it needs an admin token of this scope or an operator token; an agent token reads and resolves only (an operator creates admin tokens: POST /v1/tokens with {\"scope\": \"...\", \"role\": \"admin\"})",
            ))
        }
    }
}

/// The path parameters, or a JSON 400.
pub async fn path_params(
    parts: &mut Parts,
    state: &ApiState,
) -> Result<HashMap<String, String>, ApiError> {
    Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|Path(params)| params)
        .map_err(|rejection| {
            ApiError::bad_request(
                "invalid_path",
                format!(
                    "the path is malformed ({}): expected UTF-8 segments",
                    redact_quoted(&rejection.body_text())
                ),
            )
        })
}

/// A JSON object body of `T`, within the body limit. A `Content-Type`, when
/// sent, must be JSON (`application/json`, or a `+json` type); a body that
/// is valid JSON but not an object (an array, a string) is refused, since
/// serde would read a struct from an array.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// Whether a `Content-Type` value names JSON.
fn is_json_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned> FromRequest<ApiState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, ApiError> {
        let bytes = json_bytes(request, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the body is empty: this route expects a JSON object",
            ));
        }
        parse_json_object(&bytes).map(JsonBody)
    }
}

/// `Option<JsonBody<T>>`: no body at all is `None`; a body is read as
/// [`JsonBody`] reads it.
impl<T: DeserializeOwned> OptionalFromRequest<ApiState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Option<Self>, ApiError> {
        let bytes = json_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_json_object(&bytes).map(|value| Some(JsonBody(value)))
    }
}

/// The body of a request whose `Content-Type`, if any, names JSON, within
/// the body limit.
async fn json_bytes(request: Request, state: &ApiState) -> Result<Bytes, ApiError> {
    if let Some(content_type) = request.headers().get(header::CONTENT_TYPE)
        && !content_type.to_str().is_ok_and(is_json_type)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON: send Content-Type: application/json (curl: -H 'content-type: application/json')",
        ));
    }
    let limit = state.options().body_limit;
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request("invalid_body", "the body could not be read")
        }
    })
}

/// `bytes` as the JSON object `T`, or an error that says what is expected
/// without quoting any value of the body.
fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the body is not a JSON object: this route expects {...}; see /openapi.json",
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "the body is not the JSON this route expects: {}; see /openapi.json",
                redact_quoted(&error.to_string())
            ),
        )
    })
}

/// A query string of `T`.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|rejection| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "the query string is malformed: {}; see /openapi.json",
                        redact_quoted(&rejection.body_text())
                    ),
                )
            })
    }
}

/// The `{id}` of a route such as `/v1/tokens/{id}`.
pub struct PathId(pub String);

impl FromRequestParts<ApiState> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(PathId(params.get("id").cloned().unwrap_or_default()))
    }
}

/// The OpenAPI descriptions of the path parameters, each with the rule its
/// extractor or handler enforces (taken from the rule's own constants).
pub mod params {
    use utoipa::IntoParams;
    use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Required, Schema};

    use crate::policy::names::{MAX_ENV_VAR_LEN, MAX_SLUG_LEN, env_var_name_pattern, slug_pattern};
    use crate::scope::{MAX_SCOPE_ID_LEN, ScopePart, id_pattern};

    fn path_parameter(
        name: &str,
        description: &str,
        example: serde_json::Value,
        schema: Schema,
    ) -> Parameter {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(schema))
            .example(Some(example))
            .build()
    }

    /// An optional query parameter.
    pub fn query_parameter(
        name: &str,
        description: &str,
        example: serde_json::Value,
        schema: Schema,
    ) -> Parameter {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema))
            .example(Some(example))
            .build()
    }

    /// A string schema of `pattern`, at most `max_length` characters.
    pub fn string_schema(pattern: String, max_length: usize) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .min_length(Some(1))
            .max_length(Some(max_length))
            .into()
    }

    /// A variable name: the store's name rule.
    pub fn env_var_name_schema() -> Schema {
        string_schema(env_var_name_pattern(), MAX_ENV_VAR_LEN)
    }

    /// The three ids of `/v1/scopes/{organization}/{project}/{environment}`,
    /// as [`super::Scoped`] checks them.
    pub fn scope_parameters() -> Vec<Parameter> {
        let schema = || string_schema(format!("^{}$", id_pattern()), MAX_SCOPE_ID_LEN);
        [
            (ScopePart::Organization, "acme"),
            (ScopePart::Project, "shop"),
            (ScopePart::Environment, "prod"),
        ]
        .into_iter()
        .map(|(part, example)| {
            let name = part.to_string();
            let description = format!(
                "The {name} id: 1-{MAX_SCOPE_ID_LEN} characters of A-Z a-z 0-9 _ . - (400 `invalid_scope` otherwise)."
            );
            path_parameter(&name, &description, example.into(), schema())
        })
        .collect()
    }

    macro_rules! path_param {
        ($(#[$doc:meta])* $type:ident, $name:literal, $description:literal, $example:expr, $schema:expr) => {
            $(#[$doc])*
            pub struct $type;

            impl IntoParams for $type {
                fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                    vec![path_parameter($name, $description, $example.into(), $schema)]
                }
            }
        };
    }

    path_param!(
        /// `{provider}`: a loaded provider's slug.
        ProviderParam,
        "provider",
        "A loaded provider's slug (404 `unknown_provider` when none is loaded under it).",
        "openai",
        string_schema(slug_pattern(), MAX_SLUG_LEN)
    );
    path_param!(
        /// `{key}`: a key id, its variable's name.
        KeyParam,
        "key",
        "A key id: the key's variable name (404 `key_not_found` when the provider has no such key in the scope).",
        "OPENAI_API_KEY",
        env_var_name_schema()
    );
    path_param!(
        /// `{name}`: a variable's name.
        VarNameParam,
        "name",
        "The variable's name (400 `invalid_name` when it breaks the rule).",
        "OPENAI_API_KEY",
        env_var_name_schema()
    );
    path_param!(
        /// `{lease}`: a lease id from a resolve.
        LeaseParam,
        "lease",
        "A lease id from a resolve: a URL-safe token the host verifies (its MAC), used as is (404 `lease_not_found` when it is not live in the scope).",
        "AcbYJ2x9Ue1Wq0mF3oKZ7fQAAAGUr8hJAAABlLNqfUAOYWNtZS9zaG9wL3Byb2Q",
        ObjectBuilder::new().schema_type(Type::String).into()
    );
    path_param!(
        /// `{id}` of `/v1/tokens/{id}`: a token's public id.
        TokenIdParam,
        "id",
        "The token's public id (the `<id>` in `platos_<id>_<secret>`).",
        "3f2a9c01b7de",
        ObjectBuilder::new().schema_type(Type::String).into()
    );
    path_param!(
        /// `{id}` of `/v1/health/rounds/{id}`: a round's id.
        RoundIdParam,
        "id",
        "The round's id.",
        1,
        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).into()
    );
}

#[cfg(test)]
mod tests {
    use super::is_json_type;

    #[test]
    fn json_content_types() {
        for json in
            ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"]
        {
            assert!(is_json_type(json), "{json}");
        }
        for other in
            ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "json", ""]
        {
            assert!(!is_json_type(other), "{other}");
        }
    }
}

//! The API's one error shape: `{"error": {"code": "...", "message": "..."}}`
//! with a stable code and a message that says what was wrong and what is
//! expected. Messages never carry a secret: the domain errors they come from
//! never hold values, and server faults are logged and answered in general
//! terms.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::resolution::{LeaseError, ResolveError};
use crate::runtime::{CallError, CallErrorKind};
use crate::store::StoreError;

/// Every error code the API answers with, for the OpenAPI document and the
/// tests.
pub const ERROR_CODES: &[(&str, u16, &str)] = &[
    ("missing_token", 401, "no `Authorization: Bearer <token>` header"),
    ("invalid_token", 401, "the token is malformed, unknown or revoked"),
    ("operator_only", 403, "the route needs an operator token"),
    (
        "admin_only",
        403,
        "the route changes the scope's variables, keys or tokens' pins: it needs an admin token of the scope or an operator token",
    ),
    ("scope_not_found", 404, "the scope does not exist or the token is not bound to it"),
    ("route_not_found", 404, "no route has this path"),
    ("method_not_allowed", 405, "the path exists, the method does not"),
    ("invalid_scope", 400, "the path's scope is not organization/project/environment"),
    ("invalid_path", 400, "a path segment is not valid UTF-8 or is malformed"),
    ("invalid_query", 400, "a query parameter is malformed"),
    ("invalid_body", 400, "the body could not be read"),
    ("invalid_json", 400, "the body is not the JSON this route expects"),
    ("body_too_large", 413, "the body is larger than the limit"),
    ("unsupported_media_type", 415, "the body's Content-Type is not JSON"),
    ("invalid_name", 400, "a variable name breaks the variable-name rule"),
    ("reserved_name", 400, "the name is the host's master key"),
    ("empty_value", 400, "a variable's value is empty"),
    ("invalid_value", 400, "a host setting's value is not one it accepts"),
    ("value_too_large", 413, "a variable's value is larger than the store accepts"),
    ("invalid_label", 400, "a key label is empty, too long or has control characters"),
    ("invalid_class", 400, "`class` is not a model class"),
    ("invalid_budget", 400, "a budget's limit or period is not one the host accepts"),
    ("invalid_request", 400, "the request to authorize is malformed"),
    (
        "invalid_token_request",
        400,
        "a token request's operator, role and scope do not fit together",
    ),
    (
        "invalid_pins",
        400,
        "a token's pins break a rule (a provider slug to a key id, scope-bound tokens only); the message names the entry",
    ),
    ("managed_by_self_host", 409, "the variable is managed by the self-host configuration"),
    ("unknown_provider", 404, "no loaded plugin has this slug"),
    ("unknown_client", 400, "`client` is not one of the provider's client libraries"),
    ("no_key_linked", 404, "the provider has no active key in the scope"),
    ("pinned_key_missing", 404, "a strict pin names a key that no longer exists"),
    ("pinned_key_disabled", 409, "a strict pin names a key that is disabled"),
    ("pinned_key_at_cap", 409, "a strict pin names a key with nothing left of its budget"),
    (
        "budget_exceeded",
        402,
        "the most the request can cost does not fit the key's or the scope's budget; nothing was sent",
    ),
    ("all_keys_disabled", 409, "every key of the provider in the scope is disabled"),
    ("key_not_found", 404, "the provider has no such key in the scope"),
    ("variable_not_set", 404, "the variable is not set in the scope"),
    (
        "lease_not_found",
        404,
        "the lease does not exist in this scope, expired, was released, or its key was disabled or its value versions are no longer kept",
    ),
    ("lease_too_large", 409, "the key's env bag has more variables set than a lease holds"),
    ("token_not_found", 404, "no token has this id"),
    ("round_not_found", 404, "no kept health round has this id"),
    ("last_operator_token", 409, "the last operator token cannot be revoked"),
    ("missing_variable", 409, "the key needs a variable that is not set"),
    ("plugin_error", 422, "the plugin refused the request"),
    ("refused_request", 422, "the plugin described a request the host refuses to send"),
    (
        "secret_out_of_place",
        422,
        "the request would carry a secret where the provider's declared auth shape does not put it; not signed, not sent",
    ),
    (
        "token_exchange_failed",
        502,
        "the provider's token endpoint gave the key no access token (refused, unreachable or failing); the message says which",
    ),
    ("plugin_failed", 502, "the plugin broke a limit (CPU, memory, time, output) or trapped"),
    (
        "upstream_unreachable",
        502,
        "a forwarded request got no answer from the provider (DNS, connect, timeout); the message says why",
    ),
    (
        "upstream_encoded",
        502,
        "the provider answered compressed although the host asked for identity; the host relays only answers it can check for echoed secrets",
    ),
    ("store_error", 500, "the store failed; the host's log says why"),
    (
        "store_unavailable",
        503,
        "the store (the database) cannot be reached right now; nothing was changed, retry after the Retry-After seconds",
    ),
    (
        "audit_unavailable",
        503,
        "the action's audit record could not be written (a full disk under the audit log or the trail); nothing was done, and the message says which device failed and why (a trail in a database that cannot be reached answers `store_unavailable`)",
    ),
    ("request_timeout", 503, "the request took longer than the host allows"),
    (
        "too_many_connections",
        503,
        "the server holds its maximum of connections; the connection is closed, retry shortly",
    ),
];

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// The code and message of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail<'a> {
    /// The stable code (one of [`ERROR_CODES`]).
    pub code: &'a str,
    /// What was wrong and what is expected. Never a secret.
    pub message: &'a str,
}

impl utoipa::PartialSchema for ErrorBody<'_> {
    /// The error schema whose `code` may be any of `codes`.
    fn schema() -> RefOr<Schema> {
        error_schema(ERROR_CODES.iter().map(|(code, _, _)| *code))
    }
}

impl utoipa::ToSchema for ErrorBody<'_> {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// The error schema whose `code` is one of `codes` (all of
/// [`ERROR_CODES`] for the `Error` component; the few a route answers with
/// for its responses).
pub fn error_schema<'a>(codes: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes))
        .description(Some("Stable; branch on it."));
    let message = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("What was wrong and what is expected; never a secret."));
    let detail = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("code", code)
        .required("code")
        .property("message", message)
        .required("message");
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("error", detail)
        .required("error")
        .description(Some("Every error answer: a stable code and a message for people."))
        .into()
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (one of [`ERROR_CODES`]).
    pub code: &'static str,
    /// What was wrong and what is expected. Never a secret.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// The one answer for a scope the token may not see, whether or not it
    /// exists: it never names the scope, so two such answers are identical.
    pub fn scope_not_found() -> Self {
        ApiError::not_found(
            "scope_not_found",
            "the scope in the path does not exist or this token is not bound to it: an agent token reaches only its own organization/project/environment",
        )
    }

    /// A server-side store fault: logged in full, answered in general terms.
    fn store(error: &StoreError) -> Self {
        tracing::error!(%error, "store error while answering an API request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            "the store could not complete the operation; the host's log says why",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"platos-host\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::InvalidName(_) => ApiError::bad_request("invalid_name", error.to_string()),
            StoreError::ReservedName(_) => {
                ApiError::bad_request("reserved_name", error.to_string())
            }
            StoreError::ValueTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "value_too_large", error.to_string())
            }
            StoreError::ManagedBySelfHost { .. } => {
                ApiError::conflict("managed_by_self_host", error.to_string())
            }
            StoreError::Unavailable(_) => {
                tracing::warn!(%error, "the store is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store cannot be reached right now (the database is down or restarting); nothing was changed, retry shortly",
                )
            }
            StoreError::Crypto { .. }
            | StoreError::Corrupt(_)
            | StoreError::Format { .. }
            | StoreError::KeyMismatch { .. }
            | StoreError::Backend(_) => ApiError::store(&error),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> Self {
        let (code, message) = (error.code(), error.to_string());
        match error {
            ResolveError::Store(error) => error.into(),
            ResolveError::UnknownProvider { .. }
            | ResolveError::NoKeyLinked { .. }
            | ResolveError::PinnedKeyMissing { .. }
            | ResolveError::KeyNotFound { .. } => ApiError::not_found(code, message),
            ResolveError::MissingVariable { .. }
            | ResolveError::LeaseTooLarge { .. }
            | ResolveError::PinnedKeyDisabled { .. }
            | ResolveError::PinnedKeyAtCap { .. }
            | ResolveError::AllKeysDisabled { .. } => ApiError::conflict(code, message),
            ResolveError::UnknownClient(_) => ApiError::bad_request(code, message),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(error: CallError) -> Self {
        let message = error.to_string();
        match &error.kind {
            CallErrorKind::Provider(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "plugin_error", message)
            }
            CallErrorKind::Refused(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused_request", message)
            }
            CallErrorKind::SecretOutOfPlace { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "secret_out_of_place", message)
            }
            _ => {
                tracing::warn!(%error, "a plugin call failed while answering an API request");
                ApiError::new(StatusCode::BAD_GATEWAY, "plugin_failed", message)
            }
        }
    }
}

impl From<LeaseError> for ApiError {
    fn from(error: LeaseError) -> Self {
        match error {
            LeaseError::Unknown => lease_not_found(),
            // A genuine lease of this scope: the message says which check failed.
            LeaseError::Expired { .. }
            | LeaseError::Released
            | LeaseError::KeyInactive { .. }
            | LeaseError::VersionGone { .. } => {
                ApiError::not_found("lease_not_found", error.to_string())
            }
            LeaseError::Plugin(error) => error.into(),
            LeaseError::TokenExchange(error) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "token_exchange_failed", error.to_string())
            }
            LeaseError::Store(error) => error.into(),
        }
    }
}

/// The answer for a forward whose reservation does not fit a budget:
/// nothing was sent. The message names the key or scope, the cap and what
/// is left.
pub fn budget_exceeded(exceeded: &crate::store::BudgetExceeded) -> ApiError {
    ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "budget_exceeded",
        format!("{exceeded}; nothing was sent"),
    )
}

/// The answer for a lease that is not live in the path's scope (it never
/// echoes the id).
pub fn lease_not_found() -> ApiError {
    ApiError::not_found(
        "lease_not_found",
        "no live lease with this id in this scope: it expired, was released, or is not a lease of this scope; resolve again",
    )
}

/// A parser's message about a body without any value from it: double-quoted
/// parts become `"…"`, and the unexpected value of serde's `invalid type:`
/// and `invalid value:` messages is reduced to its kind (`integer`,
/// `string`, …). Field names (in backticks) stay: they say what is expected.
pub fn redact_quoted(text: &str) -> String {
    let text = redact_unexpected(text);
    let text = text.as_str();
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push('…');
    }
    out
}

/// `invalid type: integer `1`, expected a string` → `invalid type: integer, expected a string`.
fn redact_unexpected(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["invalid type: ", "invalid value: "]
        .iter()
        .filter_map(|marker| rest.find(marker).map(|at| (at, marker.len())))
        .min()
    {
        let (at, len) = start;
        out.push_str(&rest[..at + len]);
        rest = &rest[at + len..];
        let end = rest.find(", expected").unwrap_or(rest.len());
        let kind = rest[..end].split_whitespace().next().unwrap_or("value");
        out.push_str(kind.trim_matches(|c: char| !c.is_ascii_alphanumeric()));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_parts_are_redacted() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "sk-secret", expected a boolean"#),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(redact_quoted("unknown field `valu`"), "unknown field `valu`");
        assert_eq!(redact_quoted(r#"bad "sk-secret" here"#), r#"bad "…" here"#);
        assert_eq!(redact_quoted(r#"open "sk"#), r#"open "…"#);
        assert_eq!(
            redact_quoted(
                "invalid type: integer `12345678`, expected a string at line 1 column 18"
            ),
            "invalid type: integer, expected a string at line 1 column 18"
        );
        assert_eq!(
            redact_quoted("invalid value: string \"x\", expected one of `a`"),
            "invalid value: string, expected one of `a`"
        );
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<&str> = ERROR_CODES.iter().map(|(code, _, _)| *code).collect();
        codes.sort();
        let before = codes.len();
        codes.dedup();
        assert_eq!(before, codes.len());
    }
}

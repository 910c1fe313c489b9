//! The HTTP API for agents and operators, and the providers page.
//!
//! - [`router`] builds the axum router over an [`ApiState`]; [`routes`]
//!   lists every route. Both, and the OpenAPI document, come from one
//!   route table: each handler's `#[utoipa::path]` names its method, path,
//!   parameters, body and answer types with examples.
//! - [`auth`]: operator tokens and per-scope admin and agent tokens, stored
//!   hashed.
//! - [`error`]: the one JSON error shape and its stable codes.
//! - [`extract`]: extractors whose rejections are JSON errors.
//! - [`metrics`], [`openapi`], [`page`]: `/metrics`, `/openapi.json`, `/`.
//! - [`server`]: everything `platos-host serve` starts, as a library;
//!   [`connections`]: the connection loop and its limits.
//! - [`bootstrap`]: the first start (generated master key, operator token).
//!
//! Every route but `/healthz`, `/openapi.json` and the page's static files
//! needs a token (deny by default). Scoped routes live under
//! `/v1/scopes/{organization}/{project}/{environment}`; an agent or admin
//! token sees only its own scope, and any other scope gets exactly the
//! answer a scope that does not exist gets. Within its scope an agent token
//! reads and resolves; changes ([`Access::ScopeAdmin`]) need an admin token
//! of the scope or an operator token.

/// A scoped route's path: [`SCOPE_PREFIX`] and `$rest`.
macro_rules! scoped {
    ($rest:literal) => {
        concat!("/v1/scopes/{organization}/{project}/{environment}", $rest)
    };
}

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod connections;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod server;

mod budgets;
mod env;
mod forward;
mod health;
mod resolve;
mod scopes;
mod system;
mod tokens;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::HttpMethod;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use self::auth::TokenStore;
use self::error::ApiError;
use self::metrics::Metrics;
use crate::audit::Auditor;
use crate::health::HealthService;
use crate::metering::SpendConfig;
use crate::outbound::StreamLimits;
use crate::resolution::Resolver;
use crate::scope::Scope;
use crate::selfhost::ImportStatus;

/// Limits and settings of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The longest a request may take before a 503 (until its answer's
    /// headers; a forward gets its `forward.first_byte` on top).
    pub request_timeout: Duration,
    /// The scope the self-host configuration is imported into, if any.
    pub self_host_scope: Option<Scope>,
    /// How a forwarded answer is bounded (`.../leases/{lease}/forward`).
    pub forward: StreamLimits,
    /// How forwards reserve against budgets.
    pub spend: SpendConfig,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            body_limit: 256 << 10,
            request_timeout: Duration::from_secs(30),
            self_host_scope: None,
            forward: StreamLimits::default(),
            spend: SpendConfig::default(),
        }
    }
}

/// What every handler shares: a cheap handle.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<StateInner>,
}

struct StateInner {
    resolver: Resolver,
    health: HealthService,
    tokens: TokenStore,
    audit: Auditor,
    metrics: Metrics,
    options: ApiOptions,
    import_status: ImportStatusCell,
}

/// The last self-host import's outcome, shared by the importer and the API.
pub type ImportStatusCell = Arc<Mutex<Option<ImportStatus>>>;

impl ApiState {
    /// The state over a resolver (store and plugins), the health service
    /// (probes), the tokens, the audit trail, and where the self-host
    /// importer records its last outcome.
    pub fn new(
        resolver: Resolver,
        health: HealthService,
        tokens: TokenStore,
        audit: Auditor,
        options: ApiOptions,
        import_status: ImportStatusCell,
    ) -> Self {
        ApiState {
            inner: Arc::new(StateInner {
                resolver,
                health,
                tokens,
                audit,
                metrics: Metrics::default(),
                options,
                import_status,
            }),
        }
    }

    /// The last self-host import's outcome, if there was one.
    pub fn import_status(&self) -> Option<ImportStatus> {
        self.inner.import_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.inner.resolver
    }

    /// The health service.
    pub fn health(&self) -> &HealthService {
        &self.inner.health
    }

    /// The tokens.
    pub fn tokens(&self) -> &TokenStore {
        &self.inner.tokens
    }

    /// The audit trail's writer.
    pub fn audit(&self) -> &Auditor {
        &self.inner.audit
    }

    /// The API's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The options in force.
    pub fn options(&self) -> &ApiOptions {
        &self.inner.options
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (`/healthz`, `/openapi.json`, the page and its files).
    Public,
    /// Any valid token.
    AnyToken,
    /// An operator token.
    Operator,
    /// An operator token, or an agent or admin token bound to the path's
    /// scope: reads and resolution.
    Scoped,
    /// An operator token, or an admin token bound to the path's scope:
    /// changes to the scope (variables, keys' metadata, probes).
    ScopeAdmin,
}

impl Access {
    /// Whether the route lives under a scope (`/v1/scopes/{organization}/...`).
    pub fn is_scoped(self) -> bool {
        matches!(self, Access::Scoped | Access::ScopeAdmin)
    }
}

/// One route: its method, path template and who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path template, `{name}` for parameters (the OpenAPI syntax).
    pub path: String,
    /// Who may call it.
    pub access: Access,
}

/// The forward route, whose answer [`observe`] waits longer for.
const FORWARD_ROUTE: &str = scoped!("/leases/{lease}/forward");

/// The prefix of every scoped route.
pub const SCOPE_PREFIX: &str = scoped!("");

/// One entry of the route table.
struct Route {
    /// Who may call it.
    access: Access,
    /// The error codes its handler answers with beyond those its access,
    /// its body and the router imply (see [`openapi`]).
    errors: &'static [&'static str],
    /// The handler with its operation: its method and path come from the
    /// handler's `#[utoipa::path]`, so router and document cannot disagree.
    handler: UtoipaMethodRouter<ApiState>,
}

/// The route table: the router, [`routes`] and the OpenAPI document all
/// come from it.
fn table() -> Vec<Route> {
    use Access::*;
    fn route(
        access: Access,
        errors: &'static [&'static str],
        handler: UtoipaMethodRouter<ApiState>,
    ) -> Route {
        Route { access, errors, handler }
    }
    const STORE: &[&str] = &["store_error"];
    const STORE_AUDITED: &[&str] = &["store_error", "audit_unavailable"];
    vec![
        route(Public, &[], routes!(system::healthz)),
        route(Public, &[], routes!(openapi::serve)),
        route(Public, &[], routes!(page::index)),
        route(Public, &[], routes!(page::script)),
        route(Public, &[], routes!(page::style)),
        route(Operator, &[], routes!(system::metrics)),
        route(AnyToken, &[], routes!(system::ping)),
        route(AnyToken, &[], routes!(system::whoami)),
        route(AnyToken, &[], routes!(system::plugins)),
        route(AnyToken, STORE, routes!(scopes::list_scopes)),
        route(
            AnyToken,
            &["admin_only", "invalid_scope", "invalid_query", "store_error"],
            routes!(audit::list),
        ),
        route(Operator, &[], routes!(tokens::list)),
        route(
            Operator,
            &[
                "invalid_token_request",
                "invalid_scope",
                "invalid_label",
                "invalid_pins",
                "store_error",
                "audit_unavailable",
            ],
            routes!(tokens::create),
        ),
        route(
            AnyToken,
            &[
                "token_not_found",
                "admin_only",
                "invalid_pins",
                "invalid_path",
                "store_error",
                "audit_unavailable",
            ],
            routes!(tokens::set_pins),
        ),
        route(
            Operator,
            &[
                "token_not_found",
                "last_operator_token",
                "invalid_path",
                "store_error",
                "audit_unavailable",
            ],
            routes!(tokens::revoke),
        ),
        route(Operator, &[], routes!(health::list)),
        route(Operator, &[], routes!(health::start)),
        route(Operator, &["round_not_found", "invalid_path"], routes!(health::show)),
        route(Scoped, STORE, routes!(scopes::providers)),
        route(Scoped, &["unknown_provider", "store_error"], routes!(scopes::keys)),
        route(
            ScopeAdmin,
            &[
                "unknown_provider",
                "key_not_found",
                "invalid_label",
                "store_error",
                "audit_unavailable",
            ],
            routes!(scopes::update_key),
        ),
        route(
            ScopeAdmin,
            &[
                "unknown_provider",
                "key_not_found",
                "missing_variable",
                "plugin_failed",
                "store_error",
            ],
            routes!(scopes::probe),
        ),
        route(
            Scoped,
            &["unknown_provider", "invalid_name", "invalid_query", "store_error"],
            routes!(scopes::explain),
        ),
        route(Scoped, &["invalid_class", "invalid_query", "store_error"], routes!(scopes::models)),
        route(Scoped, STORE, routes!(scopes::embedding)),
        route(Scoped, &[], routes!(scopes::self_host)),
        route(Scoped, STORE, routes!(env::list)),
        route(
            ScopeAdmin,
            &[
                "invalid_name",
                "reserved_name",
                "empty_value",
                "invalid_value",
                "value_too_large",
                "managed_by_self_host",
                "store_error",
                "audit_unavailable",
            ],
            routes!(env::set),
        ),
        route(
            ScopeAdmin,
            &[
                "invalid_name",
                "reserved_name",
                "variable_not_set",
                "managed_by_self_host",
                "store_error",
                "audit_unavailable",
            ],
            routes!(env::unset),
        ),
        route(
            Scoped,
            &[
                "unknown_provider",
                "no_key_linked",
                "all_keys_disabled",
                "pinned_key_missing",
                "pinned_key_disabled",
                "pinned_key_at_cap",
                "missing_variable",
                "unknown_client",
                "invalid_name",
                "lease_too_large",
                "store_error",
                "audit_unavailable",
            ],
            routes!(resolve::resolve),
        ),
        route(
            Scoped,
            &[
                "lease_not_found",
                "invalid_request",
                "plugin_error",
                "refused_request",
                "secret_out_of_place",
                "token_exchange_failed",
                "plugin_failed",
                "store_error",
                "audit_unavailable",
            ],
            routes!(resolve::authorize),
        ),
        route(
            Scoped,
            &[
                "lease_not_found",
                "invalid_request",
                "plugin_error",
                "refused_request",
                "secret_out_of_place",
                "token_exchange_failed",
                "plugin_failed",
                "upstream_unreachable",
                "upstream_encoded",
                "budget_exceeded",
                "store_error",
                "audit_unavailable",
            ],
            routes!(forward::forward),
        ),
        route(
            Scoped,
            &["lease_not_found", "invalid_json", "unsupported_media_type", "store_error"],
            routes!(resolve::release),
        ),
        route(
            ScopeAdmin,
            &[
                "unknown_provider",
                "key_not_found",
                "invalid_budget",
                "store_error",
                "audit_unavailable",
            ],
            routes!(budgets::set_key_budget),
        ),
        route(
            Scoped,
            &["unknown_provider", "key_not_found", "store_error"],
            routes!(budgets::key_budget),
        ),
        route(
            ScopeAdmin,
            &["unknown_provider", "invalid_name", "store_error", "audit_unavailable"],
            routes!(budgets::remove_key_budget),
        ),
        route(
            Scoped,
            &["unknown_provider", "key_not_found", "store_error"],
            routes!(budgets::key_spend),
        ),
        route(
            ScopeAdmin,
            &["invalid_budget", "store_error", "audit_unavailable"],
            routes!(budgets::set_scope_budget),
        ),
        route(Scoped, STORE, routes!(budgets::scope_budget)),
        route(ScopeAdmin, STORE_AUDITED, routes!(budgets::remove_scope_budget)),
        route(Scoped, STORE, routes!(budgets::scope_spend)),
    ]
}

/// `GET`, `POST`, ... for an OpenAPI method.
fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Put => "PUT",
        HttpMethod::Post => "POST",
        HttpMethod::Delete => "DELETE",
        HttpMethod::Options => "OPTIONS",
        HttpMethod::Head => "HEAD",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Trace => "TRACE",
    }
}

/// Every route of the router.
pub fn routes() -> Vec<RouteInfo> {
    let mut routes = Vec::new();
    for route in table() {
        let (_, mut paths, _) = route.handler;
        for (path, item) in &mut paths.paths {
            for (method, _) in openapi::operations_mut(item) {
                let method = method_name(&method);
                routes.push(RouteInfo { method, path: path.clone(), access: route.access });
            }
        }
    }
    routes
}

/// Every route of the table with its described operation.
fn described() -> OpenApiRouter<ApiState> {
    table().into_iter().fold(OpenApiRouter::with_openapi(openapi::base()), |router, route| {
        router.routes(openapi::describe(route))
    })
}

/// The router over `state`: every route, JSON 404 and 405 answers, the body
/// limit, the request timeout, metrics and response headers.
pub fn router(state: ApiState) -> Router {
    let (router, _) = described().split_for_parts();
    router
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options().body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::not_found("route_not_found", "no route has this path: see /openapi.json for the API")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take this method: see /openapi.json for the methods it takes",
    )
}

/// Times the request out, records its metrics and sets the headers every
/// answer carries.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let is_api = request.uri().path().starts_with("/v1/") || request.uri().path() == "/metrics";
    let options = state.options();
    // A forward's answer may take long to start (a whole completion before
    // its headers): it gets its first-byte timeout on top. Its body is not
    // bounded here at all (the relay's idle timeout and byte cap are).
    let timeout = match &route {
        Some(path) if path.as_str() == FORWARD_ROUTE => {
            options.request_timeout + options.forward.first_byte
        }
        _ => options.request_timeout,
    };
    let mut response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("the request took longer than {timeout:?}; try again"),
        )
        .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    state.metrics().record_request(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

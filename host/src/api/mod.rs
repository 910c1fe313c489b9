//! The HTTP API for agents and operators, and the providers page.
//!
//! - [`router`] builds the axum router over an [`ApiState`]; [`routes`]
//!   lists every route (the OpenAPI document and the tests read it).
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

pub mod auth;
pub mod bootstrap;
pub mod connections;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod server;

mod env;
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
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use self::auth::TokenStore;
use self::error::ApiError;
use self::metrics::Metrics;
use crate::health::HealthService;
use crate::resolution::Resolver;
use crate::scope::Scope;
use crate::selfhost::ImportStatus;

/// Limits and settings of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The longest a request may take before a 503.
    pub request_timeout: Duration,
    /// The scope the self-host configuration is imported into, if any.
    pub self_host_scope: Option<Scope>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            body_limit: 256 << 10,
            request_timeout: Duration::from_secs(30),
            self_host_scope: None,
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
    tokens: Arc<TokenStore>,
    metrics: Metrics,
    options: ApiOptions,
    import_status: ImportStatusCell,
}

/// The last self-host import's outcome, shared by the importer and the API.
pub type ImportStatusCell = Arc<Mutex<Option<ImportStatus>>>;

impl ApiState {
    /// The state over a resolver (store and plugins), the health service
    /// (probes), the token database, and where the self-host importer
    /// records its last outcome.
    pub fn new(
        resolver: Resolver,
        health: HealthService,
        tokens: Arc<TokenStore>,
        options: ApiOptions,
        import_status: ImportStatusCell,
    ) -> Self {
        ApiState {
            inner: Arc::new(StateInner {
                resolver,
                health,
                tokens,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path template, `{name}` for parameters (the OpenAPI syntax).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// The prefix of every scoped route.
pub const SCOPE_PREFIX: &str = "/v1/scopes/{organization}/{project}/{environment}";

macro_rules! scoped {
    ($rest:literal) => {
        concat!("/v1/scopes/{organization}/{project}/{environment}", $rest)
    };
}

/// The route table: the router and [`routes`] both come from it.
fn table() -> Vec<(RouteInfo, MethodRouter<ApiState>)> {
    use Access::*;
    let route = |method, path, access, handler| (RouteInfo { method, path, access }, handler);
    vec![
        route("GET", "/healthz", Public, get(system::healthz)),
        route("GET", "/openapi.json", Public, get(openapi::serve)),
        route("GET", "/", Public, get(page::index)),
        route("GET", "/assets/page.js", Public, get(page::script)),
        route("GET", "/assets/page.css", Public, get(page::style)),
        route("GET", "/metrics", Operator, get(system::metrics)),
        route("GET", "/v1/ping", AnyToken, get(system::ping)),
        route("GET", "/v1/whoami", AnyToken, get(system::whoami)),
        route("GET", "/v1/plugins", AnyToken, get(system::plugins)),
        route("GET", "/v1/scopes", AnyToken, get(scopes::list_scopes)),
        route("GET", "/v1/tokens", Operator, get(tokens::list)),
        route("POST", "/v1/tokens", Operator, post(tokens::create)),
        route("DELETE", "/v1/tokens/{id}", Operator, delete(tokens::revoke)),
        route("GET", "/v1/health/rounds", Operator, get(health::list)),
        route("POST", "/v1/health/rounds", Operator, post(health::start)),
        route("GET", "/v1/health/rounds/{id}", Operator, get(health::show)),
        route("GET", scoped!("/providers"), Scoped, get(scopes::providers)),
        route("GET", scoped!("/providers/{provider}/keys"), Scoped, get(scopes::keys)),
        route(
            "PATCH",
            scoped!("/providers/{provider}/keys/{key}"),
            ScopeAdmin,
            patch(scopes::update_key),
        ),
        route(
            "POST",
            scoped!("/providers/{provider}/keys/{key}/probe"),
            ScopeAdmin,
            post(scopes::probe),
        ),
        route("GET", scoped!("/providers/{provider}/explain"), Scoped, get(scopes::explain)),
        route("GET", scoped!("/models"), Scoped, get(scopes::models)),
        route("GET", scoped!("/embedding"), Scoped, get(scopes::embedding)),
        route("GET", scoped!("/self-host"), Scoped, get(scopes::self_host)),
        route("GET", scoped!("/env"), Scoped, get(env::list)),
        route("PUT", scoped!("/env/{name}"), ScopeAdmin, put(env::set)),
        route("DELETE", scoped!("/env/{name}"), ScopeAdmin, delete(env::unset)),
        route("POST", scoped!("/resolve"), Scoped, post(resolve::resolve)),
        route("POST", scoped!("/leases/{lease}/authorize"), Scoped, post(resolve::authorize)),
        route("DELETE", scoped!("/leases/{lease}"), Scoped, delete(resolve::release)),
    ]
}

/// Every route of the router.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|(info, _)| info).collect()
}

/// The router over `state`: every route, JSON 404 and 405 answers, the body
/// limit, the request timeout, metrics and response headers.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (info, handler) in table() {
        router = router.route(info.path, handler);
    }
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
    let timeout = state.options().request_timeout;
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

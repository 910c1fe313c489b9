//! `/openapi.json`: the API described in OpenAPI 3.1, generated from the
//! route table ([`super::table`]). Each handler's `#[utoipa::path]` gives
//! its method, path, parameters, body, answers and examples, with schemas
//! derived from the very types the handler deserializes and answers with;
//! this module adds what the table knows about every route: the scope's
//! path parameters, the bearer security, and the error answers its access,
//! body and own codes imply, each with the codes of [`ERROR_CODES`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, LicenseBuilder, OpenApi,
    OpenApiBuilder, PathItem, RefOr, ResponseBuilder, SecurityRequirement, ServerBuilder,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use super::error::{ERROR_CODES, ErrorBody, error_schema};
use super::extract::params::scope_parameters;
use super::{Access, ApiState, Route};

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "host",
    operation_id = "openapi",
    summary = "This document",
    description = "The OpenAPI 3.1 description of the API, generated from the handlers' own types; no token.",
    responses((status = 200, description = "The document.", body = Object, example = json!({
        "openapi": "3.1.0",
        "info": { "title": "Platos provider host API", "version": "0.1.0" },
        "paths": { "/healthz": { "get": { "operationId": "healthz" } } }
    }))),
)]
pub async fn serve() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document_json().to_string());
    let mut response = text.clone().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The whole document.
pub fn document() -> OpenApi {
    super::described().into_openapi()
}

/// The whole document as JSON.
pub fn document_json() -> serde_json::Value {
    serde_json::to_value(document()).unwrap_or_default()
}

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

/// The document before any route: info, servers, tags, the bearer scheme
/// and the error schema.
pub(super) fn base() -> OpenApi {
    let info = InfoBuilder::new()
        .title("Platos provider host API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some("Provider keys per scope (organization/project/environment): set and list variables, see providers and their health, resolve the key a turn spends with a lease, authorize requests by lease, the model picker, tokens and metrics. Every error is `{\"error\": {\"code\", \"message\"}}` with a stable code. Every route but /healthz, /openapi.json and the page needs `Authorization: Bearer <token>`. An operator token reaches everything; an agent token reads its own scope and resolves in it; an admin token may also change its scope (variables, keys' labels and status, budgets, probes), which otherwise answers 403 `admin_only`. A token bound to a scope sees any other scope exactly as a scope that does not exist (404 `scope_not_found`). Bodies are JSON objects (`Content-Type: application/json`; other types get 415)."))
        .license(Some(LicenseBuilder::new().name("Apache-2.0").identifier(Some("Apache-2.0")).build()))
        .build();
    let tag = |name: &str, description: &str| {
        TagBuilder::new().name(name).description(Some(description)).build()
    };
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An operator token (every scope), an admin token (one scope: read, resolve, change) or an agent token (one scope: read, resolve): platos_<id>_<secret>."))
        .build();
    let components = ComponentsBuilder::new()
        .security_scheme(BEARER, SecurityScheme::Http(bearer))
        .schema(ErrorBody::name(), ErrorBody::schema())
        .build();
    OpenApiBuilder::new()
        .info(info)
        .servers(Some([ServerBuilder::new().url("http://127.0.0.1:7878").build()]))
        .tags(Some([
            tag("providers", "Providers and keys of a scope."),
            tag("env", "A scope's encrypted variables (write-only values)."),
            tag("budgets", "Spending caps of a key or a scope, and what was spent."),
            tag("resolution", "Resolve, leases, explain and the model picker."),
            tag("tokens", "Operator, admin and agent tokens."),
            tag("audit", "The audit trail: who changed or used what, never a value."),
            tag("health", "Health rounds: start one, follow its progress."),
            tag("host", "Liveness, plugins, metrics, this document."),
            tag("page", "The providers page."),
        ]))
        .components(Some(components))
        .build()
}

/// A route's handler with its operations completed from the table: the
/// scope parameters, the security and the error answers.
pub(super) fn describe(route: Route) -> UtoipaMethodRouter<ApiState> {
    let Route { access, errors, handler: (schemas, mut paths, method_router) } = route;
    for item in paths.paths.values_mut() {
        for (_, operation) in operations_mut(item) {
            complete(operation, access, errors);
        }
    }
    (schemas, paths, method_router)
}

/// The operations of a path item, with their methods.
pub(super) fn operations_mut(
    item: &mut PathItem,
) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, &mut item.get),
        (HttpMethod::Put, &mut item.put),
        (HttpMethod::Post, &mut item.post),
        (HttpMethod::Delete, &mut item.delete),
        (HttpMethod::Patch, &mut item.patch),
        (HttpMethod::Head, &mut item.head),
        (HttpMethod::Options, &mut item.options),
        (HttpMethod::Trace, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

/// The error codes an operation may answer with: those of its access, of
/// its body, of the router, and its own.
fn error_codes(access: Access, has_body: bool, own: &[&'static str]) -> Vec<&'static str> {
    let mut codes = Vec::new();
    if access != Access::Public {
        codes.extend(["missing_token", "invalid_token"]);
    }
    if access == Access::Operator {
        codes.push("operator_only");
    }
    if access.is_scoped() {
        codes.extend(["scope_not_found", "invalid_scope", "invalid_path"]);
    }
    if access == Access::ScopeAdmin {
        codes.push("admin_only");
    }
    if has_body {
        codes.extend(["invalid_json", "invalid_body", "body_too_large", "unsupported_media_type"]);
    }
    codes.extend(own);
    if own.contains(&"store_error") {
        // A store that answers can also be away for a moment.
        codes.push("store_unavailable");
    }
    codes.extend(["method_not_allowed", "request_timeout", "too_many_connections"]);
    codes
}

fn complete(operation: &mut Operation, access: Access, own: &[&'static str]) {
    if access.is_scoped() {
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let scope = scope_parameters().into_iter().map(RefOr::T);
        parameters.splice(0..0, scope);
    }
    operation.security = Some(if access == Access::Public {
        Vec::new()
    } else {
        vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]
    });
    let codes = error_codes(access, operation.request_body.is_some(), own);
    let mut by_status: BTreeMap<u16, Vec<(&str, &str)>> = BTreeMap::new();
    for code in codes {
        if let Some((code, status, meaning)) = ERROR_CODES.iter().find(|(known, ..)| *known == code)
        {
            let entry = by_status.entry(*status).or_default();
            if !entry.iter().any(|(known, _)| known == code) {
                entry.push((code, meaning));
            }
        }
    }
    for (status, codes) in by_status {
        let description = codes
            .iter()
            .map(|(code, meaning)| format!("`{code}`: {meaning}"))
            .collect::<Vec<_>>()
            .join("; ");
        let (first, meaning) = codes[0];
        let example = serde_json::json!({ "error": { "code": first, "message": meaning } });
        let content = ContentBuilder::new()
            .schema(Some(error_schema(codes.iter().map(|(code, _)| *code))))
            .example(Some(example))
            .build();
        let response =
            ResponseBuilder::new().description(description).content("application/json", content);
        operation.responses.responses.insert(status.to_string(), RefOr::T(response.build()));
    }
}

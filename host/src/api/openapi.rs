//! `/openapi.json`: the API described in OpenAPI 3.1, written by hand from
//! the route table, so every route, its parameters, bodies, answers and
//! error codes are documented (a test checks every routed path appears).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ERROR_CODES;
use super::{Access, routes};
use crate::scope::MAX_SCOPE_ID_LEN;

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document().to_string());
    let mut response = text.clone().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn path_param(name: &str, description: &str, example: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" }, "example": example })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// What one operation says beyond the route table.
struct Op {
    id: &'static str,
    summary: &'static str,
    description: &'static str,
    tag: &'static str,
    params: Vec<Value>,
    body: Option<(Value, &'static str)>,
    ok: (u16, &'static str, Value),
    errors: Vec<&'static str>,
}

fn op(id: &'static str, tag: &'static str, summary: &'static str, description: &'static str) -> Op {
    Op {
        id,
        summary,
        description,
        tag,
        params: Vec::new(),
        body: None,
        ok: (200, "OK", json!({})),
        errors: Vec::new(),
    }
}

impl Op {
    fn params(mut self, params: Vec<Value>) -> Self {
        self.params.extend(params);
        self
    }
    fn body(mut self, schema: Value, description: &'static str) -> Self {
        self.body = Some((schema, description));
        self.errors.extend(["invalid_json", "invalid_body", "body_too_large"]);
        self
    }
    fn ok(mut self, status: u16, description: &'static str, content: Value) -> Self {
        self.ok = (status, description, content);
        self
    }
    fn errors(mut self, codes: &[&'static str]) -> Self {
        self.errors.extend(codes);
        self
    }
}

fn scope_params() -> Vec<Value> {
    let id = |name: &str, description: &str, example: &str| {
        let mut param = path_param(name, description, example);
        param["schema"] = json!({ "type": "string", "pattern": format!("^[A-Za-z0-9_.-]{{1,{MAX_SCOPE_ID_LEN}}}$") });
        param
    };
    vec![
        id("organization", "The organization id: 1-64 characters of A-Z a-z 0-9 _ . -", "acme"),
        id("project", "The project id (same rule).", "shop"),
        id("environment", "The environment id (same rule).", "prod"),
    ]
}

fn provider_param() -> Value {
    path_param("provider", "A loaded provider's slug.", "openai")
}

fn key_param() -> Value {
    path_param("key", "A key id: the key's variable name.", "OPENAI_API_KEY_2")
}

/// The operation for a route.
fn operation(method: &str, path: &str) -> Op {
    let json_ok = |schema: &str| json_content(schema_ref(schema));
    match (method, path) {
        ("GET", "/healthz") => op("healthz", "host", "Liveness", "Answers while the process serves; no token.")
            .ok(200, "The host is up.", json_content(json!({ "type": "object", "properties": { "status": { "const": "ok" }, "plugins": { "type": "integer" } } }))),
        ("GET", "/openapi.json") => op("openapi", "host", "This document", "The OpenAPI 3.1 description of the API; no token.")
            .ok(200, "The document.", json_content(json!({ "type": "object" }))),
        ("GET", "/") => op("page", "page", "The providers page", "HTML; it asks for a token and a scope and reads the API.")
            .ok(200, "The page.", json!({ "text/html": { "schema": { "type": "string" } } })),
        ("GET", "/assets/page.js") => op("pageScript", "page", "The page's script", "JavaScript.")
            .ok(200, "The script.", json!({ "text/javascript": { "schema": { "type": "string" } } })),
        ("GET", "/assets/page.css") => op("pageStyle", "page", "The page's style sheet", "CSS.")
            .ok(200, "The style sheet.", json!({ "text/css": { "schema": { "type": "string" } } })),
        ("GET", "/metrics") => op("metrics", "host", "Prometheus metrics", "Resolves by outcome, fallbacks, probe verdicts by class, plugin call and probe latency, HTTP requests by route and status with latency, leases issued and released. Operator token.")
            .ok(200, "Prometheus text exposition 0.0.4.", json!({ "text/plain": { "schema": { "type": "string" } } })),
        ("GET", "/v1/ping") => op("ping", "host", "Authenticated no-op", "Checks the token and answers; the load benchmark's bare handler.")
            .ok(200, "The token is valid.", json_content(json!({ "type": "object", "properties": { "ok": { "const": true } } }))),
        ("GET", "/v1/whoami") => op("whoami", "tokens", "The presented token", "Its id, kind and (for an agent token) scope.")
            .ok(200, "The caller.", json_ok("Whoami")),
        ("GET", "/v1/plugins") => op("plugins", "host", "Loaded plugins", "Every loaded provider plugin with its manifest.")
            .ok(200, "The plugins.", json_content(json!({ "type": "object", "properties": { "plugins": { "type": "array", "items": schema_ref("Plugin") } } }))),
        ("GET", "/v1/tokens") => op("listTokens", "tokens", "List tokens", "Every token's id, kind, scope, label and creation time; never the token. Operator token.")
            .ok(200, "The tokens.", json_content(json!({ "type": "object", "properties": { "tokens": { "type": "array", "items": schema_ref("TokenInfo") } } }))),
        ("POST", "/v1/tokens") => op("createToken", "tokens", "Create a token", "An operator token (`{\"operator\": true}` or `{\"role\": \"operator\"}`), or a token bound to one scope (`{\"scope\": \"org/project/env\"}`) with a `role`: `agent` (the default: read the scope and resolve in it) or `admin` (also set and unset variables, relabel, enable, disable and probe keys). The token is in this answer only. Operator token.")
            .body(schema_ref("CreateToken"), "What to create.")
            .ok(201, "Created; `token` is shown once.", json_ok("CreatedToken"))
            .errors(&["invalid_token_request", "invalid_scope", "invalid_label", "store_error"]),
        ("DELETE", "/v1/tokens/{id}") => op("revokeToken", "tokens", "Revoke a token", "Takes effect at once. The last operator token cannot be revoked. Operator token.")
            .params(vec![path_param("id", "The token's public id.", "3f2a9c01b7de")])
            .ok(200, "Revoked.", json_content(json!({ "type": "object", "properties": { "revoked": { "const": true }, "id": { "type": "string" } } })))
            .errors(&["token_not_found", "last_operator_token", "invalid_path", "store_error"]),
        ("GET", "/v1/scopes") => op("listScopes", "providers", "Scopes the token may see", "For the page's scope picker: a scope-bound token's own scope; for an operator token every scope with a provider key, and the self-host scope (marked).")
            .ok(200, "The scopes.", json_content(json!({ "type": "object", "properties": { "scopes": { "type": "array", "items": { "type": "object", "properties": { "scope": { "type": "string" }, "self_host": { "type": "boolean" } } } } } })))
            .errors(&["store_error"]),
        ("GET", "/v1/health/rounds") => op("listHealthRounds", "health", "Health rounds", "The kept rounds (the last 16 and every running one), newest first: what each probes (every key, or one provider's keys in a scope after a change), why it started, how many keys it has probed and their verdicts. Operator token.")
            .ok(200, "The rounds.", json_content(json!({ "type": "object", "properties": { "rounds": { "type": "array", "items": schema_ref("HealthRound") } } })))
            .errors(&[]),
        ("POST", "/v1/health/rounds") => op("startHealthRound", "health", "Start a health round", "Probes every linked key of every scope now, in the background; badges change as each probe finishes. When a round is already running, answers 200 with it instead of starting another. Operator token.")
            .ok(202, "Started (200 with `started: false` when a round was running already: that one).", json_content(json!({ "type": "object", "properties": { "round": schema_ref("HealthRound"), "started": { "type": "boolean" } } })))
            .errors(&[]),
        ("GET", "/v1/health/rounds/{id}") => op("getHealthRound", "health", "One health round", "Its progress: keys, probed, verdicts so far, state. Operator token.")
            .params(vec![path_param("id", "The round's id.", "3")])
            .ok(200, "The round.", json_content(json!({ "type": "object", "properties": { "round": schema_ref("HealthRound") } })))
            .errors(&["round_not_found"]),
        (_, path) if path.ends_with("/self-host") => op("selfHostImport", "env", "The self-host import", "For the scope the self-host configuration (`.env` file, process environment) is imported into: the last import's time, the variable names it holds, the `.env` lines it skipped and why, the names a process variable replaced, names that look misspelt, and why the last reload was refused (the previous variables stay). `self_host` is null for any other scope. Never a value.")
            .ok(200, "The import.", json_content(json!({ "type": "object", "properties": { "scope": { "type": "string" }, "self_host": { "type": ["object", "null"], "properties": {
                "scope": { "type": "string" }, "attempted_at": { "type": "integer" }, "error": { "type": ["string", "null"] }, "variables": { "type": "array", "items": { "type": "string" } },
                "skipped_lines": { "type": "array", "items": { "type": "object", "properties": { "line": { "type": "integer" }, "reason": { "type": "string" } } } },
                "from_process_env": { "type": "array", "items": { "type": "string" } }, "shadowed_by_process_env": { "type": "array", "items": { "type": "string" } },
                "near_misses": { "type": "array", "items": schema_ref("NearMiss") } } } } })))
            .errors(&[]),
        (_, path) if path.ends_with("/providers") => op("listProviders", "providers", "Providers of a scope", "Every loaded provider, linked or not: expected variable names, near-miss hints, the provider badge (its worst key's), and its keys (label, variant, status, last used, health).")
            .ok(200, "The providers.", json_content(json!({ "type": "object", "properties": { "scope": { "type": "string" }, "providers": { "type": "array", "items": schema_ref("Provider") } } })))
            .errors(&["store_error"]),
        (_, path) if path.ends_with("/keys") => op("listKeys", "providers", "Keys of a provider", "One provider of the scope, as in the providers list.")
            .params(vec![provider_param()])
            .ok(200, "The provider and its keys.", json_content(json!({ "type": "object", "properties": { "scope": { "type": "string" }, "provider": schema_ref("Provider") } })))
            .errors(&["unknown_provider", "store_error"]),
        ("PATCH", _) => op("updateKey", "providers", "Relabel, enable or disable a key", "A disabled key is kept but never spent: not the scope default, and a pin to it falls back (or fails with `strict`). Admin token of the scope or operator token.")
            .params(vec![provider_param(), key_param()])
            .body(schema_ref("UpdateKey"), "The changes.")
            .ok(200, "The key after the change.", json_content(json!({ "type": "object", "properties": { "key": schema_ref("Key") } })))
            .errors(&["unknown_provider", "key_not_found", "invalid_label", "store_error"]),
        (_, path) if path.ends_with("/probe") => op("probeKey", "providers", "Test a key now", "Runs the provider's health probe through its plugin (a cheap list-models call for most providers), records the verdict on the key and answers with it and the new badges. A probe spends a request with the key and changes what the scope shows, so it needs an admin token of the scope or an operator token; agents read the recorded health.")
            .params(vec![provider_param(), key_param()])
            .ok(200, "The verdict.", json_ok("ProbeResult"))
            .errors(&["unknown_provider", "key_not_found", "missing_variable", "store_error"]),
        (_, path) if path.ends_with("/explain") => op("explain", "resolution", "Explain a resolve", "Every key of the provider: whether a resolve (with this pin) would choose it and why, where each variable would come from, and its health; and what the resolve would answer: how it chooses, its warning, its error, and the error a `strict` resolve would answer.")
            .params(vec![provider_param(), query_param("pinned_key", "A pin to explain (a key id).", json!({ "type": "string" }))])
            .ok(200, "The explanation.", json_ok("Explanation"))
            .errors(&["unknown_provider", "invalid_name", "invalid_query", "store_error"]),
        (_, path) if path.ends_with("/models") => op("listModels", "resolution", "The model picker", "Models of the providers with an active key in the scope: manifest defaults plus models a healthy probe listed. A provider without a key shows none.")
            .params(vec![query_param("class", "Only models of this class.", json!({ "type": "string", "enum": ["chat", "completion", "embedding", "rerank", "image", "audio", "moderation"] }))])
            .ok(200, "The picker.", json_content(json!({ "type": "object", "properties": { "scope": { "type": "string" }, "class": { "type": ["string", "null"] }, "providers": { "type": "array", "items": { "type": "string" } }, "models": { "type": "array", "items": schema_ref("Model") } } })))
            .errors(&["invalid_class", "invalid_query", "store_error"]),
        (_, path) if path.ends_with("/embedding") => op("embeddingStatus", "providers", "Embedding track status", "Whether the scope's embedding provider (`PLATOS_EMBEDDING_PROVIDER`, voyage by default) has a key; without one memory and RAG writes fail.")
            .ok(200, "The status.", json_ok("EmbeddingStatus"))
            .errors(&["store_error"]),
        ("GET", path) if path.ends_with("/env") => op("listEnv", "env", "Variables of a scope", "Names, versions, update times and sources; values are write-only and never returned.")
            .ok(200, "The variables.", json_content(json!({ "type": "object", "properties": { "scope": { "type": "string" }, "variables": { "type": "array", "items": schema_ref("Variable") } } })))
            .errors(&["store_error"]),
        ("PUT", _) => op("setEnv", "env", "Set a variable", "Writes a new version (durable before the answer). The value is in the body, never the URL. The replaced version stays readable for the grace period so turns holding a lease on it finish (rotation). A provider key variable (`OPENAI_API_KEY`, `OPENAI_API_KEY_2`, …) links its key, and when automatic probes are on the provider's keys in the scope are probed at once. `PLATOS_EMBEDDING_PROVIDER` takes `voyage` or `openai` (`invalid_value` otherwise). Admin token of the scope or operator token.")
            .params(vec![path_param("name", "The variable's name: [A-Z][A-Z0-9_]*, at most 128 characters.", "OPENAI_API_KEY")])
            .body(schema_ref("SetVariable"), "The value.")
            .ok(200, "Set.", json_ok("SetResult"))
            .errors(&["invalid_name", "reserved_name", "empty_value", "invalid_value", "value_too_large", "managed_by_self_host", "store_error"]),
        ("DELETE", path) if path.contains("/env/") => op("unsetEnv", "env", "Unset a variable", "Its last value stays readable by version for the grace period; the key it linked is unlinked. Admin token of the scope or operator token.")
            .params(vec![path_param("name", "The variable's name.", "OPENAI_API_KEY_2")])
            .ok(200, "Unset.", json_content(json!({ "type": "object", "properties": { "unset": { "const": true }, "name": { "type": "string" } } })))
            .errors(&["invalid_name", "reserved_name", "variable_not_set", "managed_by_self_host", "store_error"]),
        (_, path) if path.ends_with("/resolve") => op("resolve", "resolution", "Resolve a key for a turn", "`client` names the client library whose names and value forms the env bag takes (one of the provider's clients; its default otherwise); a value the client cannot be given, such as a base URL it would ignore, is listed in `warnings`. The pinned key, or the scope default (the lowest active variant). A pin that no longer exists or is disabled falls back to the default with a warning, or fails with `strict` (`pinned_key_missing`, `pinned_key_disabled`); a disabled key is never spent. The answer holds a lease on the values read and carries the env bag with values: it is for the agent.")
            .body(schema_ref("ResolveRequest"), "What to resolve.")
            .ok(200, "The key, why, the lease and the env bag.", json_ok("Resolution"))
            .errors(&["unknown_provider", "no_key_linked", "all_keys_disabled", "pinned_key_missing", "pinned_key_disabled", "missing_variable", "unknown_client", "invalid_name", "lease_too_large", "store_error"]),
        (_, path) if path.ends_with("/authorize") => op("authorizeByLease", "resolution", "Authorize a request with a lease", "The provider's plugin adds its credentials to the request using the values the lease holds, even after a rotation; the host checks the destination against the provider's allowed hosts, and that the request carries secrets only where the provider's declared auth shape puts them. The lease must be live in this scope: not expired, not released on any host sharing the store, its key still linked and active, its value versions still kept (404 `lease_not_found`, the message saying which). For a provider with a token exchange (Vertex AI, Azure OpenAI with Entra ID) the request is signed with a short-lived access token the host obtained for exactly the leased values and caches in memory (502 `token_exchange_failed` when the token endpoint refuses or cannot be reached).")
            .params(vec![path_param("lease", "A lease id from a resolve: a URL-safe token the host verifies (its MAC), used as is.", "AcbYJ2x9Ue1Wq0mF3oKZ7fQAAAGUr8hJAAABlLNqfUAOYWNtZS9zaG9wL3Byb2Q")])
            .body(schema_ref("AuthorizeRequest"), "The request to authorize.")
            .ok(200, "The authorized request.", json_content(json!({ "type": "object", "properties": { "request": schema_ref("HttpRequest") } })))
            .errors(&["lease_not_found", "invalid_request", "plugin_error", "refused_request", "secret_out_of_place", "token_exchange_failed", "plugin_failed"]),
        ("DELETE", path) if path.contains("/leases/") => op("releaseLease", "resolution", "Release a lease", "Ends a lease early (a turn finished), on every host sharing the store; durable before the answer. A second release, or one of an expired lease, is `lease_not_found`.")
            .params(vec![path_param("lease", "A lease id from a resolve.", "AcbYJ2x9Ue1Wq0mF3oKZ7fQAAAGUr8hJAAABlLNqfUAOYWNtZS9zaG9wL3Byb2Q")])
            .ok(200, "Released.", json_content(json!({ "type": "object", "properties": { "released": { "const": true } } })))
            .errors(&["lease_not_found", "store_error"]),
        _ => op("unknown", "host", "Undocumented", "Missing from openapi.rs."),
    }
}

fn error_responses(codes: &[&str]) -> BTreeMap<String, Value> {
    let mut by_status: BTreeMap<u16, Vec<(&str, &str)>> = BTreeMap::new();
    for code in codes {
        if let Some((code, status, meaning)) =
            ERROR_CODES.iter().find(|(known, _, _)| known == code)
        {
            let entry = by_status.entry(*status).or_default();
            if !entry.iter().any(|(known, _)| known == code) {
                entry.push((code, meaning));
            }
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let description = codes
                .iter()
                .map(|(code, meaning)| format!("`{code}`: {meaning}"))
                .collect::<Vec<_>>()
                .join("; ");
            let schema = json!({ "allOf": [schema_ref("Error"), { "properties": { "error": { "properties": { "code": { "enum": codes.iter().map(|(code, _)| *code).collect::<Vec<_>>() } } } } }] });
            (status.to_string(), json!({ "description": description, "content": json_content(schema) }))
        })
        .collect()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for route in routes() {
        let mut op = operation(route.method, route.path);
        let mut params = Vec::new();
        if route.access.is_scoped() {
            params.extend(scope_params());
            op.errors.extend(["scope_not_found", "invalid_scope", "invalid_path"]);
        }
        if route.access == Access::ScopeAdmin {
            op.errors.push("admin_only");
        }
        params.append(&mut op.params);
        if route.access != Access::Public {
            op.errors.extend(["missing_token", "invalid_token"]);
        }
        if route.access == Access::Operator {
            op.errors.push("operator_only");
        }
        op.errors.extend(["method_not_allowed", "request_timeout"]);
        let mut responses = error_responses(&op.errors);
        let (status, description, content) = op.ok;
        responses
            .insert(status.to_string(), json!({ "description": description, "content": content }));
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "description": op.description,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
        });
        if let Some((schema, description)) = op.body {
            operation["requestBody"] = json!({ "required": true, "description": description, "content": json_content(schema) });
        }
        operation["security"] =
            if route.access == Access::Public { json!([]) } else { json!([{ "bearer": [] }]) };
        paths.entry(route.path).or_default().insert(route.method.to_ascii_lowercase(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Platos provider host API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Provider keys per scope (organization/project/environment): set and list variables, see providers and their health, resolve the key a turn spends with a lease, authorize requests by lease, the model picker, tokens and metrics. Every error is `{\"error\": {\"code\", \"message\"}}` with a stable code. Every route but /healthz, /openapi.json and the page needs `Authorization: Bearer <token>`. An operator token reaches everything; an agent token reads its own scope and resolves in it; an admin token may also change its scope (variables, keys' labels and status, probes), which otherwise answers 403 `admin_only`. A token bound to a scope sees any other scope exactly as a scope that does not exist (404 `scope_not_found`).",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "http://127.0.0.1:7878" }],
        "tags": [
            { "name": "providers", "description": "Providers and keys of a scope." },
            { "name": "env", "description": "A scope's encrypted variables (write-only values)." },
            { "name": "resolution", "description": "Resolve, leases, explain and the model picker." },
            { "name": "tokens", "description": "Operator, admin and agent tokens." },
            { "name": "health", "description": "Health rounds: start one, follow its progress." },
            { "name": "host", "description": "Liveness, plugins, metrics." },
            { "name": "page", "description": "The providers page." },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An operator token (every scope), an admin token (one scope: read, resolve, change) or an agent token (one scope: read, resolve): platos_<id>_<secret>." } },
            "schemas": schemas(),
        },
    })
}

fn schemas() -> Value {
    let badge = json!({ "type": "string", "enum": ["green", "red", "amber", "grey"], "description": "green healthy; red invalid or revoked; amber quota or degraded; grey never probed or unreachable." });
    let verdict = json!({ "type": "string", "enum": ["healthy", "invalid-credential", "quota-limited", "unreachable", "degraded"] });
    let codes: Vec<&str> = ERROR_CODES.iter().map(|(code, _, _)| *code).collect();
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "enum": codes, "description": "Stable; branch on it." },
                "message": { "type": "string", "description": "What was wrong and what is expected; never a secret." },
            } } },
        },
        "Whoami": { "type": "object", "properties": { "token_id": { "type": "string" }, "kind": { "enum": ["operator", "admin", "agent"] }, "scope": { "type": ["string", "null"] } } },
        "Plugin": { "type": "object", "properties": { "id": { "type": "string" }, "api": { "type": "string" }, "sha256": { "type": "string" }, "origin": { "type": "string" }, "manifest": { "type": "object" } } },
        "TokenInfo": { "type": "object", "properties": { "id": { "type": "string" }, "kind": { "enum": ["operator", "admin", "agent"] }, "scope": { "type": "string" }, "label": { "type": "string" }, "created_at": { "type": "integer", "description": "Unix ms" } } },
        "CreateToken": { "type": "object", "additionalProperties": false, "properties": { "operator": { "type": "boolean" }, "scope": { "type": "string", "example": "acme/shop/prod" }, "role": { "enum": ["operator", "admin", "agent"], "description": "With a scope: `agent` (default) or `admin`; `operator` without a scope." }, "label": { "type": "string", "maxLength": 128 } } },
        "CreatedToken": { "type": "object", "properties": { "token": { "type": "string", "description": "Shown once." }, "info": schema_ref("TokenInfo") } },
        "Health": { "type": ["object", "null"], "properties": { "verdict": verdict, "message": { "type": "string" }, "checked_at": { "type": "integer" }, "latency_ms": { "type": "integer" }, "models": { "type": "array", "items": { "type": "string" } } } },
        "Key": { "type": "object", "properties": {
            "key_id": { "type": "string" }, "variant": { "type": "integer" }, "label": { "type": "string" },
            "status": { "enum": ["active", "disabled"] }, "scope_default": { "type": "boolean" },
            "created_at": { "type": "integer" }, "last_used_at": { "type": ["integer", "null"] },
            "badge": badge, "health": schema_ref("Health") } },
        "NearMiss": { "type": "object", "properties": { "found": { "type": "string" }, "did_you_mean": { "type": "string" } } },
        "Provider": { "type": "object", "properties": {
            "slug": { "type": "string" }, "display_name": { "type": "string" }, "docs_url": { "type": "string" },
            "linked": { "type": "boolean" }, "badge": badge, "key_var": { "type": ["string", "null"] },
            "expected_vars": { "type": "array", "items": { "type": "object", "properties": { "name": { "type": "string" }, "role": { "enum": ["secret", "base-url", "other"] }, "required": { "type": "boolean" }, "description": { "type": "string" }, "default": { "type": "string" } } } },
            "near_misses": { "type": "array", "items": schema_ref("NearMiss") },
            "model_classes": { "type": "array", "items": { "type": "string" } },
            "probe_cost": { "type": ["string", "null"] },
            "keys": { "type": "array", "items": schema_ref("Key") } } },
        "UpdateKey": { "type": "object", "additionalProperties": false, "minProperties": 1, "properties": { "label": { "type": ["string", "null"], "minLength": 1, "maxLength": 128, "pattern": "\\S", "description": "A new label: not blank, no control characters; null or absent leaves it." }, "status": { "enum": ["active", "disabled", null], "description": "null or absent leaves it." } } },
        "ProbeResult": { "type": "object", "properties": { "verdict": verdict, "message": { "type": "string" }, "latency_ms": { "type": "integer" }, "badge": badge, "provider_badge": badge, "key": schema_ref("Key") } },
        "Explanation": { "type": "object", "properties": { "scope": { "type": "string" }, "provider": { "type": "string" }, "pinned_key": { "type": ["string", "null"] },
            "chosen_by": { "enum": ["pinned", "scope-default", "fallback-pin-missing", "fallback-pin-disabled", null], "description": "How a resolve would choose; null when it would fail." },
            "warning": { "type": ["string", "null"], "description": "The warning that resolve would carry." },
            "error": { "type": ["object", "null"], "description": "The error a resolve would answer (`no_key_linked`, `all_keys_disabled`).", "properties": { "code": { "type": "string" }, "message": { "type": "string" } } },
            "strict_error": { "type": ["object", "null"], "description": "The error a strict resolve would answer for the pin (`pinned_key_missing`, `pinned_key_disabled`).", "properties": { "code": { "type": "string" }, "message": { "type": "string" } } }, "candidates": { "type": "array", "items": { "type": "object" } }, "near_misses": { "type": "array", "items": schema_ref("NearMiss") } } },
        "Model": { "type": "object", "properties": { "provider": { "type": "string" }, "id": { "type": "string" }, "class": { "type": "string" }, "display_name": { "type": "string" }, "context_window": { "type": "integer" }, "source": { "enum": ["default", "discovered"] } } },
        "EmbeddingStatus": { "type": "object", "properties": { "provider": { "type": ["string", "null"], "enum": ["voyage", "openai", null] }, "ready": { "type": "boolean" }, "missing": { "type": "string" }, "configured_by": { "enum": ["default", "variable"] }, "variable": { "type": "string" } } },
        "Variable": { "type": "object", "properties": { "name": { "type": "string" }, "version": { "type": "integer" }, "updated_at": { "type": "integer" }, "source": { "enum": ["api", "cli", "self-host"] } } },
        "SetVariable": { "type": "object", "additionalProperties": false, "required": ["value"], "properties": { "value": { "type": "string", "minLength": 1, "maxLength": 65536, "writeOnly": true } } },
        "SetResult": { "type": "object", "properties": { "variable": schema_ref("Variable"), "linked_key": { "type": ["object", "null"], "properties": { "provider": { "type": "string" }, "key_id": { "type": "string" }, "variant": { "type": "integer" } } }, "warning": { "type": ["string", "null"] } } },
        "ResolveRequest": { "type": "object", "additionalProperties": false, "required": ["provider"], "properties": { "provider": { "type": "string", "example": "openai" }, "pinned_key": { "type": "string", "example": "OPENAI_API_KEY_2" }, "strict": { "type": "boolean", "default": false }, "client": { "type": "string", "example": "ai-sdk", "description": "The client library whose names and value forms the env bag takes: one of the provider's `clients` (GET /v1/plugins); absent: the provider's default client." } } },
        "Resolution": { "type": "object", "properties": {
            "key": { "type": "object", "properties": { "provider": { "type": "string" }, "key_id": { "type": "string" }, "variant": { "type": "integer" }, "label": { "type": "string" } } },
            "chosen_by": { "enum": ["pinned", "scope-default", "fallback-pin-missing", "fallback-pin-disabled"] },
            "warning": { "type": ["string", "null"] },
            "lease": { "type": "object", "properties": { "id": { "type": "string" }, "expires_at": { "type": "integer", "description": "Unix ms" } } },
            "client": { "type": ["object", "null"], "description": "The client whose form the env bag has; null for a provider that lists no clients.", "properties": { "id": { "type": "string" }, "display_name": { "type": "string" } } },
            "env": { "type": "object", "additionalProperties": { "type": "string" }, "description": "The env bag in the client's form, with values: the manifest's plain names and every alias the client reads." },
            "warnings": { "type": "array", "description": "Values the env bag cannot carry in the client's form; a base URL the client would ignore is always here.", "items": schema_ref("EnvWarning") } } },
        "EnvWarning": { "type": "object", "properties": { "code": { "enum": ["base_url_ignored", "value_not_derivable"] }, "variable": { "type": "string" }, "alias": { "type": "string" }, "client": { "type": "string" }, "message": { "type": "string" } } },
        "HealthRound": { "type": "object", "properties": {
            "id": { "type": "integer" },
            "target": { "type": "object", "properties": { "kind": { "enum": ["all", "provider"] }, "scope": { "type": "string" }, "provider": { "type": "string" } } },
            "trigger": { "enum": ["start", "schedule", "operator", "change", "reload"] },
            "state": { "enum": ["running", "done", "failed"] },
            "started_at": { "type": "integer", "description": "Unix ms" }, "finished_at": { "type": ["integer", "null"] },
            "keys": { "type": ["integer", "null"], "description": "Keys to probe; null until listed." }, "probed": { "type": "integer" },
            "verdicts": { "type": "object", "additionalProperties": { "type": "integer" } }, "error": { "type": ["string", "null"] } } },
        "HttpRequest": { "type": "object", "additionalProperties": false, "required": ["method", "url"], "properties": {
            "method": { "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] }, "url": { "type": "string", "format": "uri" },
            "headers": { "type": "array", "items": { "type": "array", "prefixItems": [{ "type": "string" }, { "type": "string" }], "minItems": 2, "maxItems": 2 } },
            "body": { "type": ["string", "null"] } } },
        "AuthorizeRequest": { "type": "object", "additionalProperties": false, "required": ["request"], "properties": { "request": schema_ref("HttpRequest") } },
    })
}

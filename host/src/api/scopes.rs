//! A scope's providers and keys: the providers page's data, key updates,
//! "test key" probes, explain, the model picker and the embedding track.
//! Key updates and probes need an admin token of the scope or an operator
//! token: a probe spends a request with the key upstream and records its
//! verdict on the key for the whole scope (badges, the picker), so it is a
//! change, not a read; an agent reads the recorded health instead.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use super::extract::{AdminScoped, Authed, JsonBody, QueryParams, Scoped};
use crate::embedding::{EMBEDDING_PROVIDER_VAR, EmbeddingProvider};
use crate::health::KeyLocation;
use crate::policy::client_env::client_names;
use crate::policy::verdicts::{Badge, badge, class_name, provider_badge};
use crate::provider::{Manifest, ModelClass};
use crate::resolution::{Resolver, health_verdict};
use crate::runtime::Plugin;
use crate::scope::Scope;
use crate::store::{
    HealthRecord, KeyStatus, KeyUpdate, ProviderKey, UnixMillis, VarInfo, default_key, key_var,
};

/// One key as the API shows it: metadata only, never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The key's variable, also its id for pinning.
    pub key_id: String,
    /// 1 for the plain variable, `n` for `{base}_{n}`.
    pub variant: u32,
    /// A name for people.
    pub label: String,
    /// `active` or `disabled`.
    pub status: KeyStatus,
    /// Whether it is the provider's scope default.
    pub scope_default: bool,
    /// When it was linked.
    pub created_at: UnixMillis,
    /// When a turn last used it (batched: it may lag a few seconds).
    pub last_used_at: Option<UnixMillis>,
    /// Its health badge.
    pub badge: Badge,
    /// Its last health check.
    pub health: Option<HealthRecord>,
}

fn key_view(key: &ProviderKey, keys: &[ProviderKey]) -> KeyView {
    let verdict = key.health.as_ref().map(health_verdict);
    KeyView {
        key_id: key.env_var.clone(),
        variant: key.variant,
        label: key.label.clone(),
        status: key.status,
        scope_default: default_key(keys, &key.provider)
            .is_some_and(|default| default.env_var == key.env_var),
        created_at: key.created_at,
        last_used_at: key.last_used_at,
        badge: badge(verdict.as_ref()),
        health: key.health.clone(),
    }
}

fn plugin<'a>(state: &'a ApiState, slug: &str) -> Result<&'a Plugin, ApiError> {
    let registry = state.resolver().registry();
    registry.get(slug).ok_or_else(|| {
        let known: Vec<&str> = registry.iter().map(Plugin::slug).collect();
        ApiError::not_found(
            "unknown_provider",
            format!("no provider {:?} is loaded; loaded: {}", shorten(slug), known.join(", ")),
        )
    })
}

/// At most 64 characters of `text`, for echoing path parameters.
fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

fn provider_view(
    resolver: &Resolver,
    manifest: &Manifest,
    keys: &[ProviderKey],
    vars: &[VarInfo],
) -> Value {
    let own: Vec<KeyView> = keys
        .iter()
        .filter(|key| key.provider == manifest.slug)
        .map(|key| key_view(key, keys))
        .collect();
    let linked = own.iter().any(|key| key.status == KeyStatus::Active);
    json!({
        "slug": manifest.slug,
        "display_name": manifest.display_name,
        "docs_url": manifest.docs_url,
        "linked": linked,
        "badge": provider_badge(own.iter().map(|key| key.badge)),
        "key_var": key_var(manifest),
        "expected_vars": manifest.env_vars,
        "clients": client_names(manifest),
        "near_misses": resolver.near_misses_for(vars, manifest),
        "model_classes": manifest.model_classes,
        "probe_cost": manifest.probe_cost,
        "keys": own,
    })
}

/// `GET .../providers`: every loaded provider, linked or not.
pub async fn providers(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    let store = state.resolver().store();
    let keys = store.list_provider_keys(&scoped.scope).await?;
    let vars = store.list_vars(&scoped.scope).await?;
    let resolver = state.resolver();
    let providers: Vec<Value> = resolver
        .registry()
        .iter()
        .map(|plugin| provider_view(resolver, plugin.manifest(), &keys, &vars))
        .collect();
    Ok(Json(json!({ "scope": scoped.scope.to_string(), "providers": providers })))
}

/// `GET .../providers/{provider}/keys`.
pub async fn keys(scoped: Scoped, State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let manifest = plugin(&state, scoped.param("provider"))?.manifest();
    let store = state.resolver().store();
    let keys = store.list_provider_keys(&scoped.scope).await?;
    let vars = store.list_vars(&scoped.scope).await?;
    let provider = provider_view(state.resolver(), manifest, &keys, &vars);
    Ok(Json(json!({ "scope": scoped.scope.to_string(), "provider": provider })))
}

/// The body of `PATCH .../keys/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// A new label.
    #[serde(default)]
    label: Option<String>,
    /// `active` or `disabled`.
    #[serde(default)]
    status: Option<KeyStatus>,
}

async fn find_key(
    state: &ApiState,
    scope: &Scope,
    provider: &str,
    key: &str,
) -> Result<(ProviderKey, Vec<ProviderKey>), ApiError> {
    let keys = state.resolver().store().list_provider_keys(scope).await?;
    let found = keys
        .iter()
        .find(|row| row.provider == provider && row.env_var == key)
        .cloned()
        .ok_or_else(|| key_not_found(provider, &keys))?;
    Ok((found, keys))
}

fn key_not_found(provider: &str, keys: &[ProviderKey]) -> ApiError {
    let linked: Vec<&str> = keys
        .iter()
        .filter(|key| key.provider == provider)
        .map(|key| key.env_var.as_str())
        .collect();
    ApiError::not_found(
        "key_not_found",
        format!(
            "{provider} has no such key in this scope; its keys: {}",
            if linked.is_empty() { "none".to_owned() } else { linked.join(", ") }
        ),
    )
}

/// `PATCH .../providers/{provider}/keys/{key}`: relabel, enable or disable.
pub async fn update_key(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Json<Value>, ApiError> {
    let provider = plugin(&state, scoped.param("provider"))?.slug().to_owned();
    let key = scoped.param("key").to_owned();
    find_key(&state, &scoped.scope, &provider, &key).await?;
    let mut updates = Vec::new();
    if let Some(label) = body.label {
        if !super::auth::valid_label(&label) {
            return Err(ApiError::bad_request(
                "invalid_label",
                format!(
                    "invalid label: expected 1-{} characters without control characters",
                    super::auth::MAX_LABEL_LEN
                ),
            ));
        }
        updates.push(KeyUpdate::Label(label.trim().to_owned()));
    }
    if let Some(status) = body.status {
        updates.push(KeyUpdate::Status(status));
    }
    if updates.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "nothing to change: expected {\"label\": \"...\"} and/or {\"status\": \"active\" | \"disabled\"}",
        ));
    }
    let store = state.resolver().store();
    for update in updates {
        store.update_provider_key(&scoped.scope, &provider, &key, update).await?;
    }
    let (found, keys) = find_key(&state, &scoped.scope, &provider, &key).await?;
    Ok(Json(json!({ "key": key_view(&found, &keys) })))
}

/// `POST .../providers/{provider}/keys/{key}/probe`: "test key" now; the
/// verdict is recorded on the key like a background round's.
pub async fn probe(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    let provider = plugin(&state, scoped.param("provider"))?.slug().to_owned();
    let key = scoped.param("key").to_owned();
    find_key(&state, &scoped.scope, &provider, &key).await?;
    let location = KeyLocation {
        scope: scoped.scope.clone(),
        provider: provider.clone(),
        key_id: key.clone(),
    };
    let started = Instant::now();
    let outcome = state.health().probe_key(&location).await?;
    state.metrics().record_probe(&provider, started.elapsed());
    let (found, keys) = find_key(&state, &scoped.scope, &provider, &key).await?;
    let provider_badge = provider_badge(
        keys.iter().filter(|row| row.provider == provider).map(|row| key_view(row, &keys).badge),
    );
    Ok(Json(json!({
        "verdict": class_name(&outcome.verdict),
        "message": outcome.verdict.message(),
        "latency_ms": outcome.latency.as_millis() as u64,
        "badge": badge(Some(&outcome.verdict)),
        "provider_badge": provider_badge,
        "key": key_view(&found, &keys),
    })))
}

/// The query of `GET .../explain`.
#[derive(Debug, Deserialize)]
pub struct ExplainQuery {
    /// The pin to explain (a key id).
    #[serde(default)]
    pinned_key: Option<String>,
}

/// `GET .../providers/{provider}/explain?pinned_key=KEY`: why each key would
/// or would not be chosen, and where each variable comes from.
pub async fn explain(
    scoped: Scoped,
    State(state): State<ApiState>,
    QueryParams(query): QueryParams<ExplainQuery>,
) -> Result<Json<Value>, ApiError> {
    let provider = plugin(&state, scoped.param("provider"))?.slug().to_owned();
    let pin = query.pinned_key.filter(|pin| !pin.is_empty());
    if let Some(pin) = &pin {
        check_key_name(pin)?;
    }
    let explanation = state.resolver().explain(&scoped.scope, &provider, pin.as_deref()).await?;
    Ok(Json(serde_json::to_value(explanation).unwrap_or(Value::Null)))
}

/// A pin must look like a variable name.
pub fn check_key_name(pin: &str) -> Result<(), ApiError> {
    if crate::policy::names::is_valid_env_var_name(pin) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "invalid key id: expected a variable name (an uppercase letter, then uppercase letters, digits or `_`, at most {} characters), e.g. OPENAI_API_KEY_2",
                crate::policy::names::MAX_ENV_VAR_LEN
            ),
        ))
    }
}

/// The query of `GET .../models`.
#[derive(Debug, Deserialize)]
pub struct ModelsQuery {
    /// Only models of this class.
    #[serde(default)]
    class: Option<String>,
}

/// Every model class, as the API spells it.
pub const MODEL_CLASSES: [(&str, ModelClass); 7] = [
    ("chat", ModelClass::Chat),
    ("completion", ModelClass::Completion),
    ("embedding", ModelClass::Embedding),
    ("rerank", ModelClass::Rerank),
    ("image", ModelClass::Image),
    ("audio", ModelClass::Audio),
    ("moderation", ModelClass::Moderation),
];

/// `GET .../models?class=chat`: the picker: models of the providers with an
/// active key in the scope.
pub async fn models(
    scoped: Scoped,
    State(state): State<ApiState>,
    QueryParams(query): QueryParams<ModelsQuery>,
) -> Result<Json<Value>, ApiError> {
    let class = match query.class.as_deref().filter(|class| !class.is_empty()) {
        None => None,
        Some(text) => Some(
            MODEL_CLASSES
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, class)| *class)
                .ok_or_else(|| {
                    let names: Vec<&str> = MODEL_CLASSES.iter().map(|(name, _)| *name).collect();
                    ApiError::bad_request(
                        "invalid_class",
                        format!("unknown model class: expected one of {}", names.join(", ")),
                    )
                })?,
        ),
    };
    let resolver = state.resolver();
    let models = resolver.models(&scoped.scope, class).await?;
    let providers = resolver.usable_providers(&scoped.scope).await?;
    Ok(Json(json!({
        "scope": scoped.scope.to_string(),
        "class": query.class.filter(|class| !class.is_empty()),
        "providers": providers,
        "models": models,
    })))
}

/// `GET .../embedding`: whether memory and RAG writes can work in the scope.
pub async fn embedding(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(embedding_status(&state, &scoped.scope).await?))
}

/// The embedding status of `scope` as JSON: the provider its
/// `PLATOS_EMBEDDING_PROVIDER` names (voyage when unset), and whether it has a key.
pub async fn embedding_status(state: &ApiState, scope: &Scope) -> Result<Value, ApiError> {
    use secrecy::ExposeSecret;
    let resolver = state.resolver();
    let configured = resolver.store().get_var(scope, EMBEDDING_PROVIDER_VAR).await?;
    let (provider, configured_by) = match &configured {
        None => (Ok(EmbeddingProvider::Voyage), "default"),
        Some(value) => (value.value.expose_secret().parse::<EmbeddingProvider>(), "variable"),
    };
    match provider {
        Ok(provider) => {
            let status = crate::embedding::status(resolver, scope, provider).await?;
            let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
            value["configured_by"] = json!(configured_by);
            value["variable"] = json!(EMBEDDING_PROVIDER_VAR);
            Ok(value)
        }
        Err(problem) => Ok(json!({
            "provider": null,
            "ready": false,
            "missing": problem,
            "configured_by": configured_by,
            "variable": EMBEDDING_PROVIDER_VAR,
        })),
    }
}

/// `GET .../self-host`: the last self-host import into this scope (names,
/// skipped lines, shadowed names, misspelling hints, a refused reload's
/// reason), or `null` when this is not the self-host scope.
pub async fn self_host(scoped: Scoped, State(state): State<ApiState>) -> Json<Value> {
    let status = state.import_status().filter(|status| status.scope == scoped.scope.to_string());
    Json(json!({ "scope": scoped.scope.to_string(), "self_host": status }))
}

/// `GET /v1/scopes`: the scopes the token may see, for the page's scope
/// picker: its own scope for a scope-bound token; for an operator every
/// scope with a provider key, and the self-host scope.
pub async fn list_scopes(
    Authed(caller): Authed,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    let mut scopes: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    match caller.grant.scope() {
        Some(scope) => {
            scopes.insert(scope.to_string());
        }
        None => {
            let keys = state.resolver().store().list_all_provider_keys().await?;
            scopes.extend(keys.into_iter().map(|(scope, _)| scope.to_string()));
            if let Some(scope) = &state.options().self_host_scope {
                scopes.insert(scope.to_string());
            }
        }
    }
    let self_host = state.options().self_host_scope.as_ref().map(ToString::to_string);
    let listed: Vec<Value> = scopes
        .into_iter()
        .map(|scope| json!({ "scope": scope, "self_host": self_host.as_deref() == Some(scope.as_str()) }))
        .collect();
    Ok(Json(json!({ "scopes": listed })))
}

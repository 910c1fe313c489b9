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
use utoipa::{IntoParams, ToSchema};

use super::auth::label_schema;
use super::error::ApiError;
use super::extract::params::{KeyParam, ProviderParam, query_parameter};
use super::extract::{AdminScoped, Authed, JsonBody, QueryParams, Scoped};
use super::resolve::pin_schema;
use super::{ApiState, audit};
use crate::audit::{AuditDraft, key_update_action};
use crate::embedding::{EMBEDDING_PROVIDER_VAR, EmbeddingProvider};
use crate::policy::client_env::{ClientNames, client_names};
use crate::policy::verdicts::{Badge, badge, class_name, provider_badge};
use crate::provider::{EnvVar, Manifest, ModelClass};
use crate::resolution::catalog::CatalogModel;
use crate::resolution::{
    Explanation, NearMiss, RequestPin, Resolver, effective_pin, health_verdict,
};
use crate::runtime::Plugin;
use crate::scope::{KeyLocation, Scope};
use crate::selfhost::ImportStatus;
use crate::store::{
    HealthRecord, HealthVerdict, KeyStatus, KeyUpdate, ProviderKey, UnixMillis, VarInfo,
    default_key, key_var, now_millis,
};

/// One key as the API shows it: metadata only, never the secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Key)]
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
    /// When an operator made it the scope default (`null`: not chosen).
    #[schema(value_type = Option<u64>)]
    pub chosen_default_at: Option<UnixMillis>,
    /// When it was linked.
    #[schema(value_type = u64)]
    pub created_at: UnixMillis,
    /// When a turn last used it (batched: it may lag a few seconds).
    #[schema(value_type = Option<u64>)]
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
        chosen_default_at: key.chosen_default_at,
        created_at: key.created_at,
        last_used_at: key.last_used_at,
        badge: badge(verdict.as_ref()),
        health: key.health.clone(),
    }
}

/// The loaded plugin of `slug`, or 404 `unknown_provider`.
pub(super) fn plugin<'a>(state: &'a ApiState, slug: &str) -> Result<&'a Plugin, ApiError> {
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

/// One provider of a scope as the providers page shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Provider)]
pub struct ProviderView {
    /// Its slug.
    pub slug: String,
    /// Its name for people.
    pub display_name: String,
    /// Where people get a key.
    pub docs_url: String,
    /// Whether it has an active key in the scope.
    pub linked: bool,
    /// Its worst key's badge (grey without keys).
    pub badge: Badge,
    /// The variable holding its key, if it has one.
    pub key_var: Option<String>,
    /// The variables one key reads.
    pub expected_vars: Vec<EnvVar>,
    /// The names each client library reads the values under.
    pub clients: Vec<ClientNames>,
    /// Scope variables that look like misspellings of its names.
    pub near_misses: Vec<NearMiss>,
    /// The classes of its models.
    pub model_classes: Vec<ModelClass>,
    /// Whether a probe is billed, and why.
    pub probe_cost: Option<String>,
    /// Its keys in the scope.
    pub keys: Vec<KeyView>,
}

fn provider_view(
    resolver: &Resolver,
    manifest: &Manifest,
    keys: &[ProviderKey],
    vars: &[VarInfo],
) -> ProviderView {
    let own: Vec<KeyView> = keys
        .iter()
        .filter(|key| key.provider == manifest.slug)
        .map(|key| key_view(key, keys))
        .collect();
    ProviderView {
        slug: manifest.slug.clone(),
        display_name: manifest.display_name.clone(),
        docs_url: manifest.docs_url.clone(),
        linked: own.iter().any(|key| key.status == KeyStatus::Active),
        badge: provider_badge(own.iter().map(|key| key.badge)),
        key_var: key_var(manifest).map(str::to_owned),
        expected_vars: manifest.env_vars.clone(),
        clients: client_names(manifest),
        near_misses: resolver.near_misses_for(vars, manifest),
        model_classes: manifest.model_classes.clone(),
        probe_cost: manifest.probe_cost.clone(),
        keys: own,
    }
}

/// The example key of the answers below.
macro_rules! example_key {
    () => {
        serde_json::json!({
            "key_id": "OPENAI_API_KEY", "variant": 1, "label": "checkout", "status": "active",
            "scope_default": true, "chosen_default_at": 1767225660000u64,
            "created_at": 1767225600000u64, "last_used_at": null,
            "badge": "green",
            "health": { "verdict": "healthy", "message": "the key lists 3 models",
                "checked_at": 1767225601000u64, "latency_ms": 182, "models": ["gpt-5"] }
        })
    };
}

/// The example provider of the answers below.
macro_rules! example_provider {
    () => {
        serde_json::json!({
            "slug": "openai", "display_name": "OpenAI", "docs_url": "https://platform.openai.com/api-keys",
            "linked": true, "badge": "green", "key_var": "OPENAI_API_KEY",
            "expected_vars": [{ "name": "OPENAI_API_KEY", "role": "secret", "required": true, "description": "The API key." }],
            "clients": [{ "id": "official", "display_name": "OpenAI SDKs for Python and TypeScript, OpenAI()", "default": true,
                "names": [{ "name": "OPENAI_API_KEY", "variable": "OPENAI_API_KEY", "form": "verbatim" }] }],
            "near_misses": [{ "found": "OPENAI_KEY", "did_you_mean": "OPENAI_API_KEY" }],
            "model_classes": ["chat", "embedding"], "probe_cost": null,
            "keys": [example_key!()]
        })
    };
}

/// The answer of `GET .../providers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Providers {
    /// `organization/project/environment`.
    pub scope: String,
    /// Every loaded provider, linked or not.
    pub providers: Vec<ProviderView>,
}

/// `GET .../providers`: every loaded provider, linked or not.
#[utoipa::path(
    get,
    path = scoped!("/providers"),
    tag = "providers",
    operation_id = "listProviders",
    summary = "Providers of a scope",
    description = "Every loaded provider, linked or not: expected variable names, the names each client library reads, near-miss hints, the provider badge (its worst key's), and its keys (label, variant, status, last used, health).",
    responses((status = 200, description = "The providers.", body = Providers,
        example = json!({ "scope": "acme/shop/prod", "providers": [example_provider!()] }))),
)]
pub async fn providers(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<Providers>, ApiError> {
    let store = state.resolver().store();
    let keys = store.list_provider_keys(&scoped.scope).await?;
    let vars = store.list_vars(&scoped.scope).await?;
    let resolver = state.resolver();
    let providers = resolver
        .registry()
        .iter()
        .map(|plugin| provider_view(resolver, plugin.manifest(), &keys, &vars))
        .collect();
    Ok(Json(Providers { scope: scoped.scope.to_string(), providers }))
}

/// The answer of `GET .../providers/{provider}/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderKeys {
    /// `organization/project/environment`.
    pub scope: String,
    /// The provider, as in the providers list.
    pub provider: ProviderView,
}

/// `GET .../providers/{provider}/keys`.
#[utoipa::path(
    get,
    path = scoped!("/providers/{provider}/keys"),
    tag = "providers",
    operation_id = "listKeys",
    summary = "Keys of a provider",
    description = "One provider of the scope, as in the providers list.",
    params(ProviderParam),
    responses((status = 200, description = "The provider and its keys.", body = ProviderKeys,
        example = json!({ "scope": "acme/shop/prod", "provider": example_provider!() }))),
)]
pub async fn keys(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<ProviderKeys>, ApiError> {
    let manifest = plugin(&state, scoped.param("provider"))?.manifest();
    let store = state.resolver().store();
    let keys = store.list_provider_keys(&scoped.scope).await?;
    let vars = store.list_vars(&scoped.scope).await?;
    let provider = provider_view(state.resolver(), manifest, &keys, &vars);
    Ok(Json(ProviderKeys { scope: scoped.scope.to_string(), provider }))
}

/// The body of `PATCH .../keys/{key}`: at least one of its fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateKey {
    /// A new label; null or absent leaves it.
    #[serde(default)]
    #[schema(schema_with = label_schema)]
    label: Option<String>,
    /// `active` or `disabled`; null or absent leaves it.
    #[serde(default)]
    status: Option<KeyStatus>,
    /// `true`: make it the scope default (while it is active); `false`:
    /// withdraw that choice (the lowest active variant is the default
    /// again); null or absent leaves it.
    #[serde(default)]
    scope_default: Option<bool>,
}

/// The answer of `PATCH .../keys/{key}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyAnswer {
    /// The key after the change.
    pub key: KeyView,
}

/// The row of `key` of `provider` in `scope` and every row of the scope, or
/// 404 `key_not_found`.
pub(super) async fn find_key(
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

/// `PATCH .../providers/{provider}/keys/{key}`: relabel, enable or disable,
/// or make it the scope default (or withdraw that choice).
#[utoipa::path(
    patch,
    path = scoped!("/providers/{provider}/keys/{key}"),
    tag = "providers",
    operation_id = "updateKey",
    summary = "Relabel, enable or disable a key, or make it the scope default",
    description = "A disabled key is kept but never spent: not the scope default, and a pin to it falls back (or fails with `strict`). `scope_default: true` makes an active key the scope default (the latest such choice wins); `false` withdraws the choice, so the lowest active variant is the default again. Admin token of the scope or operator token.",
    params(ProviderParam, KeyParam),
    request_body(content = UpdateKey, description = "The changes.",
        example = json!({ "label": "checkout", "status": "active", "scope_default": true })),
    responses((status = 200, description = "The key after the change.", body = KeyAnswer,
        example = json!({ "key": example_key!() }))),
)]
pub async fn update_key(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Json<KeyAnswer>, ApiError> {
    let key = scoped.param("key").to_owned();
    let label_valid = body.label.as_deref().is_none_or(super::auth::valid_label);
    let mut updates = Vec::new();
    if let Some(label) = body.label {
        updates.push(KeyUpdate::Label(label.trim().to_owned()));
    }
    if let Some(status) = body.status {
        updates.push(KeyUpdate::Status(status));
    }
    if let Some(chosen) = body.scope_default {
        updates.push(KeyUpdate::ChosenDefault(chosen.then(now_millis)));
    }
    if updates.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "nothing to change: expected any of {\"label\": \"...\"}, {\"status\": \"active\" | \"disabled\"}, {\"scope_default\": true | false}",
        ));
    }
    // One record per change the body asks for.
    let changes: Vec<(KeyUpdate, AuditDraft)> = updates
        .into_iter()
        .filter_map(|update| {
            let (action, name, value) = key_update_action(&update)?;
            let draft = audit::draft(action, &scoped.caller)
                .scope(&scoped.scope)
                .provider(scoped.param("provider"))
                .variable(&key)
                .detail(name, value);
            Some((update, draft))
        })
        .collect();
    let checked = async {
        let provider = plugin(&state, scoped.param("provider"))?.slug().to_owned();
        let (found, _) = find_key(&state, &scoped.scope, &provider, &key).await?;
        if !label_valid {
            return Err(ApiError::bad_request(
                "invalid_label",
                format!(
                    "invalid label: expected 1-{} characters without control characters",
                    super::auth::MAX_LABEL_LEN
                ),
            ));
        }
        Ok((provider, found.variant))
    }
    .await;
    let (provider, variant) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            for (_, draft) in &changes {
                state.audit().refuse(draft, error.code).await;
            }
            return Err(error);
        }
    };
    let store = state.resolver().store();
    for (update, draft) in changes {
        let draft = draft.variant(variant);
        state
            .audited(&draft, async {
                match store.update_provider_key(&scoped.scope, &provider, &key, update).await? {
                    true => Ok(()),
                    false => Err(key_not_found(&provider, &[])),
                }
            })
            .await?;
    }
    let (found, keys) = find_key(&state, &scoped.scope, &provider, &key).await?;
    Ok(Json(KeyAnswer { key: key_view(&found, &keys) }))
}

/// The answer of a probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeResult {
    /// The verdict's class.
    #[schema(value_type = HealthVerdict)]
    pub verdict: &'static str,
    /// The verdict's message (redacted: never a secret).
    pub message: String,
    /// How long the probe took, in milliseconds.
    pub latency_ms: u64,
    /// The key's badge now.
    pub badge: Badge,
    /// The provider's badge now.
    pub provider_badge: Badge,
    /// The key with its new health.
    pub key: KeyView,
}

/// `POST .../providers/{provider}/keys/{key}/probe`: "test key" now; the
/// verdict is recorded on the key like a background round's.
#[utoipa::path(
    post,
    path = scoped!("/providers/{provider}/keys/{key}/probe"),
    tag = "providers",
    operation_id = "probeKey",
    summary = "Test a key now",
    description = "Runs the provider's health probe through its plugin (a cheap list-models call for most providers), records the verdict on the key and answers with it and the new badges. A probe spends a request with the key and changes what the scope shows, so it needs an admin token of the scope or an operator token; agents read the recorded health.",
    params(ProviderParam, KeyParam),
    responses((status = 200, description = "The verdict.", body = ProbeResult, example = json!({
        "verdict": "healthy", "message": "the key lists 3 models", "latency_ms": 182,
        "badge": "green", "provider_badge": "green", "key": example_key!()
    }))),
)]
pub async fn probe(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
) -> Result<Json<ProbeResult>, ApiError> {
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
    Ok(Json(ProbeResult {
        verdict: class_name(&outcome.verdict),
        message: outcome.verdict.message().to_owned(),
        latency_ms: outcome.latency.as_millis() as u64,
        badge: badge(Some(&outcome.verdict)),
        provider_badge,
        key: key_view(&found, &keys),
    }))
}

/// The query of `GET .../explain`.
#[derive(Debug, Deserialize)]
pub struct ExplainQuery {
    /// The pin to explain (a key id); absent: the calling token's pin;
    /// empty: none.
    #[serde(default)]
    pinned_key: Option<String>,
}

impl IntoParams for ExplainQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![query_parameter(
            "pinned_key",
            "The pin to explain (a key id); absent: the calling token's pin for the provider, if it has one; empty: no pin at all.",
            "OPENAI_API_KEY_2".into(),
            pin_schema(),
        )]
    }
}

/// `GET .../providers/{provider}/explain?pinned_key=KEY`: why each key would
/// or would not be chosen, and where each variable comes from.
#[utoipa::path(
    get,
    path = scoped!("/providers/{provider}/explain"),
    tag = "resolution",
    operation_id = "explain",
    summary = "Explain a resolve",
    description = "Every key of the provider: whether a resolve (with this pin: the query's `pinned_key`, or, without one, the calling token's pin for the provider; `pinned_by` says which) would choose it and why, where each variable would come from, and its health; and what the resolve would answer: how it chooses, its warning, its error, and the error a `strict` resolve would answer.",
    params(ProviderParam, ExplainQuery),
    responses((status = 200, description = "The explanation.", body = Explanation, example = json!({
        "scope": "acme/shop/prod", "provider": "openai", "pinned_key": "OPENAI_API_KEY_2",
        "pinned_by": "request",
        "chosen_by": "fallback-pin-missing",
        "warning": "the pinned key OPENAI_API_KEY_2 does not exist in acme/shop/prod; spending the scope default OPENAI_API_KEY instead (pass strict to fail instead)",
        "error": null,
        "strict_error": { "code": "pinned_key_missing", "message": "the pinned key OPENAI_API_KEY_2 of openai does not exist in acme/shop/prod" },
        "candidates": [{
            "key_id": "OPENAI_API_KEY", "variant": 1, "label": "checkout", "status": "active",
            "chosen": true, "reason": "the scope default: the lowest active variant",
            "variables": [{ "manifest_var": "OPENAI_API_KEY", "from": { "kind": "scope", "variable": "OPENAI_API_KEY", "version": 1, "source": "api" } }],
            "badge": "grey", "health": null
        }],
        "near_misses": []
    }))),
)]
pub async fn explain(
    scoped: Scoped,
    State(state): State<ApiState>,
    QueryParams(query): QueryParams<ExplainQuery>,
) -> Result<Json<Explanation>, ApiError> {
    let provider = plugin(&state, scoped.param("provider"))?.slug().to_owned();
    let request_pin = RequestPin::of(query.pinned_key.as_deref().map(Some));
    if let RequestPin::Key(pin) = request_pin {
        check_key_name(pin)?;
    }
    let token_pin = scoped.caller.pins.get(&provider).cloned();
    let (pin, pinned_by) = effective_pin(request_pin, token_pin.as_deref());
    let explanation = state.resolver().explain(&scoped.scope, &provider, pin, pinned_by).await?;
    Ok(Json(explanation))
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    /// Only models of this class (400 `invalid_class` otherwise); absent or
    /// empty: every class.
    #[serde(default)]
    #[param(value_type = Option<ModelClass>, example = "chat")]
    class: Option<String>,
}

/// The answer of `GET .../models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    /// `organization/project/environment`.
    pub scope: String,
    /// The class asked for, if any.
    pub class: Option<String>,
    /// The providers with a usable key in the scope.
    pub providers: Vec<String>,
    /// Their models: manifest defaults and models a healthy probe listed.
    pub models: Vec<CatalogModel>,
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
#[utoipa::path(
    get,
    path = scoped!("/models"),
    tag = "resolution",
    operation_id = "listModels",
    summary = "The model picker",
    description = "Models of the providers with a usable key in the scope (active, and not found invalid by its last probe): manifest defaults plus models a healthy probe listed. A provider without such a key shows none.",
    params(ModelsQuery),
    responses((status = 200, description = "The picker.", body = Models, example = json!({
        "scope": "acme/shop/prod", "class": "chat", "providers": ["openai"],
        "models": [
            { "provider": "openai", "id": "gpt-5", "class": "chat", "display_name": "GPT-5", "context_window": 400000, "source": "default" },
            { "provider": "openai", "id": "mock-chat-1", "class": "chat", "display_name": "mock-chat-1", "source": "discovered" }
        ]
    }))),
)]
pub async fn models(
    scoped: Scoped,
    State(state): State<ApiState>,
    QueryParams(query): QueryParams<ModelsQuery>,
) -> Result<Json<Models>, ApiError> {
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
    Ok(Json(Models {
        scope: scoped.scope.to_string(),
        class: query.class.filter(|class| !class.is_empty()),
        providers,
        models,
    }))
}

/// Where a scope's embedding provider comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfiguredBy {
    /// `PLATOS_EMBEDDING_PROVIDER` is not set: voyage.
    Default,
    /// `PLATOS_EMBEDDING_PROVIDER` names it.
    Variable,
}

/// The answer of `GET .../embedding`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingAnswer {
    /// The configured provider; null when the variable names none the host
    /// supports.
    pub provider: Option<EmbeddingProvider>,
    /// Whether it has a usable key in the scope.
    pub ready: bool,
    /// What is missing, in words, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// Where the provider comes from.
    pub configured_by: ConfiguredBy,
    /// The variable that chooses it.
    #[schema(value_type = String)]
    pub variable: &'static str,
}

/// `GET .../embedding`: whether memory and RAG writes can work in the scope.
#[utoipa::path(
    get,
    path = scoped!("/embedding"),
    tag = "providers",
    operation_id = "embeddingStatus",
    summary = "Embedding track status",
    description = "Whether the scope's embedding provider (`PLATOS_EMBEDDING_PROVIDER`, voyage by default) has a usable key; without one memory and RAG writes fail.",
    responses((status = 200, description = "The status.", body = EmbeddingAnswer, example = json!({
        "provider": "voyage", "ready": false,
        "missing": "no VOYAGE_API_KEY in this scope: until then memory extraction and remember calls fail at write time",
        "configured_by": "default", "variable": "PLATOS_EMBEDDING_PROVIDER"
    }))),
)]
pub async fn embedding(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<EmbeddingAnswer>, ApiError> {
    Ok(Json(embedding_status(&state, &scoped.scope).await?))
}

/// The embedding status of `scope`: the provider its
/// `PLATOS_EMBEDDING_PROVIDER` names (voyage when unset), and whether it has a key.
pub async fn embedding_status(
    state: &ApiState,
    scope: &Scope,
) -> Result<EmbeddingAnswer, ApiError> {
    use secrecy::ExposeSecret;
    let resolver = state.resolver();
    let configured = resolver.store().get_var(scope, EMBEDDING_PROVIDER_VAR).await?;
    let (provider, configured_by) = match &configured {
        None => (Ok(EmbeddingProvider::Voyage), ConfiguredBy::Default),
        Some(value) => {
            (value.value.expose_secret().parse::<EmbeddingProvider>(), ConfiguredBy::Variable)
        }
    };
    let (provider, ready, missing) = match provider {
        Ok(provider) => {
            let status = crate::embedding::status(resolver, scope, provider).await?;
            (Some(status.provider), status.ready, status.missing)
        }
        Err(problem) => (None, false, Some(problem)),
    };
    Ok(EmbeddingAnswer {
        provider,
        ready,
        missing,
        configured_by,
        variable: EMBEDDING_PROVIDER_VAR,
    })
}

/// The answer of `GET .../self-host`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SelfHost {
    /// `organization/project/environment`.
    pub scope: String,
    /// The last import into this scope; null when this is not the
    /// self-host scope.
    pub self_host: Option<ImportStatus>,
}

/// `GET .../self-host`: the last self-host import into this scope (names,
/// skipped lines, shadowed names, misspelling hints, a refused reload's
/// reason), or `null` when this is not the self-host scope.
#[utoipa::path(
    get,
    path = scoped!("/self-host"),
    tag = "env",
    operation_id = "selfHostImport",
    summary = "The self-host import",
    description = "For the scope the self-host configuration (`.env` file, process environment) is imported into: the last import's time, the variable names it holds, the `.env` lines it skipped and why, the names a process variable replaced, names that look misspelt, and why the last reload was refused (the previous variables stay). `self_host` is null for any other scope. Never a value.",
    responses((status = 200, description = "The import.", body = SelfHost, example = json!({
        "scope": "self/host/default",
        "self_host": {
            "scope": "self/host/default", "attempted_at": 1767225600000u64, "error": null,
            "variables": ["OPENAI_API_KEY", "OPENAI_KEY"],
            "skipped_lines": [{ "line": 8, "reason": "expected NAME=VALUE" }],
            "from_process_env": [], "shadowed_by_process_env": ["OPENAI_API_KEY"],
            "near_misses": [{ "found": "OPENAI_KEY", "did_you_mean": "OPENAI_API_KEY" }]
        }
    }))),
)]
pub async fn self_host(scoped: Scoped, State(state): State<ApiState>) -> Json<SelfHost> {
    let status = state.import_status().filter(|status| status.scope == scoped.scope.to_string());
    Json(SelfHost { scope: scoped.scope.to_string(), self_host: status })
}

/// One scope a token may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeEntry {
    /// `organization/project/environment`.
    pub scope: String,
    /// Whether the self-host configuration is imported into it.
    pub self_host: bool,
}

/// The answer of `GET /v1/scopes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Scopes {
    /// The scopes, sorted.
    pub scopes: Vec<ScopeEntry>,
}

/// `GET /v1/scopes`: the scopes the token may see, for the page's scope
/// picker: its own scope for a scope-bound token; for an operator every
/// scope with a provider key, and the self-host scope.
#[utoipa::path(
    get,
    path = "/v1/scopes",
    tag = "providers",
    operation_id = "listScopes",
    summary = "Scopes the token may see",
    description = "For the page's scope picker: a scope-bound token's own scope; for an operator token every scope with a provider key, and the self-host scope (marked).",
    responses((status = 200, description = "The scopes.", body = Scopes, example = json!({
        "scopes": [
            { "scope": "acme/shop/prod", "self_host": false },
            { "scope": "self/host/default", "self_host": true }
        ]
    }))),
)]
pub async fn list_scopes(
    Authed(caller): Authed,
    State(state): State<ApiState>,
) -> Result<Json<Scopes>, ApiError> {
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
    let scopes = scopes
        .into_iter()
        .map(|scope| ScopeEntry { self_host: self_host.as_deref() == Some(scope.as_str()), scope })
        .collect();
    Ok(Json(Scopes { scopes }))
}

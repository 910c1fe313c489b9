//! A scope's environment variables: list (names, versions, times, sources;
//! never values; any token of the scope), set (the value in the JSON body,
//! never in the URL) and unset (an admin token of the scope or an operator
//! token). Writes are durable before the answer, off the async workers.

use axum::Json;
use axum::extract::State;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::error::ApiError;
use super::extract::params::VarNameParam;
use super::extract::{AdminScoped, JsonBody, Scoped};
use super::{ApiState, audit};
use crate::embedding::{EMBEDDING_PROVIDER_VAR, EmbeddingProvider};
use crate::policy::hints::near_misses;
use crate::policy::variants::variant_of;
use crate::store::{AuditAction, MAX_VALUE_LEN, VarInfo, VarSource, check_name, rules};

/// The answer of `GET .../env`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Variables {
    /// `organization/project/environment`.
    pub scope: String,
    /// The scope's variables, without values.
    pub variables: Vec<VarInfo>,
}

/// `GET .../env`.
#[utoipa::path(
    get,
    path = scoped!("/env"),
    tag = "env",
    operation_id = "listEnv",
    summary = "Variables of a scope",
    description = "Names, versions, update times and sources; values are write-only and never returned.",
    responses((status = 200, description = "The variables.", body = Variables, example = json!({
        "scope": "acme/shop/prod",
        "variables": [{ "name": "OPENAI_API_KEY", "version": 2, "updated_at": 1767225600000u64, "source": "api" }]
    }))),
)]
pub async fn list(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<Variables>, ApiError> {
    let vars = state.resolver().store().list_vars(&scoped.scope).await?;
    Ok(Json(Variables { scope: scoped.scope.to_string(), variables: vars }))
}

/// A variable's value as a body carries it: write-only, never answered.
fn value_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_VALUE_LEN))
        .write_only(true)
        .description(Some(format!(
            "The value: not empty (400 `empty_value`), at most {MAX_VALUE_LEN} bytes of UTF-8 (413 `value_too_large`)."
        )))
        .into()
}

/// The body of `PUT .../env/{name}`. `Debug` redacts the value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVar {
    /// The value.
    #[serde(deserialize_with = "secret_string")]
    #[schema(schema_with = value_schema)]
    value: SecretString,
}

/// A string straight into a [`SecretString`], the intermediate copy zeroed.
fn secret_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SecretString, D::Error> {
    let text = Zeroizing::new(String::deserialize(deserializer)?);
    Ok(SecretString::from(text.as_str()))
}

impl std::fmt::Debug for SetVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetVar").field("value", &"[redacted]").finish()
    }
}

/// The key a set linked.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedKey {
    /// The provider's slug.
    pub provider: String,
    /// The key's id (the variable's name).
    pub key_id: String,
    /// 1 for the plain variable, `n` for `{base}_{n}`.
    pub variant: u32,
}

/// The answer of `PUT .../env/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetAnswer {
    /// The variable as it is now, without its value.
    pub variable: VarInfo,
    /// The provider key the variable is, if it is one.
    pub linked_key: Option<LinkedKey>,
    /// Set when the name is no loaded provider's variable but looks like one.
    pub warning: Option<String>,
}

/// `PUT .../env/{name}` with `{"value": "..."}`: a new version; the version
/// it replaces stays readable for the grace period (turns holding a lease
/// on it finish). A provider key variable links its key.
#[utoipa::path(
    put,
    path = scoped!("/env/{name}"),
    tag = "env",
    operation_id = "setEnv",
    summary = "Set a variable",
    description = "Writes a new version (durable before the answer). The value is in the body, never the URL. The replaced version stays readable for the grace period so turns holding a lease on it finish (rotation). A provider key variable (`OPENAI_API_KEY`, `OPENAI_API_KEY_2`, …) links its key, and when automatic probes are on the provider's keys in the scope are probed at once. `PLATOS_EMBEDDING_PROVIDER` takes `voyage` or `openai` (`invalid_value` otherwise). Admin token of the scope or operator token.",
    params(VarNameParam),
    request_body(content = SetVar, description = "The value.",
        example = json!({ "value": "sk-canary-0000-not-a-real-key" })),
    responses((status = 200, description = "Set.", body = SetAnswer, example = json!({
        "variable": { "name": "OPENAI_API_KEY", "version": 1, "updated_at": 1767225600000u64, "source": "api" },
        "linked_key": { "provider": "openai", "key_id": "OPENAI_API_KEY", "variant": 1 },
        "warning": null
    }))),
)]
pub async fn set(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<SetVar>,
) -> Result<Json<SetAnswer>, ApiError> {
    let name = scoped.param("name").to_owned();
    let store = state.resolver().store();
    let mut draft = audit::draft(AuditAction::VarSet, &scoped.caller).scope(&scoped.scope);
    let checked = async {
        check_name(&name)?;
        let current =
            store.list_vars(&scoped.scope).await?.into_iter().find(|var| var.name == name);
        if let Some(current) = &current {
            draft = audit::draft(AuditAction::VarRotate, &scoped.caller)
                .scope(&scoped.scope)
                .detail("previous_version", current.version.to_string());
        }
        check_value(&name, &body.value)?;
        rules::check_writer(&scoped.scope, &name, VarSource::Api, current.map(|var| var.source))?;
        Ok(())
    }
    .await;
    let draft = audit::key_fields(&state, draft, &name);
    state.refuse_on(&draft, checked).await?;
    let info = state
        .audited(&draft, async {
            Ok(store.set_var(&scoped.scope, &name, &body.value, VarSource::Api).await?)
        })
        .await?;
    let keys = store.list_provider_keys(&scoped.scope).await?;
    let linked = keys.iter().find(|key| key.env_var == name).map(|key| LinkedKey {
        provider: key.provider.clone(),
        key_id: key.env_var.clone(),
        variant: key.variant,
    });
    tracing::info!(scope = %scoped.scope, name = %name, version = info.version, by = %scoped.caller.token_id, "variable set through the API");
    state.health().variable_changed(&scoped.scope, &name);
    Ok(Json(SetAnswer {
        variable: info,
        linked_key: linked,
        warning: unknown_name_warning(&state, &name),
    }))
}

/// Checks a value to be written as `name`: not empty, a valid embedding
/// provider for [`EMBEDDING_PROVIDER_VAR`], and within the store's size.
fn check_value(name: &str, value: &SecretString) -> Result<(), ApiError> {
    if value.expose_secret().is_empty() {
        return Err(ApiError::bad_request(
            "empty_value",
            format!(
                "the value of {name} is empty: send {{\"value\": \"...\"}} with the value, or DELETE the variable to unset it"
            ),
        ));
    }
    if name == EMBEDDING_PROVIDER_VAR
        && let Err(problem) = value.expose_secret().parse::<EmbeddingProvider>()
    {
        return Err(ApiError::bad_request("invalid_value", problem));
    }
    Ok(rules::check_value(name, value)?)
}

/// A warning when `name` is no loaded provider's variable but looks like one.
fn unknown_name_warning(state: &ApiState, name: &str) -> Option<String> {
    let known = state.resolver().known_var_names();
    if known.iter().any(|base| variant_of(name, base).is_some()) {
        return None;
    }
    near_misses(name, &known).first().map(|suggestion| {
        format!("{name} is not a variable of any loaded provider; did you mean {suggestion}?")
    })
}

/// The answer of `DELETE .../env/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unset {
    /// Always true.
    pub unset: bool,
    /// The variable's name.
    pub name: String,
}

/// `DELETE .../env/{name}`: unsets; the last value stays readable by version
/// for the grace period, and the key it linked is unlinked.
#[utoipa::path(
    delete,
    path = scoped!("/env/{name}"),
    tag = "env",
    operation_id = "unsetEnv",
    summary = "Unset a variable",
    description = "Its last value stays readable by version for the grace period; the key it linked is unlinked. Admin token of the scope or operator token.",
    params(VarNameParam),
    responses((status = 200, description = "Unset.", body = Unset,
        example = json!({ "unset": true, "name": "OPENAI_API_KEY" }))),
)]
pub async fn unset(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
) -> Result<Json<Unset>, ApiError> {
    let name = scoped.param("name").to_owned();
    let store = state.resolver().store();
    let draft = audit::draft(AuditAction::VarUnset, &scoped.caller).scope(&scoped.scope);
    let draft = audit::key_fields(&state, draft, &name);
    let checked = async {
        check_name(&name)?;
        let current =
            store.list_vars(&scoped.scope).await?.into_iter().find(|var| var.name == name);
        let Some(current) = current else {
            return Err(ApiError::not_found(
                "variable_not_set",
                format!(
                    "{name} is not set in this scope: GET .../env lists the variables that are"
                ),
            ));
        };
        rules::check_writer(&scoped.scope, &name, VarSource::Api, Some(current.source))?;
        Ok(current.version)
    }
    .await;
    let version = state.refuse_on(&draft, checked).await?;
    let draft = draft.version(version);
    state
        .audited(&draft, async {
            match store.unset_var(&scoped.scope, &name, VarSource::Api).await? {
                true => Ok(()),
                // Unset by another request since the check.
                false => Err(ApiError::not_found(
                    "variable_not_set",
                    format!("{name} is not set in this scope: it was unset meanwhile"),
                )),
            }
        })
        .await?;
    tracing::info!(scope = %scoped.scope, name = %name, by = %scoped.caller.token_id, "variable unset through the API");
    state.health().variable_changed(&scoped.scope, &name);
    Ok(Json(Unset { unset: true, name }))
}

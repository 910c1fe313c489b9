//! A scope's environment variables: list (names, versions, times, sources;
//! never values; any token of the scope), set (the value in the JSON body,
//! never in the URL) and unset (an admin token of the scope or an operator
//! token). Writes are durable before the answer, off the async workers.

use axum::Json;
use axum::extract::State;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::ApiState;
use super::error::ApiError;
use super::extract::{AdminScoped, JsonBody, Scoped};
use crate::embedding::{EMBEDDING_PROVIDER_VAR, EmbeddingProvider};
use crate::policy::hints::near_misses;
use crate::policy::variants::variant_of;
use crate::store::{VarSource, check_name};

/// `GET .../env`.
pub async fn list(scoped: Scoped, State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let vars = state.resolver().store().list_vars(&scoped.scope).await?;
    Ok(Json(json!({ "scope": scoped.scope.to_string(), "variables": vars })))
}

/// The body of `PUT .../env/{name}`. `Debug` redacts the value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVar {
    /// The value.
    #[serde(deserialize_with = "secret_string")]
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

/// `PUT .../env/{name}` with `{"value": "..."}`: a new version; the version
/// it replaces stays readable for the grace period (turns holding a lease
/// on it finish). A provider key variable links its key.
pub async fn set(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<SetVar>,
) -> Result<Json<Value>, ApiError> {
    let name = scoped.param("name").to_owned();
    check_name(&name)?;
    if body.value.expose_secret().is_empty() {
        return Err(ApiError::bad_request(
            "empty_value",
            format!(
                "the value of {name} is empty: send {{\"value\": \"...\"}} with the value, or DELETE the variable to unset it"
            ),
        ));
    }
    if name == EMBEDDING_PROVIDER_VAR
        && let Err(problem) = body.value.expose_secret().parse::<EmbeddingProvider>()
    {
        return Err(ApiError::bad_request("invalid_value", problem));
    }
    let store = state.resolver().store();
    let info = store.set_var(&scoped.scope, &name, &body.value, VarSource::Api).await?;
    let keys = store.list_provider_keys(&scoped.scope).await?;
    let linked = keys.iter().find(|key| key.env_var == name).map(
        |key| json!({ "provider": key.provider, "key_id": key.env_var, "variant": key.variant }),
    );
    tracing::info!(scope = %scoped.scope, name = %name, version = info.version, by = %scoped.caller.token_id, "variable set through the API");
    state.health().variable_changed(&scoped.scope, &name);
    Ok(Json(json!({
        "variable": info,
        "linked_key": linked,
        "warning": unknown_name_warning(&state, &name),
    })))
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

/// `DELETE .../env/{name}`: unsets; the last value stays readable by version
/// for the grace period, and the key it linked is unlinked.
pub async fn unset(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
) -> Result<Json<Value>, ApiError> {
    let name = scoped.param("name").to_owned();
    check_name(&name)?;
    let was_set = state.resolver().store().unset_var(&scoped.scope, &name, VarSource::Api).await?;
    if !was_set {
        return Err(ApiError::not_found(
            "variable_not_set",
            format!("{name} is not set in this scope: GET .../env lists the variables that are"),
        ));
    }
    tracing::info!(scope = %scoped.scope, name = %name, by = %scoped.caller.token_id, "variable unset through the API");
    state.health().variable_changed(&scoped.scope, &name);
    Ok(Json(json!({ "unset": true, "name": name })))
}

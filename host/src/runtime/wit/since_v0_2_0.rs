//! `platos:provider@0.2.0`: bindings and the conversions between its WIT
//! types and the domain types, all in one place. Frozen with the contract.

use secrecy::SecretString;
use wasmtime::Store;

use super::super::store::StoreState;
use super::ExposedCredentials;
use crate::provider as domain;

wasmtime::component::bindgen!({
    world: "provider",
    path: "../wit/since_v0.2.0",
    exports: { default: async },
});

use self::exports::platos::provider::types as wit;

/// The contract version, e.g. for messages.
pub const VERSION: &str = "0.2.0";

/// The export this version's plugins provide.
pub const EXPORT_NAME: &str = "platos:provider/plugin@0.2.0";

pub(crate) async fn manifest(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
) -> wasmtime::Result<domain::Manifest> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let manifest = bindings.platos_provider_plugin().call_manifest(&mut *store).await?;
    Ok(manifest.into())
}

pub(crate) async fn authorize(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
    credentials: &domain::Credentials,
    request: &domain::HttpRequest,
    now: u64,
) -> wasmtime::Result<Result<domain::HttpRequest, domain::ProviderError>> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let credentials = ExposedCredentials::new(credentials);
    let request = wit::HttpRequest::from(request);
    let result = bindings
        .platos_provider_plugin()
        .call_authorize(&mut *store, &credentials.0, &request, now)
        .await?;
    Ok(result.map(Into::into).map_err(Into::into))
}

pub(crate) async fn health_probe(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
    credentials: &domain::Credentials,
) -> wasmtime::Result<Result<domain::HttpRequest, domain::ProviderError>> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let credentials = ExposedCredentials::new(credentials);
    let result =
        bindings.platos_provider_plugin().call_health_probe(&mut *store, &credentials.0).await?;
    Ok(result.map(Into::into).map_err(Into::into))
}

pub(crate) async fn interpret_health(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
    response: &domain::HttpResponse,
) -> wasmtime::Result<domain::Verdict> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let response = wit::HttpResponse::from(response);
    let verdict =
        bindings.platos_provider_plugin().call_interpret_health(&mut *store, &response).await?;
    Ok(verdict.into())
}

pub(crate) async fn token_request(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
    credentials: &domain::Credentials,
    now: u64,
) -> wasmtime::Result<Result<domain::HttpRequest, domain::ProviderError>> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let credentials = ExposedCredentials::new(credentials);
    let result = bindings
        .platos_provider_plugin()
        .call_token_request(&mut *store, &credentials.0, now)
        .await?;
    Ok(result.map(Into::into).map_err(Into::into))
}

pub(crate) async fn read_token(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
    response: &domain::HttpResponse,
    now: u64,
) -> wasmtime::Result<Result<domain::AccessToken, domain::Verdict>> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let response = wit::HttpResponse::from(response);
    let result =
        bindings.platos_provider_plugin().call_read_token(&mut *store, &response, now).await?;
    Ok(result.map(Into::into).map_err(Into::into))
}

pub(crate) async fn read_usage(
    pre: &ProviderPre<StoreState>,
    store: &mut Store<StoreState>,
    request: &domain::HttpRequest,
    response: &domain::HttpResponse,
) -> wasmtime::Result<Result<Option<domain::Usage>, domain::ProviderError>> {
    let bindings = pre.instantiate_async(&mut *store).await?;
    let request = wit::HttpRequest::from(request);
    let response = wit::HttpResponse::from(response);
    let result =
        bindings.platos_provider_plugin().call_read_usage(&mut *store, &request, &response).await?;
    Ok(result.map(|usage| usage.map(Into::into)).map_err(Into::into))
}

impl From<wit::ProviderManifest> for domain::Manifest {
    fn from(manifest: wit::ProviderManifest) -> Self {
        domain::Manifest {
            slug: manifest.slug,
            display_name: manifest.display_name,
            plugin_version: manifest.plugin_version,
            env_vars: manifest.env_vars.into_iter().map(Into::into).collect(),
            auth: manifest.auth.into(),
            model_classes: manifest.model_classes.into_iter().map(Into::into).collect(),
            default_models: manifest.default_models.into_iter().map(Into::into).collect(),
            allowed_hosts: manifest.allowed_hosts,
            docs_url: manifest.docs_url,
            probe_cost: manifest.probe_cost,
            clients: manifest
                .clients
                .into_iter()
                .map(|client| domain::ClientInfo {
                    id: client.id,
                    display_name: client.display_name,
                })
                .collect(),
            default_client: manifest.default_client,
            token_exchange: manifest.token_exchange,
        }
    }
}

impl From<wit::EnvVar> for domain::EnvVar {
    fn from(var: wit::EnvVar) -> Self {
        domain::EnvVar {
            name: var.name,
            role: match var.role {
                wit::EnvVarRole::Secret => domain::EnvVarRole::Secret,
                wit::EnvVarRole::BaseUrl => domain::EnvVarRole::BaseUrl,
                wit::EnvVarRole::Other => domain::EnvVarRole::Other,
            },
            required: var.required,
            description: var.description,
            default_value: var.default_value,
            aliases: var.aliases.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::EnvAlias> for domain::EnvAlias {
    fn from(alias: wit::EnvAlias) -> Self {
        domain::EnvAlias {
            name: alias.name,
            client: match alias.client {
                wit::ClientSelector::All => domain::ClientSelector::All,
                wit::ClientSelector::Only(id) => domain::ClientSelector::Only(id),
            },
            form: match alias.form {
                wit::ValueForm::Verbatim => domain::ValueForm::Verbatim,
                wit::ValueForm::AppendSuffix(suffix) => domain::ValueForm::AppendSuffix { suffix },
                wit::ValueForm::StripSuffix(suffix) => domain::ValueForm::StripSuffix { suffix },
                wit::ValueForm::HostLabelOfUrl(domain) => {
                    domain::ValueForm::HostLabelOfUrl { domain }
                }
                wit::ValueForm::NoteOnly => domain::ValueForm::NoteOnly,
            },
            note: alias.note,
        }
    }
}

impl From<wit::AuthShape> for domain::AuthShape {
    fn from(shape: wit::AuthShape) -> Self {
        match shape {
            wit::AuthShape::Bearer(env_var) => domain::AuthShape::Bearer { env_var },
            wit::AuthShape::Header(wit::HeaderAuth { header, env_var }) => {
                domain::AuthShape::Header { header, env_var }
            }
            wit::AuthShape::Query(wit::QueryAuth { param, env_var }) => {
                domain::AuthShape::Query { param, env_var }
            }
            wit::AuthShape::Custom(description) => domain::AuthShape::Custom { description },
        }
    }
}

impl From<wit::ModelClass> for domain::ModelClass {
    fn from(class: wit::ModelClass) -> Self {
        match class {
            wit::ModelClass::Chat => domain::ModelClass::Chat,
            wit::ModelClass::Completion => domain::ModelClass::Completion,
            wit::ModelClass::Embedding => domain::ModelClass::Embedding,
            wit::ModelClass::Rerank => domain::ModelClass::Rerank,
            wit::ModelClass::Image => domain::ModelClass::Image,
            wit::ModelClass::Audio => domain::ModelClass::Audio,
            wit::ModelClass::Moderation => domain::ModelClass::Moderation,
        }
    }
}

impl From<wit::ModelInfo> for domain::ModelInfo {
    fn from(model: wit::ModelInfo) -> Self {
        domain::ModelInfo {
            id: model.id,
            class: model.class.into(),
            display_name: model.display_name,
            context_window: model.context_window,
            price: model.price.map(|price| domain::TokenPrice {
                input: domain::MicroUsd(price.input),
                output: domain::MicroUsd(price.output),
                cached_input: price.cached_input.map(domain::MicroUsd),
            }),
        }
    }
}

impl From<&domain::HttpRequest> for wit::HttpRequest {
    fn from(request: &domain::HttpRequest) -> Self {
        wit::HttpRequest {
            method: match request.method {
                domain::Method::Get => wit::Method::Get,
                domain::Method::Head => wit::Method::Head,
                domain::Method::Post => wit::Method::Post,
                domain::Method::Put => wit::Method::Put,
                domain::Method::Patch => wit::Method::Patch,
                domain::Method::Delete => wit::Method::Delete,
            },
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        }
    }
}

impl From<wit::HttpRequest> for domain::HttpRequest {
    fn from(request: wit::HttpRequest) -> Self {
        domain::HttpRequest {
            method: match request.method {
                wit::Method::Get => domain::Method::Get,
                wit::Method::Head => domain::Method::Head,
                wit::Method::Post => domain::Method::Post,
                wit::Method::Put => domain::Method::Put,
                wit::Method::Patch => domain::Method::Patch,
                wit::Method::Delete => domain::Method::Delete,
            },
            url: request.url,
            headers: request.headers,
            body: request.body,
        }
    }
}

impl From<&domain::HttpResponse> for wit::HttpResponse {
    fn from(response: &domain::HttpResponse) -> Self {
        wit::HttpResponse {
            status: response.status,
            headers: response.headers.clone(),
            body: response.body.clone(),
        }
    }
}

impl From<wit::PluginError> for domain::ProviderError {
    fn from(error: wit::PluginError) -> Self {
        domain::ProviderError {
            code: match error.code {
                wit::ErrorCode::MissingCredential => domain::ProviderErrorCode::MissingCredential,
                wit::ErrorCode::InvalidCredential => domain::ProviderErrorCode::InvalidCredential,
                wit::ErrorCode::InvalidRequest => domain::ProviderErrorCode::InvalidRequest,
                wit::ErrorCode::Unsupported => domain::ProviderErrorCode::Unsupported,
                wit::ErrorCode::Internal => domain::ProviderErrorCode::Internal,
            },
            message: error.message,
        }
    }
}

impl From<wit::Verdict> for domain::Verdict {
    fn from(verdict: wit::Verdict) -> Self {
        match verdict {
            wit::Verdict::Healthy(info) => {
                domain::Verdict::Healthy { message: info.message, models: info.models }
            }
            wit::Verdict::InvalidCredential(message) => {
                domain::Verdict::InvalidCredential { message }
            }
            wit::Verdict::QuotaLimited(message) => domain::Verdict::QuotaLimited { message },
            wit::Verdict::Unreachable(message) => domain::Verdict::Unreachable { message },
            wit::Verdict::Degraded(message) => domain::Verdict::Degraded { message },
        }
    }
}

impl From<wit::AccessToken> for domain::AccessToken {
    fn from(token: wit::AccessToken) -> Self {
        // The guest's string moves into the secret: no copy is left behind.
        domain::AccessToken { value: SecretString::from(token.value), expires_at: token.expires_at }
    }
}

/// A failed exchange is the verdict the key gets.
impl From<wit::TokenFailure> for domain::Verdict {
    fn from(failure: wit::TokenFailure) -> Self {
        match failure {
            wit::TokenFailure::InvalidCredential(message) => {
                domain::Verdict::InvalidCredential { message }
            }
            wit::TokenFailure::QuotaLimited(message) => domain::Verdict::QuotaLimited { message },
            wit::TokenFailure::Unreachable(message) => domain::Verdict::Unreachable { message },
            wit::TokenFailure::Degraded(message) => domain::Verdict::Degraded { message },
        }
    }
}

impl From<wit::Usage> for domain::Usage {
    fn from(usage: wit::Usage) -> Self {
        domain::Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            model: usage.model,
        }
    }
}

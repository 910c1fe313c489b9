//! The Azure OpenAI provider plugin: `api-key` header auth plus the dated
//! `api-version` query parameter the classic data-plane paths need (the v1
//! API under `/openai/v1/` takes none), probe
//! `GET {endpoint}/openai/models?api-version=..`.
//!
//! The endpoint is accepted as the resource URL, with or without the
//! `/openai` or `/openai/v1` path the SDKs add; a pasted deployment URL
//! (`.../openai/deployments/{name}/...`) gets a verdict that says what to
//! set instead. Discovered models are the models the resource offers: the
//! data plane a key reaches lists no deployments (only Azure Resource
//! Manager does, with a Microsoft Entra ID token), and the verdict says so.
//!
//! Azure's error bodies are `{"error":{"code":..,"message":..}}`: 401 and 403
//! are an invalid credential, 429 is quota, 404 (a wrong endpoint or API
//! version) and 5xx are degraded.

use platos_plugin_sdk::azure::{api_version, error_code, resource_endpoint, with_api_version};
use platos_plugin_sdk::{
    Credentials, HttpRequest, HttpResponse, PluginError, Provider, ProviderManifest, StatusClass,
    Usage, Verdict, apply_declared_auth, base_url, classify_status, export_provider,
    include_manifest, join_url, listing_verdict, model_ids_from_json, read_openai_usage,
    redacted_snippet,
};

/// The variable naming the API version.
const API_VERSION_VAR: &str = "AZURE_OPENAI_API_VERSION";

/// The variable naming the resource endpoint.
const ENDPOINT_VAR: &str = "AZURE_OPENAI_ENDPOINT";

struct AzureOpenAi;

impl Provider for AzureOpenAi {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn authorize(
        credentials: Credentials,
        request: HttpRequest,
        _now: u64,
    ) -> Result<HttpRequest, PluginError> {
        let manifest = Self::manifest();
        let request = apply_declared_auth(&manifest, &credentials, request)?;
        with_api_version(request, || api_version(&credentials, &manifest, API_VERSION_VAR))
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let manifest = Self::manifest();
        let endpoint =
            resource_endpoint(&base_url(&credentials, &manifest)?, ENDPOINT_VAR, API_VERSION_VAR)?;
        let version = api_version(&credentials, &manifest, API_VERSION_VAR)?;
        Ok(HttpRequest::get(join_url(&endpoint, &format!("openai/models?api-version={version}"))))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }

    fn read_usage(
        request: HttpRequest,
        response: HttpResponse,
    ) -> Result<Option<Usage>, PluginError> {
        Ok(read_openai_usage(&request, &response))
    }
}

export_provider!(AzureOpenAi);

/// Reads a `GET /openai/models` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let label = error_code(&response.body).map(|code| format!(" ({code})")).unwrap_or_default();
    match classify_status(status) {
        StatusClass::Success => listing_verdict(
            response,
            model_ids_from_json(&response.body),
            "models the resource offers (deployments are listed only by Azure Resource Manager, with a Microsoft Entra ID token)",
        ),
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        StatusClass::InvalidCredential => Verdict::InvalidCredential(format!(
            "HTTP {status}{label}: Azure refused the key (is it the key of this endpoint's resource?)"
        )),
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: out of quota or rate limited"))
        }
        StatusClass::Degraded if status == 404 => Verdict::Degraded(format!(
            "HTTP 404{label}: not found; check AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_VERSION"
        )),
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}{label}: {}", redacted_snippet(&response.body)))
        }
    }
}

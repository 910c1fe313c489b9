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

use platos_plugin_sdk::{
    Credentials, ErrorCode, HttpRequest, HttpResponse, PluginError, Provider, ProviderManifest,
    StatusClass, Verdict, apply_declared_auth, base_url, classify_status, credential_or_default,
    export_provider, include_manifest, join_url, listing_verdict, model_ids_from_json,
    redacted_snippet,
};

/// The variable naming the API version.
const API_VERSION_VAR: &str = "AZURE_OPENAI_API_VERSION";

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
        let mut request = apply_declared_auth(&manifest, &credentials, request)?;
        if !is_v1_api(&request.url) && !has_query_param(&request.url, "api-version") {
            let version = api_version(&credentials, &manifest)?;
            let (url, fragment) = match request.url.split_once('#') {
                Some((url, fragment)) => (url, format!("#{fragment}")),
                None => (request.url.as_str(), String::new()),
            };
            let separator = if url.contains('?') { '&' } else { '?' };
            request.url = format!("{url}{separator}api-version={version}{fragment}");
        }
        Ok(request)
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let manifest = Self::manifest();
        let endpoint = resource_endpoint(&base_url(&credentials, &manifest)?)?;
        let version = api_version(&credentials, &manifest)?;
        Ok(HttpRequest::get(join_url(&endpoint, &format!("openai/models?api-version={version}"))))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }
}

export_provider!(AzureOpenAi);

/// The configured API version, else the manifest's default. Only letters,
/// digits, `-` and `.` are accepted, so it cannot alter the URL.
fn api_version(
    credentials: &Credentials,
    manifest: &ProviderManifest,
) -> Result<String, PluginError> {
    let version = credential_or_default(credentials, manifest, API_VERSION_VAR)?;
    let valid = !version.is_empty()
        && version.len() <= 32
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(version)
    } else {
        Err(PluginError::new(
            ErrorCode::InvalidCredential,
            format!("{API_VERSION_VAR} must be an API version such as 2024-10-21"),
        ))
    }
}

/// The resource endpoint in a configured `AZURE_OPENAI_ENDPOINT`: the URL
/// without the `/openai` or `/openai/v1` path the SDKs add (people paste
/// both). A gateway's own path (`https://apim.example/aoai`) is kept. A
/// deployment or operation URL (anything under `/openai/`), or one with a
/// query, is refused with a message saying what to set: the SDKs would
/// build `.../openai/deployments/..` under it and get a bare 404.
fn resource_endpoint(endpoint: &str) -> Result<String, PluginError> {
    let (without_query, query) = endpoint.split_once('?').unwrap_or((endpoint, ""));
    let trimmed = without_query.trim_end_matches('/');
    let lower = trimmed.to_ascii_lowercase();
    let resource = ["/openai/v1", "/openai"]
        .iter()
        .find_map(|suffix| lower.strip_suffix(suffix).map(|head| &trimmed[..head.len()]))
        .unwrap_or(trimmed);
    if query.is_empty() && !resource.to_ascii_lowercase().contains("/openai/") {
        return Ok(resource.to_owned());
    }
    let origin = resource.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    let what = if lower.contains("/openai/deployments/") {
        "a deployment URL"
    } else if !query.is_empty() {
        "a URL with a query"
    } else {
        "an operation URL"
    };
    Err(PluginError::new(
        ErrorCode::InvalidCredential,
        format!(
            "AZURE_OPENAI_ENDPOINT is {what}; set it to the resource endpoint alone, e.g. {origin} (the deployment name goes in each request's path, the API version in AZURE_OPENAI_API_VERSION)"
        ),
    ))
}

/// Whether the URL is one of the v1 API's (`/openai/v1` and below, also
/// behind a gateway's own path prefix), which take no dated `api-version`.
fn is_v1_api(url: &str) -> bool {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    let path = path.split(['?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    let path = format!("/{path}");
    path.ends_with("/openai/v1") || path.contains("/openai/v1/")
}

/// Whether the URL's query already has the parameter `name`.
fn has_query_param(url: &str, name: &str) -> bool {
    let query = url.split('#').next().unwrap_or_default().split_once('?').map(|(_, query)| query);
    query.is_some_and(|query| query.split('&').any(|pair| pair.split('=').next() == Some(name)))
}

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

/// `error.code` when it is a plain identifier (Azure sends `"401"`,
/// `"429"`, `"DeploymentNotFound"`, ...).
fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value["error"]["code"].as_str()?;
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    plain.then(|| code.to_owned())
}

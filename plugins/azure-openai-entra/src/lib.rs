//! Azure OpenAI with Microsoft Entra ID client credentials: `token-request`
//! posts the app's client id and secret to
//! `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token` (OAuth 2.0
//! client credentials, scope `https://cognitiveservices.azure.com/.default`),
//! `read-token` reads the answer, `authorize` is `Authorization: Bearer
//! <access token>` plus the `api-version` query parameter (except on the
//! version-less `/openai/v1/` paths), and the probe is `GET
//! {endpoint}/openai/models?api-version=..`.
//!
//! A separate plugin rather than a second mode of `azure-openai`: a
//! manifest has one auth shape and trades its secret for tokens or not, and
//! the two kinds of key have different variables.

use platos_plugin_sdk::{
    AccessToken, Credentials, ErrorCode, HttpRequest, HttpResponse, Method, PluginError, Provider,
    ProviderManifest, StatusClass, TokenFailure, Verdict, apply_declared_auth, base_url,
    classify_status, credential_or_default, export_provider, include_manifest, join_url,
    listing_verdict, model_ids_from_json, read_oauth_token, redacted_snippet, require_credential,
};

/// The variable naming the API version.
const API_VERSION_VAR: &str = "AZURE_OPENAI_ENTRA_API_VERSION";

/// The scope of the access token: Azure AI services (Azure OpenAI).
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// Entra ID's error numbers for a tenant that does not exist or is malformed.
const UNKNOWN_TENANT_CODES: &[u64] = &[90002, 900023];

struct AzureEntra;

impl Provider for AzureEntra {
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
        if !has_query_param(&request.url, "api-version") && !is_v1_path(&request.url) {
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
        let endpoint = base_url(&credentials, &manifest)?;
        let endpoint = endpoint.strip_suffix("/openai").unwrap_or(&endpoint);
        let version = api_version(&credentials, &manifest)?;
        Ok(HttpRequest::get(join_url(endpoint, &format!("openai/models?api-version={version}"))))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }

    fn token_request(credentials: Credentials, _now: u64) -> Result<HttpRequest, PluginError> {
        let tenant = require_credential(&credentials, "AZURE_TENANT_ID")?.trim();
        if !is_tenant(tenant) {
            return Err(PluginError::new(
                ErrorCode::InvalidCredential,
                "AZURE_TENANT_ID must be the directory (tenant) id, a GUID, or a tenant domain such as contoso.onmicrosoft.com",
            ));
        }
        let client_id = require_credential(&credentials, "AZURE_CLIENT_ID")?.trim();
        let secret = require_credential(&credentials, "AZURE_CLIENT_SECRET")?;
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            form_encode(client_id),
            form_encode(secret),
            form_encode(SCOPE)
        );
        Ok(HttpRequest {
            method: Method::Post,
            url: format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: Some(body.into_bytes()),
        })
    }

    /// The OAuth answer, where an unknown tenant (`invalid_request` with
    /// AADSTS90002) is an invalid credential too.
    fn read_token(response: HttpResponse, now: u64) -> Result<AccessToken, TokenFailure> {
        let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        let unknown_tenant = value["error_codes"].as_array().is_some_and(|codes| {
            codes
                .iter()
                .any(|code| code.as_u64().is_some_and(|c| UNKNOWN_TENANT_CODES.contains(&c)))
        });
        if response.status == 400 && unknown_tenant {
            return Err(TokenFailure::InvalidCredential(
                "HTTP 400: Microsoft Entra ID knows no such tenant; check AZURE_TENANT_ID".into(),
            ));
        }
        read_oauth_token(&response, now)
    }
}

export_provider!(AzureEntra);

/// A tenant id: a GUID or a domain (letters, digits, `-` and `.`), which
/// is all that may go into the token URL's path.
fn is_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 253
        && !tenant.starts_with('.')
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `application/x-www-form-urlencoded` encoding: everything but RFC 3986
/// unreserved characters percent-encoded.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

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

/// Whether the URL's query already has the parameter `name`.
fn has_query_param(url: &str, name: &str) -> bool {
    let query = url.split('#').next().unwrap_or_default().split_once('?').map(|(_, query)| query);
    query.is_some_and(|query| query.split('&').any(|pair| pair.split('=').next() == Some(name)))
}

/// Whether the URL's path is under `/openai/v1/`, the version-less API that
/// takes no dated `api-version`.
fn is_v1_path(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |start| &rest[start..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.starts_with("/openai/v1/") || path == "/openai/v1"
}

/// Reads a `GET /openai/models` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let label = error_code(&response.body).map(|code| format!(" ({code})")).unwrap_or_default();
    match classify_status(status) {
        StatusClass::Success => {
            listing_verdict(response, model_ids_from_json(&response.body), "models")
        }
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        StatusClass::InvalidCredential if status == 403 => Verdict::InvalidCredential(format!(
            "HTTP 403{label}: the app may not use this resource (give it the Cognitive Services OpenAI User role on it)"
        )),
        StatusClass::InvalidCredential => Verdict::InvalidCredential(format!(
            "HTTP {status}{label}: Azure refused the access token (is the tenant the resource's?)"
        )),
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: out of quota or rate limited"))
        }
        StatusClass::Degraded if status == 404 => Verdict::Degraded(format!(
            "HTTP 404{label}: not found; check AZURE_OPENAI_ENTRA_ENDPOINT and AZURE_OPENAI_ENTRA_API_VERSION"
        )),
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}{label}: {}", redacted_snippet(&response.body)))
        }
    }
}

/// `error.code` when it is a plain identifier.
fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value["error"]["code"].as_str()?;
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    plain.then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_version_less_paths_go_without_a_dated_api_version() {
        for url in [
            "https://contoso.openai.azure.com/openai/v1/chat/completions",
            "https://contoso.openai.azure.com/openai/v1/models?x=1",
            "https://contoso.openai.azure.com/openai/v1",
        ] {
            assert!(is_v1_path(url), "{url}");
        }
        for url in [
            "https://contoso.openai.azure.com/openai/deployments/d/chat/completions",
            "https://contoso.openai.azure.com/openai/v10/models",
            "https://contoso.openai.azure.com/x?path=/openai/v1/",
            "https://contoso.openai.azure.com/openai/models#/openai/v1/",
        ] {
            assert!(!is_v1_path(url), "{url}");
        }
    }

    #[test]
    fn tenants_and_form_values_cannot_reshape_the_request() {
        assert!(is_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_tenant("contoso.onmicrosoft.com"));
        for bad in ["", "a/b", "evil.example#", "a?b", ".x", "a b", "a%2fb"] {
            assert!(!is_tenant(bad), "{bad:?}");
        }
        assert_eq!(form_encode("a+b/c=d&e f~._-"), "a%2Bb%2Fc%3Dd%26e%20f~._-");
        assert!(has_query_param("https://h/p?a=1&api-version=2", "api-version"));
        assert!(!has_query_param("https://h/p?xapi-version=2#api-version", "api-version"));
    }
}

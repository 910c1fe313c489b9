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

use platos_plugin_sdk::azure::{api_version, error_code, resource_endpoint, with_api_version};
use platos_plugin_sdk::{
    AccessToken, Credentials, ErrorCode, HttpRequest, HttpResponse, Method, PluginError, Provider,
    ProviderManifest, StatusClass, TokenFailure, Usage, Verdict, apply_declared_auth, base_url,
    classify_status, export_provider, include_manifest, join_url, listing_verdict,
    model_ids_from_json, read_oauth_token, read_openai_usage, redacted_snippet, require_credential,
};

/// The variable naming the API version.
const API_VERSION_VAR: &str = "AZURE_OPENAI_ENTRA_API_VERSION";

/// The variable naming the resource endpoint.
const ENDPOINT_VAR: &str = "AZURE_OPENAI_ENTRA_ENDPOINT";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_and_form_values_cannot_reshape_the_request() {
        assert!(is_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_tenant("contoso.onmicrosoft.com"));
        for bad in ["", "a/b", "evil.example#", "a?b", ".x", "a b", "a%2fb"] {
            assert!(!is_tenant(bad), "{bad:?}");
        }
        assert_eq!(form_encode("a+b/c=d&e f~._-"), "a%2Bb%2Fc%3Dd%26e%20f~._-");
    }
}

//! The Google Vertex AI provider plugin. A key is a service account:
//! `token-request` signs a JWT with its private key (RS256; `iss` the
//! client e-mail, `scope` cloud-platform, `aud` Google's token endpoint,
//! an hour from `now`) and posts it to `https://oauth2.googleapis.com/token`
//! as a `jwt-bearer` grant (RFC 7523, Google's "OAuth 2.0 for server to
//! server applications"); `read-token` reads the OAuth answer; `authorize`
//! is `Authorization: Bearer <access token>`; the probe lists one endpoint
//! of the project in its location, a free call that needs the token, the
//! project and the Vertex AI User role (it lists no models: a healthy
//! verdict carries none).

mod jwt;

use platos_plugin_sdk::{
    AccessToken, Credentials, ErrorCode, HttpRequest, HttpResponse, Method, PluginError, Provider,
    ProviderManifest, StatusClass, TokenFailure, Verdict, classify_status, credential_or_default,
    export_provider, include_manifest, read_oauth_token, redacted_snippet, require_credential,
};

/// Where the JWT is traded for an access token (also the JWT's `aud`).
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The OAuth scope the access token is asked for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

struct Vertex;

impl Provider for Vertex {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let project = require_credential(&credentials, "GOOGLE_VERTEX_PROJECT")?;
        if !is_project_id(project) {
            return Err(PluginError::new(
                ErrorCode::InvalidCredential,
                "GOOGLE_VERTEX_PROJECT must be a project id: 6 to 30 lower-case letters, digits and hyphens (project_id in the service account JSON)",
            ));
        }
        let location =
            credential_or_default(&credentials, &Self::manifest(), "GOOGLE_VERTEX_LOCATION")?;
        let host = api_host(&location)?;
        Ok(HttpRequest::get(format!(
            "https://{host}/v1/projects/{project}/locations/{location}/endpoints?pageSize=1"
        )))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }

    fn token_request(credentials: Credentials, now: u64) -> Result<HttpRequest, PluginError> {
        let email = require_credential(&credentials, "GOOGLE_CLIENT_EMAIL")?.trim();
        let pem = require_credential(&credentials, "GOOGLE_PRIVATE_KEY")?;
        let key_id = credentials
            .iter()
            .find(|(name, _)| name == "GOOGLE_PRIVATE_KEY_ID")
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty());
        let key = jwt::signing_key(pem)?;
        let assertion = jwt::assertion(&key, key_id, email, SCOPE, TOKEN_URL, now);
        Ok(HttpRequest {
            method: Method::Post,
            url: TOKEN_URL.into(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            // The assertion is base64url and dots: nothing to encode.
            body: Some(
                format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
                )
                .into_bytes(),
            ),
        })
    }

    fn read_token(response: HttpResponse, now: u64) -> Result<AccessToken, TokenFailure> {
        read_oauth_token(&response, now)
    }
}

export_provider!(Vertex);

/// The API host of a location: `aiplatform.googleapis.com` for `global`,
/// `{location}-aiplatform.googleapis.com` for a region. A location that is
/// no DNS label is refused here, so it never shapes a URL.
fn api_host(location: &str) -> Result<String, PluginError> {
    let valid = !location.is_empty()
        && location.len() <= 40
        && location.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !location.starts_with('-')
        && !location.ends_with('-');
    if !valid {
        return Err(PluginError::new(
            ErrorCode::InvalidCredential,
            "GOOGLE_VERTEX_LOCATION must be a Vertex AI location such as us-central1, europe-west4 or global",
        ));
    }
    Ok(if location == "global" {
        "aiplatform.googleapis.com".to_owned()
    } else {
        format!("{location}-aiplatform.googleapis.com")
    })
}

/// A Google Cloud project id: 6 to 30 lower-case letters, digits and
/// hyphens, starting with a letter (domain-scoped ids `example.com:name`
/// keep their colon).
fn is_project_id(project: &str) -> bool {
    let name = project.rsplit(':').next().unwrap_or_default();
    (6..=30).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
}

/// Whether a 2xx body is the endpoint list's answer: a JSON object whose
/// `endpoints`, if present, is a list (an empty project answers `{}`).
fn is_endpoint_list(body: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => {
            object.get("endpoints").is_none_or(serde_json::Value::is_array)
        }
        _ => false,
    }
}

/// Google's error `status` (e.g. `PERMISSION_DENIED`), when it is a plain
/// identifier.
fn error_status(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let status = value["error"]["status"].as_str()?;
    (status.len() <= 64 && status.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .then(|| status.to_owned())
}

/// Reads the endpoint-list probe: 2xx is healthy (the probe lists no
/// models); 401, 403 and a 404 (no such project or location) are an
/// invalid credential; 429 quota; status 0 unreachable; the rest degraded.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let label = error_status(&response.body).map(|code| format!(" ({code})")).unwrap_or_default();
    match classify_status(status) {
        StatusClass::Success if is_endpoint_list(&response.body) => {
            Verdict::Healthy(platos_plugin_sdk::HealthyInfo {
                message: "the service account can use Vertex AI in the project and location".into(),
                models: Vec::new(),
            })
        }
        StatusClass::Success => Verdict::Degraded(format!(
            "HTTP {status} but the body is not an endpoint list: {}",
            redacted_snippet(&response.body)
        )),
        StatusClass::InvalidCredential if status == 403 => Verdict::InvalidCredential(format!(
            "HTTP 403{label}: the service account may not use Vertex AI in this project (grant it the Vertex AI User role and enable the Vertex AI API)"
        )),
        StatusClass::InvalidCredential => Verdict::InvalidCredential(format!(
            "HTTP {status}{label}: Google refused the access token"
        )),
        _ if status == 404 => Verdict::InvalidCredential(format!(
            "HTTP 404{label}: no such project or location: check GOOGLE_VERTEX_PROJECT and GOOGLE_VERTEX_LOCATION"
        )),
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: out of quota or rate limited"))
        }
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}{label}: {}", redacted_snippet(&response.body)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_become_hosts_and_anything_else_is_refused() {
        assert_eq!(api_host("us-central1").unwrap(), "us-central1-aiplatform.googleapis.com");
        assert_eq!(api_host("global").unwrap(), "aiplatform.googleapis.com");
        for bad in ["", "evil.example#", "US-CENTRAL1", "-x", "a/b", "us central1"] {
            assert!(api_host(bad).is_err(), "{bad:?}");
        }
        assert!(is_project_id("acme-prod-123") && is_project_id("example.com:acme-prod"));
        assert!(
            !is_project_id("acme") && !is_project_id("Acme-prod") && !is_project_id("a/b/c/d/e/f")
        );
    }
}

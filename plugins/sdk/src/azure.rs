//! What both Azure OpenAI plugins (key and Microsoft Entra ID) share: the
//! dated `api-version` query parameter the classic data-plane paths need and
//! the v1 API (`/openai/v1/...`) does not, the resource endpoint as people
//! paste it, and Azure's error code.

use crate::{Credentials, ErrorCode, HttpRequest, PluginError, ProviderManifest};

/// The API version in `var`, else the manifest's default. Only letters,
/// digits, `-` and `.` are accepted, so it cannot alter the URL.
pub fn api_version(
    credentials: &Credentials,
    manifest: &ProviderManifest,
    var: &str,
) -> Result<String, PluginError> {
    let version = crate::credential_or_default(credentials, manifest, var)?;
    let valid = !version.is_empty()
        && version.len() <= 32
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(version)
    } else {
        Err(PluginError::new(
            ErrorCode::InvalidCredential,
            format!("{var} must be an API version such as 2024-10-21"),
        ))
    }
}

/// `request` with `api-version=<version>` added, unless its URL is one of
/// the v1 API's or already names a version (the caller's `preview` stays).
/// `version` is asked for only when needed.
pub fn with_api_version(
    mut request: HttpRequest,
    version: impl FnOnce() -> Result<String, PluginError>,
) -> Result<HttpRequest, PluginError> {
    if is_v1_api(&request.url) || has_query_param(&request.url, "api-version") {
        return Ok(request);
    }
    let version = version()?;
    let (url, fragment) = match request.url.split_once('#') {
        Some((url, fragment)) => (url, format!("#{fragment}")),
        None => (request.url.as_str(), String::new()),
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    request.url = format!("{url}{separator}api-version={version}{fragment}");
    Ok(request)
}

/// The resource endpoint in the configured endpoint variable `var`: the URL
/// without the `/openai` or `/openai/v1` path the SDKs add (people paste
/// both). A gateway's own path (`https://apim.example/aoai`) is kept. A
/// deployment or operation URL (anything under `/openai/`), or one with a
/// query, is refused with a message saying what to set: the SDKs would build
/// `.../openai/deployments/..` under it and get a bare 404.
pub fn resource_endpoint(
    endpoint: &str,
    var: &str,
    version_var: &str,
) -> Result<String, PluginError> {
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
            "{var} is {what}; set it to the resource endpoint alone, e.g. {origin} (the deployment name goes in each request's path, the API version in {version_var})"
        ),
    ))
}

/// Whether the URL is one of the v1 API's (`/openai/v1` and below, also
/// behind a gateway's own path prefix), which take no dated `api-version`.
pub fn is_v1_api(url: &str) -> bool {
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    let path = path.split(['?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    let path = format!("/{path}");
    path.ends_with("/openai/v1") || path.contains("/openai/v1/")
}

/// Whether the URL's query already has the parameter `name`.
pub fn has_query_param(url: &str, name: &str) -> bool {
    let query = url.split('#').next().unwrap_or_default().split_once('?').map(|(_, query)| query);
    query.is_some_and(|query| query.split('&').any(|pair| pair.split('=').next() == Some(name)))
}

/// `error.code` of an Azure error body when it is a plain identifier (Azure
/// sends `"401"`, `"429"`, `"DeploymentNotFound"`, ...).
pub fn error_code(body: &[u8]) -> Option<String> {
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
    fn the_v1_api_takes_no_dated_version_and_a_callers_version_stays() {
        let add = |url: &str| {
            with_api_version(HttpRequest::get(url), || Ok("2024-10-21".into())).unwrap().url
        };
        assert_eq!(
            add("https://x.openai.azure.com/openai/models"),
            "https://x.openai.azure.com/openai/models?api-version=2024-10-21"
        );
        assert_eq!(
            add("https://x.openai.azure.com/openai/v1/chat/completions"),
            "https://x.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            add("https://apim.example/aoai/openai/v1/responses?x=1"),
            "https://apim.example/aoai/openai/v1/responses?x=1"
        );
        assert_eq!(
            add("https://x/openai/models?api-version=preview"),
            "https://x/openai/models?api-version=preview"
        );
        assert_eq!(
            add("https://x/openai/models?a=1#f"),
            "https://x/openai/models?a=1&api-version=2024-10-21#f"
        );
        for url in [
            "https://contoso.openai.azure.com/openai/v1/chat/completions",
            "https://contoso.openai.azure.com/openai/v1/models?x=1",
            "https://contoso.openai.azure.com/openai/v1",
        ] {
            assert!(is_v1_api(url), "{url}");
        }
        for url in [
            "https://contoso.openai.azure.com/openai/deployments/d/chat/completions",
            "https://contoso.openai.azure.com/openai/v10/models",
            "https://contoso.openai.azure.com/x?path=/openai/v1/",
            "https://contoso.openai.azure.com/openai/models#/openai/v1/",
        ] {
            assert!(!is_v1_api(url), "{url}");
        }
        assert!(has_query_param("https://h/p?a=1&api-version=2", "api-version"));
        assert!(!has_query_param("https://h/p?xapi-version=2#api-version", "api-version"));
    }

    #[test]
    fn endpoints_as_pasted() {
        let endpoint = |text: &str| resource_endpoint(text, "E", "V");
        assert_eq!(
            endpoint("https://x.openai.azure.com/openai/v1/").unwrap(),
            "https://x.openai.azure.com"
        );
        assert_eq!(endpoint("https://apim.example/aoai").unwrap(), "https://apim.example/aoai");
        let error = endpoint(
            "https://x.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=1",
        )
        .unwrap_err();
        assert!(
            error.message.contains("E is a deployment URL")
                && error.message.contains("https://x.openai.azure.com")
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"DeploymentNotFound"}}"#).as_deref(),
            Some("DeploymentNotFound")
        );
        assert_eq!(error_code(br#"{"error":{"code":"a b"}}"#), None);
    }
}

//! Credentials and declarative auth shapes.

use crate::{
    AuthShape, Credentials, EnvVarRole, ErrorCode, HttpRequest, PluginError, ProviderManifest,
};

/// The value of `name` in the env bag, if present and not empty.
pub fn credential<'a>(credentials: &'a Credentials, name: &str) -> Option<&'a str> {
    credentials
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// The value of `name`, or a `missing-credential` error naming the variable.
pub fn require_credential<'a>(
    credentials: &'a Credentials,
    name: &str,
) -> Result<&'a str, PluginError> {
    credential(credentials, name)
        .ok_or_else(|| PluginError::new(ErrorCode::MissingCredential, format!("{name} is not set")))
}

/// The value of `name` from the env bag (trimmed), else the manifest's
/// default for it, else a `missing-credential` error naming the variable.
pub fn credential_or_default(
    credentials: &Credentials,
    manifest: &ProviderManifest,
    name: &str,
) -> Result<String, PluginError> {
    credential(credentials, name)
        .map(|value| value.trim().to_owned())
        .or_else(|| manifest.env_vars.iter().find(|var| var.name == name)?.default_value.clone())
        .ok_or_else(|| PluginError::new(ErrorCode::MissingCredential, format!("{name} is not set")))
}

/// The provider's base URL: the manifest's `base-url` variable from the env
/// bag, else its default. Trailing slashes are removed.
pub fn base_url(
    credentials: &Credentials,
    manifest: &ProviderManifest,
) -> Result<String, PluginError> {
    let var =
        manifest.env_vars.iter().find(|var| var.role == EnvVarRole::BaseUrl).ok_or_else(|| {
            PluginError::new(ErrorCode::Internal, "the manifest declares no base-url variable")
        })?;
    let value = credential_or_default(credentials, manifest, &var.name)?;
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(PluginError::new(
            ErrorCode::InvalidCredential,
            format!("{} must be an http:// or https:// URL", var.name),
        ));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// `base` and `path` joined by exactly one slash.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// `base` and `path` joined under exactly one API version segment, for a
/// base URL that users paste with or without it (the AI SDK's
/// `https://api.anthropic.com/v1` beside the official SDK's
/// `https://api.anthropic.com`): when the base's last path segment is one of
/// `versions` (compared case-insensitively, trailing slashes ignored), that
/// segment is kept; otherwise `versions[0]` is added.
pub fn join_versioned(base: &str, versions: &[&str], path: &str) -> String {
    let base = base.trim_end_matches('/');
    let last = base.rsplit_once('/').map_or("", |(head, last)| {
        // `https://host` has no path segment: `host` is the authority.
        if head.ends_with('/') { "" } else { last }
    });
    if versions.iter().any(|version| last.eq_ignore_ascii_case(version)) {
        join_url(base, path)
    } else {
        let version = versions.first().copied().unwrap_or_default();
        join_url(&join_url(base, version), path)
    }
}

/// Headers that carry a credential or a signature for some provider, lower
/// case: [`apply_declared_auth`] removes every one of them from the caller's
/// request before it sets its own (the host does the same for every plugin).
pub const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Removes every [`AUTH_HEADERS`] header and every header named in `also`
/// (case-insensitively) from `request`.
pub fn remove_auth_headers(request: &mut HttpRequest, also: &[&str]) {
    request.headers.retain(|(name, _)| {
        let name = name.trim();
        !AUTH_HEADERS.iter().chain(also).any(|auth| name.eq_ignore_ascii_case(auth))
    });
}

/// Removes the query parameters whose name (percent-decoded, compared
/// case-insensitively) is one of `names`; the rest of the URL is kept byte
/// for byte.
pub fn remove_query_params(request: &mut HttpRequest, names: &[&str]) {
    let url = request.url.as_str();
    let (head, fragment) = url.split_once('#').map_or((url, None), |(head, f)| (head, Some(f)));
    let Some((base, query)) = head.split_once('?') else { return };
    let pairs: Vec<&str> = query.split('&').collect();
    let kept: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|pair| {
            let name = decode(pair.split_once('=').map_or(*pair, |(name, _)| name));
            !names.iter().any(|drop| name.eq_ignore_ascii_case(drop))
        })
        .collect();
    if kept.len() == pairs.len() {
        return;
    }
    let mut out = base.to_owned();
    if kept.iter().any(|pair| !pair.is_empty()) {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    request.url = out;
}

/// Applies a declarative auth shape: bearer, named header or query
/// parameter. The caller's own auth goes first: every [`AUTH_HEADERS`]
/// header, the shape's header and, for a query shape, its parameter.
pub fn apply_declared_auth(
    manifest: &ProviderManifest,
    credentials: &Credentials,
    mut request: HttpRequest,
) -> Result<HttpRequest, PluginError> {
    match &manifest.auth {
        AuthShape::Bearer(var) => {
            let secret = require_credential(credentials, var)?;
            remove_auth_headers(&mut request, &[]);
            request.headers.push(("authorization".to_owned(), format!("Bearer {secret}")));
        }
        AuthShape::Header(shape) => {
            let secret = require_credential(credentials, &shape.env_var)?;
            remove_auth_headers(&mut request, &[&shape.header]);
            request.headers.push((shape.header.clone(), secret.to_owned()));
        }
        AuthShape::Query(shape) => {
            let secret = require_credential(credentials, &shape.env_var)?;
            remove_auth_headers(&mut request, &[]);
            remove_query_params(&mut request, &[&shape.param]);
            let (url, fragment) = match request.url.split_once('#') {
                Some((url, fragment)) => (url.to_owned(), format!("#{fragment}")),
                None => (request.url.clone(), String::new()),
            };
            let separator = if url.contains('?') { '&' } else { '?' };
            request.url = format!("{url}{separator}{}={}{fragment}", shape.param, encode(secret));
        }
        AuthShape::Custom(_) => {
            return Err(PluginError::new(
                ErrorCode::Internal,
                "a custom auth shape must implement Provider::authorize",
            ));
        }
    }
    Ok(request)
}

/// Percent-decodes `%XY` escapes (lossy for invalid UTF-8); anything else stays.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .filter(|pair| pair.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, QueryAuth};

    fn request(url: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: Method::Get,
            url: url.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: None,
        }
    }

    #[test]
    fn one_version_segment_whether_the_base_has_it_or_not() {
        let google = ["v1beta", "v1", "v1alpha"];
        for (base, expected) in [
            (
                "https://generativelanguage.googleapis.com",
                "https://generativelanguage.googleapis.com/v1beta/models",
            ),
            (
                "https://generativelanguage.googleapis.com/",
                "https://generativelanguage.googleapis.com/v1beta/models",
            ),
            (
                "https://generativelanguage.googleapis.com/v1beta",
                "https://generativelanguage.googleapis.com/v1beta/models",
            ),
            (
                "https://generativelanguage.googleapis.com/v1beta//",
                "https://generativelanguage.googleapis.com/v1beta/models",
            ),
            (
                "https://generativelanguage.googleapis.com/V1",
                "https://generativelanguage.googleapis.com/V1/models",
            ),
            (
                "http://127.0.0.1:8080/proxy/google",
                "http://127.0.0.1:8080/proxy/google/v1beta/models",
            ),
            ("http://v1beta", "http://v1beta/v1beta/models"),
        ] {
            assert_eq!(join_versioned(base, &google, "models"), expected, "{base}");
        }
        assert_eq!(
            join_versioned("https://api.anthropic.com/v1/", &["v1"], "/models?limit=1000"),
            "https://api.anthropic.com/v1/models?limit=1000"
        );
        assert_eq!(
            join_versioned("https://api.anthropic.com", &["v1"], "models"),
            "https://api.anthropic.com/v1/models"
        );
        // A segment that merely contains a version is not one.
        assert_eq!(
            join_versioned("https://gw.example/anthropic-v1", &["v1"], "models"),
            "https://gw.example/anthropic-v1/v1/models"
        );
    }

    #[test]
    fn the_callers_auth_is_removed_before_the_plugins_is_set() {
        let manifest = |auth| ProviderManifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "0.1.0".into(),
            env_vars: Vec::new(),
            auth,
            model_classes: Vec::new(),
            default_models: Vec::new(),
            allowed_hosts: Vec::new(),
            docs_url: String::new(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        };
        let credentials: Credentials = vec![("ACME_KEY".into(), "plugin-key".into())];
        let caller = request(
            "https://api.acme.com/v1/x?key=caller&a=1#f",
            &[
                ("Authorization", "Bearer caller"),
                ("X-API-KEY", "caller"),
                ("api-key", "caller"),
                ("x-goog-api-key", "caller"),
                ("X-Amz-Security-Token", "caller"),
                ("x-acme", "caller"),
                ("accept", "json"),
            ],
        );
        let bearer = apply_declared_auth(
            &manifest(AuthShape::Bearer("ACME_KEY".into())),
            &credentials,
            caller.clone(),
        )
        .unwrap();
        assert_eq!(
            bearer.headers,
            [
                ("x-acme".to_owned(), "caller".to_owned()),
                ("accept".to_owned(), "json".to_owned()),
                ("authorization".to_owned(), "Bearer plugin-key".to_owned()),
            ]
        );
        let header = apply_declared_auth(
            &manifest(AuthShape::Header(crate::HeaderAuth {
                header: "X-Acme".into(),
                env_var: "ACME_KEY".into(),
            })),
            &credentials,
            caller.clone(),
        )
        .unwrap();
        assert_eq!(
            header.headers,
            [
                ("accept".to_owned(), "json".to_owned()),
                ("X-Acme".to_owned(), "plugin-key".to_owned()),
            ]
        );
        let query = apply_declared_auth(
            &manifest(AuthShape::Query(QueryAuth {
                param: "key".into(),
                env_var: "ACME_KEY".into(),
            })),
            &credentials,
            caller,
        )
        .unwrap();
        assert_eq!(query.url, "https://api.acme.com/v1/x?a=1&key=plugin-key#f");
        assert_eq!(query.headers.len(), 2, "{:?}", query.headers);
    }

    #[test]
    fn query_parameters_are_removed_by_decoded_name_only() {
        for (url, expected) in [
            ("https://a.example/p?key=1", "https://a.example/p"),
            ("https://a.example/p?k%65y=1&x=%20&KEY", "https://a.example/p?x=%20"),
            ("https://a.example/p?keys=1&%+1=2", "https://a.example/p?keys=1&%+1=2"),
            ("https://a.example/p#key=1", "https://a.example/p#key=1"),
            ("https://a.example/p", "https://a.example/p"),
        ] {
            let mut request = request(url, &[]);
            remove_query_params(&mut request, &["key"]);
            assert_eq!(request.url, expected, "{url}");
        }
    }
}

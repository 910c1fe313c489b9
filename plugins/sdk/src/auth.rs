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

/// Applies a declarative auth shape: bearer, named header or query parameter.
/// Any header of the same name already on the request is replaced.
pub fn apply_declared_auth(
    manifest: &ProviderManifest,
    credentials: &Credentials,
    mut request: HttpRequest,
) -> Result<HttpRequest, PluginError> {
    match &manifest.auth {
        AuthShape::Bearer(var) => {
            let secret = require_credential(credentials, var)?;
            set_header(&mut request, "authorization", format!("Bearer {secret}"));
        }
        AuthShape::Header(shape) => {
            let secret = require_credential(credentials, &shape.env_var)?;
            set_header(&mut request, &shape.header, secret.to_owned());
        }
        AuthShape::Query(shape) => {
            let secret = require_credential(credentials, &shape.env_var)?;
            let separator = if request.url.contains('?') { '&' } else { '?' };
            request.url = format!("{}{separator}{}={}", request.url, shape.param, encode(secret));
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

fn set_header(request: &mut HttpRequest, name: &str, value: String) {
    request.headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
    request.headers.push((name.to_owned(), value));
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

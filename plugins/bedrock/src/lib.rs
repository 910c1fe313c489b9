//! The Amazon Bedrock provider plugin: the plugin signs every request with
//! AWS Signature Version 4 itself (`platos-sigv4`, signing name `bedrock` for
//! both `bedrock.{region}.amazonaws.com` and
//! `bedrock-runtime.{region}.amazonaws.com`), probe
//! `GET https://bedrock.{region}.amazonaws.com/foundation-models`.
//!
//! The path is signed exactly as it goes on the wire (the host hands
//! `authorize` the URL in that form): a model id's raw `:` signs as `%3A`,
//! an escaped `%3A` as `%253A`. The caller's own signing headers and
//! presigned-URL parameters are removed before signing.
//!
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (boto3's name for the runtime
//! client's endpoint) points at a private (VPC interface) endpoint:
//! requests to its origin are signed for `AWS_REGION`, and the probe goes
//! there instead, as `GET {endpoint}/async-invoke?maxResults=1`
//! (ListAsyncInvokes: read-only and free; the runtime lists no models).
//!
//! AWS names an error in the `x-amzn-ErrorType` header or the body's
//! `__type`. `UnrecognizedClientException`, `InvalidSignatureException`,
//! `ExpiredTokenException` and any other 401 or 403 are an invalid
//! credential (`AccessDeniedException`: a missing IAM permission);
//! `ThrottlingException`, `ServiceQuotaExceededException` and 429 are quota;
//! 5xx and the rest are degraded.

use platos_plugin_sdk::{
    Credentials, ErrorCode, HealthyInfo, HttpRequest, HttpResponse, MAX_MODEL_IDS, Method,
    PluginError, Provider, ProviderManifest, StatusClass, Verdict, classify_status, credential,
    credential_or_default, export_provider, include_manifest, join_url, listing_verdict,
    redacted_snippet, remove_auth_headers, remove_query_params, require_credential,
};
use platos_sigv4::SignError;

/// The signing name of both Bedrock endpoints.
const SERVICE: &str = "bedrock";
const ACCESS_KEY_ID_VAR: &str = "AWS_ACCESS_KEY_ID";
const SECRET_ACCESS_KEY_VAR: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN_VAR: &str = "AWS_SESSION_TOKEN";
const REGION_VAR: &str = "AWS_REGION";
const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_BEDROCK_RUNTIME";

/// The query parameters of a presigned URL: a caller's are removed, since
/// the plugin signs in headers.
const PRESIGNED_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
];

/// Error types that mean AWS does not accept the credentials themselves.
const CREDENTIAL_ERRORS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "IncompleteSignature",
    "MissingAuthenticationTokenException",
    "AccessDeniedException",
];

/// Error types that mean the credentials work but are throttled or out of quota.
const QUOTA_ERRORS: &[&str] =
    &["ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"];

struct Bedrock;

impl Provider for Bedrock {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn authorize(
        credentials: Credentials,
        mut request: HttpRequest,
        now: u64,
    ) -> Result<HttpRequest, PluginError> {
        let access_key_id = require_credential(&credentials, ACCESS_KEY_ID_VAR)?;
        let secret_access_key = require_credential(&credentials, SECRET_ACCESS_KEY_VAR)?;
        let session_token = credential(&credentials, SESSION_TOKEN_VAR);
        let private = private_endpoint(&credentials)?;
        let region = match endpoint_region(&request.url) {
            Some(region) => region,
            None if private
                .as_deref()
                .is_some_and(|endpoint| same_origin(endpoint, &request.url)) =>
            {
                configured_region(&credentials, &Self::manifest())?
            }
            None => {
                return Err(PluginError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "Bedrock requests go to https://bedrock.{{region}}.amazonaws.com, https://bedrock-runtime.{{region}}.amazonaws.com or the origin of {ENDPOINT_VAR}"
                    ),
                ));
            }
        };
        remove_auth_headers(&mut request, &[]);
        remove_query_params(&mut request, PRESIGNED_PARAMS);
        let to_sign = platos_sigv4::Request {
            method: method_name(request.method),
            url: &request.url,
            headers: &request.headers,
            body: request.body.as_deref().unwrap_or_default(),
        };
        let keys = platos_sigv4::Credentials { access_key_id, secret_access_key, session_token };
        let headers = platos_sigv4::authorize(&to_sign, &keys, &region, SERVICE, now)
            .map_err(signing_error)?;
        Ok(HttpRequest { headers, ..request })
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let region = configured_region(&credentials, &Self::manifest())?;
        Ok(HttpRequest::get(match private_endpoint(&credentials)? {
            Some(endpoint) => join_url(&endpoint, "async-invoke?maxResults=1"),
            None => format!("https://bedrock.{region}.amazonaws.com/foundation-models"),
        }))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }
}

export_provider!(Bedrock);

/// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` without trailing slashes, when set;
/// an error when it is not an http(s) URL without user info, query or fragment.
fn private_endpoint(credentials: &Credentials) -> Result<Option<String>, PluginError> {
    let Some(endpoint) = credential(credentials, ENDPOINT_VAR).map(str::trim) else {
        return Ok(None);
    };
    let lower = endpoint.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    let authority = rest.map(|rest| rest.split('/').next().unwrap_or_default());
    let valid = authority
        .is_some_and(|authority| !authority.is_empty() && !authority.contains('@'))
        && !endpoint.contains(['?', '#'])
        && endpoint.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(PluginError::new(
            ErrorCode::InvalidCredential,
            format!(
                "{ENDPOINT_VAR} must be an http(s) URL without user info, query or fragment, such as https://vpce-0123-abcd.bedrock-runtime.us-east-1.vpce.amazonaws.com"
            ),
        ));
    }
    Ok(Some(endpoint.trim_end_matches('/').to_owned()))
}

/// `scheme://authority` of a URL, lower case, with a default port dropped.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// Whether two URLs have the same origin.
fn same_origin(a: &str, b: &str) -> bool {
    origin(a).is_some_and(|a| Some(a) == origin(b))
}

/// `AWS_REGION`, else the manifest's default, checked to be a region name.
fn configured_region(
    credentials: &Credentials,
    manifest: &ProviderManifest,
) -> Result<String, PluginError> {
    let region = credential_or_default(credentials, manifest, REGION_VAR)?;
    if is_region(&region) {
        Ok(region)
    } else {
        Err(PluginError::new(
            ErrorCode::InvalidCredential,
            format!("{REGION_VAR} must be a region name such as us-east-1"),
        ))
    }
}

fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The region of a Bedrock endpoint URL (`https://bedrock[-runtime].{region}.amazonaws.com/..`).
fn endpoint_region(url: &str) -> Option<String> {
    let rest =
        url.get(..8).filter(|scheme| scheme.eq_ignore_ascii_case("https://")).and(url.get(8..))?;
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let host = authority.strip_suffix(":443").unwrap_or(&authority);
    let inner = host.strip_suffix(".amazonaws.com")?;
    let region =
        inner.strip_prefix("bedrock-runtime.").or_else(|| inner.strip_prefix("bedrock."))?;
    is_region(region).then(|| region.to_owned())
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
    }
}

/// A signing failure as a plugin error; the message names variables, never values.
fn signing_error(error: SignError) -> PluginError {
    let (code, message) = match error {
        SignError::MalformedAccessKeyId => (
            ErrorCode::InvalidCredential,
            format!("{ACCESS_KEY_ID_VAR} has characters that cannot be an access key id"),
        ),
        SignError::MissingSecretAccessKey => {
            (ErrorCode::MissingCredential, format!("{SECRET_ACCESS_KEY_VAR} is not set"))
        }
        SignError::MalformedSessionToken => (
            ErrorCode::InvalidCredential,
            format!("{SESSION_TOKEN_VAR} has characters that cannot go in a header"),
        ),
        SignError::MalformedScope => (
            ErrorCode::InvalidCredential,
            format!("{REGION_VAR} must be a region name such as us-east-1"),
        ),
        SignError::MalformedUrl | SignError::MalformedHeader | SignError::MalformedDate => {
            (ErrorCode::InvalidRequest, format!("the request cannot be signed: {error}"))
        }
    };
    PluginError::new(code, message)
}

/// Reads a `GET /foundation-models` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let (kind, message) = aws_error(response);
    let label = kind.as_deref().map(|kind| format!(" ({kind})")).unwrap_or_default();
    let is = |names: &[&str]| kind.as_deref().is_some_and(|kind| names.contains(&kind));
    match classify_status(status) {
        StatusClass::Success if is_async_invoke_listing(&response.body) => {
            Verdict::Healthy(HealthyInfo {
                message: "the private runtime endpoint accepted the signature (ListAsyncInvokes)"
                    .into(),
                models: Vec::new(),
            })
        }
        StatusClass::Success => {
            listing_verdict(response, model_ids(&response.body), "foundation models")
        }
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        _ if is(&["InvalidSignatureException"]) && message.contains("signature expired") => {
            Verdict::Degraded(format!(
                "HTTP {status}{label}: AWS says the signing time is off; check the host's clock"
            ))
        }
        _ if is(&["AccessDeniedException"]) => Verdict::InvalidCredential(format!(
            "HTTP {status}{label}: the credentials lack the IAM permission the probe needs (bedrock:ListFoundationModels; bedrock:ListAsyncInvokes through {ENDPOINT_VAR})"
        )),
        _ if is(CREDENTIAL_ERRORS) => {
            Verdict::InvalidCredential(format!("HTTP {status}{label}: AWS refused the credentials"))
        }
        _ if is(QUOTA_ERRORS) => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: throttled or out of quota"))
        }
        StatusClass::InvalidCredential => {
            Verdict::InvalidCredential(format!("HTTP {status}{label}: AWS refused the credentials"))
        }
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: throttled or out of quota"))
        }
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}{label}: {}", redacted_snippet(&response.body)))
        }
    }
}

/// Whether the body is a ListAsyncInvokes answer (`{"asyncInvokeSummaries":[..]}`).
fn is_async_invoke_listing(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|value| value["asyncInvokeSummaries"].is_array())
}

/// The model ids of `{"modelSummaries":[{"modelId":..},..]}` (empty ids
/// skipped, at most [`MAX_MODEL_IDS`]); `None` when the body is not such a list.
fn model_ids(body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let summaries = value.get("modelSummaries")?.as_array()?;
    Some(
        summaries
            .iter()
            .filter_map(|summary| summary.get("modelId")?.as_str())
            .filter(|id| !id.trim().is_empty())
            .take(MAX_MODEL_IDS)
            .map(str::to_owned)
            .collect(),
    )
}

/// The AWS error type (from `x-amzn-ErrorType`, else the body's `__type`
/// or `code`), when it is a plain identifier, and the lower-cased message
/// (for matching only, never shown).
fn aws_error(response: &HttpResponse) -> (Option<String>, String) {
    let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let from_header = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amzn-errortype"))
        .and_then(|(_, value)| value.split(':').next());
    let from_body = || {
        let text = value["__type"].as_str().or_else(|| value["code"].as_str())?;
        text.rsplit('#').next()
    };
    let kind = from_header
        .or_else(from_body)
        .map(str::trim)
        .filter(|kind| {
            !kind.is_empty()
                && kind.len() <= 64
                && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .map(str::to_owned);
    let message = value["message"]
        .as_str()
        .or_else(|| value["Message"].as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    (kind, message)
}

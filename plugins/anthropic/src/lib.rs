//! The Anthropic provider plugin: `x-api-key` auth plus the mandatory
//! `anthropic-version` header, probe `GET {base}/v1/models`. The base URL
//! may carry the `/v1` segment, as the AI SDK's does: the probe then adds
//! no second one.
//!
//! Anthropic's error bodies are `{"type":"error","error":{"type":..,"message":..}}`.
//! Verdicts: 401 `authentication_error` and 403 `permission_error` are an
//! invalid credential; 402 `billing_error`, 429 `rate_limit_error` and a 400
//! about the credit balance or a spend limit are quota; 529
//! `overloaded_error` and other 5xx are degraded. Usage is read from Messages
//! answers and streams (`message_start`, then the cumulative `message_delta`s).

use platos_plugin_sdk::{
    Credentials, HttpRequest, HttpResponse, PluginError, Provider, ProviderManifest, StatusClass,
    Usage, Verdict, apply_declared_auth, base_url, classify_status, export_provider,
    include_manifest, join_versioned, listing_verdict, model_ids_from_json, read_anthropic_usage,
    redacted_snippet,
};

/// The API version every request must name in `anthropic-version`.
const ANTHROPIC_VERSION: &str = "2023-06-01";

struct Anthropic;

impl Provider for Anthropic {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn authorize(
        credentials: Credentials,
        request: HttpRequest,
        _now: u64,
    ) -> Result<HttpRequest, PluginError> {
        let mut request = apply_declared_auth(&Self::manifest(), &credentials, request)?;
        if !request.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("anthropic-version")) {
            request.headers.push(("anthropic-version".into(), ANTHROPIC_VERSION.into()));
        }
        Ok(request)
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let base = base_url(&credentials, &Self::manifest())?;
        // One page of up to 1000 models lists them all.
        Ok(HttpRequest::get(join_versioned(&base, &["v1"], "models?limit=1000")))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }

    fn read_usage(
        request: HttpRequest,
        response: HttpResponse,
    ) -> Result<Option<Usage>, PluginError> {
        Ok(read_anthropic_usage(&request, &response))
    }
}

export_provider!(Anthropic);

/// Reads a `GET /v1/models` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let (kind, message) = api_error(&response.body);
    let label = kind.as_deref().map(|kind| format!(" ({kind})")).unwrap_or_default();
    match classify_status(status) {
        StatusClass::Success => {
            listing_verdict(response, model_ids_from_json(&response.body), "models")
        }
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        StatusClass::InvalidCredential if status == 403 => Verdict::InvalidCredential(format!(
            "HTTP 403{label}: the key lacks permission for the Anthropic API"
        )),
        StatusClass::InvalidCredential => {
            Verdict::InvalidCredential(format!("HTTP {status}{label}: Anthropic refused the key"))
        }
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: out of credit or rate limited"))
        }
        StatusClass::Degraded if status == 400 && is_billing(&message) => Verdict::QuotaLimited(
            format!("HTTP 400{label}: the credit balance or spend limit is exhausted"),
        ),
        StatusClass::Degraded if status == 529 => {
            Verdict::Degraded(format!("HTTP 529{label}: Anthropic is overloaded"))
        }
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}{label}: {}", redacted_snippet(&response.body)))
        }
    }
}

/// The error's `type` (only when it is a plain identifier, so free text
/// never reaches a verdict) and its lower-cased message.
fn api_error(body: &[u8]) -> (Option<String>, String) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &value["error"];
    let kind = error["type"].as_str().filter(|kind| is_identifier(kind)).map(str::to_owned);
    let message = error["message"].as_str().unwrap_or_default().to_ascii_lowercase();
    (kind, message)
}

/// Whether a 400's message says the account is out of money rather than the
/// request being malformed.
fn is_billing(message: &str) -> bool {
    ["credit balance", "spend limit", "billing"].iter().any(|needle| message.contains(needle))
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

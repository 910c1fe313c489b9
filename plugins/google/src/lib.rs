//! The Google Gemini API provider plugin: `x-goog-api-key` auth (a
//! caller's `?key=` parameter, Google's other place for a key, is removed
//! first), probe `GET {base}/v1beta/models`. The base URL may carry its
//! version segment, as the AI SDK's does (`.../v1beta`): the probe then
//! uses that one, never two.
//!
//! Google's error bodies are `{"error":{"code":..,"message":..,"status":..,
//! "details":[{"reason":..}]}}`. A bad key is HTTP 400 `INVALID_ARGUMENT` with
//! reason `API_KEY_INVALID` ("API key not valid"), not 401: that is an
//! invalid credential, as are 401 and 403 `PERMISSION_DENIED`; 429
//! `RESOURCE_EXHAUSTED` is quota; other statuses are degraded.

use platos_plugin_sdk::{
    Credentials, HttpRequest, HttpResponse, MAX_MODEL_IDS, PluginError, Provider, ProviderManifest,
    StatusClass, Verdict, apply_declared_auth, base_url, classify_status, export_provider,
    include_manifest, join_versioned, listing_verdict, redacted_snippet, remove_query_params,
};

/// The Gemini API's version segments; the first is the one the probe adds.
const API_VERSIONS: &[&str] = &["v1beta", "v1", "v1alpha"];

struct Google;

impl Provider for Google {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn authorize(
        credentials: Credentials,
        mut request: HttpRequest,
        _now: u64,
    ) -> Result<HttpRequest, PluginError> {
        remove_query_params(&mut request, &["key"]);
        apply_declared_auth(&Self::manifest(), &credentials, request)
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let base = base_url(&credentials, &Self::manifest())?;
        // One page of up to 1000 models lists them all.
        Ok(HttpRequest::get(join_versioned(&base, API_VERSIONS, "models?pageSize=1000")))
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }
}

export_provider!(Google);

/// Reads a `GET /v1beta/models` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    let error = ApiError::parse(&response.body);
    let label = error.label();
    match classify_status(status) {
        StatusClass::Success => listing_verdict(response, model_names(&response.body), "models"),
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        StatusClass::InvalidCredential => {
            Verdict::InvalidCredential(format!("HTTP {status}{label}: Google refused the key"))
        }
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: out of quota or rate limited"))
        }
        StatusClass::Degraded if error.is_bad_key() => {
            Verdict::InvalidCredential(format!("HTTP {status}{label}: the API key is not valid"))
        }
        StatusClass::Degraded if error.status.as_deref() == Some("RESOURCE_EXHAUSTED") => {
            Verdict::QuotaLimited(format!("HTTP {status}{label}: out of quota or rate limited"))
        }
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}{label}: {}", redacted_snippet(&response.body)))
        }
    }
}

/// The model ids of `{"models":[{"name":"models/gemini-2.5-flash"},..]}`,
/// without the `models/` prefix (empty ids skipped, at most [`MAX_MODEL_IDS`]).
/// `None` when the body is not such a list.
fn model_names(body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let models = value.get("models")?.as_array()?;
    Some(
        models
            .iter()
            .filter_map(|model| model.get("name")?.as_str())
            .map(|name| name.strip_prefix("models/").unwrap_or(name))
            .filter(|id| !id.trim().is_empty())
            .take(MAX_MODEL_IDS)
            .map(str::to_owned)
            .collect(),
    )
}

/// The parts of a Google error body a verdict may use.
struct ApiError {
    /// `error.status`, e.g. `INVALID_ARGUMENT`, when it is a plain identifier.
    status: Option<String>,
    /// The first `error.details[].reason`, e.g. `API_KEY_INVALID`, when it is a plain identifier.
    reason: Option<String>,
    /// `error.message`, lower-cased; used for matching only, never shown.
    message: String,
}

impl ApiError {
    fn parse(body: &[u8]) -> Self {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &value["error"];
        let identifier = |value: &serde_json::Value| {
            value.as_str().filter(|text| is_identifier(text)).map(str::to_owned)
        };
        let reason = error["details"]
            .as_array()
            .and_then(|details| details.iter().find_map(|detail| identifier(&detail["reason"])));
        ApiError {
            status: identifier(&error["status"]),
            reason,
            message: error["message"].as_str().unwrap_or_default().to_ascii_lowercase(),
        }
    }

    /// Whether Google says the key itself is bad (its 400 for a wrong key).
    fn is_bad_key(&self) -> bool {
        matches!(self.reason.as_deref(), Some("API_KEY_INVALID" | "API_KEY_EXPIRED"))
            || (self.status.as_deref() == Some("INVALID_ARGUMENT")
                && (self.message.contains("api key not valid")
                    || self.message.contains("api key not found")
                    || self.message.contains("api key expired")))
    }

    /// ` (STATUS, REASON)` for messages, or nothing.
    fn label(&self) -> String {
        let parts: Vec<&str> =
            [&self.status, &self.reason].into_iter().flatten().map(String::as_str).collect();
        if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
    }
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

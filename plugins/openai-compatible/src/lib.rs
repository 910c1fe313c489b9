//! The OpenAI-compatible provider plugin, for local and self-hosted servers
//! that speak the OpenAI API (Ollama, vLLM, LM Studio, llama.cpp server):
//! bearer auth only when a key is set, probe `GET {base}/models`.
//!
//! Requests go only to the configured base URL's origin: the manifest allows
//! no other host. Verdicts follow the OpenAI shapes; a server without models
//! that answers `{"object":"list","data":null}` (Ollama) is healthy. Usage
//! is read in the OpenAI shapes (Ollama, vLLM and LM Studio report it so).

use platos_plugin_sdk::{
    Credentials, HttpRequest, HttpResponse, NOT_FOUND_HINT, PluginError, Provider,
    ProviderManifest, StatusClass, Usage, Verdict, apply_declared_auth, base_url, classify_status,
    credential, export_provider, include_manifest, join_url, listing_verdict, model_ids_from_json,
    read_openai_usage, redacted_snippet,
};

/// The variable holding the optional key.
const API_KEY_VAR: &str = "OPENAI_COMPATIBLE_API_KEY";

struct OpenAiCompatible;

impl Provider for OpenAiCompatible {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn authorize(
        credentials: Credentials,
        request: HttpRequest,
        _now: u64,
    ) -> Result<HttpRequest, PluginError> {
        if credential(&credentials, API_KEY_VAR).is_some() {
            apply_declared_auth(&Self::manifest(), &credentials, request)
        } else {
            // A server without auth gets the request as it is.
            Ok(request)
        }
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let base = base_url(&credentials, &Self::manifest())?;
        Ok(HttpRequest::get(join_url(&base, "models")))
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
}

export_provider!(OpenAiCompatible);

/// Reads a `GET /models` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    match classify_status(status) {
        StatusClass::Success => listing_verdict(response, models(&response.body), "models"),
        StatusClass::Unreachable => Verdict::Unreachable(format!(
            "unreachable (is the server running?): {}",
            redacted_snippet(&response.body)
        )),
        StatusClass::InvalidCredential => Verdict::InvalidCredential(format!(
            "HTTP {status}: the server refused the request; set {API_KEY_VAR} to the key it expects"
        )),
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}: out of quota or rate limited"))
        }
        StatusClass::Degraded if status == 404 => Verdict::Degraded(format!(
            "HTTP 404: {NOT_FOUND_HINT}: {}",
            redacted_snippet(&response.body)
        )),
        StatusClass::Degraded => {
            Verdict::Degraded(format!("HTTP {status}: {}", redacted_snippet(&response.body)))
        }
    }
}

/// The listed model ids; an OpenAI `list` whose `data` is `null` (Ollama
/// with nothing pulled) lists none.
fn models(body: &[u8]) -> Option<Vec<String>> {
    if let Some(models) = model_ids_from_json(body) {
        return Some(models);
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    (value["object"] == "list" && value["data"].is_null()).then(Vec::new)
}

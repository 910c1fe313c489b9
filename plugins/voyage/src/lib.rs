//! The Voyage AI provider plugin: bearer auth, and a probe that embeds one
//! word, since Voyage has no endpoint that lists models (the manifest's
//! `probe_cost` says so).
//!
//! A healthy answer is `{"data":[{"embedding":[..]}],"model":..,"usage":{..}}`.
//! Errors are `{"detail": ".."}`: 401 and 403 are an invalid credential, 402
//! and 429 quota, other statuses degraded.

use platos_plugin_sdk::{
    Credentials, HealthyInfo, HttpRequest, HttpResponse, Method, NOT_FOUND_HINT, PluginError,
    Provider, ProviderManifest, StatusClass, Verdict, base_url, classify_status, export_provider,
    include_manifest, join_url, redacted_snippet,
};

/// Voyage's cheapest embedding model: the probe embeds one word with it.
const PROBE_MODEL: &str = "voyage-3.5-lite";

/// The probe's body, a constant (no JSON serializer in the component).
const PROBE_BODY: &[u8] = br#"{"input":["ping"],"model":"voyage-3.5-lite"}"#;

struct Voyage;

impl Provider for Voyage {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let base = base_url(&credentials, &Self::manifest())?;
        Ok(HttpRequest {
            method: Method::Post,
            url: join_url(&base, "embeddings"),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(PROBE_BODY.to_vec()),
        })
    }

    fn interpret_health(response: HttpResponse) -> Verdict {
        verdict(&response)
    }
}

export_provider!(Voyage);

/// Reads a `POST /embeddings` response.
fn verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    match classify_status(status) {
        StatusClass::Success => match embedded(&response.body) {
            Some(summary) => Verdict::Healthy(HealthyInfo { message: summary, models: Vec::new() }),
            None => Verdict::Degraded(format!(
                "HTTP {status} but the body holds no embedding: {}",
                redacted_snippet(&response.body)
            )),
        },
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
        }
        StatusClass::InvalidCredential => {
            Verdict::InvalidCredential(format!("HTTP {status}: Voyage refused the key"))
        }
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

/// A message for a body that carries at least one embedding, else `None`.
fn embedded(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = value.get("data")?.as_array()?.first()?;
    // Float lists by default; base64 strings with `encoding_format`.
    let embedding = first.get("embedding")?;
    let non_empty = match embedding {
        serde_json::Value::Array(values) => !values.is_empty(),
        serde_json::Value::String(text) => !text.is_empty(),
        _ => false,
    };
    if !non_empty {
        return None;
    }
    let model = value["model"]
        .as_str()
        .filter(|model| {
            model.len() <= 64
                && model.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
        })
        .unwrap_or(PROBE_MODEL);
    let tokens = value["usage"]["total_tokens"].as_u64();
    Some(match tokens {
        Some(tokens) => format!("embedded the probe with {model} ({tokens} tokens billed)"),
        None => format!("embedded the probe with {model}"),
    })
}

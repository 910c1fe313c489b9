//! Reading probe responses into verdicts.

use crate::{HealthyInfo, HttpResponse, Verdict};

/// What an HTTP status says about a key, before any provider-specific reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 401 or 403: the provider refused the credential.
    InvalidCredential,
    /// 402 or 429: out of quota or rate limited.
    QuotaLimited,
    /// Status 0: the host could not reach the provider (the body says why).
    Unreachable,
    /// 5xx, and anything else unexpected.
    Degraded,
}

/// Classifies an HTTP status the way most providers use it.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        0 => StatusClass::Unreachable,
        200..=299 => StatusClass::Success,
        401 | 403 => StatusClass::InvalidCredential,
        402 | 429 => StatusClass::QuotaLimited,
        _ => StatusClass::Degraded,
    }
}

/// The most model ids [`model_ids_from_json`] keeps: the host's default
/// limit per verdict (a verdict with more is refused as a whole).
pub const MAX_MODEL_IDS: usize = 4_096;

/// The model ids of a models-list body: `{"data":[{"id":..}]}` (OpenAI style),
/// `{"models":[{"name"|"id":..}]}` (Gemini, Ollama, Cohere style) or a bare
/// array of such objects (Together); empty ids are
/// skipped and at most [`MAX_MODEL_IDS`] kept. `None` when the body is not
/// such JSON.
pub fn model_ids_from_json(body: &[u8]) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = match &value {
        serde_json::Value::Array(list) => list,
        _ => value.get("data").or_else(|| value.get("models"))?.as_array()?,
    };
    Some(
        list.iter()
            .filter_map(|model| {
                model.get("id").or_else(|| model.get("name")).and_then(|id| id.as_str())
            })
            .filter(|id| !id.trim().is_empty())
            .take(MAX_MODEL_IDS)
            .map(str::to_owned)
            .collect(),
    )
}

/// The first 200 characters of a body, on one line, for verdict messages,
/// with every run of 20 or more characters that could be a credential (letters and digits mixed, with `-`, `_`, `+`, `/`, `=`)
/// is replaced by `[redacted]`: an error page that echoes a key does not
/// carry it into a verdict. `interpret-health` never sees the credentials,
/// so it cannot redact them by value (the host does, as well).
pub fn redacted_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "-_+/=".contains(c);
    let mut out = String::with_capacity(one_line.len());
    let mut run = String::new();
    for c in one_line.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            push_masked(&mut out, &mut run);
            out.push(c);
        }
    }
    push_masked(&mut out, &mut run);
    out.chars().take(200).collect()
}

/// Moves `run` to `out`, as `[redacted]` when it looks like a key.
fn push_masked(out: &mut String, run: &mut String) {
    let looks_like_key = run.len() >= 20
        && run.bytes().any(|b| b.is_ascii_digit())
        && run.bytes().any(|b| b.is_ascii_alphabetic());
    out.push_str(if looks_like_key { "[redacted]" } else { run.as_str() });
    run.clear();
}

/// The verdict for a 2xx answer to a models-list probe: healthy with the
/// `models` parsed from it, or degraded when the body is not such a list.
/// `noun` names what was listed (`models`, `foundation models`).
pub fn listing_verdict(
    response: &HttpResponse,
    models: Option<Vec<String>>,
    noun: &str,
) -> Verdict {
    match models {
        Some(models) => Verdict::Healthy(HealthyInfo {
            message: format!("listed {} {noun}", models.len()),
            models,
        }),
        None => Verdict::Degraded(format!(
            "HTTP {} but the body is not a model list: {}",
            response.status,
            redacted_snippet(&response.body)
        )),
    }
}

/// The verdict for a models-list probe: 2xx with a parsable list is healthy,
/// 2xx with anything else is degraded, and other statuses follow
/// [`classify_status`]; a 404 says to check the base URL ([`NOT_FOUND_HINT`]).
pub fn standard_verdict(response: &HttpResponse) -> Verdict {
    let status = response.status;
    match classify_status(status) {
        StatusClass::Success => {
            listing_verdict(response, model_ids_from_json(&response.body), "models")
        }
        StatusClass::InvalidCredential => {
            Verdict::InvalidCredential(format!("HTTP {status}: the provider refused the key"))
        }
        StatusClass::QuotaLimited => {
            Verdict::QuotaLimited(format!("HTTP {status}: out of quota or rate limited"))
        }
        StatusClass::Unreachable => {
            Verdict::Unreachable(format!("unreachable: {}", redacted_snippet(&response.body)))
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

/// What a 404 from an OpenAI-style API usually means: the base URL lacks
/// (or doubles) the version segment, which the OpenAI SDKs never add.
pub const NOT_FOUND_HINT: &str = "not found; check the base URL: OpenAI-style SDKs use it as is, so it must end in the API version segment (e.g. /v1) exactly once";

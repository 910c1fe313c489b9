//! The OpenRouter provider plugin: bearer auth, probe `GET {base}/api/v1/key`
//! (the key's own information: the model list answers without a key, so it
//! would not prove one), usage from OpenRouter's OpenAI-style answers and
//! streams.
//!
//! A healthy answer is `{"data":{"label":..,"limit":..,"limit_remaining":..,
//! "usage":..,"is_free_tier":..}}`; a key whose credit limit is spent is
//! quota. Errors are `{"error":{"message":..,"code":..}}`: 401 "No auth
//! credentials found" or "User not found.", 402 "Insufficient credits", 429.

use platos_plugin_sdk::{
    ApiKeyProvider, HealthyInfo, HttpResponse, Verdict, export_api_key_provider, read_openai_usage,
    redacted_snippet,
};

const OPENROUTER: ApiKeyProvider = ApiKeyProvider {
    name: "OpenRouter",
    api_path: "/api/v1",
    other_api_paths: &[],
    probe_path: "key",
    bad_key: &["user not found", "no auth credentials"],
    no_credit: &["insufficient credits"],
    healthy: key_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(OpenRouter, OPENROUTER);

/// Reads a 200 answer to `GET /api/v1/key`. The key's `label` (a masked
/// form of the key) is never repeated.
fn key_verdict(response: &HttpResponse) -> Verdict {
    let value: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    let Some(data) = value.as_ref().map(|value| &value["data"]).filter(|data| data.is_object())
    else {
        return Verdict::Degraded(format!(
            "HTTP {} but the body is not OpenRouter's key information: {}",
            response.status,
            redacted_snippet(&response.body)
        ));
    };
    // Amounts as the answer writes them (USD): no float formatting in the component.
    let (usage, limit) = (&data["usage"], &data["limit"]);
    let spent_limit = data["limit_remaining"].as_f64().is_some_and(|remaining| remaining <= 0.0);
    if spent_limit {
        return Verdict::QuotaLimited(format!(
            "the key's credit limit is spent (limit ${limit}, remaining ${})",
            data["limit_remaining"]
        ));
    }
    let tier = if data["is_free_tier"].as_bool() == Some(true) { "free tier" } else { "paid" };
    let spent = match (usage.is_number(), limit.is_number()) {
        (true, true) => format!(", ${usage} of a ${limit} limit used"),
        (true, false) => format!(", ${usage} used, no limit"),
        _ => String::new(),
    };
    Verdict::Healthy(HealthyInfo {
        message: format!("the key works ({tier}{spent})"),
        models: Vec::new(),
    })
}

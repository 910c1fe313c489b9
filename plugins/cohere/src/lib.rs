//! The Cohere provider plugin: bearer auth, probe `GET {root}/v1/models`
//! (`{"models":[{"name":..}]}`; a pasted `.../v2` base URL works too), and
//! usage from Cohere's own shapes.
//!
//! Usage: Cohere bills `billed_units` (input and output tokens; rerank
//! bills search units, no tokens): a v2 answer carries them in `usage`, a
//! v2 stream in its `message-end` event's `delta.usage`, a v1 or embed
//! answer in `meta`. When only the counted `tokens` are there, those. The
//! model is the request's (Cohere's answers do not name it).
//!
//! Errors are `{"id":..,"message":..}`: 401 "invalid api token", 429 for a
//! trial key's monthly limit or the rate limit.

use platos_plugin_sdk::{
    ApiKeyProvider, HttpRequest, HttpResponse, Usage, export_api_key_provider, is_event_stream,
    model_list_verdict, requested_model, server_sent_events,
};
use serde_json::Value;

const COHERE: ApiKeyProvider = ApiKeyProvider {
    name: "Cohere",
    api_path: "/v1",
    other_api_paths: &["/v2"],
    probe_path: "models",
    bad_key: &["invalid api token"],
    no_credit: &[],
    healthy: model_list_verdict,
    usage: read_cohere_usage,
};

export_api_key_provider!(Cohere, COHERE);

/// The tokens of a Cohere answer to `request`: a JSON body, or the last
/// event of a stream that carries usage.
fn read_cohere_usage(request: &HttpRequest, response: &HttpResponse) -> Option<Usage> {
    let usage = if is_event_stream(response) {
        server_sent_events(&response.body).iter().rev().find_map(|event| {
            let value: Value = serde_json::from_str(&event.data).ok()?;
            usage_of(&value["delta"]["usage"])
        })
    } else {
        let value: Value = serde_json::from_slice(&response.body).ok()?;
        usage_of(&value["usage"]).or_else(|| usage_of(&value["meta"]))
    }?;
    Some(Usage { model: requested_model(request), ..usage })
}

/// The tokens in one `usage` or `meta` object: its `billed_units`, else its
/// `tokens`. `None` when neither counts tokens.
fn usage_of(counts: &Value) -> Option<Usage> {
    ["billed_units", "tokens"].iter().find_map(|kind| {
        let units = &counts[*kind];
        let input = units["input_tokens"].as_u64();
        let output = units["output_tokens"].as_u64();
        (input.is_some() || output.is_some()).then(|| Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cached_input_tokens: 0,
            model: None,
        })
    })
}

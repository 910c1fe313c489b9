//! The xAI provider plugin: bearer auth, probe `GET {base}/v1/models`, usage
//! from xAI's OpenAI-style answers and streams (whose `completion_tokens`
//! leave the reasoning out: the SDK adds it back).
//!
//! xAI's errors are `{"code":..,"error":".."}`: a wrong key is a 400
//! "Incorrect API key provided", a team without credits a 403 "doesn't have
//! any credits" (quota, like any 4xx naming a spending limit).

use platos_plugin_sdk::{
    ApiKeyProvider, export_api_key_provider, model_list_verdict, read_openai_usage,
};

const XAI: ApiKeyProvider = ApiKeyProvider {
    name: "xAI",
    api_path: "/v1",
    other_api_paths: &[],
    probe_path: "models",
    bad_key: &["incorrect api key", "invalid api key"],
    no_credit: &["any credits", "out of credits", "spending limit"],
    healthy: model_list_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(Xai, XAI);

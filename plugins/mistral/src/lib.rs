//! The Mistral AI provider plugin: bearer auth, probe `GET {base}/v1/models`,
//! usage from Mistral's OpenAI-style answers and streams (the last chunk
//! carries `usage`).
//!
//! Mistral's errors: a bad key is 401 `{"message":"Unauthorized",..}`; its
//! API errors are `{"object":"error","message":..,"type":..,"code":..}`.

use platos_plugin_sdk::{
    ApiKeyProvider, export_api_key_provider, model_list_verdict, read_openai_usage,
};

const MISTRAL: ApiKeyProvider = ApiKeyProvider {
    name: "Mistral",
    api_path: "/v1",
    other_api_paths: &[],
    probe_path: "models",
    bad_key: &[],
    no_credit: &[],
    healthy: model_list_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(Mistral, MISTRAL);

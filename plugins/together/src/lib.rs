//! The Together AI provider plugin: bearer auth, probe `GET {root}/v1/models`
//! (a bare JSON array of models), usage from Together's OpenAI-style answers
//! and streams.
//!
//! Together's errors are OpenAI-shaped: a bad key is 401 `invalid_api_key`
//! ("Invalid API key provided").

use platos_plugin_sdk::{
    ApiKeyProvider, export_api_key_provider, model_list_verdict, read_openai_usage,
};

const TOGETHER: ApiKeyProvider = ApiKeyProvider {
    name: "Together AI",
    api_path: "/v1",
    other_api_paths: &[],
    probe_path: "models",
    bad_key: &["invalid_api_key"],
    no_credit: &[],
    healthy: model_list_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(Together, TOGETHER);

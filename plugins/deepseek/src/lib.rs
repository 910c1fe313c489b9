//! The DeepSeek provider plugin: bearer auth, probe `GET {base}/models`
//! (DeepSeek serves its API with or without /v1), usage from DeepSeek's
//! OpenAI-style answers and streams (`prompt_cache_hit_tokens` are the
//! cached input).
//!
//! DeepSeek's errors are OpenAI-shaped: 401 "Authentication Fails", 402
//! "Insufficient Balance", 429 "Rate Limit Reached", 503 "Server Overloaded".

use platos_plugin_sdk::{
    ApiKeyProvider, export_api_key_provider, model_list_verdict, read_openai_usage,
};

const DEEPSEEK: ApiKeyProvider = ApiKeyProvider {
    name: "DeepSeek",
    api_path: "",
    other_api_paths: &[],
    probe_path: "models",
    bad_key: &["authentication fails"],
    no_credit: &["insufficient balance"],
    healthy: model_list_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(DeepSeek, DEEPSEEK);

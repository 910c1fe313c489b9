//! The Groq provider plugin: bearer auth, probe `GET {root}/openai/v1/models`
//! (the base URL is the API root, as the groq SDK reads it; a pasted
//! `.../openai/v1` works too), usage from Groq's OpenAI-style answers and
//! streams (the last chunk carries `usage`, older ones only `x_groq.usage`).
//!
//! Groq's errors are OpenAI-shaped: a bad key is 401 `invalid_api_key`
//! ("Invalid API Key"), a restricted organization 400
//! `organization_restricted`, limits 429 `rate_limit_exceeded`.

use platos_plugin_sdk::{
    ApiKeyProvider, export_api_key_provider, model_list_verdict, read_openai_usage,
};

const GROQ: ApiKeyProvider = ApiKeyProvider {
    name: "Groq",
    api_path: "/openai/v1",
    other_api_paths: &[],
    probe_path: "models",
    bad_key: &["invalid_api_key", "organization_restricted"],
    no_credit: &[],
    healthy: model_list_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(Groq, GROQ);

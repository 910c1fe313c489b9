//! The Fireworks AI provider plugin: bearer auth, probe
//! `GET {root}/inference/v1/models` (the base URL is the API root, as the
//! fireworks-ai SDK reads it; a pasted `.../inference/v1` works too), usage
//! from Fireworks' OpenAI-style answers and streams.

use platos_plugin_sdk::{
    ApiKeyProvider, export_api_key_provider, model_list_verdict, read_openai_usage,
};

const FIREWORKS: ApiKeyProvider = ApiKeyProvider {
    name: "Fireworks AI",
    api_path: "/inference/v1",
    other_api_paths: &[],
    probe_path: "models",
    bad_key: &[],
    no_credit: &[],
    healthy: model_list_verdict,
    usage: read_openai_usage,
};

export_api_key_provider!(Fireworks, FIREWORKS);

//! The OpenAI provider plugin: bearer auth, probe `GET {base}/models`.

use platos_plugin_sdk::{
    Credentials, HttpRequest, PluginError, Provider, ProviderManifest, base_url, export_provider,
    include_manifest, join_url,
};

struct OpenAi;

impl Provider for OpenAi {
    fn manifest() -> ProviderManifest {
        include_manifest!()
    }

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
        let base = base_url(&credentials, &Self::manifest())?;
        Ok(HttpRequest::get(join_url(&base, "models")))
    }
}

export_provider!(OpenAi);

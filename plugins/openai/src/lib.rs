//! The OpenAI provider plugin: bearer auth, probe `GET {base}/models`,
//! usage from OpenAI's JSON answers and streams.

use platos_plugin_sdk::{
    Credentials, HttpRequest, HttpResponse, PluginError, Provider, ProviderManifest, Usage,
    base_url, export_provider, include_manifest, join_url, read_openai_usage,
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

    fn read_usage(
        request: HttpRequest,
        response: HttpResponse,
    ) -> Result<Option<Usage>, PluginError> {
        Ok(read_openai_usage(&request, &response))
    }
}

export_provider!(OpenAi);

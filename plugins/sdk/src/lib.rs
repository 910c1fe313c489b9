//! The Platos provider plugin SDK.
//!
//! A plugin implements [`Provider`] and calls [`export_provider!`]. The SDK
//! carries the WIT bindings (`platos:provider@0.2.0`), embeds the manifest that
//! `platos-plugin-build` generated from the provider's TOML file
//! ([`include_manifest!`]), applies declarative auth shapes ([`apply_declared_auth`]),
//! classifies probe responses ([`classify_status`], [`model_ids_from_json`]),
//! reads token usage from OpenAI-style and Anthropic-style bodies and streams
//! ([`read_openai_usage`], [`read_anthropic_usage`]) and OAuth-style token
//! answers ([`read_oauth_token`]). A provider reached with one bearer API key
//! is described by an [`ApiKeyProvider`] and exported with
//! [`export_api_key_provider!`].
//!
//! ```ignore
//! use platos_plugin_sdk::*;
//!
//! struct Acme;
//! impl Provider for Acme {
//!     fn manifest() -> ProviderManifest { include_manifest!() }
//!     fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {
//!         let base = base_url(&credentials, &Self::manifest())?;
//!         Ok(HttpRequest::get(join_url(&base, "models")))
//!     }
//!     fn interpret_health(response: HttpResponse) -> Verdict { standard_verdict(&response) }
//! }
//! export_provider!(Acme);
//! ```

mod api_key;
mod auth;
pub mod azure;
mod token;
mod usage;
mod verdicts;

/// The bindings generated from `wit/since_v0.2.0`. Plugins rarely need them directly.
pub mod bindings {
    wit_bindgen::generate!({
        world: "provider",
        // A copy of the repository's `wit/since_v0.2.0`, so the package builds on
        // its own (tests/harness.rs fails when the copy differs).
        path: "wit/since_v0.2.0",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "platos_plugin_sdk::bindings",
    });
}

pub use api_key::{ApiKeyProvider, error_message, model_list_verdict};
pub use auth::{
    AUTH_HEADERS, apply_declared_auth, base_url, credential, credential_or_default, join_url,
    join_versioned, remove_auth_headers, remove_query_params, require_credential,
};
pub use bindings::exports::platos::provider::types::{
    AccessToken, AuthShape, ClientInfo, ClientSelector, Credentials, EnvAlias, EnvVar, EnvVarRole,
    ErrorCode, HeaderAuth, HealthyInfo, HttpRequest, HttpResponse, Method, ModelClass, ModelInfo,
    PluginError, ProviderManifest, QueryAuth, TokenFailure, TokenPrice, Usage, ValueForm, Verdict,
};
pub use token::{ACCESS_TOKEN_VAR, read_oauth_token};
pub use usage::{
    ServerSentEvent, anthropic_usage_from_json, bedrock_model_in_url, bedrock_usage_from_json,
    gemini_usage_from_json, is_event_stream, openai_usage_from_json, read_anthropic_usage,
    read_gemini_usage, read_openai_usage, read_total_tokens_usage, requested_model,
    server_sent_events, succeeded,
};
pub use verdicts::{
    MAX_MODEL_IDS, NOT_FOUND_HINT, StatusClass, classify_status, listing_verdict,
    model_ids_from_json, redacted_snippet, standard_verdict,
};

/// One provider. Implement it on a unit struct and pass that to [`export_provider!`].
pub trait Provider {
    /// The provider's manifest, normally `include_manifest!()`.
    fn manifest() -> ProviderManifest;

    /// Applies auth to an outgoing request. The default applies the manifest's
    /// declarative auth shape; a `custom` shape must override it.
    fn authorize(
        credentials: Credentials,
        request: HttpRequest,
        now: u64,
    ) -> Result<HttpRequest, PluginError> {
        let _ = now;
        apply_declared_auth(&Self::manifest(), &credentials, request)
    }

    /// The cheapest request that proves a key works, before authorization.
    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError>;

    /// Reads a probe response into a verdict. The default is [`standard_verdict`].
    fn interpret_health(response: HttpResponse) -> Verdict {
        standard_verdict(&response)
    }

    /// For a manifest with `token_exchange`: the request that trades the
    /// secret for an access token. The default answers `unsupported`.
    fn token_request(credentials: Credentials, now: u64) -> Result<HttpRequest, PluginError> {
        let _ = (credentials, now);
        Err(PluginError::new(ErrorCode::Unsupported, "this provider has no token exchange"))
    }

    /// Reads the token endpoint's answer; [`read_oauth_token`] reads the
    /// OAuth 2.0 shape. The default (no token exchange) is a degraded failure.
    fn read_token(response: HttpResponse, now: u64) -> Result<AccessToken, TokenFailure> {
        let _ = (response, now);
        Err(TokenFailure::Degraded("this provider has no token exchange".into()))
    }

    /// The tokens a response consumed; [`read_openai_usage`] and
    /// [`read_anthropic_usage`] read the common shapes. The default answers
    /// `unsupported`.
    fn read_usage(
        request: HttpRequest,
        response: HttpResponse,
    ) -> Result<Option<Usage>, PluginError> {
        let _ = (request, response);
        Err(PluginError::new(ErrorCode::Unsupported, "this provider does not report usage"))
    }
}

/// The manifest generated by `platos_plugin_build::embed_manifest` in the
/// plugin's build script.
#[macro_export]
macro_rules! include_manifest {
    () => {
        include!(concat!(env!("OUT_DIR"), "/platos_manifest.rs"))
    };
}

/// Exports a [`Provider`] implementation as the plugin's WIT exports.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[doc(hidden)]
        pub struct __PlatosPluginExport;

        impl $crate::bindings::exports::platos::provider::plugin::Guest for __PlatosPluginExport {
            fn manifest() -> $crate::ProviderManifest {
                <$provider as $crate::Provider>::manifest()
            }
            fn authorize(
                credentials: $crate::Credentials,
                request: $crate::HttpRequest,
                now: u64,
            ) -> ::core::result::Result<$crate::HttpRequest, $crate::PluginError> {
                <$provider as $crate::Provider>::authorize(credentials, request, now)
            }
            fn health_probe(
                credentials: $crate::Credentials,
            ) -> ::core::result::Result<$crate::HttpRequest, $crate::PluginError> {
                <$provider as $crate::Provider>::health_probe(credentials)
            }
            fn interpret_health(response: $crate::HttpResponse) -> $crate::Verdict {
                <$provider as $crate::Provider>::interpret_health(response)
            }
            fn token_request(
                credentials: $crate::Credentials,
                now: u64,
            ) -> ::core::result::Result<$crate::HttpRequest, $crate::PluginError> {
                <$provider as $crate::Provider>::token_request(credentials, now)
            }
            fn read_token(
                response: $crate::HttpResponse,
                now: u64,
            ) -> ::core::result::Result<$crate::AccessToken, $crate::TokenFailure> {
                <$provider as $crate::Provider>::read_token(response, now)
            }
            fn read_usage(
                request: $crate::HttpRequest,
                response: $crate::HttpResponse,
            ) -> ::core::result::Result<::core::option::Option<$crate::Usage>, $crate::PluginError>
            {
                <$provider as $crate::Provider>::read_usage(request, response)
            }
        }

        $crate::bindings::export!(__PlatosPluginExport with_types_in $crate::bindings);
    };
}

impl HttpRequest {
    /// A `GET` of `url` with no headers and no body.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest { method: Method::Get, url: url.into(), headers: Vec::new(), body: None }
    }

    /// A `POST` of a JSON body to `url`.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Self {
        HttpRequest {
            method: Method::Post,
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string().into_bytes()),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl PluginError {
    /// An error with a code and a message (which must not contain a secret).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PluginError { code, message: message.into() }
    }
}

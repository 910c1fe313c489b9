//! The WIT versions this host speaks. Each released contract is frozen in its
//! own module (`since_v0_1_0`, `since_v0_2_0`, ...) with its own bindings and
//! conversions to the domain types of [`crate::provider`]; [`ProviderApi`]
//! routes a call to the version the plugin was built against, so old plugins
//! keep loading. A function a plugin's contract lacks answers
//! [`Unsupported`], never a trap.

pub mod since_v0_1_0;
pub mod since_v0_2_0;

/// The newest contract, the one the SDK builds.
pub use since_v0_2_0 as latest;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use zeroize::Zeroize;

use super::store::StoreState;
use crate::policy::redaction::Redactor;
use crate::provider::{
    AccessToken, Credentials, HttpRequest, HttpResponse, Manifest, PluginOutput, ProviderError,
    Usage, Verdict,
};

/// The export names of the provider APIs this host supports, newest first.
pub const SUPPORTED_EXPORTS: &[&str] = &[since_v0_2_0::EXPORT_NAME, since_v0_1_0::EXPORT_NAME];

/// A plugin's pre-linked component, in the API version it exports.
pub enum ProviderApi {
    /// `platos:provider@0.1.0`.
    V0_1_0(since_v0_1_0::ProviderPre<StoreState>),
    /// `platos:provider@0.2.0`.
    V0_2_0(since_v0_2_0::ProviderPre<StoreState>),
}

/// A function the plugin's contract version does not have: the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported {
    /// The plugin's contract version, e.g. `0.1.0`.
    pub contract: &'static str,
    /// The first version that has the function, e.g. `0.2.0`.
    pub since: &'static str,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "is not supported by contract {} (added in {}; rebuild the plugin against platos:provider@{})",
            self.contract, self.since, self.since
        )
    }
}

impl<T: PluginOutput> PluginOutput for Result<T, Unsupported> {
    fn payload_size(&self) -> usize {
        self.as_ref().map_or(0, PluginOutput::payload_size)
    }

    fn model_ids(&self) -> usize {
        self.as_ref().map_or(0, PluginOutput::model_ids)
    }

    fn redact(&mut self, redactor: &Redactor) {
        if let Ok(value) = self {
            value.redact(redactor);
        }
    }
}

/// What a call of a function added after 0.1.0 gives: the engine's result,
/// or [`Unsupported`] without entering the guest.
pub type ApiResult<T> = Result<wasmtime::Result<T>, Unsupported>;

/// The export names of `component`, for detection and messages.
pub fn export_names(component: &Component, engine: &Engine) -> Vec<String> {
    component.component_type().exports(engine).map(|(name, _)| name.to_owned()).collect()
}

/// The env bag as WIT wants it; zeroed when dropped.
pub(crate) struct ExposedCredentials(pub(crate) Vec<(String, String)>);

impl ExposedCredentials {
    pub(crate) fn new(credentials: &Credentials) -> Self {
        ExposedCredentials(
            credentials.expose().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        )
    }
}

impl Drop for ExposedCredentials {
    fn drop(&mut self) {
        for (_, value) in &mut self.0 {
            value.zeroize();
        }
    }
}

impl ProviderApi {
    /// Pre-links `component` for the newest API version it exports; `None`
    /// when it exports none this host supports.
    pub fn detect(
        component: &Component,
        engine: &Engine,
        linker: &Linker<StoreState>,
    ) -> Option<wasmtime::Result<Self>> {
        let exports = export_names(component, engine);
        let exports = |name: &str| exports.iter().any(|export| export == name);
        if exports(since_v0_2_0::EXPORT_NAME) {
            return Some(
                linker
                    .instantiate_pre(component)
                    .and_then(since_v0_2_0::ProviderPre::new)
                    .map(ProviderApi::V0_2_0),
            );
        }
        if exports(since_v0_1_0::EXPORT_NAME) {
            return Some(
                linker
                    .instantiate_pre(component)
                    .and_then(since_v0_1_0::ProviderPre::new)
                    .map(ProviderApi::V0_1_0),
            );
        }
        None
    }

    /// The WIT package version, e.g. `0.1.0`.
    pub fn version(&self) -> &'static str {
        match self {
            ProviderApi::V0_1_0(_) => since_v0_1_0::VERSION,
            ProviderApi::V0_2_0(_) => since_v0_2_0::VERSION,
        }
    }

    /// [`Unsupported`] for a function added in `since`, by this plugin's version.
    fn unsupported(&self, since: &'static str) -> Unsupported {
        Unsupported { contract: self.version(), since }
    }

    /// Instantiates and calls `manifest`.
    pub async fn manifest(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Manifest> {
        match self {
            ProviderApi::V0_1_0(pre) => since_v0_1_0::manifest(pre, store).await,
            ProviderApi::V0_2_0(pre) => since_v0_2_0::manifest(pre, store).await,
        }
    }

    /// Instantiates and calls `authorize`.
    pub async fn authorize(
        &self,
        store: &mut Store<StoreState>,
        credentials: &Credentials,
        request: &HttpRequest,
        now: u64,
    ) -> wasmtime::Result<Result<HttpRequest, ProviderError>> {
        match self {
            ProviderApi::V0_1_0(pre) => {
                since_v0_1_0::authorize(pre, store, credentials, request, now).await
            }
            ProviderApi::V0_2_0(pre) => {
                since_v0_2_0::authorize(pre, store, credentials, request, now).await
            }
        }
    }

    /// Instantiates and calls `health-probe`.
    pub async fn health_probe(
        &self,
        store: &mut Store<StoreState>,
        credentials: &Credentials,
    ) -> wasmtime::Result<Result<HttpRequest, ProviderError>> {
        match self {
            ProviderApi::V0_1_0(pre) => since_v0_1_0::health_probe(pre, store, credentials).await,
            ProviderApi::V0_2_0(pre) => since_v0_2_0::health_probe(pre, store, credentials).await,
        }
    }

    /// Instantiates and calls `interpret-health`.
    pub async fn interpret_health(
        &self,
        store: &mut Store<StoreState>,
        response: &HttpResponse,
    ) -> wasmtime::Result<Verdict> {
        match self {
            ProviderApi::V0_1_0(pre) => since_v0_1_0::interpret_health(pre, store, response).await,
            ProviderApi::V0_2_0(pre) => since_v0_2_0::interpret_health(pre, store, response).await,
        }
    }

    /// Instantiates and calls `token-request` (since 0.2.0).
    pub async fn token_request(
        &self,
        store: &mut Store<StoreState>,
        credentials: &Credentials,
        now: u64,
    ) -> ApiResult<Result<HttpRequest, ProviderError>> {
        match self {
            ProviderApi::V0_1_0(_) => Err(self.unsupported(since_v0_2_0::VERSION)),
            ProviderApi::V0_2_0(pre) => {
                Ok(since_v0_2_0::token_request(pre, store, credentials, now).await)
            }
        }
    }

    /// Instantiates and calls `read-token` (since 0.2.0).
    pub async fn read_token(
        &self,
        store: &mut Store<StoreState>,
        response: &HttpResponse,
        now: u64,
    ) -> ApiResult<Result<AccessToken, Verdict>> {
        match self {
            ProviderApi::V0_1_0(_) => Err(self.unsupported(since_v0_2_0::VERSION)),
            ProviderApi::V0_2_0(pre) => {
                Ok(since_v0_2_0::read_token(pre, store, response, now).await)
            }
        }
    }

    /// Instantiates and calls `read-usage` (since 0.2.0).
    pub async fn read_usage(
        &self,
        store: &mut Store<StoreState>,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> ApiResult<Result<Option<Usage>, ProviderError>> {
        match self {
            ProviderApi::V0_1_0(_) => Err(self.unsupported(since_v0_2_0::VERSION)),
            ProviderApi::V0_2_0(pre) => {
                Ok(since_v0_2_0::read_usage(pre, store, request, response).await)
            }
        }
    }
}

//! The WIT versions this host speaks. Each released contract is frozen in its
//! own module (`since_v0_1_0`, ...) with its own bindings and conversions to
//! the domain types of [`crate::provider`]; [`ProviderApi`] routes a call to
//! the version the plugin was built against, so old plugins keep loading.

pub mod since_v0_1_0;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

use super::store::StoreState;
use crate::provider::{Credentials, HttpRequest, HttpResponse, Manifest, ProviderError, Verdict};

/// The export names of the provider APIs this host supports, newest first.
pub const SUPPORTED_EXPORTS: &[&str] = &[since_v0_1_0::EXPORT_NAME];

/// A plugin's pre-linked component, in the API version it exports.
pub enum ProviderApi {
    /// `platos:provider@0.1.0`.
    V0_1_0(since_v0_1_0::ProviderPre<StoreState>),
}

/// The export names of `component`, for detection and messages.
pub fn export_names(component: &Component, engine: &Engine) -> Vec<String> {
    component.component_type().exports(engine).map(|(name, _)| name.to_owned()).collect()
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
        if exports.iter().any(|name| name == since_v0_1_0::EXPORT_NAME) {
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
            ProviderApi::V0_1_0(_) => "0.1.0",
        }
    }

    /// Instantiates and calls `manifest`.
    pub async fn manifest(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Manifest> {
        match self {
            ProviderApi::V0_1_0(pre) => since_v0_1_0::manifest(pre, store).await,
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
        }
    }
}

//! The plugin runtime: one wasmtime engine, deny-all WASI, and calls into
//! provider plugins under hard limits.
//!
//! - [`PluginHost`] is the host type: a cheap handle to the engine, the
//!   linker, the compile cache and the call semaphore.
//! - [`Plugin`] is a cheap handle to one loaded plugin: its validated manifest
//!   and its pre-linked component. Every call gets a fresh store and instance,
//!   so nothing is shared between calls or tenants.
//! - [`PluginRegistry`] (in [`registry`]) holds the loaded plugins by slug.

pub mod cache;
pub mod config;
pub mod error;
pub mod registry;
pub mod store;
pub mod wit;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, UpdateDeadline};

use self::cache::{ArtifactCache, CacheOutcome};
pub use self::config::{CallLimits, RuntimeConfig};
pub use self::error::{CallError, CallErrorKind, LoadError};
pub use self::registry::PluginRegistry;
use self::store::StoreState;
use self::wit::{ApiResult, ProviderApi, Unsupported};
use crate::policy;
use crate::policy::auth_shape;
use crate::policy::caller_auth;
use crate::policy::hosts::AllowedHosts;
use crate::policy::redaction::Redactor;
use crate::policy::wire_url;
use crate::provider::{
    ACCESS_TOKEN_VAR, AccessToken, Credentials, HttpRequest, HttpResponse, Manifest, PluginOutput,
    ProviderError, Usage, Verdict,
};

/// The plugin host: a cheap, cloneable handle.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    linker: Linker<StoreState>,
    config: RuntimeConfig,
    cache: Option<ArtifactCache>,
    permits: Semaphore,
}

impl PluginHost {
    /// Builds the engine and the deny-all linker, opens the compile cache and
    /// starts the epoch ticker (which stops when the last handle is dropped).
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.limits.memory_bytes <= config::MAX_MEMORY_BYTES,
            "the per-call memory limit of {} bytes exceeds the pool's slot size of {} bytes",
            config.limits.memory_bytes,
            config::MAX_MEMORY_BYTES
        );
        let engine = config::build_engine(&config)?;
        let mut linker = Linker::new(&engine);
        // All of WASI 0.2, each capability denied by the store's WasiCtx.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &engine).map_err(|error| {
                anyhow::anyhow!("cannot open the plugin cache {}: {error}", dir.display())
            })?),
            None => None,
        };
        spawn_epoch_ticker(&engine, config.epoch_tick);
        let permits = Semaphore::new(config.max_concurrent_calls.max(1) as usize);
        Ok(PluginHost { inner: Arc::new(HostInner { engine, linker, config, cache, permits }) })
    }

    /// The configuration in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Loads a plugin file.
    pub async fn load_file(&self, path: &Path) -> Result<Plugin, LoadError> {
        let wasm = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        self.load(&wasm, &path.display().to_string()).await
    }

    /// Loads a plugin from its bytes. `origin` says where it came from, for
    /// messages. Compiling runs on a blocking thread, off the async workers.
    pub async fn load(&self, wasm: &[u8], origin: &str) -> Result<Plugin, LoadError> {
        let started = Instant::now();
        let host = self.clone();
        let bytes = wasm.to_vec();
        let compiled = tokio::task::spawn_blocking(move || {
            cache::load_component(&host.inner.engine, host.inner.cache.as_ref(), &bytes)
        })
        .await
        .map_err(|error| LoadError::Compile {
            origin: origin.to_owned(),
            message: error.to_string(),
        })?;
        let (component, outcome) = compiled.map_err(|error| LoadError::Compile {
            origin: origin.to_owned(),
            message: format!("{error:#}"),
        })?;

        let engine = &self.inner.engine;
        let imports: Vec<String> =
            component.component_type().imports(engine).map(|(name, _)| name.to_owned()).collect();
        let disallowed = policy::imports::disallowed_imports(imports.iter().map(String::as_str));
        if !disallowed.is_empty() {
            return Err(LoadError::DisallowedImports {
                origin: origin.to_owned(),
                imports: disallowed,
            });
        }
        let api = match ProviderApi::detect(&component, engine, &self.inner.linker) {
            Some(Ok(api)) => api,
            Some(Err(error)) => {
                return Err(LoadError::Link {
                    origin: origin.to_owned(),
                    message: format!("{error:#}"),
                });
            }
            None => {
                return Err(LoadError::UnsupportedApi {
                    origin: origin.to_owned(),
                    found: wit::export_names(&component, engine),
                    supported: wit::SUPPORTED_EXPORTS.iter().map(|name| name.to_string()).collect(),
                });
            }
        };

        let mut plugin = PluginInner {
            host: self.clone(),
            id: origin.to_owned(),
            origin: origin.to_owned(),
            sha256: hex::encode(Sha256::digest(wasm)),
            from_cache: outcome == CacheOutcome::Hit,
            manifest: None,
            api,
        };
        let manifest = plugin
            .call("manifest", &Redactor::default(), |api, mut store| {
                Box::pin(async move { (api.manifest(&mut store).await, store) })
            })
            .await
            .map_err(|call| LoadError::Manifest { origin: origin.to_owned(), call })?;
        let id = format!("{}@{}", manifest.slug, manifest.plugin_version);
        policy::manifest::validate(&manifest).map_err(|problems| LoadError::InvalidManifest {
            plugin: id.clone(),
            origin: origin.to_owned(),
            problems,
        })?;
        tracing::debug!(
            plugin = %id,
            api = plugin.api.version(),
            cached = plugin.from_cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        plugin.id = id;
        plugin.manifest = Some(manifest);
        Ok(Plugin { inner: Arc::new(plugin) })
    }
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: std::time::Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("platos-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// A loaded plugin: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    host: PluginHost,
    /// `slug@version` once the manifest is known, the origin before.
    id: String,
    origin: String,
    sha256: String,
    from_cache: bool,
    manifest: Option<Manifest>,
    api: ProviderApi,
}

/// A call's future: it owns the store and hands it back with the result.
type CallFuture<'a, R> =
    Pin<Box<dyn Future<Output = (wasmtime::Result<R>, Store<StoreState>)> + Send + 'a>>;

impl Plugin {
    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        self.inner.manifest.as_ref().expect("a loaded plugin has a manifest")
    }

    /// `slug@version`.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The slug.
    pub fn slug(&self) -> &str {
        &self.manifest().slug
    }

    /// Where the plugin was loaded from.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The sha256 of the component, hex.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Whether the compiled component came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The WIT contract version the plugin was built against.
    pub fn api_version(&self) -> &'static str {
        self.inner.api.version()
    }

    /// The destinations requests for this key may go to.
    pub fn allowed_hosts(&self, credentials: &Credentials) -> AllowedHosts {
        let manifest = self.manifest();
        AllowedHosts::new(&manifest.allowed_hosts, manifest.base_url(credentials))
            .expect("allowed hosts were validated at load")
    }

    /// `credentials` cut to what this plugin may receive: its manifest's
    /// variables (names it owns or was granted) and the access token the
    /// host hands a token-exchange plugin. Anything else a caller passes
    /// (`plugin call` input, a bag built for another plugin) never reaches it.
    fn own_credentials(&self, credentials: &Credentials) -> Credentials {
        let manifest = self.manifest();
        credentials.only(|name| {
            name == ACCESS_TOKEN_VAR || manifest.env_vars.iter().any(|var| var.name == name)
        })
    }

    /// The redactor for calls with `credentials`: the values of the
    /// manifest's secret variables, in every form the host searches for.
    pub fn redactor(&self, credentials: &Credentials) -> Redactor {
        Redactor::for_call(self.manifest(), credentials)
    }

    /// Calls `authorize` on `request` with its URL in the form it is sent
    /// ([`wire_url::as_sent`]) and without the caller's own auth
    /// ([`caller_auth::without_caller_auth`]); a header the plugin sets
    /// replaces the caller's of that name. Then checks the returned
    /// request's destination, headers and where it carries secrets (only
    /// where the declared auth shape puts them); a refused request is an
    /// error, never sent.
    pub async fn authorize(
        &self,
        credentials: &Credentials,
        request: &HttpRequest,
        now: u64,
    ) -> Result<HttpRequest, CallError> {
        let credentials = &self.own_credentials(credentials);
        let redactor = self.redactor(credentials);
        let mut prepared = caller_auth::without_caller_auth(&self.manifest().auth, request);
        prepared.url = wire_url::as_sent(&prepared.url);
        let given = &prepared;
        let result = self
            .inner
            .call("authorize", &redactor, |api, mut store| {
                Box::pin(async move {
                    (api.authorize(&mut store, credentials, given, now).await, store)
                })
            })
            .await?
            .map(|authorized| caller_auth::without_replaced_headers(given, authorized));
        self.checked_request("authorize", credentials, &redactor, Some(request), result)
    }

    /// Calls `health-probe` and checks the probe's destination. The request
    /// is not yet authorized: pass it through [`Plugin::authorize`].
    pub async fn health_probe(&self, credentials: &Credentials) -> Result<HttpRequest, CallError> {
        let credentials = &self.own_credentials(credentials);
        let redactor = self.redactor(credentials);
        let result = self
            .inner
            .call("health-probe", &redactor, |api, mut store| {
                Box::pin(async move { (api.health_probe(&mut store, credentials).await, store) })
            })
            .await?;
        self.checked_request("health-probe", credentials, &redactor, None, result)
    }

    /// Calls `interpret-health` on the answer to a probe of the key with
    /// `credentials`. The plugin never sees them; the host redacts them from
    /// the verdict, since the provider's answer may echo the key.
    pub async fn interpret_health(
        &self,
        credentials: &Credentials,
        response: &HttpResponse,
    ) -> Result<Verdict, CallError> {
        let redactor = self.redactor(credentials);
        self.inner
            .call("interpret-health", &redactor, |api, mut store| {
                Box::pin(async move { (api.interpret_health(&mut store, response).await, store) })
            })
            .await
    }

    /// Calls `manifest` again (for `plugin call`; the loaded one is cached).
    pub async fn call_manifest(&self) -> Result<Manifest, CallError> {
        self.inner
            .call("manifest", &Redactor::default(), |api, mut store| {
                Box::pin(async move { (api.manifest(&mut store).await, store) })
            })
            .await
    }

    /// Calls `token-request` (contract 0.2.0) and checks the request's
    /// destination: the request that trades the key's secret for an access
    /// token, sent as is (not through [`Plugin::authorize`]).
    pub async fn token_request(
        &self,
        credentials: &Credentials,
        now: u64,
    ) -> Result<HttpRequest, CallError> {
        const FUNCTION: &str = "token-request";
        let credentials = &self.own_credentials(credentials);
        let redactor = self.redactor(credentials);
        let result = self
            .inner
            .call(FUNCTION, &redactor, |api, mut store| {
                Box::pin(async move {
                    (routed(api.token_request(&mut store, credentials, now).await), store)
                })
            })
            .await?;
        let result = result.map_err(|unsupported| self.unsupported(FUNCTION, unsupported))?;
        // The exchange carries the secret by design (a client secret, a
        // signed assertion): its destination is checked, not the auth shape.
        self.checked_destination(FUNCTION, credentials, &redactor, result)
    }

    /// Calls `read-token` (contract 0.2.0): the access token in the token
    /// endpoint's response to the exchange for the key with `credentials`
    /// (redacted from a failure's verdict: the endpoint may echo them), or
    /// the verdict the key gets when there is none.
    pub async fn read_token(
        &self,
        credentials: &Credentials,
        response: &HttpResponse,
        now: u64,
    ) -> Result<Result<AccessToken, Verdict>, CallError> {
        const FUNCTION: &str = "read-token";
        let redactor = self.redactor(credentials);
        let result = self
            .inner
            .call(FUNCTION, &redactor, |api, mut store| {
                Box::pin(
                    async move { (routed(api.read_token(&mut store, response, now).await), store) },
                )
            })
            .await?;
        result.map_err(|unsupported| self.unsupported(FUNCTION, unsupported))
    }

    /// Calls `read-usage` (contract 0.2.0): the tokens `response` consumed for
    /// the agent's `request` (before authorization), `None` when it carries no usage.
    pub async fn read_usage(
        &self,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> Result<Option<Usage>, CallError> {
        const FUNCTION: &str = "read-usage";
        let result = self
            .inner
            .call(FUNCTION, &Redactor::default(), |api, mut store| {
                Box::pin(async move {
                    (routed(api.read_usage(&mut store, request, response).await), store)
                })
            })
            .await?;
        let error = |kind| CallError { plugin: self.inner.id.clone(), function: FUNCTION, kind };
        result
            .map_err(|unsupported| self.unsupported(FUNCTION, unsupported))?
            .map_err(|failure| error(CallErrorKind::Provider(failure)))
    }

    /// The error for a function the plugin's contract version lacks.
    fn unsupported(&self, function: &'static str, unsupported: Unsupported) -> CallError {
        CallError {
            plugin: self.inner.id.clone(),
            function,
            kind: CallErrorKind::Unsupported(unsupported),
        }
    }

    /// Checks a request `function` returned: allowed destination and valid
    /// headers, then secrets only where the auth shape allows. `given` is the
    /// request handed to `authorize`: a place it already carried a secret in
    /// is said so (the caller's doing, still refused: the rule is about what
    /// is sent).
    /// Checks a request `function` returned goes to an allowed destination
    /// with valid headers.
    fn checked_destination(
        &self,
        function: &'static str,
        credentials: &Credentials,
        redactor: &Redactor,
        result: Result<HttpRequest, ProviderError>,
    ) -> Result<HttpRequest, CallError> {
        let error = |kind| CallError { plugin: self.inner.id.clone(), function, kind };
        let request = result.map_err(|failure| error(CallErrorKind::Provider(failure)))?;
        self.allowed_hosts(credentials)
            .check(&request.url, &request.headers)
            .map_err(|refusal| error(CallErrorKind::Refused(refusal.redacted(redactor))))?;
        Ok(request)
    }

    fn checked_request(
        &self,
        function: &'static str,
        credentials: &Credentials,
        redactor: &Redactor,
        given: Option<&HttpRequest>,
        result: Result<HttpRequest, ProviderError>,
    ) -> Result<HttpRequest, CallError> {
        let error = |kind| CallError { plugin: self.inner.id.clone(), function, kind };
        let request = self.checked_destination(function, credentials, redactor, result)?;
        let auth = &self.manifest().auth;
        let places = auth_shape::violations(auth, redactor, &request);
        if !places.is_empty() {
            let already = given.map(|given| auth_shape::violations(auth, redactor, given));
            let places = places
                .into_iter()
                .map(|place| match &already {
                    Some(already) if already.contains(&place) => {
                        format!("{place} (already in the request handed to authorize)")
                    }
                    _ => place,
                })
                .collect();
            return Err(error(CallErrorKind::SecretOutOfPlace {
                expected: auth_shape::describe(auth),
                places,
            }));
        }
        Ok(request)
    }
}

impl PluginInner {
    /// Runs one call in a fresh store under every limit, logs what the guest
    /// printed, bounds the result's size and model ids, and redacts the
    /// call's secrets (`redactor`) from the result, the log and any error:
    /// the one way plugin output enters the host.
    async fn call<'a, R: PluginOutput>(
        &'a self,
        function: &'static str,
        redactor: &Redactor,
        run: impl FnOnce(&'a ProviderApi, Store<StoreState>) -> CallFuture<'a, R>,
    ) -> Result<R, CallError> {
        let host = &self.host.inner;
        let limits = &host.config.limits;
        let error = |kind| CallError { plugin: self.id.clone(), function, kind };
        let _permit = host.permits.acquire().await.expect("the call semaphore is never closed");

        let mut store = Store::new(&host.engine, StoreState::new(limits));
        store.limiter(|state| &mut state.limiter);
        let budget =
            (limits.cpu_time.as_nanos() / host.config.epoch_tick.as_nanos().max(1)).max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut context| {
            let state = context.data_mut();
            state.ticks += 1;
            if state.ticks >= budget {
                state.cpu_exhausted = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield so a wall-clock timeout and other tasks can run.
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let (stdout, stderr) = (store.data().stdout.clone(), store.data().stderr.clone());
        let outcome = tokio::time::timeout(limits.wall_time, run(&self.api, store)).await;
        let stderr_text = self.log_guest_output(&stdout, &stderr, function, redactor);
        let outcome = match outcome {
            Err(_) => Err(CallErrorKind::Timeout(limits.wall_time)),
            Ok((result, store)) => Ok((result, store)),
        };
        let result = match outcome {
            Err(timeout) => Err(timeout),
            Ok((Err(_), store)) if store.data().cpu_exhausted => {
                Err(CallErrorKind::CpuLimit(limits.cpu_time))
            }
            Ok((Err(_), store)) if store.data().limiter.memory_denied.is_some() => {
                Err(CallErrorKind::MemoryLimit {
                    limit: limits.memory_bytes,
                    wanted: store.data().limiter.memory_denied.unwrap_or_default(),
                })
            }
            Ok((Err(trap), _)) => {
                // The guest's last words (a Rust panic message, a Python
                // traceback) say more than the trap itself.
                let mut message = format!("{trap:#}");
                if let Some(tail) = tail_lines(&stderr_text, 3, 400) {
                    message = format!("{message}\n  guest stderr: {tail}");
                }
                Err(CallErrorKind::Trap(redactor.redact(&message)))
            }
            Ok((Ok(mut value), _)) => {
                let size = value.payload_size();
                let models = value.model_ids();
                if size > limits.output_bytes {
                    Err(CallErrorKind::OutputTooLarge { size, limit: limits.output_bytes })
                } else if models > limits.model_ids {
                    Err(CallErrorKind::TooManyModels { count: models, limit: limits.model_ids })
                } else {
                    value.redact(redactor);
                    Ok(value)
                }
            }
        };
        result.map_err(error)
    }

    /// Logs what the guest printed, redacted; returns its stderr (redacted).
    fn log_guest_output(
        &self,
        stdout: &store::Capture,
        stderr: &store::Capture,
        function: &str,
        redactor: &Redactor,
    ) -> String {
        let mut last_stderr = String::new();
        for (stream, capture) in [("stdout", stdout), ("stderr", stderr)] {
            let (text, dropped) = capture.take();
            if text.is_empty() {
                continue;
            }
            let text = redactor.redact(&text);
            tracing::info!(plugin = %self.id, function, stream, dropped_bytes = dropped, "{}", text.trim_end());
            if stream == "stderr" {
                last_stderr = text;
            }
        }
        last_stderr
    }
}

/// A routed call's outcome in the shape [`PluginInner::call`] runs: the
/// engine's result outside, [`Unsupported`] inside.
fn routed<T>(result: ApiResult<T>) -> wasmtime::Result<Result<T, Unsupported>> {
    match result {
        Ok(engine) => engine.map(Ok),
        Err(unsupported) => Ok(Err(unsupported)),
    }
}

/// The last `lines` non-empty lines of `text`, joined with ` | ` and cut to
/// `max_chars`; `None` when there are none.
fn tail_lines(text: &str, lines: usize, max_chars: usize) -> Option<String> {
    let kept: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    if kept.is_empty() {
        return None;
    }
    let tail = kept[kept.len().saturating_sub(lines)..].join(" | ");
    Some(tail.chars().take(max_chars).collect())
}

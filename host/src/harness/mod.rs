//! The plugin author kit: a harness that checks a provider plugin component
//! against everything the host relies on, and a scaffold for new plugins.
//!
//! [`check_plugin`] loads a component under the runtime's real limits and
//! runs a list of named checks (see [`names`]): the load rules (imports,
//! exports, manifest), `authorize` (the declared auth shape, no secret
//! anywhere else, allowed hosts only, deterministic, an error without the
//! key), `health-probe` (allowed hosts only), `interpret-health` on a
//! standard set of canned responses, contract 0.2.0's `read-usage` and token
//! exchange, the runtime's limits, and optionally
//! live mode: recorded responses replayed by a mock upstream on 127.0.0.1
//! ([`live`]). Every check says what was expected, what came back and how to
//! fix it; the report serializes to JSON.
//!
//! Secrets in the harness are canaries generated per run; a report shows
//! `<VAR_NAME>` wherever a secret's value would stand.
//!
//! The same checks run from `platos-host plugin test <file.wasm>` and from an
//! author's `cargo test`:
//!
//! ```no_run
//! #[tokio::test]
//! async fn my_plugin_passes_the_harness() {
//!     let wasm = std::fs::read("target/wasm32-wasip2/release/platos_provider_acme.wasm").unwrap();
//!     let report = platos_host::harness::check_plugin(&wasm, &Default::default()).await;
//!     platos_host::harness::assert_passes(&report);
//! }
//! ```

mod auth;
mod checks;
pub mod hints;
pub mod live;
mod report;
mod samples;
pub mod scaffold;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use self::checks::{VERDICT_CLASSES, verdict_class};
pub use self::report::{Check, CheckStatus, Counts, HarnessReport, assert_passes};
use crate::runtime::{PluginHost, RuntimeConfig};

/// The names of the harness's checks. Live cases are named
/// [`LIVE_PREFIX`](names::LIVE_PREFIX) plus the fixture's file stem.
pub mod names {
    /// The runtime could not be set up (not the plugin's fault).
    pub const HARNESS_SETUP: &str = "harness.setup";
    /// The bytes are a component the engine compiles.
    pub const LOAD_COMPONENT: &str = "load.component";
    /// Its imports are within WASI 0.2.
    pub const LOAD_IMPORTS: &str = "load.imports";
    /// It exports a supported provider API and links.
    pub const LOAD_EXPORTS: &str = "load.exports";
    /// `manifest` answers within the limits.
    pub const LOAD_MANIFEST: &str = "load.manifest";
    /// The manifest follows every rule the host enforces.
    pub const MANIFEST_RULES: &str = "manifest.rules";
    /// `health-probe` describes a request to an allowed host.
    pub const PROBE_ALLOWED_HOST: &str = "probe.allowed-host";
    /// `authorize` keeps requests on allowed hosts.
    pub const AUTHORIZE_ALLOWED_HOST: &str = "authorize.allowed-host";
    /// `authorize` applies the declared auth shape.
    pub const AUTHORIZE_SHAPE: &str = "authorize.shape";
    /// `authorize` puts secrets nowhere else.
    pub const AUTHORIZE_NO_LEAK: &str = "authorize.no-leak";
    /// `authorize` is deterministic.
    pub const AUTHORIZE_DETERMINISTIC: &str = "authorize.deterministic";
    /// `authorize` without the key is a plugin error.
    pub const AUTHORIZE_MISSING_CREDENTIAL: &str = "authorize.missing-credential";
    /// A 200 with an OpenAI-style model list.
    pub const INTERPRET_MODELS_OPENAI: &str = "interpret.models-openai";
    /// A 200 with a Gemini-style model list.
    pub const INTERPRET_MODELS_GEMINI: &str = "interpret.models-gemini";
    /// A 200 with a Bedrock-style model list.
    pub const INTERPRET_MODELS_BEDROCK: &str = "interpret.models-bedrock";
    /// A 200 with an OpenAI-style embeddings response.
    pub const INTERPRET_EMBEDDINGS: &str = "interpret.embeddings";
    /// A 200 with an OpenRouter-style key-information answer.
    pub const INTERPRET_KEY_INFO: &str = "interpret.key-info";
    /// At least one of the success shapes reads as healthy.
    pub const INTERPRET_HEALTHY_200: &str = "interpret.healthy-200";
    /// A 401 is an invalid credential.
    pub const INTERPRET_401: &str = "interpret.401";
    /// A 403 is an invalid credential.
    pub const INTERPRET_403: &str = "interpret.403";
    /// A 429 is quota-limited.
    pub const INTERPRET_429: &str = "interpret.429";
    /// A 500 is degraded.
    pub const INTERPRET_500: &str = "interpret.500";
    /// A 200 with an empty body is degraded or unreachable.
    pub const INTERPRET_EMPTY_BODY: &str = "interpret.empty-body";
    /// A 200 with a non-JSON body is degraded or unreachable.
    pub const INTERPRET_NON_JSON: &str = "interpret.non-json";
    /// A 200 with a 5 MB body neither traps nor hits a limit.
    pub const INTERPRET_LARGE_BODY: &str = "interpret.large-body";
    /// Status 0 (a transport failure) is unreachable.
    pub const INTERPRET_UNREACHABLE: &str = "interpret.unreachable";
    /// `read-usage` never traps and finds no usage in a failed request.
    pub const USAGE_SAFE: &str = "usage.safe";
    /// `token-request` goes to an allowed host (token-exchange manifests).
    pub const TOKEN_REQUEST: &str = "token.request";
    /// `read-token` reads a 401 from the token endpoint as a failure.
    pub const TOKEN_401: &str = "token.401";
    /// No call hit a memory, CPU, time or output limit.
    pub const LIMITS: &str = "limits";
    /// Live mode as a whole (skipped without fixtures).
    pub const LIVE: &str = "live";
    /// The prefix of each live case's check.
    pub const LIVE_PREFIX: &str = "live.";

    /// The checks that need a loaded plugin, in the order they run.
    pub const AFTER_LOAD: &[&str] = &[
        PROBE_ALLOWED_HOST,
        AUTHORIZE_ALLOWED_HOST,
        AUTHORIZE_SHAPE,
        AUTHORIZE_NO_LEAK,
        AUTHORIZE_DETERMINISTIC,
        AUTHORIZE_MISSING_CREDENTIAL,
        INTERPRET_MODELS_OPENAI,
        INTERPRET_MODELS_GEMINI,
        INTERPRET_MODELS_BEDROCK,
        INTERPRET_EMBEDDINGS,
        INTERPRET_KEY_INFO,
        INTERPRET_401,
        INTERPRET_403,
        INTERPRET_429,
        INTERPRET_500,
        INTERPRET_EMPTY_BODY,
        INTERPRET_NON_JSON,
        INTERPRET_LARGE_BODY,
        INTERPRET_UNREACHABLE,
        INTERPRET_HEALTHY_200,
        USAGE_SAFE,
        TOKEN_REQUEST,
        TOKEN_401,
        LIVE,
        LIMITS,
    ];
}

/// How the harness runs.
#[derive(Clone)]
pub struct HarnessOptions {
    /// The runtime the plugin runs in. The default has the production limits
    /// (64 MiB, 500 ms CPU, 2 s, 1 MiB output) and a small instance pool.
    pub runtime: RuntimeConfig,
    /// A name for the component in the report (e.g. its path).
    pub origin: String,
    /// Live mode: a directory of fixture files (see [`live`]).
    pub fixtures: Option<PathBuf>,
    /// Values for variables, by name: a required non-secret variable without
    /// a default (a region, an API version), or fixed secrets. Anything not
    /// given gets a default, a sample, or (for secrets) a fresh canary.
    pub values: BTreeMap<String, String>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            runtime: RuntimeConfig { max_concurrent_calls: 4, ..RuntimeConfig::default() },
            origin: "harness".to_owned(),
            fixtures: None,
            values: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for HarnessOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarnessOptions")
            .field("runtime", &self.runtime)
            .field("origin", &self.origin)
            .field("fixtures", &self.fixtures)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Loads `wasm` in a fresh [`PluginHost`] built from `options.runtime` and
/// runs every check. Never panics on a misbehaving plugin: every problem is
/// a failed check in the report.
pub async fn check_plugin(wasm: &[u8], options: &HarnessOptions) -> HarnessReport {
    match PluginHost::new(options.runtime.clone()) {
        Ok(host) => check_plugin_with(&host, wasm, options).await,
        Err(error) => HarnessReport::new(
            options.origin.clone(),
            None,
            vec![Check::fail(
                names::HARNESS_SETUP,
                "the harness starts a plugin runtime",
                "a runtime",
                format!("{error:#}"),
                "check the runtime configuration passed in HarnessOptions::runtime",
            )],
        ),
    }
}

/// Like [`check_plugin`], in an existing host (its limits apply;
/// `options.runtime` is ignored).
pub async fn check_plugin_with(
    host: &PluginHost,
    wasm: &[u8],
    options: &HarnessOptions,
) -> HarnessReport {
    let limits = host.config().limits.clone();
    let mut hits = Vec::new();
    let loaded = host.load(wasm, &options.origin).await;
    let mut checks = checks::load_checks(&loaded, &mut hits);
    let plugin = match loaded {
        Ok(plugin) => plugin,
        Err(error) => {
            for name in names::AFTER_LOAD {
                checks.push(Check::skip(*name, "needs a loaded plugin", "the plugin did not load"));
            }
            let id = match error {
                crate::runtime::LoadError::InvalidManifest { plugin, .. } => Some(plugin),
                _ => None,
            };
            return HarnessReport::new(options.origin.clone(), id, checks);
        }
    };
    let mut session = checks::Session { plugin: &plugin, limits: &limits, checks, hits };
    session.probe_and_authorize(&options.values).await;
    session.interpret().await;
    session.contract_additions(&options.values).await;
    match &options.fixtures {
        Some(dir) => {
            let live = live::live_checks(&plugin, dir, &options.values, &mut session.hits).await;
            session.checks.extend(live);
        }
        None => session.checks.push(Check::skip(
            names::LIVE,
            "live mode: recorded responses from a mock upstream on 127.0.0.1",
            "no fixture directory given (--fixtures DIR)",
        )),
    }
    session.limits_check();
    HarnessReport::new(options.origin.clone(), Some(plugin.id().to_owned()), session.checks)
}

//! Everything `platos-host serve` runs, as a library so tests can start the
//! real server in-process: plugins, the master key (generated on a first
//! start without `ENCRYPTION_KEY`), the store, tokens (an operator token on
//! the first start), the self-host import and its reloads (SIGHUP, file
//! change), the health loop, the maintenance loop, and the HTTP server with
//! graceful shutdown.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::auth::{TokenKind, TokenStore};
use super::bootstrap::{self, KeySource, OperatorToken};
use super::connections::ConnectionLimits;
use super::{ApiOptions, ApiState, ImportStatusCell};
use crate::audit::{AuditConfig, AuditDraft, Auditor};
use crate::bundled::PluginSources;
use crate::health::rounds::{RoundTarget, RoundTrigger};
use crate::health::{HealthConfig, HealthService};
use crate::outbound::{Outbound, OutboundConfig};
use crate::resolution::{Resolver, ResolverConfig};
use crate::runtime::PluginRegistry;
use crate::runtime::{PluginHost, RuntimeConfig};
use crate::scope::Scope;
use crate::selfhost::{ImportStatus, SelfHostConfig, manifest_var_filter};
use crate::store::audit::ActorKind;
use crate::store::{
    AuditAction, AuditActor, ImportReport, ProviderVars, SecretStore, StoreBackend, StoreOptions,
    now_millis,
};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The data directory (store, tokens, generated key, plugin cache).
    pub data_dir: PathBuf,
    /// Where the store lives: sled under the data directory, or PostgreSQL.
    pub store: StoreBackend,
    /// The most connections to a PostgreSQL store.
    pub store_pool_size: usize,
    /// Third-party plugins beside the bundled ones, and the operator's
    /// plugin policy (name grants).
    pub plugins: PluginSources,
    /// Refuse to start when any third-party plugin is refused (fail closed);
    /// by default a refused plugin is skipped, logged and listed.
    pub require_all_plugins: bool,
    /// The compiled-plugin cache; `<data_dir>/cache/components` by default.
    pub cache_dir: Option<PathBuf>,
    /// The self-host import, if any.
    pub self_host: Option<SelfHostConfig>,
    /// How often the `.env` file's modification time is checked.
    pub env_file_poll: Duration,
    /// Time between background health rounds; zero turns automatic probes
    /// off (the round at start, after a reload, and on a change).
    pub health_interval: Duration,
    /// Time between flushes of usage and store purges (replaced versions
    /// and lease releases past their end).
    pub maintenance_interval: Duration,
    /// How long a lease lives unless released; at most the store's grace
    /// period ([`crate::resolution::leases::check_lease_ttl`]).
    pub lease_ttl: Duration,
    /// Outbound requests (probes): address policy, timeout, body cap.
    pub outbound: OutboundConfig,
    /// API limits.
    pub api: ApiOptions,
    /// Client connection limits.
    pub connections: ConnectionLimits,
    /// Generate `<data_dir>/encryption.key` when `ENCRYPTION_KEY` is unset.
    pub generate_key: bool,
    /// The audit trail: on or off, its JSON-lines copy, its retention, and
    /// what a record that cannot be written does.
    pub audit: AuditConfig,
}

impl ServerConfig {
    /// Defaults for `data_dir`, listening on `listen`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            store: StoreBackend::Sled,
            store_pool_size: crate::store::DEFAULT_POOL_SIZE,
            plugins: PluginSources::default(),
            require_all_plugins: false,
            cache_dir: None,
            self_host: None,
            env_file_poll: Duration::from_secs(3),
            health_interval: Duration::from_secs(300),
            maintenance_interval: Duration::from_secs(10),
            lease_ttl: ResolverConfig::default().lease_ttl,
            outbound: OutboundConfig::default(),
            api: ApiOptions::default(),
            connections: ConnectionLimits::default(),
            generate_key: true,
            audit: AuditConfig::default(),
        }
    }
}

/// What the start found and did, for the operator.
#[derive(Debug, Clone)]
pub struct StartReport {
    /// `slug@version` of every loaded plugin.
    pub plugins: Vec<String>,
    /// How many third-party plugins were refused (each was logged once).
    pub refused_plugins: usize,
    /// Where the master key came from.
    pub key_source: KeySource,
    /// The operator token's state.
    pub operator_token: OperatorToken,
    /// The embedding warning for the self-host scope, if it has no key.
    pub embedding_warning: Option<String>,
}

/// A running server.
pub struct Server {
    address: SocketAddr,
    state: ApiState,
    store: Arc<dyn SecretStore>,
    report: StartReport,
    shutdown: watch::Sender<bool>,
    serving: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts everything and returns once the server listens.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        let store_options =
            StoreOptions { pool_size: config.store_pool_size, ..StoreOptions::default() };
        crate::resolution::leases::check_lease_ttl(config.lease_ttl, store_options.grace)?;
        crate::private_fs::create_private_dir(&config.data_dir).with_context(|| {
            format!("cannot create the data directory {}", config.data_dir.display())
        })?;
        let host = PluginHost::new(RuntimeConfig {
            cache_dir: Some(
                config
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("cache").join("components")),
            ),
            ..RuntimeConfig::default()
        })?;
        let registry = crate::bundled::load_all(&host, &config.plugins).await?;
        let plugins: Vec<String> = registry.iter().map(|plugin| plugin.id().to_owned()).collect();
        let refused_plugins = registry.refused().len();

        let (keyring, key_source) = bootstrap::keyring(
            &config.data_dir,
            &|name| std::env::var_os(name),
            config.generate_key,
        )?;
        let provider_vars =
            ProviderVars::from_manifests(registry.iter().map(|plugin| plugin.manifest()));
        let options = StoreOptions { provider_vars: provider_vars.clone(), ..store_options };
        let crate::store::OpenedStore { store, tokens, audit } = config
            .store
            .open_all(&config.data_dir, keyring, options)
            .await
            .map_err(|error| {
                match (error, &config.store) {
                    // A wrong master key is refused, and says so itself.
                    (error @ crate::store::StoreError::KeyMismatch { .. }, _) => {
                        anyhow::Error::new(error)
                    }
                    (error, StoreBackend::Sled) => anyhow::Error::new(error).context(format!(
                        "cannot open the store in {} (is another `platos-host serve` running on this data directory?)",
                        config.data_dir.join("store").display()
                    )),
                    (error, backend) => anyhow::Error::new(error)
                        .context(format!("cannot open the store in {backend}")),
                }
            })?;
        let auditor =
            Auditor::start(audit, &config.audit).context("cannot start the audit trail")?;
        record_plugins(&auditor, &registry).await?;
        if config.require_all_plugins && !registry.refused().is_empty() {
            let refused: Vec<String> =
                registry.refused().iter().map(|refused| refused.message.clone()).collect();
            anyhow::bail!(
                "{} plugin(s) refused and --require-all-plugins is set:\n  - {}",
                refused.len(),
                refused.join("\n  - ")
            );
        }
        store.set_provider_vars(provider_vars).await?;
        let tokens = TokenStore::new(tokens);
        let operator_token = bootstrap::operator_token(&config.data_dir, &tokens).await?;
        if let OperatorToken::Created(_) = &operator_token {
            record_first_operator(&auditor, &tokens).await?;
        }

        let accept: Arc<dyn Fn(&str) -> bool + Send + Sync> =
            Arc::from(manifest_var_filter(registry.iter().map(|plugin| plugin.manifest())));
        let known: Vec<String> = registry
            .iter()
            .flat_map(|plugin| plugin.manifest().env_vars.iter().map(|var| var.name.clone()))
            .collect();
        let import_status = ImportStatusCell::default();
        let self_host_import = config.self_host.clone().map(|self_host| SelfHostImport {
            store: store.clone(),
            config: self_host,
            accept: accept.clone(),
            known: Arc::new(known),
            status: import_status.clone(),
            audit: auditor.clone(),
        });
        if let Some(import) = &self_host_import {
            import.run().await.context("the self-host import failed (nothing was changed)")?;
        }

        let resolver =
            Resolver::new(store.clone(), registry, ResolverConfig { lease_ttl: config.lease_ttl });
        let outbound = Outbound::new(config.outbound.clone())?;
        let health = HealthService::new(
            resolver.clone(),
            outbound,
            HealthConfig {
                interval: config.health_interval.max(Duration::from_secs(1)),
                probe_on_change: !config.health_interval.is_zero(),
                ..HealthConfig::default()
            },
        );
        let mut api = config.api.clone();
        api.self_host_scope = config.self_host.as_ref().map(|self_host| self_host.scope.clone());
        let state = ApiState::new(
            resolver.clone(),
            health.clone(),
            tokens,
            auditor.clone(),
            api,
            import_status,
        );

        let embedding_warning = match &config.self_host {
            Some(self_host) => {
                let status = super::scopes::embedding_status(&state, &self_host.scope)
                    .await
                    .map_err(|error| anyhow::anyhow!("{}", error.message))?;
                status.missing
            }
            None => None,
        };

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        let (shutdown, stopped) = watch::channel(false);
        let app = super::router(state.clone());
        let serving = tokio::spawn(super::connections::serve(
            listener,
            app,
            config.connections,
            state.metrics().connections.clone(),
            stopped,
        ));

        let mut tasks = Vec::new();
        if !config.health_interval.is_zero() {
            tasks.push(tokio::spawn(health.clone().run()));
        }
        tasks.push(tokio::spawn(maintenance(
            resolver,
            store.clone(),
            auditor,
            config.maintenance_interval,
        )));
        if let Some(import) = self_host_import {
            // The SIGHUP handler is in place before the start returns (the
            // default action of SIGHUP ends the process).
            #[cfg(unix)]
            let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|error| tracing::warn!(%error, "cannot handle SIGHUP; the .env file is still watched"))
                .ok();
            #[cfg(not(unix))]
            let hangup = None;
            let reprobe = (!config.health_interval.is_zero()).then(|| health.clone());
            tasks.push(tokio::spawn(watch_self_host(
                import,
                reprobe,
                config.env_file_poll,
                hangup,
                shutdown.subscribe(),
            )));
        }

        let report =
            StartReport { plugins, refused_plugins, key_source, operator_token, embedding_warning };
        Ok(Server { address, state, store, report, shutdown, serving, tasks })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The API state (resolver, health, tokens, metrics).
    pub fn state(&self) -> &ApiState {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    /// What the start found and did.
    pub fn report(&self) -> &StartReport {
        &self.report
    }

    /// Logs what an operator needs to know after a start.
    pub fn log_start(&self, data_dir: &Path) {
        let report = &self.report;
        tracing::info!("plugins loaded: {}", report.plugins.join(", "));
        if report.refused_plugins > 0 {
            tracing::warn!(
                "{} plugin(s) refused (see above; also GET /v1/plugins and the providers page); the others are served",
                report.refused_plugins
            );
        }
        match &report.key_source {
            KeySource::Environment => {
                tracing::info!("master key: ENCRYPTION_KEY from the environment")
            }
            KeySource::File(path) => tracing::warn!(
                "master key: read from {} (generated on the first start); production sets ENCRYPTION_KEY itself",
                path.display()
            ),
            KeySource::Generated(path) => tracing::warn!(
                "\n*** ENCRYPTION_KEY is not set: generated a master key in {} (mode 0600).\n*** Every stored value is encrypted with it: keep it with the data directory, back it up, and never commit it.\n*** Production sets its own ENCRYPTION_KEY (exactly 32 ASCII bytes, e.g. `openssl rand -hex 16`).",
                path.display()
            ),
        }
        match &report.operator_token {
            OperatorToken::Created(path) => tracing::warn!(
                "created the first operator token in {} (mode 0600); use it as `Authorization: Bearer $(cat {})` or paste it into the page",
                path.display(),
                path.display()
            ),
            OperatorToken::InFile(path) => {
                tracing::info!("the operator token is in {}", path.display())
            }
            OperatorToken::Exists(location) => tracing::info!(
                "an operator token exists in {location}, but not in {}: with several hosts on one store it is in the operator.token of the host that started first; else its file was removed. Make another with POST /v1/tokens or `platos-host token create --operator`",
                data_dir.join(bootstrap::OPERATOR_TOKEN_FILE).display()
            ),
        }
        if let Some(warning) = &report.embedding_warning {
            tracing::warn!(
                "\n*** EMBEDDING KEY MISSING in the self-host scope: {warning}\n*** Multi-turn agents will look stateless until it is set."
            );
        }
        tracing::info!("listening on http://{}", self.address);
    }

    /// Stops accepting, lets requests in flight finish (at most `grace`),
    /// stops the background tasks, writes batched usage and flushes the store.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(grace, self.serving).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "the server stopped with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "the server task failed"),
            Err(_) => tracing::warn!("requests still in flight after {grace:?}; stopping anyway"),
        }
        for task in &self.tasks {
            task.abort();
        }
        let flushed = self.state.resolver().flush_usage().await?;
        self.store.flush().await?;
        self.state.audit().flush().await?;
        tracing::info!(keys = flushed, "usage written and the store flushed");
        Ok(())
    }
}

/// What a self-host import needs, shared by the start and every reload.
#[derive(Clone)]
struct SelfHostImport {
    store: Arc<dyn SecretStore>,
    config: SelfHostConfig,
    accept: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// The loaded providers' variable names, for misspelling hints.
    known: Arc<Vec<String>>,
    status: ImportStatusCell,
    /// Where the import's changes are recorded.
    audit: Auditor,
}

impl SelfHostImport {
    /// Imports the self-host variables, logs what changed and what looks
    /// wrong, and records the outcome for the page; a refused import changes
    /// nothing and is recorded too.
    async fn run(&self) -> anyhow::Result<()> {
        let scope = self.config.scope.clone();
        let before: BTreeSet<String> = match self.store.list_vars(&scope).await {
            Ok(vars) => vars.into_iter().map(|var| var.name).collect(),
            Err(_) => BTreeSet::new(),
        };
        let result = crate::selfhost::reload(self.store.as_ref(), &self.config, &*self.accept)
            .await
            .map_err(anyhow::Error::from);
        if let Ok(reload) = &result {
            self.record(&scope, &before, &reload.report).await;
        }
        let mut status = self.status.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reload = match result {
            Ok(reload) => reload,
            Err(error) => {
                let previous = status.take().unwrap_or_default();
                *status = Some(previous.refused(&scope, format!("{error:#}"), now_millis()));
                return Err(error);
            }
        };
        let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
        let imported = ImportStatus::succeeded(&scope, &reload, &known, now_millis());
        let report = &reload.report;
        tracing::info!(
            scope = %scope,
            set = %report.set.join(","),
            removed = %report.removed.join(","),
            unchanged = report.unchanged.len(),
            from_process_env = %reload.from_process.join(","),
            skipped_lines = reload.skipped.len(),
            "self-host variables imported"
        );
        for name in &reload.shadowed {
            tracing::warn!(scope = %scope, name = %name, "a process environment variable replaces the .env value of the same name");
        }
        for hint in &imported.near_misses {
            tracing::warn!(scope = %scope, found = %hint.found, did_you_mean = %hint.did_you_mean, "a self-host variable looks misspelt");
        }
        *status = Some(imported);
        Ok(())
    }

    /// Records what an import changed (after it: the file or the process
    /// environment is the changes' source, and they are made already). A
    /// record that cannot be written is logged.
    async fn record(&self, scope: &Scope, before: &BTreeSet<String>, report: &ImportReport) {
        let actor = AuditActor::of_kind(ActorKind::SelfHost);
        let set = report.set.iter().map(|name| {
            let action =
                if before.contains(name) { AuditAction::VarRotate } else { AuditAction::VarSet };
            (action, name)
        });
        let removed = report.removed.iter().map(|name| (AuditAction::VarUnset, name));
        for (action, name) in set.chain(removed) {
            let draft = AuditDraft::new(action, actor.clone()).scope(scope).variable(name);
            if let Err(error) = self.audit.allow(&draft).await {
                tracing::error!(%error, scope = %scope, name = %name, "the audit record of a self-host import change could not be written");
            }
        }
    }
}

/// Records the operator token the first start made (after it: of hosts
/// starting together on one store, the store decides which one makes it).
async fn record_first_operator(auditor: &Auditor, tokens: &TokenStore) -> anyhow::Result<()> {
    let list = tokens.list().await?;
    if let Some(info) = list.iter().find(|token| token.kind == TokenKind::Operator) {
        let draft = AuditDraft::new(AuditAction::TokenCreate, AuditActor::of_kind(ActorKind::Host));
        let draft = super::audit::token_draft(draft, info);
        auditor.allow(&draft).await.context("cannot write the audit trail")?;
    }
    Ok(())
}

/// Records every plugin loaded (`plugin.load`, with its hash) and refused
/// (`plugin.refuse`, with its code) at start; fails the start if a record
/// cannot be written and `--audit-on-error` is `refuse`.
async fn record_plugins(auditor: &Auditor, registry: &PluginRegistry) -> anyhow::Result<()> {
    let actor = AuditActor::of_kind(ActorKind::Host);
    for plugin in registry.iter() {
        let draft = AuditDraft::new(AuditAction::PluginLoad, actor.clone())
            .subject(plugin.id())
            .provider(plugin.slug())
            .detail("origin", plugin.origin())
            .detail("sha256", plugin.sha256());
        auditor.allow(&draft).await.context("cannot write the audit trail")?;
    }
    for refused in registry.refused() {
        let draft =
            AuditDraft::new(AuditAction::PluginRefuse, actor.clone()).subject(&refused.origin);
        auditor.write(draft.refused(refused.code)).await.context("cannot write the audit trail")?;
    }
    Ok(())
}

/// Every `interval`: batched last-used times to the store; replaced versions
/// past their grace period, releases of ended leases, expired budget
/// reservations and audit records past their retention purged.
async fn maintenance(
    resolver: Resolver,
    store: Arc<dyn SecretStore>,
    auditor: Auditor,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let result = async {
            let used = resolver.flush_usage().await?;
            let purged = store.purge_expired().await? + auditor.purge_expired(now_millis()).await?;
            Ok::<_, crate::store::StoreError>((used, purged))
        }
        .await;
        match result {
            Ok((used, purged)) if used + purged > 0 => {
                tracing::debug!(used, purged, "maintenance")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "maintenance failed"),
        }
    }
}

/// The `.env` file's modification time and length, if it exists.
fn file_stamp(path: Option<&Path>) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path?).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The SIGHUP stream.
#[cfg(unix)]
type HangupSignal = tokio::signal::unix::Signal;
/// No SIGHUP off Unix.
#[cfg(not(unix))]
type HangupSignal = std::convert::Infallible;

/// Re-imports the self-host variables on SIGHUP and when the `.env` file
/// changes (its modification time or length, checked every `poll`).
async fn watch_self_host(
    import: SelfHostImport,
    reprobe: Option<HealthService>,
    poll: Duration,
    mut hangup: Option<HangupSignal>,
    mut stopped: watch::Receiver<bool>,
) {
    let env_file = import.config.env_file.clone();
    let mut stamp = file_stamp(env_file.as_deref());
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = {
            let _ = &mut hangup;
            std::future::pending::<()>()
        };
        let reason = tokio::select! {
            _ = hup => "SIGHUP",
            _ = tokio::time::sleep(poll.max(Duration::from_millis(50))) => {
                let now = file_stamp(env_file.as_deref());
                if now == stamp {
                    continue;
                }
                "the .env file changed"
            }
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        stamp = file_stamp(env_file.as_deref());
        tracing::info!("reloading the self-host variables: {reason}");
        match import.run().await {
            Ok(()) => {
                if let Some(health) = &reprobe {
                    health.start_round(RoundTarget::All, RoundTrigger::Reload);
                }
            }
            Err(error) => {
                tracing::error!(
                    "the self-host reload failed; the previous variables stay: {error:#}"
                )
            }
        }
    }
}

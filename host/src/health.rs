//! Health probes through the plugins.
//!
//! One probe: the plugin builds the request (`health-probe`), the plugin
//! authorizes it, the host sends it through [`Outbound`] (allowed hosts,
//! checked addresses, timeout, no redirects, body cap), and the plugin reads
//! the answer (`interpret-health`). For a token-exchange provider the probe
//! starts with the exchange ([`crate::exchange`]), whose failure is the
//! verdict (a refused secret is an invalid credential, an unreachable token
//! endpoint unreachable). A round probes many keys with bounded
//! concurrency, and a credential shared by several keys or scopes is probed
//! once per round. [`HealthService`] runs rounds at start, on its schedule,
//! when an operator asks and after a change to a provider's variables, and
//! keeps their progress in a [`rounds::RoundBook`].

pub mod rounds;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use self::rounds::{Begun, RoundBook, RoundTarget, RoundTrigger, RoundView};
use crate::exchange::{self, ExchangeError};
use crate::outbound::Outbound;
use crate::policy::variants::variant_of;
use crate::policy::verdicts::class_name;
use crate::provider::{Credentials, ProviderErrorCode, Verdict};
use crate::runtime::{CallError, CallErrorKind, Plugin};
pub use crate::scope::KeyLocation;
use crate::scope::Scope;
use crate::store::{HealthRecord, now_millis};

/// What one probe found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeOutcome {
    /// The verdict.
    pub verdict: Verdict,
    /// From building the probe to reading the verdict.
    pub latency: Duration,
    /// When the probe finished, Unix seconds.
    pub at: u64,
}

/// Probes one key. Every text in the outcome has passed the runtime's
/// redaction against `credentials` (the plugin's errors, the refusals that
/// quote its requests, and the verdict, which may quote an upstream that
/// echoed the key).
pub async fn probe(
    plugin: &Plugin,
    credentials: &Credentials,
    outbound: &Outbound,
) -> ProbeOutcome {
    let started = Instant::now();
    let verdict = match probe_verdict(plugin, credentials, outbound).await {
        Ok(verdict) => verdict,
        Err(error) => verdict_for_call_error(&error),
    };
    ProbeOutcome { verdict, latency: started.elapsed(), at: unix_now() }
}

/// A probe of a token-exchange provider starts with a fresh exchange (never
/// a cached token: the probe proves the secret still trades), and a failed
/// exchange is the probe's verdict.
async fn probe_verdict(
    plugin: &Plugin,
    credentials: &Credentials,
    outbound: &Outbound,
) -> Result<Verdict, CallError> {
    let now = unix_now();
    let exchanged;
    let credentials = if plugin.manifest().token_exchange {
        match exchange::exchange(plugin, credentials, outbound, now).await {
            Ok(token) => {
                exchanged = exchange::with_token(credentials, &token);
                &exchanged
            }
            Err(ExchangeError::NoToken { verdict, .. }) => return Ok(verdict),
            Err(ExchangeError::Call(error)) => return Err(error),
        }
    } else {
        credentials
    };
    let request = plugin.health_probe(credentials).await?;
    let request = plugin.authorize(credentials, &request, now).await?;
    let response = outbound.send(&request, &plugin.allowed_hosts(credentials)).await;
    plugin.interpret_health(credentials, &response).await
}

/// The verdict for a probe that failed before the provider answered.
fn verdict_for_call_error(error: &CallError) -> Verdict {
    let message = error.to_string();
    match &error.kind {
        CallErrorKind::Provider(failure)
            if matches!(
                failure.code,
                ProviderErrorCode::MissingCredential | ProviderErrorCode::InvalidCredential
            ) =>
        {
            Verdict::InvalidCredential { message }
        }
        CallErrorKind::Refused(_) => Verdict::Unreachable { message },
        _ => Verdict::Degraded { message },
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// One key to probe in a round. `K` identifies the key to the caller.
pub struct ProbeTarget<K> {
    /// The caller's key identity.
    pub key: K,
    /// The provider's plugin.
    pub plugin: Plugin,
    /// The key's env bag.
    pub credentials: Credentials,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoundStats {
    /// Keys in the round.
    pub keys: usize,
    /// Probes sent (after deduplication).
    pub probes: usize,
}

/// The dedupe key of a target: its provider and a hash of its env bag
/// (names and values, sorted). The hash never leaves this process.
fn credential_fingerprint(slug: &str, credentials: &Credentials) -> [u8; 32] {
    let mut pairs: Vec<(&str, &str)> = credentials.expose().collect();
    pairs.sort();
    let mut hasher = Sha256::new();
    hasher.update(slug.as_bytes());
    for (name, value) in pairs {
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
    }
    hasher.finalize().into()
}

/// Probes every target, each distinct (provider, credential) once, at most
/// `concurrency` at a time; returns every key with its outcome.
pub async fn run_round<K: Send + 'static>(
    targets: Vec<ProbeTarget<K>>,
    outbound: &Outbound,
    concurrency: usize,
) -> (Vec<(K, ProbeOutcome)>, RoundStats) {
    let mut results = Vec::with_capacity(targets.len());
    let stats = probe_each(targets, outbound, concurrency, |key, outcome| {
        results.push((key, outcome));
        std::future::ready(())
    })
    .await;
    (results, stats)
}

/// [`run_round`], handing each key its outcome as soon as its probe ends.
/// `on_outcome` runs once for each key, one at a time (a key sharing its
/// credential with others gets a copy of their common outcome).
pub async fn probe_each<K: Send + 'static, Done: Future<Output = ()>>(
    targets: Vec<ProbeTarget<K>>,
    outbound: &Outbound,
    concurrency: usize,
    mut on_outcome: impl FnMut(K, ProbeOutcome) -> Done,
) -> RoundStats {
    let keys = targets.len();
    let mut groups: HashMap<[u8; 32], (Plugin, Credentials, Vec<K>)> = HashMap::new();
    for target in targets {
        let fingerprint = credential_fingerprint(target.plugin.slug(), &target.credentials);
        groups
            .entry(fingerprint)
            .or_insert_with(|| (target.plugin, target.credentials, Vec::new()))
            .2
            .push(target.key);
    }
    let probes = groups.len();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (plugin, credentials, keys) in groups.into_values() {
        let permits = permits.clone();
        let outbound = outbound.clone();
        tasks.spawn(async move {
            let _permit =
                permits.acquire_owned().await.expect("the round's semaphore is never closed");
            let outcome = probe(&plugin, &credentials, &outbound).await;
            (keys, outcome)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((keys, outcome)) => {
                for key in keys {
                    on_outcome(key, outcome.clone()).await;
                }
            }
            Err(error) => tracing::error!(%error, "a health probe task failed"),
        }
    }
    RoundStats { keys, probes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_order_and_separate_providers_and_values() {
        let a = Credentials::new().with("A", "1").with("B", "2");
        let b = Credentials::new().with("B", "2").with("A", "1");
        let c = Credentials::new().with("A", "1").with("B", "3");
        assert_eq!(credential_fingerprint("openai", &a), credential_fingerprint("openai", &b));
        assert_ne!(credential_fingerprint("openai", &a), credential_fingerprint("openai", &c));
        assert_ne!(credential_fingerprint("openai", &a), credential_fingerprint("voyage", &a));
    }
}

/// How the background health service runs.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// Each round starts up to this fraction of the interval early or late,
    /// so many hosts do not probe in step.
    pub jitter: f64,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// Probe a provider's keys in a scope as soon as one of its variables is
    /// set or unset (link, rotation, a new base URL).
    pub probe_on_change: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(300),
            jitter: 0.1,
            concurrency: 32,
            probe_on_change: true,
        }
    }
}

/// Probes keys through the resolver's plugins and records verdicts on the
/// keys' rows. A cheap handle.
#[derive(Clone)]
pub struct HealthService {
    resolver: crate::resolution::Resolver,
    outbound: Outbound,
    config: HealthConfig,
    counters: Arc<VerdictCounters>,
    rounds: Arc<Mutex<RoundBook>>,
}

/// Probe verdicts by class, for metrics.
#[derive(Debug, Default)]
pub struct VerdictCounters {
    /// healthy, invalid-credential, quota-limited, unreachable, degraded.
    pub by_class: [std::sync::atomic::AtomicU64; 5],
}

impl VerdictCounters {
    fn count(&self, verdict: &Verdict) {
        let index = match verdict {
            Verdict::Healthy { .. } => 0,
            Verdict::InvalidCredential { .. } => 1,
            Verdict::QuotaLimited { .. } => 2,
            Verdict::Unreachable { .. } => 3,
            Verdict::Degraded { .. } => 4,
        };
        self.by_class[index].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `(class, count)` pairs.
    pub fn snapshot(&self) -> [(&'static str, u64); 5] {
        let names = ["healthy", "invalid-credential", "quota-limited", "unreachable", "degraded"];
        std::array::from_fn(|index| {
            (names[index], self.by_class[index].load(std::sync::atomic::Ordering::Relaxed))
        })
    }
}

impl HealthService {
    /// A service probing through `resolver`'s plugins and store.
    pub fn new(
        resolver: crate::resolution::Resolver,
        outbound: Outbound,
        config: HealthConfig,
    ) -> Self {
        HealthService {
            resolver,
            outbound,
            config,
            counters: Arc::default(),
            rounds: Arc::default(),
        }
    }

    fn book(&self) -> MutexGuard<'_, RoundBook> {
        self.rounds.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The round `id`, if still kept.
    pub fn round(&self, id: u64) -> Option<RoundView> {
        self.book().get(id)
    }

    /// The kept rounds, newest first.
    pub fn rounds(&self) -> Vec<RoundView> {
        self.book().list()
    }

    /// Starts a round of `target` in the background, unless one of the same
    /// target runs. Returns the round and whether it is a new one. Call it
    /// within the Tokio runtime.
    pub fn start_round(&self, target: RoundTarget, trigger: RoundTrigger) -> (RoundView, bool) {
        let begun = self.book().begin(target.clone(), trigger, now_millis());
        let (id, started) = match begun {
            Begun::Started(id) => (id, true),
            Begun::AlreadyRunning(id) => (id, false),
        };
        let view = self.round(id).expect("a running round is always kept");
        if started {
            let service = self.clone();
            tokio::spawn(async move { service.execute(id, target, trigger).await });
        }
        (view, started)
    }

    /// Probes, in the background, the keys of every provider that reads
    /// `name` (or a numbered variant of its variables) in `scope`, when
    /// probes on change are on.
    pub fn variable_changed(&self, scope: &Scope, name: &str) {
        if !self.config.probe_on_change {
            return;
        }
        for plugin in self.resolver.registry().iter() {
            let reads =
                plugin.manifest().env_vars.iter().any(|var| variant_of(name, &var.name).is_some());
            if reads {
                let target = RoundTarget::Provider {
                    scope: scope.clone(),
                    provider: plugin.slug().to_owned(),
                };
                self.start_round(target, RoundTrigger::Change);
            }
        }
    }

    /// Runs round `id` to its end, records it in the book and starts the
    /// rounds changes asked for meanwhile.
    async fn execute(&self, id: u64, target: RoundTarget, trigger: RoundTrigger) {
        let started = Instant::now();
        let result = self.probe_target(id, &target).await;
        match &result {
            Ok(stats) => tracing::info!(
                round = id,
                trigger = ?trigger,
                keys = stats.keys,
                probes = stats.probes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "health round done"
            ),
            Err(error) => tracing::warn!(round = id, %error, "health round failed"),
        }
        let error = result.err().map(|error| error.to_string());
        let due = self.book().finish(id, now_millis(), error);
        for (target, trigger) in due {
            self.start_round(target, trigger);
        }
    }

    /// The sender probes (and token exchanges) go through.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The verdict counters.
    pub fn counters(&self) -> &VerdictCounters {
        &self.counters
    }

    /// Probes one key now ("test key") and records the verdict.
    pub async fn probe_key(
        &self,
        location: &KeyLocation,
    ) -> Result<ProbeOutcome, crate::resolution::ResolveError> {
        let (plugin, credentials) = self.resolver.key_credentials(location).await?;
        let outcome = probe(&plugin, &credentials, &self.outbound).await;
        self.record(location, &outcome).await;
        Ok(outcome)
    }

    /// One round over every linked key of every scope, now, whatever else
    /// runs; kept in the book like every round.
    pub async fn run_round(&self) -> Result<RoundStats, crate::store::StoreError> {
        let id = self.book().open(RoundTarget::All, RoundTrigger::Operator, now_millis());
        let result = self.probe_target(id, &RoundTarget::All).await;
        let error = result.as_ref().err().map(ToString::to_string);
        self.book().finish(id, now_millis(), error);
        result
    }

    /// Probes the keys `target` covers, counting each verdict in round `id`.
    async fn probe_target(
        &self,
        id: u64,
        target: &RoundTarget,
    ) -> Result<RoundStats, crate::store::StoreError> {
        let locations: Vec<KeyLocation> = self
            .resolver
            .linked_keys()
            .await?
            .into_iter()
            .filter(|location| target.covers(location))
            .collect();
        self.book().planned(id, locations.len());
        let mut targets = Vec::new();
        for location in locations {
            match self.resolver.key_credentials(&location).await {
                Ok((plugin, credentials)) => {
                    targets.push(ProbeTarget { key: location, plugin, credentials })
                }
                Err(error) => {
                    // A key that cannot be assembled (a missing companion
                    // variable) is a broken key: say so on its row.
                    let outcome = ProbeOutcome {
                        verdict: Verdict::InvalidCredential { message: error.to_string() },
                        latency: Duration::ZERO,
                        at: unix_now(),
                    };
                    self.record(&location, &outcome).await;
                    self.book().probed(id, class_name(&outcome.verdict));
                }
            }
        }
        let stats =
            probe_each(targets, &self.outbound, self.config.concurrency, |location, outcome| {
                let service = self.clone();
                async move {
                    service.record(&location, &outcome).await;
                    service.book().probed(id, class_name(&outcome.verdict));
                }
            })
            .await;
        Ok(stats)
    }

    async fn record(&self, location: &KeyLocation, outcome: &ProbeOutcome) {
        self.counters.count(&outcome.verdict);
        let record = HealthRecord {
            latency_ms: outcome.latency.as_millis() as u64,
            ..HealthRecord::from_verdict(&outcome.verdict, outcome.at.saturating_mul(1000))
        };
        let update = crate::store::KeyUpdate::Health(record);
        let store = self.resolver.store();
        if let Err(error) = store
            .update_provider_key(&location.scope, &location.provider, &location.key_id, update)
            .await
        {
            tracing::warn!(%error, scope = %location.scope, provider = %location.provider, key = %location.key_id, "cannot record a health verdict");
        }
    }

    /// Runs a round at once, then one every interval with jitter, forever.
    /// Spawn it.
    pub async fn run(self) {
        let mut trigger = RoundTrigger::Start;
        loop {
            self.start_round(RoundTarget::All, trigger);
            trigger = RoundTrigger::Schedule;
            let jitter = self.config.jitter.clamp(0.0, 0.5);
            let factor = 1.0 + jitter * (2.0 * random_unit() - 1.0);
            tokio::time::sleep(self.config.interval.mul_f64(factor)).await;
        }
    }
}

/// A uniform random number in [0, 1).
fn random_unit() -> f64 {
    let bytes = crate::crypto::random_bytes::<8>();
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

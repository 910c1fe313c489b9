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
//!
//! Hosts sharing a store share the scheduled rounds: the schedule is cut
//! into slots of one interval ([`ProbeSlot`]), and a round at start or on
//! the schedule claims each distinct credential for its slot before probing
//! it ([`crate::store::probe_claims`]). One host probes it; the others skip
//! it (its verdict is on the shared key rows), or wait while it is held and
//! take it over if its claimant died. A person's request (an operator's
//! round, "test key") and a change probe at once, claims or not.

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
use crate::store::{HealthRecord, ProbeClaim, ProbeSlot, ProbeTag, SecretStore, now_millis};

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
    /// Distinct credentials another host sharing the store probed in this
    /// slot, so this round did not ([`SharedSlot`]).
    pub shared: usize,
    /// Distinct credentials another host still held when the slot ended:
    /// neither probed here nor known done (the next slot probes them).
    pub unsettled: usize,
}

/// What a round did for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyResult {
    /// This host probed the key's credential.
    Probed(ProbeOutcome),
    /// Another host sharing the store probed it in this slot: the key's row
    /// holds that verdict.
    Shared,
}

/// How a round shares its probes with the other hosts of its store: each
/// distinct credential is claimed for `slot` before it is probed, and
/// skipped if another host probed it in that slot.
#[derive(Clone)]
pub struct SharedSlot {
    /// The store keeping the claims; its keyring tags the credentials.
    pub store: Arc<dyn SecretStore>,
    /// The slot of the schedule the round belongs to.
    pub slot: ProbeSlot,
    /// How long a claim holds: longer than a probe (an exchange and a
    /// request, each within the outbound timeout) can take.
    pub hold: Duration,
}

/// The first wait before claiming again a credential another host holds;
/// it doubles up to [`HELD_RECHECK_MAX`], never past the claim's end.
const HELD_RECHECK_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two claims of a held credential.
const HELD_RECHECK_MAX: Duration = Duration::from_secs(2);
/// What a claim holds beyond the longest probe: the plugin's own calls and
/// recording the verdict.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// The claim hold for probes sent through `outbound`: a token exchange and
/// the probe, each within its timeout, and [`CLAIM_MARGIN`].
fn claim_hold(outbound: &Outbound) -> Duration {
    outbound.config().timeout.saturating_mul(2) + CLAIM_MARGIN
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
    let results = Arc::new(Mutex::new(Vec::with_capacity(targets.len())));
    let collected = results.clone();
    let stats = probe_each(targets, outbound, concurrency, None, move |key, result| {
        if let KeyResult::Probed(outcome) = result {
            collected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((key, outcome));
        }
        std::future::ready(())
    })
    .await;
    let results =
        std::mem::take(&mut *results.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    (results, stats)
}

/// What became of one distinct credential of a round.
enum GroupEnd {
    /// Probed here.
    Probed,
    /// Another host probed it in the slot.
    Shared,
    /// Another host still held it when the slot ended.
    Unsettled,
}

/// [`run_round`], handing each key its result as soon as its probe ends.
/// `on_result` runs once for each key (a key sharing its credential with
/// others gets a copy of their common outcome), within the credential's
/// share of the concurrency: the keys of many credentials are handed over
/// at once, so a slow recorder slows the round but never holds a claim
/// past its end. With `shared`, each credential is claimed for the slot
/// first ([`SharedSlot`]), and marked done once `on_result` has run for all
/// its keys: one another host probed is [`KeyResult::Shared`], one another
/// host holds is claimed again once this host's other probes are under way
/// (and taken over if its claim expires), until the slot ends.
pub async fn probe_each<K, Done>(
    targets: Vec<ProbeTarget<K>>,
    outbound: &Outbound,
    concurrency: usize,
    shared: Option<SharedSlot>,
    on_result: impl Fn(K, KeyResult) -> Done + Clone + Send + Sync + 'static,
) -> RoundStats
where
    K: Send + 'static,
    Done: Future<Output = ()> + Send + 'static,
{
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
    let mut groups: Vec<_> = groups.into_iter().collect();
    if shared.is_some() {
        // Each host takes the credentials in a random order of its own, so
        // hosts rounding at once mostly claim apart instead of meeting on
        // the same claims.
        let seed = crate::crypto::random_bytes::<16>();
        groups.sort_by_cached_key(|(fingerprint, _)| {
            <[u8; 32]>::from(Sha256::new().chain_update(seed).chain_update(fingerprint).finalize())
        });
    }
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (fingerprint, (plugin, credentials, keys)) in groups {
        let permits = permits.clone();
        let outbound = outbound.clone();
        let shared = shared.clone();
        let on_result = on_result.clone();
        tasks.spawn(async move {
            let (permit, tag) = match &shared {
                None => (
                    permits.acquire_owned().await.expect("the round's semaphore is never closed"),
                    None,
                ),
                Some(shared) => {
                    // Keyed: the store never sees the fingerprint itself.
                    let tag = shared.store.keyring().probe_tag(&fingerprint);
                    match claim(shared, &tag, &permits).await {
                        Claim::Probe(permit) => (permit, Some(tag)),
                        // The store failed: probe anyway (twice beats never).
                        Claim::Unclaimed(permit) => (permit, None),
                        Claim::Done => {
                            for key in keys {
                                on_result(key, KeyResult::Shared).await;
                            }
                            return GroupEnd::Shared;
                        }
                        Claim::SlotOver => return GroupEnd::Unsettled,
                    }
                }
            };
            let outcome = probe(&plugin, &credentials, &outbound).await;
            for key in keys {
                on_result(key, KeyResult::Probed(outcome.clone())).await;
            }
            // Done once every row sharing it holds the verdict.
            if let (Some(tag), Some(shared)) = (tag, &shared)
                && let Err(error) = shared.store.probe_done(&tag, shared.slot).await
            {
                tracing::warn!(%error, "cannot mark a health probe done; another host may probe it again");
            }
            drop(permit);
            GroupEnd::Probed
        });
    }
    let mut stats = RoundStats { keys, ..RoundStats::default() };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(GroupEnd::Probed) => stats.probes += 1,
            Ok(GroupEnd::Shared) => stats.shared += 1,
            Ok(GroupEnd::Unsettled) => stats.unsettled += 1,
            Err(error) => tracing::error!(%error, "a health probe task failed"),
        }
    }
    if stats.unsettled > 0 {
        tracing::warn!(
            credentials = stats.unsettled,
            "credentials still claimed by another host when the slot ended: the next slot probes them"
        );
    }
    stats
}

/// What claiming a credential came to.
enum Claim {
    /// This host claimed it: probe it under the permit.
    Probe(tokio::sync::OwnedSemaphorePermit),
    /// The store could not answer: probe it without a claim.
    Unclaimed(tokio::sync::OwnedSemaphorePermit),
    /// Another host probed it in the slot.
    Done,
    /// Another host held it until the slot ended.
    SlotOver,
}

/// Claims `tag` for the slot, under a permit of `permits` (a claim is a
/// round trip to the store, counted in the round's concurrency). While
/// another host holds it, waits without a permit (100 ms, doubling up to
/// 2 s, never past its claim's end) and claims again, so this host's other
/// credentials go first; gives up when the slot ends.
async fn claim(shared: &SharedSlot, tag: &ProbeTag, permits: &Arc<Semaphore>) -> Claim {
    let mut wait = HELD_RECHECK_FIRST;
    loop {
        let permit =
            permits.clone().acquire_owned().await.expect("the round's semaphore is never closed");
        let now = now_millis();
        let until = now.saturating_add(shared.hold.as_millis() as u64);
        let held_until = match shared.store.claim_probe(tag, shared.slot, now, until).await {
            Ok(ProbeClaim::Claimed) => return Claim::Probe(permit),
            Ok(ProbeClaim::Done) => return Claim::Done,
            Ok(ProbeClaim::Held { until }) => until,
            Err(error) => {
                tracing::warn!(%error, "cannot claim a health probe; probing without a claim");
                return Claim::Unclaimed(permit);
            }
        };
        drop(permit);
        let now = now_millis();
        if now >= shared.slot.ends_at {
            return Claim::SlotOver;
        }
        let left = Duration::from_millis(held_until.min(shared.slot.ends_at).saturating_sub(now));
        tokio::time::sleep(wait.min(left)).await;
        wait = (wait * 2).min(HELD_RECHECK_MAX);
    }
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
    /// Time between rounds: the length of a slot of the schedule
    /// ([`ProbeSlot`]), which hosts sharing a store should agree on.
    pub interval: Duration,
    /// Each scheduled round starts up to this fraction of the interval after
    /// its slot starts, so many hosts do not probe at one instant.
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
        // Only the full scheduled rounds are shared with the other hosts of
        // the store: a person's request or a change probes at once.
        let scheduled = matches!(trigger, RoundTrigger::Start | RoundTrigger::Schedule);
        // The slot the round began in, as its book entry says.
        let began = self.round(id).map_or_else(now_millis, |round| round.started_at);
        let shared = (scheduled && target == RoundTarget::All).then(|| SharedSlot {
            store: self.resolver.store().clone(),
            slot: ProbeSlot::of(began, self.config.interval),
            hold: claim_hold(&self.outbound),
        });
        let result = self.probe_target(id, &target, shared).await;
        match &result {
            Ok(stats) => tracing::info!(
                round = id,
                trigger = ?trigger,
                keys = stats.keys,
                probes = stats.probes,
                shared = stats.shared,
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
        let result = self.probe_target(id, &RoundTarget::All, None).await;
        let error = result.as_ref().err().map(ToString::to_string);
        self.book().finish(id, now_millis(), error);
        result
    }

    /// Probes the keys `target` covers, counting each verdict in round `id`;
    /// with `shared`, only the credentials no other host probes in its slot.
    async fn probe_target(
        &self,
        id: u64,
        target: &RoundTarget,
        shared: Option<SharedSlot>,
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
        let concurrency = self.config.concurrency;
        let service = self.clone();
        let stats =
            probe_each(targets, &self.outbound, concurrency, shared, move |location, result| {
                let service = service.clone();
                async move {
                    match result {
                        KeyResult::Probed(outcome) => {
                            service.record(&location, &outcome).await;
                            service.book().probed(id, class_name(&outcome.verdict));
                        }
                        KeyResult::Shared => service.book().shared(id),
                    }
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

    /// Runs a round at once, then one in every slot of the schedule
    /// ([`ProbeSlot`]: one interval, the same on every host), a random part
    /// of the jitter after the slot starts, forever. Spawn it.
    pub async fn run(self) {
        let mut trigger = RoundTrigger::Start;
        loop {
            self.start_round(RoundTarget::All, trigger);
            trigger = RoundTrigger::Schedule;
            let next = ProbeSlot::of(now_millis(), self.config.interval).ends_at;
            let jitter = self.config.interval.mul_f64(self.config.jitter.clamp(0.0, 0.5));
            let start_at = next.saturating_add(jitter.mul_f64(random_unit()).as_millis() as u64);
            // By the wall clock the slots are cut with: a timer that fires
            // early (its clock is another) would start the round in the slot
            // already probed, and it would skip every key.
            loop {
                let now = now_millis();
                if now >= start_at {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(start_at - now)).await;
            }
        }
    }
}

/// A uniform random number in [0, 1).
fn random_unit() -> f64 {
    let bytes = crate::crypto::random_bytes::<8>();
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

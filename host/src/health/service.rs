//! [`HealthService`]: the rounds a host runs (at start, on the schedule,
//! on request, after a change), their book, and the verdicts' records.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::probe::{
    KeyResult, ProbeOutcome, ProbeTarget, RoundStats, SharedSlot, claim_hold, probe, probe_each,
    unix_now,
};
use super::rounds::{Begun, RoundBook, RoundTarget, RoundTrigger, RoundView};
use crate::outbound::Outbound;
use crate::policy::variants::variant_of;
use crate::policy::verdicts::class_name;
use crate::provider::Verdict;
use crate::scope::{KeyLocation, Scope};
use crate::store::{HealthRecord, ProbeSlot, now_millis};

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

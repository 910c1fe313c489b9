//! One probe ([`probe`]) and one round's probes ([`probe_each`]): each
//! distinct credential once, with bounded concurrency, claimed for its slot
//! first when hosts share the store ([`SharedSlot`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::exchange::{self, ExchangeError};
use crate::outbound::Outbound;
use crate::provider::{Credentials, ProviderErrorCode, Verdict};
use crate::runtime::{CallError, CallErrorKind, Plugin};
use crate::store::{ProbeClaim, ProbeSlot, ProbeTag, SecretStore, now_millis};

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
pub(super) fn claim_hold(outbound: &Outbound) -> Duration {
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

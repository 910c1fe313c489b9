//! Health-probe claims: which host probes a credential in a slot of the
//! health schedule, so that hosts sharing a store probe each distinct
//! credential once per interval between them, not once each.
//!
//! A credential is named by its [`ProbeTag`] ([`crate::crypto::Keyring::probe_tag`],
//! keyed, never a plain hash of the secret); the schedule is cut into
//! [`ProbeSlot`]s of one interval. A host about to probe claims the
//! credential for the slot until a deadline ([`SecretStore::claim_probe`]);
//! it probes only if it got the claim, and marks the credential done when
//! the verdict is on the key rows ([`SecretStore::probe_done`]). A claim
//! whose deadline passed before it was done (its host died mid-probe) can be
//! taken by another host: that is how a dead node's share still gets
//! probed. Claims are ephemeral: a store keeps each until its slot ends
//! and [`SecretStore::purge_expired`] drops it then; `store copy` does not
//! copy them.
//!
//! [`ProbeClaims`] keeps them in memory for a store only one host uses (sled);
//! PostgreSQL keeps them in a table, with the same rules.
//!
//! [`SecretStore::claim_probe`]: super::SecretStore::claim_probe
//! [`SecretStore::probe_done`]: super::SecretStore::probe_done
//! [`SecretStore::purge_expired`]: super::SecretStore::purge_expired

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::UnixMillis;
use crate::crypto::PROBE_TAG_LEN;

/// A credential's name in the claims ([`crate::crypto::Keyring::probe_tag`]).
pub type ProbeTag = [u8; PROBE_TAG_LEN];

/// One interval of the health schedule: number `n` covers
/// `[n × interval, (n + 1) × interval)` in Unix milliseconds, the same on
/// every host with the same interval (and a synchronised clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeSlot {
    /// `floor(now / interval)`.
    pub number: u64,
    /// When it ends (and its claims may go), Unix milliseconds.
    pub ends_at: UnixMillis,
}

impl ProbeSlot {
    /// The slot `now` falls in, for rounds every `interval` (at least 1 ms).
    pub fn of(now: UnixMillis, interval: Duration) -> Self {
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
        let number = now / interval;
        ProbeSlot { number, ends_at: (number + 1).saturating_mul(interval) }
    }
}

/// The answer to a claim ([`super::SecretStore::claim_probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeClaim {
    /// The caller holds the claim: it probes, then marks it done.
    Claimed,
    /// Another claimant holds it until `until` (Unix ms): wait, then claim
    /// again (it is done by then, or its claimant died and it can be taken).
    Held {
        /// The other claim's deadline.
        until: UnixMillis,
    },
    /// Probed in this slot already: the key rows hold its verdict.
    Done,
}

/// One credential's claim in one slot.
#[derive(Debug, Clone, Copy)]
struct ClaimState {
    ends_at: UnixMillis,
    until: UnixMillis,
    done: bool,
}

/// Claims in memory, for a store one host uses. Lost at a restart, which
/// costs at most one extra probe per credential.
#[derive(Debug, Default)]
pub struct ProbeClaims(Mutex<HashMap<(ProbeTag, u64), ClaimState>>);

impl ProbeClaims {
    /// Claims `tag` in `slot` until `until`, unless it is done or another
    /// claim holds it past `now` ([`super::SecretStore::claim_probe`]).
    pub fn claim(
        &self,
        tag: &ProbeTag,
        slot: ProbeSlot,
        now: UnixMillis,
        until: UnixMillis,
    ) -> ProbeClaim {
        let mut claims = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = ClaimState { ends_at: slot.ends_at, until, done: false };
        match claims.entry((*tag, slot.number)) {
            Entry::Vacant(vacant) => {
                vacant.insert(fresh);
                ProbeClaim::Claimed
            }
            Entry::Occupied(occupied) => {
                let state = occupied.into_mut();
                if state.done {
                    ProbeClaim::Done
                } else if state.until > now {
                    ProbeClaim::Held { until: state.until }
                } else {
                    // Its claimant let it expire (it died): the caller takes it.
                    state.until = until;
                    ProbeClaim::Claimed
                }
            }
        }
    }

    /// Marks `tag` probed in `slot` ([`super::SecretStore::probe_done`]).
    pub fn done(&self, tag: &ProbeTag, slot: ProbeSlot) {
        let mut claims = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        claims
            .entry((*tag, slot.number))
            .and_modify(|state| state.done = true)
            .or_insert(ClaimState { ends_at: slot.ends_at, until: 0, done: true });
    }

    /// Drops the claims of every slot ended by `now`; how many.
    pub fn purge(&self, now: UnixMillis) -> usize {
        let mut claims = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let before = claims.len();
        claims.retain(|_, state| state.ends_at > now);
        before - claims.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cut_the_clock_into_intervals() {
        let minute = Duration::from_secs(60);
        assert_eq!(ProbeSlot::of(0, minute), ProbeSlot { number: 0, ends_at: 60_000 });
        assert_eq!(ProbeSlot::of(59_999, minute), ProbeSlot { number: 0, ends_at: 60_000 });
        assert_eq!(ProbeSlot::of(60_000, minute), ProbeSlot { number: 1, ends_at: 120_000 });
        assert_eq!(ProbeSlot::of(5, Duration::ZERO), ProbeSlot { number: 5, ends_at: 6 });
    }
}

//! Health probes through the plugins.
//!
//! One probe: the plugin builds the request (`health-probe`), the plugin
//! authorizes it, the host sends it through [`crate::outbound::Outbound`] (allowed hosts,
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
//! into slots of one interval ([`crate::store::ProbeSlot`]), and a round at start or on
//! the schedule claims each distinct credential for its slot before probing
//! it ([`crate::store::probe_claims`]). One host probes it; the others skip
//! it (its verdict is on the shared key rows), or wait while it is held and
//! take it over if its claimant died. A person's request (an operator's
//! round, "test key") and a change probe at once, claims or not.

mod probe;
pub mod rounds;
mod service;

pub use self::probe::{
    KeyResult, ProbeOutcome, ProbeTarget, RoundStats, SharedSlot, probe, probe_each, run_round,
    unix_now,
};
pub use self::service::{HealthConfig, HealthService, VerdictCounters};
pub use crate::scope::KeyLocation;

//! Budgets on the forwarding path: before a forward is sent, the most it
//! can cost is reserved against its key's and its scope's budgets in one
//! atomic store call ([`reserve`]); when the answer ends the reservation is
//! settled to what the forward is [`charge`]d, durably, before the agent
//! sees the end of the body ([`Reserved::settle`]).
//!
//! What a forward is charged: its usage at its price when the plugin read
//! one; its whole reservation when the answer broke off, the agent went
//! away, or a successful answer carried no usage (it may have cost that
//! much, and a cap is a promise); nothing when there was no answer or the
//! provider refused the request without reporting usage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::forward::ForwardOutcome;
use crate::policy::spend::{self, PriceBasis};
use crate::provider::{MicroUsd, ModelInfo, Usage};
use crate::resolution::leases::Lease;
use crate::store::{
    BudgetExceeded, BudgetTarget, Reservation, SecretStore, StoreError, UnixMillis, now_millis,
};

/// How forwards reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendConfig {
    /// How long a reservation holds if it is never settled (its host died
    /// mid-request); a forward still running after it no longer holds room.
    pub reservation_ttl: Duration,
    /// What a request reserves when its most possible cost cannot be
    /// computed: its body names no output cap, or its provider prices no model.
    pub default_reservation: MicroUsd,
    /// Per-provider overrides of `default_reservation`, by slug.
    pub provider_reservations: BTreeMap<String, MicroUsd>,
}

impl Default for SpendConfig {
    fn default() -> Self {
        SpendConfig {
            reservation_ttl: Duration::from_secs(30 * 60),
            default_reservation: MicroUsd(500_000),
            provider_reservations: BTreeMap::new(),
        }
    }
}

impl SpendConfig {
    /// The default reservation of `provider`.
    pub fn default_reservation_for(&self, provider: &str) -> MicroUsd {
        self.provider_reservations.get(provider).copied().unwrap_or(self.default_reservation)
    }
}

/// What a forward is charged when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Its usage at its price.
    Usage {
        /// The cost.
        cost: MicroUsd,
        /// How the price was found.
        basis: PriceBasis,
    },
    /// Its whole reservation: it may have cost that much, and how much is
    /// not known (the answer broke off, the agent went away, no usage was
    /// reported, or the provider prices no model).
    Reservation,
    /// Nothing: no answer, or a refusal without usage.
    Nothing,
}

/// The charge of a forward that ended with `outcome`; `models` are its
/// provider's, `requested_model` the model its body named.
pub fn charge(
    outcome: &ForwardOutcome,
    models: &[ModelInfo],
    requested_model: Option<&str>,
) -> Charge {
    let succeeded = |status: &u16| (200..300).contains(status);
    match outcome {
        ForwardOutcome::Completed { usage: Some(usage), .. } => {
            let model = usage.model.as_deref().or(requested_model);
            match spend::price_for(models, model) {
                Some(priced) => {
                    Charge::Usage { cost: priced.price.cost(usage), basis: priced.basis }
                }
                None => Charge::Reservation,
            }
        }
        ForwardOutcome::Completed { status, usage: None }
        | ForwardOutcome::Interrupted { status, .. }
            if succeeded(status) =>
        {
            Charge::Reservation
        }
        ForwardOutcome::Cancelled => Charge::Reservation,
        ForwardOutcome::Completed { .. }
        | ForwardOutcome::Interrupted { .. }
        | ForwardOutcome::Unreachable { .. } => Charge::Nothing,
    }
}

/// Spend this host metered, for `/metrics`.
#[derive(Debug, Default)]
pub struct SpendCounters {
    by_provider: std::sync::Mutex<BTreeMap<String, ProviderSpend>>,
}

/// One provider's metered spend.
#[derive(Debug, Default)]
pub struct ProviderSpend {
    /// Micro-USD charged at a price the manifest lists.
    pub listed: AtomicU64,
    /// Micro-USD charged at the dearest default (an unknown model).
    pub unlisted: AtomicU64,
    /// Micro-USD charged as whole reservations (usage unknown).
    pub reserved: AtomicU64,
    /// Forwards refused before sending: a budget had no room.
    pub refusals: AtomicU64,
}

impl SpendCounters {
    /// Applies `update` to the counters of `provider`.
    fn with(&self, provider: &str, update: impl FnOnce(&ProviderSpend)) {
        let mut map = self.by_provider.lock().unwrap_or_else(|poison| poison.into_inner());
        update(map.entry(provider.to_owned()).or_default());
    }

    /// Counts `charge` (of a reservation of `reserved`) for `provider`.
    pub fn record_charge(&self, provider: &str, charge: &Charge, reserved: MicroUsd) {
        self.with(provider, |counters| match charge {
            Charge::Usage { cost, basis: PriceBasis::Listed { .. } } => {
                counters.listed.fetch_add(cost.0, Ordering::Relaxed);
            }
            Charge::Usage { cost, basis: PriceBasis::MostExpensiveDefault { .. } } => {
                counters.unlisted.fetch_add(cost.0, Ordering::Relaxed);
            }
            Charge::Reservation => {
                counters.reserved.fetch_add(reserved.0, Ordering::Relaxed);
            }
            Charge::Nothing => {}
        });
    }

    /// Counts a forward of `provider` refused for its budget.
    pub fn record_refusal(&self, provider: &str) {
        self.with(provider, |counters| {
            counters.refusals.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Calls `each` with every provider's counters, by slug.
    pub fn for_each(&self, mut each: impl FnMut(&str, &ProviderSpend)) {
        let map = self.by_provider.lock().unwrap_or_else(|poison| poison.into_inner());
        for (provider, counters) in map.iter() {
            each(provider, counters);
        }
    }
}

/// Why a forward could not reserve.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// A budget has no room for it.
    #[error(transparent)]
    Exceeded(Box<BudgetExceeded>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A forward's reservation, until it is settled.
pub struct Reserved {
    store: Arc<dyn SecretStore>,
    counters: Arc<SpendCounters>,
    reservation: Reservation,
    provider: String,
    models: Vec<ModelInfo>,
    requested_model: Option<String>,
}

impl std::fmt::Debug for Reserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserved")
            .field("key", &self.reservation.key.to_string())
            .field("amount", &self.reservation.amount)
            .finish_non_exhaustive()
    }
}

/// Reserves the most the forward of `body` with `lease` can cost (its
/// provider's `models` price it; `config` gives the default), against the
/// lease's key and its scope, before anything is sent.
pub async fn reserve(
    store: &Arc<dyn SecretStore>,
    counters: &Arc<SpendCounters>,
    config: &SpendConfig,
    lease: &Lease,
    models: &[ModelInfo],
    body: &[u8],
) -> Result<Reserved, ReserveError> {
    let estimate = spend::estimate(models, body, config.default_reservation_for(&lease.provider));
    let now = now_millis();
    let ttl = UnixMillis::try_from(config.reservation_ttl.as_millis()).unwrap_or(UnixMillis::MAX);
    let reservation = Reservation {
        id: crate::crypto::random_bytes(),
        key: BudgetTarget::key(lease.scope.clone(), lease.provider.clone(), lease.key_id.clone()),
        amount: estimate.amount,
        expires_at: now.saturating_add(ttl),
    };
    if let Err(exceeded) = store.reserve(&reservation, now).await? {
        counters.record_refusal(&lease.provider);
        return Err(ReserveError::Exceeded(Box::new(exceeded)));
    }
    let requested_model = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|json| {
        spend::requested_model(&json).map(|model| model.chars().take(128).collect())
    });
    Ok(Reserved {
        store: store.clone(),
        counters: counters.clone(),
        reservation,
        provider: lease.provider.clone(),
        models: models.to_vec(),
        requested_model,
    })
}

impl Reserved {
    /// The amount held.
    pub fn amount(&self) -> MicroUsd {
        self.reservation.amount
    }

    /// Settles the reservation to the [`charge`] of `outcome`, durably.
    pub async fn settle(self, outcome: &ForwardOutcome) -> Result<Charge, StoreError> {
        let charge = charge(outcome, &self.models, self.requested_model.as_deref());
        let (id, key, now) = (&self.reservation.id, &self.reservation.key, now_millis());
        match &charge {
            Charge::Usage { cost, .. } => self.store.settle(id, key, *cost, now).await?,
            Charge::Reservation => self.store.settle(id, key, self.reservation.amount, now).await?,
            Charge::Nothing => self.store.cancel_reservation(id).await?,
        };
        self.counters.record_charge(&self.provider, &charge, self.reservation.amount);
        Ok(charge)
    }

    /// Settles in a task of its own (from a `Drop`, where nothing can be
    /// awaited); without a runtime the reservation simply expires.
    pub fn settle_in_background(self, outcome: ForwardOutcome) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = self.settle(&outcome).await {
                    tracing::warn!(%error, "a forward's reservation could not be settled; it expires at its TTL");
                }
            });
        }
    }
}

/// Records the usage an agent reports when it releases a lease it spent
/// calling the provider itself: its cost at its price, or the provider's
/// default reservation when the provider prices no model (`None` basis),
/// counted against the lease's key and its scope, durably.
pub async fn record_reported(
    store: &Arc<dyn SecretStore>,
    counters: &SpendCounters,
    config: &SpendConfig,
    lease: &Lease,
    models: &[ModelInfo],
    usage: &Usage,
) -> Result<(MicroUsd, Option<PriceBasis>), StoreError> {
    let (cost, basis, charge) = match spend::price_for(models, usage.model.as_deref()) {
        Some(priced) => {
            let cost = priced.price.cost(usage);
            let charge = Charge::Usage { cost, basis: priced.basis.clone() };
            (cost, Some(priced.basis), charge)
        }
        None => (config.default_reservation_for(&lease.provider), None, Charge::Reservation),
    };
    let key = BudgetTarget::key(lease.scope.clone(), lease.provider.clone(), lease.key_id.clone());
    store.record_spend(&key, cost, now_millis()).await?;
    counters.record_charge(&lease.provider, &charge, cost);
    Ok((cost, basis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ModelClass, TokenPrice};

    fn models() -> Vec<ModelInfo> {
        vec![ModelInfo {
            id: "gpt-5".into(),
            class: ModelClass::Chat,
            display_name: "GPT-5".into(),
            context_window: None,
            price: Some(TokenPrice {
                input: MicroUsd(1_250_000),
                output: MicroUsd(10_000_000),
                cached_input: None,
            }),
        }]
    }

    #[test]
    fn usage_is_charged_at_its_price_and_unknown_usage_at_the_whole_reservation() {
        let usage = Usage { input_tokens: 1_000, output_tokens: 100, ..Usage::default() };
        let completed = ForwardOutcome::Completed { status: 200, usage: Some(usage.clone()) };
        assert_eq!(
            charge(&completed, &models(), Some("gpt-5")),
            Charge::Usage {
                cost: MicroUsd(2_250),
                basis: PriceBasis::Listed { model: "gpt-5".into() }
            }
        );
        // The usage's own model wins over the one asked for.
        let named = Usage { model: Some("gpt-9".into()), ..usage.clone() };
        let completed = ForwardOutcome::Completed { status: 200, usage: Some(named) };
        assert!(matches!(
            charge(&completed, &models(), Some("gpt-5")),
            Charge::Usage { basis: PriceBasis::MostExpensiveDefault { .. }, .. }
        ));
        // No price at all: the reservation.
        let completed = ForwardOutcome::Completed { status: 200, usage: Some(usage) };
        assert_eq!(charge(&completed, &[], None), Charge::Reservation);
        for outcome in [
            ForwardOutcome::Completed { status: 200, usage: None },
            ForwardOutcome::Interrupted { status: 200, reason: "idle".into() },
            ForwardOutcome::Cancelled,
        ] {
            assert_eq!(charge(&outcome, &models(), None), Charge::Reservation, "{outcome:?}");
        }
    }

    #[test]
    fn no_answer_or_a_refusal_without_usage_costs_nothing() {
        for outcome in [
            ForwardOutcome::Unreachable { reason: "could not connect".into() },
            ForwardOutcome::Completed { status: 429, usage: None },
            ForwardOutcome::Interrupted { status: 500, reason: "reset".into() },
        ] {
            assert_eq!(charge(&outcome, &models(), None), Charge::Nothing, "{outcome:?}");
        }
    }

    #[test]
    fn a_provider_may_have_its_own_default_reservation() {
        let mut config = SpendConfig::default();
        config.provider_reservations.insert("anthropic".into(), MicroUsd(2_000_000));
        assert_eq!(config.default_reservation_for("anthropic"), MicroUsd(2_000_000));
        assert_eq!(config.default_reservation_for("openai"), MicroUsd(500_000));
    }
}

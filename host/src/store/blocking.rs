//! [`Blocking`]: a [`BlockingSecretStore`] as a [`SecretStore`].
//!
//! Writes (and whole-store scans) run on tokio's blocking pool, so a durable
//! write waiting for the disk never stalls an async worker. Point reads run
//! in place: the blocking backend serves them from memory (sled's page
//! cache) in microseconds, less than a hand-off to the pool would cost; so
//! do probe claims, which a one-host backend keeps in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;

use super::{
    BlockingSecretStore, Budget, BudgetExceeded, BudgetStatus, BudgetTarget, ImportReport,
    KeyUpdate, LEASE_ID_LEN, ProbeClaim, ProbeSlot, ProbeTag, ProviderKey, ProviderVars,
    RESERVATION_ID_LEN, Reservation, RewrapProgress, RewrapReport, SecretStore, StoreDump,
    StoreError, SyncReport, UnixMillis, VarInfo, VarSource, VarValue,
};
use crate::crypto::{KeyId, Keyring};
use crate::provider::MicroUsd;
use crate::scope::Scope;

/// A blocking backend as a [`SecretStore`]. Cheap to clone.
#[derive(Debug)]
pub struct Blocking<S>(Arc<S>);

impl<S> Clone for Blocking<S> {
    fn clone(&self) -> Self {
        Blocking(Arc::clone(&self.0))
    }
}

impl<S: BlockingSecretStore> Blocking<S> {
    /// Wraps `store`.
    pub fn new(store: S) -> Self {
        Blocking(Arc::new(store))
    }

    /// Wraps a backend shared with callers of its blocking methods.
    pub fn shared(store: Arc<S>) -> Self {
        Blocking(store)
    }

    /// The backend itself, for its own (blocking) methods.
    pub fn inner(&self) -> &Arc<S> {
        &self.0
    }

    /// Runs `work` on the blocking pool with the backend.
    async fn off_thread<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.0);
        // The caller's subscriber gets the backend's logs too.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        tokio::task::spawn_blocking(move || {
            tracing::dispatcher::with_default(&dispatch, || work(&store))
        })
        .await
        .map_err(StoreError::backend)?
    }
}

#[async_trait::async_trait]
impl<S: BlockingSecretStore> SecretStore for Blocking<S> {
    async fn set_var(
        &self,
        scope: &Scope,
        name: &str,
        value: &SecretString,
        source: VarSource,
    ) -> Result<VarInfo, StoreError> {
        let (scope, name, value) = (scope.clone(), name.to_owned(), value.clone());
        self.off_thread(move |store| store.set_var(&scope, &name, &value, source)).await
    }

    async fn unset_var(
        &self,
        scope: &Scope,
        name: &str,
        source: VarSource,
    ) -> Result<bool, StoreError> {
        let (scope, name) = (scope.clone(), name.to_owned());
        self.off_thread(move |store| store.unset_var(&scope, &name, source)).await
    }

    async fn list_vars(&self, scope: &Scope) -> Result<Vec<VarInfo>, StoreError> {
        self.0.list_vars(scope)
    }

    async fn get_var(&self, scope: &Scope, name: &str) -> Result<Option<VarValue>, StoreError> {
        self.0.get_var(scope, name)
    }

    async fn get_vars(
        &self,
        scope: &Scope,
        names: &[&str],
    ) -> Result<Vec<Option<VarValue>>, StoreError> {
        self.0.get_vars(scope, names)
    }

    async fn get_var_version(
        &self,
        scope: &Scope,
        name: &str,
        version: u64,
    ) -> Result<Option<VarValue>, StoreError> {
        self.0.get_var_version(scope, name, version)
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.off_thread(|store| store.purge_expired()).await
    }

    async fn release_lease(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let id = *id;
        self.off_thread(move |store| store.release_lease(&id, expires_at)).await
    }

    async fn lease_released(
        &self,
        id: &[u8; LEASE_ID_LEN],
        expires_at: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.0.lease_released(id, expires_at)
    }

    async fn claim_probe(
        &self,
        tag: &ProbeTag,
        slot: ProbeSlot,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<ProbeClaim, StoreError> {
        self.0.claim_probe(tag, slot, now, until)
    }

    async fn probe_done(&self, tag: &ProbeTag, slot: ProbeSlot) -> Result<(), StoreError> {
        self.0.probe_done(tag, slot)
    }

    async fn set_budget(
        &self,
        target: &BudgetTarget,
        budget: Option<Budget>,
    ) -> Result<(), StoreError> {
        let target = target.clone();
        self.off_thread(move |store| store.set_budget(&target, budget)).await
    }

    async fn budget_status(
        &self,
        target: &BudgetTarget,
        now: UnixMillis,
    ) -> Result<BudgetStatus, StoreError> {
        // It scans the reservations: on the pool.
        let target = target.clone();
        self.off_thread(move |store| store.budget_status(&target, now)).await
    }

    async fn reserve(
        &self,
        reservation: &Reservation,
        now: UnixMillis,
    ) -> Result<Result<(), BudgetExceeded>, StoreError> {
        let reservation = reservation.clone();
        self.off_thread(move |store| store.reserve(&reservation, now)).await
    }

    async fn settle(
        &self,
        id: &[u8; RESERVATION_ID_LEN],
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let (id, key) = (*id, key.clone());
        self.off_thread(move |store| store.settle(&id, &key, cost, now)).await
    }

    async fn cancel_reservation(&self, id: &[u8; RESERVATION_ID_LEN]) -> Result<bool, StoreError> {
        let id = *id;
        self.off_thread(move |store| store.cancel_reservation(&id)).await
    }

    async fn record_spend(
        &self,
        key: &BudgetTarget,
        cost: MicroUsd,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.off_thread(move |store| store.record_spend(&key, cost, now)).await
    }

    fn keyring(&self) -> &Keyring {
        self.0.keyring()
    }

    async fn import_self_host(
        &self,
        scope: &Scope,
        vars: &[(String, SecretString)],
    ) -> Result<ImportReport, StoreError> {
        let (scope, vars) = (scope.clone(), vars.to_vec());
        self.off_thread(move |store| store.import_self_host(&scope, &vars)).await
    }

    async fn list_provider_keys(&self, scope: &Scope) -> Result<Vec<ProviderKey>, StoreError> {
        self.0.list_provider_keys(scope)
    }

    async fn list_all_provider_keys(&self) -> Result<Vec<(Scope, ProviderKey)>, StoreError> {
        self.off_thread(|store| store.list_all_provider_keys()).await
    }

    async fn update_provider_key(
        &self,
        scope: &Scope,
        provider: &str,
        env_var: &str,
        update: KeyUpdate,
    ) -> Result<bool, StoreError> {
        let (scope, provider, env_var) = (scope.clone(), provider.to_owned(), env_var.to_owned());
        self.off_thread(move |store| store.update_provider_key(&scope, &provider, &env_var, update))
            .await
    }

    async fn set_provider_vars(&self, vars: ProviderVars) -> Result<SyncReport, StoreError> {
        self.off_thread(move |store| store.set_provider_vars(vars)).await
    }

    async fn rewrap(
        &self,
        progress: &mut (dyn for<'report> FnMut(&'report RewrapProgress) + Send),
    ) -> Result<RewrapReport, StoreError> {
        // The rewrap runs on the pool; its progress reports come back over a
        // channel to the caller's callback, which stays on this task.
        let (sender, mut reports) = tokio::sync::mpsc::unbounded_channel();
        let store = Arc::clone(&self.0);
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let work = tokio::task::spawn_blocking(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                store.rewrap(&mut |report| {
                    let _ = sender.send(*report);
                })
            })
        });
        while let Some(report) = reports.recv().await {
            progress(&report);
        }
        work.await.map_err(StoreError::backend)?
    }

    async fn key_usage(&self) -> Result<BTreeMap<KeyId, u64>, StoreError> {
        self.off_thread(|store| store.key_usage()).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.off_thread(|store| store.flush()).await
    }

    async fn export_sealed(&self) -> Result<StoreDump, StoreError> {
        self.off_thread(|store| store.export_sealed()).await
    }

    async fn import_sealed(&self, dump: &StoreDump) -> Result<(), StoreError> {
        // The pool needs the dump to itself: a copy (a dump is held in memory anyway).
        let dump = dump.clone();
        self.off_thread(move |store| store.import_sealed(&dump)).await
    }
}

//! Leases: a turn's hold on the value versions it was given.
//!
//! A lease keeps the env bag a resolve returned, so authorize-by-lease signs
//! with exactly those values even after a rotation; new resolves read the new
//! version. Leases live in memory: after a restart a turn resolves again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::provider::Credentials;
use crate::scope::Scope;
use crate::store::{UnixMillis, now_millis};

/// One lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// A random 128-bit id, hex.
    pub id: String,
    /// The scope it was resolved in.
    pub scope: Scope,
    /// The provider.
    pub provider: String,
    /// The key's variable.
    pub key_id: String,
    /// The env bag handed out.
    pub credentials: Credentials,
    /// The scope variables and versions read.
    pub versions: Vec<(String, u64)>,
    /// When it ends.
    pub expires_at: Instant,
    /// The same, in Unix milliseconds, for answers.
    pub expires_at_millis: UnixMillis,
}

impl Lease {
    /// A lease with a fresh random id, valid for `ttl`.
    pub fn new(
        scope: Scope,
        provider: String,
        key_id: String,
        credentials: Credentials,
        versions: Vec<(String, u64)>,
        ttl: Duration,
    ) -> Self {
        Lease {
            id: hex::encode(crate::crypto::random_bytes::<16>()),
            scope,
            provider,
            key_id,
            credentials,
            versions,
            expires_at: Instant::now() + ttl,
            expires_at_millis: now_millis() + ttl.as_millis() as UnixMillis,
        }
    }
}

/// The live leases.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: Mutex<HashMap<String, Lease>>,
}

impl LeaseTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a lease.
    pub fn insert(&self, lease: Lease) {
        self.lock().insert(lease.id.clone(), lease);
    }

    /// A live lease by id (an expired one is gone).
    pub fn get(&self, id: &str) -> Option<Lease> {
        let mut leases = self.lock();
        match leases.get(id) {
            Some(lease) if lease.expires_at > Instant::now() => Some(lease.clone()),
            Some(_) => {
                leases.remove(id);
                None
            }
            None => None,
        }
    }

    /// Removes a lease; `false` if it did not exist.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Drops every expired lease; returns how many.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        let mut leases = self.lock();
        let before = leases.len();
        leases.retain(|_, lease| lease.expires_at > now);
        before - leases.len()
    }

    /// How many leases are live (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

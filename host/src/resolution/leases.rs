//! Leases: a turn's hold on the value versions it was given.
//!
//! A lease records which value version of each variable a resolve handed
//! out, so authorize-by-lease signs with exactly those values even after a
//! rotation (it reads them back by version; the store keeps a replaced
//! version for its grace period, at least the lease TTL), while new resolves
//! read the new version. A lease holds no secret, only names and versions.
//! Leases live in memory: after a restart a turn resolves again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::scope::Scope;
use crate::store::{UnixMillis, now_millis};

/// One variable of a lease's env bag: where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedVar {
    /// The manifest's (plain) name, as the plugin sees it.
    pub manifest_var: String,
    /// The scope variable read (e.g. the numbered variant).
    pub source: String,
    /// The value version read.
    pub version: u64,
}

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
    /// The value versions handed out.
    pub versions: Vec<LeasedVar>,
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
        versions: Vec<LeasedVar>,
        ttl: Duration,
    ) -> Self {
        Lease {
            id: hex::encode(crate::crypto::random_bytes::<16>()),
            scope,
            provider,
            key_id,
            versions,
            expires_at: Instant::now() + ttl,
            expires_at_millis: now_millis() + ttl.as_millis() as UnixMillis,
        }
    }
}

/// Shards of the lease table: a resolve locks one, and a shard's growth
/// (a rehash, O(its size)) stalls only the resolves that hash to it, for
/// 1/SHARDS of the time one big table would.
const SHARDS: usize = 64;

/// The live leases, in shards by id.
#[derive(Debug)]
pub struct LeaseTable {
    shards: Box<[Mutex<HashMap<String, Lease>>]>,
}

impl Default for LeaseTable {
    fn default() -> Self {
        LeaseTable { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl LeaseTable {
    /// The shard of `id`: ids are random hex, so their last bytes spread evenly.
    fn lock(&self, id: &str) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        let digit = |byte: u8| char::from(byte).to_digit(16).unwrap_or(u32::from(byte)) as usize;
        let index = id.bytes().rev().take(2).fold(0, |acc, byte| acc * 16 + digit(byte));
        self.shards[index % SHARDS].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn each(&self) -> impl Iterator<Item = std::sync::MutexGuard<'_, HashMap<String, Lease>>> {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Adds a lease.
    pub fn insert(&self, lease: Lease) {
        self.lock(&lease.id).insert(lease.id.clone(), lease);
    }

    /// A live lease by id (an expired one is gone).
    pub fn get(&self, id: &str) -> Option<Lease> {
        let mut leases = self.lock(id);
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
        self.lock(id).remove(id).is_some()
    }

    /// Drops every expired lease; returns how many.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        self.each()
            .map(|mut leases| {
                let before = leases.len();
                leases.retain(|_, lease| lease.expires_at > now);
                before - leases.len()
            })
            .sum()
    }

    /// How many leases are live (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.each().map(|leases| leases.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.each().all(|leases| leases.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_spread_over_shards_and_expire() {
        let table = LeaseTable::default();
        let scope: Scope = "a/b/c".parse().unwrap();
        let lease = |ttl| Lease::new(scope.clone(), "p".into(), "K".into(), Vec::new(), ttl);
        let ids: Vec<String> = (0..1000)
            .map(|_| {
                let lease = lease(Duration::from_secs(60));
                let id = lease.id.clone();
                table.insert(lease);
                id
            })
            .collect();
        table.insert(lease(Duration::ZERO));
        assert_eq!(table.len(), 1001);
        let used = table.each().filter(|shard| !shard.is_empty()).count();
        assert_eq!(used, SHARDS, "every shard used");
        assert_eq!(table.expire(), 1);
        assert!(table.get(&ids[7]).is_some());
        assert!(table.remove(&ids[7]) && !table.remove(&ids[7]));
        assert_eq!(table.len(), 999);
        assert!(!table.is_empty());
    }
}

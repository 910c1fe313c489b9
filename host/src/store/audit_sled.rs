//! [`AuditTrail`] in a sled database of one host, at `<data_dir>/audit`.
//!
//! Trees (ids are [`super::audit::AUDIT_ID_LEN`] lowercase hex digits,
//! stored as their 8 bytes, so byte order is `(at, id)` order):
//!
//! - `records`: `{at: u64 BE}{id (8)}` → the [`AuditRecord`] (JSON). The
//!   key starts with the time, so a query seeks to its first record and a
//!   purge reads only the records past the retention.
//! - `by-scope`: `{scope}\0{at: u64 BE}{id (8)}` → nothing: the records of
//!   one scope in order, so a scope query seeks instead of scanning the
//!   whole trail.
//!
//! An append adds each record not there yet, in order, with plain
//! inserts: the record first (a compare-and-swap from nothing, so a
//! re-appended record, a retried write, is the same key and the first one
//! written stays), then its `by-scope` entry. (A record is found by its
//! time and id, not its id alone: ids are 64 random bits, so two records
//! never share one.) Keys grow with the writer's stamps and an entry comes
//! after its record, so a reader paging with `after` misses none. A crash
//! between the two can leave the last record without its `by-scope` entry
//! (in the trail, missing from its scope's view).
//!
//! Not a sled transaction or batch: in sled 0.34 each one rolls the log
//! (seals the write buffer, then writes and syncs it) and holds the
//! process-wide lock that every other sled operation, the store's resolve
//! reads included, then waits for; one per resolve batch cut resolves to a
//! quarter of their rate without auditing (docs/benchmarks.md, "Audit
//! trail"). Plain inserts are buffered: the append runs inline, as it is
//! microseconds, and sled writes it within its flush interval; a durable
//! append then flushes on a blocking thread. Queries and purges run on a
//! blocking thread.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use super::audit::{AUDIT_ID_LEN, AuditQuery, AuditRecord, AuditTrail, id_bytes};
use super::{StoreError, UnixMillis};

/// The audit database's directory under the data directory.
pub const AUDIT_DIR: &str = "audit";

/// The length of a `records` key: the time, then the id's bytes.
const KEY_LEN: usize = 8 + AUDIT_ID_LEN / 2;

/// A purge removes this many records per transaction.
const PURGE_BATCH: usize = 1000;

/// The sled audit database.
pub struct SledAudit {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    records: Tree,
    by_scope: Tree,
    path: PathBuf,
}

impl fmt::Debug for SledAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledAudit").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn sled_error(error: sled::Error) -> StoreError {
    StoreError::backend(error)
}

/// The `records` key of the record at `at` with the id bytes `id`.
fn record_key(at: UnixMillis, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_LEN);
    key.extend_from_slice(&at.to_be_bytes());
    key.extend_from_slice(id);
    key
}

/// The `by-scope` key: `scope`, `\0`, then the `records` key.
fn scope_key(scope: &str, record_key: &[u8]) -> Vec<u8> {
    let mut key = scope_prefix(scope);
    key.extend_from_slice(record_key);
    key
}

fn scope_prefix(scope: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(scope.len() + 1 + KEY_LEN);
    prefix.extend_from_slice(scope.as_bytes());
    prefix.push(0);
    prefix
}

fn decode(key: &[u8], value: &[u8]) -> Result<AuditRecord, StoreError> {
    serde_json::from_slice(value).map_err(|error| {
        StoreError::Corrupt(format!("the audit record {} is unreadable: {error}", hex::encode(key)))
    })
}

impl SledAudit {
    /// Opens (or creates) the audit database at `<data_dir>/audit`.
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, StoreError> {
        crate::private_fs::tighten_data_dir(data_dir);
        SledAudit::open(&data_dir.join(AUDIT_DIR))
    }

    /// Opens (or creates) the audit database in the directory `path`,
    /// waiting up to two seconds for another handle in this process to let
    /// go of it; a database another process holds is refused, naming it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = super::sled_db::open(path, || {
            format!(
                "the audit database {} is in use (is `platos-host serve` running on this data directory? then read the trail through its API)",
                path.display()
            )
        })?;
        let records = db.open_tree("records").map_err(sled_error)?;
        let by_scope = db.open_tree("by-scope").map_err(sled_error)?;
        Ok(SledAudit { inner: Arc::new(Inner { db, records, by_scope, path: path.to_owned() }) })
    }

    /// Runs `work` on a blocking thread (flushes and long reads block).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner)).await.map_err(|_| {
            StoreError::backend(std::io::Error::other("an audit database task was cancelled"))
        })?
    }
}

impl Inner {
    /// Every record of `query` in order, at most its page size.
    fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = query.page_size();
        // The first key that can match: the cursor's, if it is past `since`.
        let start = match &query.after {
            Some((at, id)) if *at >= query.since => {
                record_key(*at, id_bytes(id).as_ref().map_or(&[][..], |bytes| &bytes[..]))
            }
            _ => record_key(query.since, &[]),
        };
        let mut found = Vec::new();
        let mut keep = |key: &[u8], value: &[u8]| -> Result<bool, StoreError> {
            let record = decode(key, value)?;
            if query.matches(&record) {
                found.push(record);
            }
            Ok(found.len() < limit)
        };
        match &query.scope {
            None => {
                for entry in self.records.range(start..) {
                    let (key, value) = entry.map_err(sled_error)?;
                    if !keep(&key, &value)? {
                        break;
                    }
                }
            }
            Some(scope) => {
                let prefix = scope_prefix(scope);
                for entry in self.by_scope.range(scope_key(scope, &start)..) {
                    let (index, _) = entry.map_err(sled_error)?;
                    let Some(key) = index.strip_prefix(prefix.as_slice()) else { break };
                    if key.len() != KEY_LEN {
                        // Another scope that starts with this one and a `\0`.
                        continue;
                    }
                    // Written before its index entry; gone only if purged.
                    let Some(value) = self.records.get(key).map_err(sled_error)? else {
                        continue;
                    };
                    if !keep(key, &value)? {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Removes every record older than `before` from both trees; how many.
    fn purge_before(&self, before: UnixMillis) -> Result<usize, StoreError> {
        let end = before.to_be_bytes();
        let mut removed = 0;
        loop {
            let mut batch = Vec::new();
            for entry in self.records.range(..&end[..]).take(PURGE_BATCH) {
                let (key, value) = entry.map_err(sled_error)?;
                let scope = decode(&key, &value)?.scope;
                batch.push((key, scope));
            }
            if batch.is_empty() {
                break;
            }
            (&self.records, &self.by_scope)
                .transaction(|(records, by_scope)| {
                    for (key, scope) in &batch {
                        records.remove(key)?;
                        if let Some(scope) = scope {
                            by_scope.remove(scope_key(scope, key))?;
                        }
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                })
                .map_err(transaction_error)?;
            removed += batch.len();
        }
        if removed > 0 {
            self.db.flush().map_err(sled_error)?;
        }
        Ok(removed)
    }
}

fn transaction_error(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => sled_error(error),
    }
}

#[async_trait]
impl AuditTrail for SledAudit {
    async fn append(&self, records: &[AuditRecord], durable: bool) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let key = record_key(record.at, &id_bytes(&record.id)?);
            let value = serde_json::to_vec(record)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            rows.push((key, record.scope.as_deref(), value));
        }
        let inner = &self.inner;
        for (key, scope, value) in rows {
            let added = inner
                .records
                .compare_and_swap(&key, None::<&[u8]>, Some(value))
                .map_err(sled_error)?
                .is_ok();
            if let (true, Some(scope)) = (added, scope) {
                inner.by_scope.insert(scope_key(scope, &key), &[][..]).map_err(sled_error)?;
            }
        }
        if durable {
            self.blocking(|inner| inner.db.flush().map(drop).map_err(sled_error)).await?;
        }
        Ok(())
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let query = query.clone();
        self.blocking(move |inner| inner.query(&query)).await
    }

    async fn purge_before(&self, before: UnixMillis) -> Result<usize, StoreError> {
        self.blocking(move |inner| inner.purge_before(before)).await
    }

    fn location(&self) -> String {
        self.inner.path.display().to_string()
    }
}

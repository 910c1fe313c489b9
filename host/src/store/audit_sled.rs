//! [`AuditTrail`] in a sled database of one host, at `<data_dir>/audit`.
//!
//! Trees (ids are [`super::audit::AUDIT_ID_LEN`] lowercase hex digits,
//! stored as their 8 bytes):
//!
//! - `records`: `{at: u64 BE}{first id (8)}` → a page: the records of one
//!   append that share one `at`, ordered by id, as `{last id (8)}` then a
//!   JSON array. The key starts with the time, so a query seeks to its first
//!   page and a purge reads only the pages past the retention. Records of
//!   one `at` may lie on several pages (several appends in one millisecond);
//!   a query merges them by id.
//! - `by-scope`: `{scope}\0{page key}` → nothing: the pages holding records
//!   of one scope, in order, so a scope query seeks instead of scanning the
//!   whole trail.
//!
//! An append writes one page per `at` among its records (the writer's batch
//! shares one: one page per batch), then its `by-scope` entries, with plain
//! inserts. A record whose id a page of its `at` holds already is left out
//! (a retried write adds nothing twice); the page's id range tells, without
//! reading the page, when none can. Keys grow with the writer's stamps and
//! an entry comes after its page, so a reader paging with `after` misses
//! none; a crash between the two can leave the last page out of its scopes'
//! view (it stays in the whole trail).
//!
//! Pages, not a record per key, and not a sled transaction or batch: in
//! sled 0.34 each transaction or batch rolls the log (seals the write
//! buffer, then writes and syncs it) and holds the process-wide lock that
//! every other sled operation, the store's resolve reads included, waits
//! for; one per resolve batch cut resolves to a quarter of their rate, and
//! two inserts per record to 60 % (docs/benchmarks.md, "Audit trail"). An
//! append is one insert per page and scope, buffered: it runs inline, and
//! sled writes it within its flush interval; a durable append then flushes
//! on a blocking thread. Queries and purges run on a blocking thread, and
//! the database's cache is capped ([`CACHE_BYTES`]): the trail is written
//! far more than read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sled::Tree;

use super::audit::{AUDIT_ID_LEN, AuditQuery, AuditRecord, AuditTrail, id_bytes};
use super::{StoreError, UnixMillis};

/// The audit database's directory under the data directory.
pub const AUDIT_DIR: &str = "audit";

/// The length of a `records` key: the time, then the first id's bytes.
const KEY_LEN: usize = 8 + ID_BYTES;

/// The length of an id's bytes.
const ID_BYTES: usize = AUDIT_ID_LEN / 2;

/// The most the audit database's cache holds, in bytes.
pub const CACHE_BYTES: u64 = 32 << 20;

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

/// The `records` key of the page at `at` whose first id has the bytes `id`.
fn page_key(at: UnixMillis, id: &[u8; ID_BYTES]) -> [u8; KEY_LEN] {
    let mut key = [0; KEY_LEN];
    key[..8].copy_from_slice(&at.to_be_bytes());
    key[8..].copy_from_slice(id);
    key
}

/// The `by-scope` key: `scope`, `\0`, then the page's key.
fn scope_key(scope: &str, page_key: &[u8]) -> Vec<u8> {
    let mut key = scope_prefix(scope);
    key.extend_from_slice(page_key);
    key
}

fn scope_prefix(scope: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(scope.len() + 1 + KEY_LEN);
    prefix.extend_from_slice(scope.as_bytes());
    prefix.push(0);
    prefix
}

/// A page's id range, `(first, last)`, from its key and the head of its value.
fn id_range(key: &[u8], value: &[u8]) -> Option<([u8; ID_BYTES], [u8; ID_BYTES])> {
    let first = key.get(8..KEY_LEN)?.try_into().ok()?;
    let last = value.get(..ID_BYTES)?.try_into().ok()?;
    Some((first, last))
}

/// A page's records.
fn decode(key: &[u8], value: &[u8]) -> Result<Vec<AuditRecord>, StoreError> {
    let unreadable = |why: String| {
        StoreError::Corrupt(format!("the audit page {} is unreadable: {why}", hex::encode(key)))
    };
    let json = value.get(ID_BYTES..).ok_or_else(|| unreadable("too short".to_owned()))?;
    serde_json::from_slice(json).map_err(|error| unreadable(error.to_string()))
}

/// A page's value: its last id's bytes, then its records as JSON.
fn encode(records: &[&AuditRecord], last: &[u8; ID_BYTES]) -> Result<Vec<u8>, StoreError> {
    let mut value = Vec::with_capacity(ID_BYTES + records.len() * 320);
    value.extend_from_slice(last);
    serde_json::to_writer(&mut value, records)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(value)
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
        let config = sled::Config::new().cache_capacity(CACHE_BYTES);
        let db = super::sled_db::open_with(path, config, || {
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

/// Collects a query's records page by page: the records of one `at` are
/// merged by id before they count, since several pages may hold them.
struct Collector<'a> {
    query: &'a AuditQuery,
    found: Vec<AuditRecord>,
    /// The records of the `at` being read, not yet sorted.
    pending: Vec<AuditRecord>,
    pending_at: Option<UnixMillis>,
}

impl Collector<'_> {
    /// Takes a page at `at`; `false` once the page size is reached.
    fn page(&mut self, at: UnixMillis, records: Vec<AuditRecord>) -> bool {
        if self.pending_at != Some(at) && !self.settle() {
            return false;
        }
        self.pending_at = Some(at);
        self.pending.extend(records.into_iter().filter(|record| self.query.matches(record)));
        true
    }

    /// Moves the pending records, by id, into what is found; `false` once
    /// the page size is reached.
    fn settle(&mut self) -> bool {
        let limit = self.query.page_size();
        self.pending.sort_by(|a, b| a.id.cmp(&b.id));
        let room = limit.saturating_sub(self.found.len());
        self.found.extend(self.pending.drain(..).take(room));
        self.found.len() < limit
    }

    fn finish(mut self) -> Vec<AuditRecord> {
        self.settle();
        self.found
    }
}

impl Inner {
    /// Every record of `query` in order, at most its page size.
    fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        // The first page that can match: the cursor's time, if it is past
        // `since` (its earlier pages of that time may hold later ids).
        let start_at = match &query.after {
            Some((at, _)) => (*at).max(query.since),
            None => query.since,
        };
        let start = page_key(start_at, &[0; ID_BYTES]);
        let mut collector =
            Collector { query, found: Vec::new(), pending: Vec::new(), pending_at: None };
        match &query.scope {
            None => {
                for entry in self.records.range(&start[..]..) {
                    let (key, value) = entry.map_err(sled_error)?;
                    if !collector.page(at_of(&key)?, decode(&key, &value)?) {
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
                    if !collector.page(at_of(key)?, decode(key, &value)?) {
                        break;
                    }
                }
            }
        }
        Ok(collector.finish())
    }

    /// The ids already on pages of `at` that `first..=last` overlaps (none
    /// read when no page's range overlaps: the writer's case).
    fn ids_at(
        &self,
        at: UnixMillis,
        first: &[u8; ID_BYTES],
        last: &[u8; ID_BYTES],
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut ids = BTreeSet::new();
        for entry in self.records.scan_prefix(at.to_be_bytes()) {
            let (key, value) = entry.map_err(sled_error)?;
            let overlaps = id_range(&key, &value)
                .is_none_or(|(page_first, page_last)| page_first <= *last && *first <= page_last);
            if overlaps {
                ids.extend(decode(&key, &value)?.into_iter().map(|record| record.id));
            }
        }
        Ok(ids)
    }

    /// Writes `records` (one `at`, ordered by id) as a page, leaving out
    /// those already there, then its scopes' index entries.
    fn append_page(&self, at: UnixMillis, records: &[&AuditRecord]) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return Ok(()) };
        let (first, last) = (id_bytes(&first.id)?, id_bytes(&last.id)?);
        let there = self.ids_at(at, &first, &last)?;
        let fresh: Vec<&AuditRecord> =
            records.iter().copied().filter(|record| !there.contains(&record.id)).collect();
        let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else { return Ok(()) };
        let key = page_key(at, &id_bytes(&first.id)?);
        self.records.insert(key, encode(&fresh, &id_bytes(&last.id)?)?).map_err(sled_error)?;
        let scopes: BTreeSet<&str> =
            fresh.iter().filter_map(|record| record.scope.as_deref()).collect();
        for scope in scopes {
            self.by_scope.insert(scope_key(scope, &key), &[][..]).map_err(sled_error)?;
        }
        Ok(())
    }

    /// Removes every page older than `before`, and its index entries; how
    /// many records they held.
    fn purge_before(&self, before: UnixMillis) -> Result<usize, StoreError> {
        let end = before.to_be_bytes();
        let mut removed = 0;
        for entry in self.records.range(..&end[..]) {
            let (key, value) = entry.map_err(sled_error)?;
            let records = decode(&key, &value)?;
            self.records.remove(&key).map_err(sled_error)?;
            let scopes: BTreeSet<&str> =
                records.iter().filter_map(|record| record.scope.as_deref()).collect();
            for scope in scopes {
                self.by_scope.remove(scope_key(scope, &key)).map_err(sled_error)?;
            }
            removed += records.len();
        }
        if removed > 0 {
            self.db.flush().map_err(sled_error)?;
        }
        Ok(removed)
    }
}

/// The time a page key starts with.
fn at_of(key: &[u8]) -> Result<UnixMillis, StoreError> {
    let bytes = key.get(..8).and_then(|bytes| <[u8; 8]>::try_from(bytes).ok());
    bytes.map(UnixMillis::from_be_bytes).ok_or_else(|| {
        StoreError::Corrupt(format!("the audit page key {} is malformed", hex::encode(key)))
    })
}

#[async_trait]
impl AuditTrail for SledAudit {
    async fn append(&self, records: &[AuditRecord], durable: bool) -> Result<(), StoreError> {
        // Every id is checked before anything is written.
        for record in records {
            id_bytes(&record.id)?;
        }
        let mut pages: BTreeMap<UnixMillis, Vec<&AuditRecord>> = BTreeMap::new();
        for record in records {
            pages.entry(record.at).or_default().push(record);
        }
        for (at, mut page) in pages {
            page.sort_by(|a, b| a.id.cmp(&b.id));
            page.dedup_by(|a, b| a.id == b.id);
            self.inner.append_page(at, &page)?;
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

//! [`AuditTrail`] in append-only segment files of one host, at
//! `<data_dir>/audit`: the embedded trail beside the sled store.
//!
//! Files (all owner-only):
//!
//! - `{seq:016x}.seg`: a segment. Each line is one append: a JSON array of
//!   its new records, ordered by `(at, id)`. A line is there whole or not at
//!   all: a write that fails is cut off again (or, if even that fails, the
//!   next write starts a new line, and the broken one is skipped on read),
//!   and the torn last line a crash may leave is cut off when the trail
//!   opens. Segments are cut at [`SegmentLimits::segment_bytes`]; the last
//!   one is written.
//! - `{seq:016x}.idx`: a closed segment's index (a JSON header line, read
//!   alone when the trail opens, then the blocks), written when it is
//!   closed: its blocks (runs of lines of about
//!   [`SegmentLimits::block_bytes`]), each with its byte range, the times
//!   of its records and the scopes they name. A query reads only the blocks
//!   that can hold what it asks for. An index that is missing, unreadable,
//!   or does not match its segment's length is rebuilt from the segment.
//! - `purged-before`: the retention's mark, a time in milliseconds; records
//!   older than it are gone from every view, and a segment whose records
//!   all are is deleted.
//! - `lock`: held while the trail is open, so one process writes it.
//!
//! Why files and not a sled database (as up to commit `2115845`): every
//! sled write goes through its log and page cache, tens of microseconds of
//! CPU a record against a resolve of a few, and its batches hold a
//! process-wide lock; the audited host kept 60 % of its resolve rate. Here
//! a batch is one `write` to the page cache, made durable with one
//! `fdatasync` when it holds a change's record, or by a sync at most a
//! second later ([`SYNC_INTERVAL`]). A data directory of an earlier release
//! keeps its sled audit database in the same directory: its records are
//! copied into the segments when the trail first opens, then its files
//! removed ([`super::audit_import`]).
//!
//! A record whose `(at, id)` the trail holds already is not added again.
//! The writer's records come in time order, so the check is a set lookup
//! ([`State::tail`]); an older time is looked up in the blocks that span it.
//!
//! Here: opening, writing and syncing; [`index`]: a segment's blocks and
//! lines; [`read`]: queries and the retention's purge.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

mod index;
mod read;

use index::{Block, Head, Index, IndexHeader, Span, line_records, scan_lines};
use read::Reading;

use super::audit::{AuditQuery, AuditRecord, AuditTrail, id_bytes};
use super::{StoreError, UnixMillis};

/// The audit trail's directory under the data directory.
pub const AUDIT_DIR: &str = "audit";

/// The retention mark's file.
const PURGED_FILE: &str = "purged-before";

/// The lock file.
const LOCK_FILE: &str = "lock";

/// How the name of a file being written ends (one a crash left is removed).
const TEMPORARY: &str = ".tmp";

/// How long an open waits for the lock a handle of this process may still
/// hold (a test, or the command line after `serve` stopped).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The longest a record written without `durable` waits for a sync.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Where segments and blocks are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLimits {
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// A block of a segment's index spans lines of about this many bytes.
    pub block_bytes: u64,
}

impl Default for SegmentLimits {
    /// 32 MiB segments of 256 KiB blocks.
    fn default() -> Self {
        SegmentLimits { segment_bytes: 32 << 20, block_bytes: 256 << 10 }
    }
}

/// The embedded audit trail.
pub struct FileAudit {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    limits: SegmentLimits,
    state: Mutex<State>,
    /// Whether a background sync is under way.
    syncing: AtomicBool,
    /// Held (locked) while the trail is open.
    _lock: File,
}

impl fmt::Debug for FileAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileAudit").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

/// What the trail holds, and where it writes.
struct State {
    /// The closed segments, oldest first.
    closed: Vec<Closed>,
    /// The segment being written.
    open: OpenSegment,
    /// Records older than this are purged.
    purged_before: UnixMillis,
    /// The latest `at` of any record.
    max_at: Option<UnixMillis>,
    /// The ids of the records at `max_at`, once known: the writer's
    /// duplicate check without a read.
    tail: Option<(UnixMillis, HashSet<u64>)>,
    /// When the open segment was last synced (or opened).
    synced_at: Instant,
}

/// A closed segment, as the open trail knows it (its blocks are in its
/// index file).
#[derive(Debug, Clone)]
struct Closed {
    seq: u64,
    span: Span,
}

/// The segment being written.
struct OpenSegment {
    seq: u64,
    file: Arc<File>,
    /// Its length: where the next line starts.
    len: u64,
    index: Index,
    /// Whether the bytes before `len` end in a failed write's partial line.
    torn: bool,
    /// Whether its directory entry is synced.
    entry_synced: bool,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.seg")
}

fn index_name(seq: u64) -> String {
    format!("{seq:016x}.idx")
}

/// The sequence number a segment's file name holds.
fn segment_seq(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten()
}

/// An id's number (its 8 bytes, big-endian: the id's order).
fn id_number(id: &str) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(id_bytes(id)?))
}

/// `error`, naming `path` and what was being done.
fn io_error(doing: &str, path: &Path, error: io::Error) -> StoreError {
    StoreError::backend(io::Error::new(
        error.kind(),
        format!("could not {doing} {}: {error}", path.display()),
    ))
}

/// Opens `path` to append, creating it owner-only.
fn open_append(path: &Path) -> io::Result<File> {
    let mut options = File::options();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Syncs the directory `dir` (a new or removed file's entry).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, synced.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(".{name}.{}.{write}{TEMPORARY}", std::process::id()));
    let mut file = crate::private_fs::create_private_file(&temporary)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&temporary, dir.join(name))?;
    sync_dir(dir)
}

/// Indexes the segment at `path` by reading it; the length of its whole
/// lines too (a torn last line is not one).
fn build_index(path: &Path, limits: &SegmentLimits) -> Result<(Index, u64), StoreError> {
    let bytes = std::fs::read(path).map_err(|error| io_error("read", path, error))?;
    Ok(Index::of_segment(&bytes, path, limits.block_bytes))
}

impl FileAudit {
    /// Opens (or creates) the trail at `<data_dir>/audit`.
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, StoreError> {
        crate::private_fs::tighten_data_dir(data_dir);
        FileAudit::open(&data_dir.join(AUDIT_DIR))
    }

    /// Opens (or creates) the trail in the directory `dir`, waiting up to
    /// two seconds for another handle in this process to let go of it; a
    /// trail another process holds is refused, naming it. A sled audit
    /// database an earlier release left there is copied in first.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        FileAudit::open_with_limits(dir, SegmentLimits::default())
    }

    /// [`FileAudit::open`], cutting segments and blocks at `limits` (small
    /// ones make tests cross many segments).
    pub fn open_with_limits(dir: &Path, limits: SegmentLimits) -> Result<Self, StoreError> {
        crate::private_fs::create_private_dir(dir)
            .map_err(|error| io_error("create the audit directory", dir, error))?;
        let lock = lock(dir)?;
        let state = load(dir, &limits)?;
        let trail = FileAudit {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                limits,
                state: Mutex::new(state),
                syncing: AtomicBool::new(false),
                _lock: lock,
            }),
        };
        super::audit_import::import_sled_trail(dir, |records| {
            let file = trail.inner.write(records)?;
            trail.inner.sync(&file)
        })?;
        crate::private_fs::tighten_created(dir);
        Ok(trail)
    }

    /// Runs `work` on a blocking thread (reads, syncs and purges block).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner)).await.map_err(|_| {
            StoreError::backend(io::Error::other("an audit trail task was cancelled"))
        })?
    }
}

/// Takes the trail's lock, waiting [`LOCK_WAIT`] for this process's other
/// handles.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = open_append(&path).map_err(|error| io_error("open", &path, error))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::backend(io::Error::other(format!(
                    "the audit trail {} is in use (is `platos-host serve` running on this data directory? then read the trail through its API)",
                    dir.display()
                ))));
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(io_error("lock", &path, error));
            }
        }
    }
}

/// Reads what the directory holds: the closed segments' indexes (rebuilt
/// where needed), the last segment (its torn line cut off), the mark.
fn load(dir: &Path, limits: &SegmentLimits) -> Result<State, StoreError> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| io_error("read", dir, error))? {
        let entry = entry.map_err(|error| io_error("read", dir, error))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = segment_seq(name) {
            seqs.push(seq);
        } else if name.starts_with('.') && name.ends_with(TEMPORARY) {
            // A file a crash left half written: the one it was to replace
            // is still there.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    seqs.sort_unstable();
    let last = seqs.pop().unwrap_or(0);
    let mut closed = Vec::with_capacity(seqs.len());
    let mut max_at = None;
    for seq in seqs {
        let span = closed_span(dir, seq, limits)?;
        // A segment of no readable record has an empty span: the next
        // purge deletes it.
        let span = span.unwrap_or(Span::of(0));
        if span.records > 0 {
            max_at = max_at.max(Some(span.max_at));
        }
        closed.push(Closed { seq, span });
    }
    let path = dir.join(segment_name(last));
    let file = open_append(&path).map_err(|error| io_error("open", &path, error))?;
    let (mut index, whole) = build_index(&path, limits)?;
    if whole < index.len {
        tracing::warn!(segment = %path.display(), cut = index.len - whole, "cut off the torn last line of the audit trail (a write a crash interrupted)");
        file.set_len(whole).map_err(|error| io_error("cut the torn line of", &path, error))?;
        index.len = whole;
    }
    if let Some(span) = index.span() {
        max_at = max_at.max(Some(span.max_at));
    }
    let purged_path = dir.join(PURGED_FILE);
    let purged_before = match std::fs::read_to_string(&purged_path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            StoreError::Corrupt(format!(
                "{} holds {:?}, not a time in milliseconds; write the retention's time there (or remove it to keep every record)",
                purged_path.display(),
                text.chars().take(40).collect::<String>()
            ))
        })?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(io_error("read", &purged_path, error)),
    };
    Ok(State {
        closed,
        open: OpenSegment {
            seq: last,
            file: Arc::new(file),
            len: index.len,
            index,
            torn: false,
            entry_synced: false,
        },
        purged_before,
        max_at,
        tail: None,
        synced_at: Instant::now(),
    })
}

/// A closed segment's span, from its index file's first line alone when
/// that matches the segment (opening reads no block list).
fn closed_span(dir: &Path, seq: u64, limits: &SegmentLimits) -> Result<Option<Span>, StoreError> {
    let segment = dir.join(segment_name(seq));
    let len = std::fs::metadata(&segment).map_err(|error| io_error("read", &segment, error))?.len();
    match IndexHeader::read(&dir.join(index_name(seq))) {
        Some(header) if header.len == len => Ok(header.span),
        _ => Ok(closed_index(dir, seq, limits)?.span()),
    }
}

/// A closed segment's index: its index file, or the segment read again
/// (and the file rewritten) when that is missing, unreadable or stale.
fn closed_index(dir: &Path, seq: u64, limits: &SegmentLimits) -> Result<Index, StoreError> {
    let segment = dir.join(segment_name(seq));
    let len = match std::fs::metadata(&segment) {
        Ok(metadata) => metadata.len(),
        // Purged meanwhile.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
        Err(error) => return Err(io_error("read", &segment, error)),
    };
    let stored = std::fs::read(dir.join(index_name(seq)))
        .ok()
        .and_then(|bytes| Index::from_file(&bytes))
        .filter(|index| index.len == len);
    if let Some(index) = stored {
        return Ok(index);
    }
    let (index, _) = build_index(&segment, limits)?;
    write_index(dir, seq, &index);
    Ok(index)
}

/// Writes a closed segment's index file; a failure is logged (the index is
/// rebuilt from the segment when next needed).
fn write_index(dir: &Path, seq: u64, index: &Index) {
    let written = replace_file(dir, &index_name(seq), &index.to_file());
    if let Err(error) = written {
        tracing::warn!(dir = %dir.display(), seq, %error, "could not write an audit segment's index; it will be rebuilt from the segment");
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as
        // a crash would leave the files.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_name(seq))
    }

    /// Writes `records` (their ids checked) as one line, leaving out those
    /// the trail holds; gives the file written to, to sync.
    fn write(&self, records: &[AuditRecord]) -> Result<Arc<File>, StoreError> {
        let mut by_at: BTreeMap<UnixMillis, BTreeMap<u64, &AuditRecord>> = BTreeMap::new();
        for record in records {
            // The first of a batch's records with one place is kept.
            by_at.entry(record.at).or_default().entry(id_number(&record.id)?).or_insert(record);
        }
        let mut state = self.state();
        let mut fresh: Vec<&AuditRecord> = Vec::with_capacity(records.len());
        let mut fresh_ids: Vec<(UnixMillis, u64)> = Vec::with_capacity(records.len());
        for (at, group) in by_at {
            if at < state.purged_before {
                continue;
            }
            let known = self.known_ids(&mut state, at)?;
            for (id, record) in group {
                if !known.as_ref().is_some_and(|known| known.contains(&id)) {
                    fresh.push(record);
                    fresh_ids.push((at, id));
                }
            }
        }
        if fresh.is_empty() {
            return Ok(state.open.file.clone());
        }
        let mut line = Vec::with_capacity(1 + fresh.len() * 320);
        if state.open.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &fresh)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        line.push(b'\n');
        self.append_line(&mut state, &line, &fresh)?;
        for (at, id) in fresh_ids {
            state.note_written(at, id);
        }
        let file = state.open.file.clone();
        if state.open.len >= self.limits.segment_bytes {
            self.close_open_segment(&mut state)?;
        }
        Ok(file)
    }

    /// The ids the trail holds at `at` (`None`: none can be there).
    fn known_ids<'s>(
        &self,
        state: &'s mut State,
        at: UnixMillis,
    ) -> Result<Option<std::borrow::Cow<'s, HashSet<u64>>>, StoreError> {
        let Some(max_at) = state.max_at else { return Ok(None) };
        if at > max_at {
            return Ok(None);
        }
        if at == max_at {
            if state.tail.as_ref().is_none_or(|(tail_at, _)| *tail_at != at) {
                let ids = self.ids_at(state, at)?;
                state.tail = Some((at, ids));
            }
            return Ok(state.tail.as_ref().map(|(_, ids)| std::borrow::Cow::Borrowed(ids)));
        }
        Ok(Some(std::borrow::Cow::Owned(self.ids_at(state, at)?)))
    }

    /// The ids of the records at `at`, read from the blocks that span it.
    fn ids_at(&self, state: &State, at: UnixMillis) -> Result<HashSet<u64>, StoreError> {
        let mut readings = Vec::new();
        for closed in state.closed.iter().filter(|closed| closed.span.holds(at)) {
            let index = closed_index(&self.dir, closed.seq, &self.limits)?;
            readings.push((closed.seq, index.blocks));
        }
        readings.push((state.open.seq, state.open.index.blocks.clone()));
        let mut ids = HashSet::new();
        for (seq, blocks) in readings {
            let reading = Reading {
                path: self.path(seq),
                blocks: blocks.into_iter().filter(|block| block.span.holds(at)).collect(),
            };
            if reading.blocks.is_empty() {
                continue;
            }
            let Some(mut file) = reading.open()? else { continue };
            for block in &reading.blocks {
                for record in reading.records(&mut file, block)? {
                    if record.at == at {
                        ids.insert(id_number(&record.id)?);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Appends `line` (holding `records`) to the open segment and indexes
    /// it. A failed write is cut off again, so no part of it is read.
    fn append_line(
        &self,
        state: &mut State,
        line: &[u8],
        records: &[&AuditRecord],
    ) -> Result<(), StoreError> {
        let open = &mut state.open;
        let path = self.dir.join(segment_name(open.seq));
        if let Err(error) = (&*open.file).write_all(line) {
            match open.file.set_len(open.len) {
                Ok(()) => {}
                Err(_) => {
                    // The next line starts after whatever was written.
                    open.torn = true;
                    open.len = open
                        .file
                        .metadata()
                        .map(|metadata| metadata.len())
                        .map_err(|error| io_error("read the length of", &path, error))?;
                }
            }
            return Err(io_error("write the audit segment", &path, error));
        }
        let start = open.len + u64::from(open.torn);
        let heads: Vec<Head<'_>> = records
            .iter()
            .map(|record| Head {
                at: record.at,
                scope: record.scope.as_deref().map(std::borrow::Cow::Borrowed),
            })
            .collect();
        open.index.add_line(
            start,
            line.len() as u64 - u64::from(open.torn),
            &heads,
            self.limits.block_bytes,
        );
        open.len += line.len() as u64;
        open.index.len = open.len;
        open.torn = false;
        Ok(())
    }

    /// Closes the open segment (its index written, it synced) and opens
    /// the next.
    fn close_open_segment(&self, state: &mut State) -> Result<(), StoreError> {
        let seq = state.open.seq + 1;
        let path = self.path(seq);
        let file = open_append(&path).map_err(|error| io_error("create", &path, error))?;
        let next = OpenSegment {
            seq,
            file: Arc::new(file),
            len: 0,
            index: Index::default(),
            torn: false,
            entry_synced: false,
        };
        let done = std::mem::replace(&mut state.open, next);
        if let Some(span) = done.index.span() {
            state.closed.push(Closed { seq: done.seq, span });
        }
        let dir = self.dir.clone();
        let close = move || {
            if let Err(error) = done.file.sync_data() {
                tracing::warn!(seq = done.seq, %error, "could not sync a closed audit segment");
            }
            write_index(&dir, done.seq, &done.index);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(close)),
            Err(_) => close(),
        }
        Ok(())
    }

    /// Makes what was written to `file` durable, and the open segment's
    /// directory entry.
    fn sync(&self, file: &File) -> Result<(), StoreError> {
        file.sync_data().map_err(|error| io_error("sync", &self.dir, error))?;
        let (seq, entry_synced) = {
            let state = self.state();
            (state.open.seq, state.open.entry_synced)
        };
        if !entry_synced {
            sync_dir(&self.dir).map_err(|error| io_error("sync", &self.dir, error))?;
        }
        let mut state = self.state();
        // A segment opened meanwhile has an entry this sync may not hold.
        if state.open.seq == seq {
            state.open.entry_synced = true;
        }
        state.synced_at = Instant::now();
        Ok(())
    }

    /// Starts a sync on a blocking thread when the last is over
    /// [`SYNC_INTERVAL`] ago and none is under way.
    fn sync_soon(self: &Arc<Self>, file: Arc<File>) {
        {
            let mut state = self.state();
            if state.synced_at.elapsed() < SYNC_INTERVAL {
                return;
            }
            if self.syncing.swap(true, Ordering::AcqRel) {
                return;
            }
            state.synced_at = Instant::now();
        }
        let inner = self.clone();
        let sync = move || {
            if let Err(error) = inner.sync(&file) {
                tracing::warn!(%error, "could not sync the audit trail");
            }
            inner.syncing.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(sync)),
            Err(_) => sync(),
        }
    }
}

impl State {
    /// Notes that the record `id` at `at` is in the trail.
    fn note_written(&mut self, at: UnixMillis, id: u64) {
        if self.max_at.is_none_or(|max_at| at > max_at) {
            self.max_at = Some(at);
            self.tail = Some((at, HashSet::new()));
        }
        if let Some((tail_at, ids)) = &mut self.tail
            && *tail_at == at
        {
            ids.insert(id);
        }
    }
}

#[async_trait]
impl AuditTrail for FileAudit {
    async fn append(&self, records: &[AuditRecord], durable: bool) -> Result<(), StoreError> {
        if durable {
            let records = records.to_vec();
            return self
                .blocking(move |inner| {
                    let file = inner.write(&records)?;
                    inner.sync(&file)
                })
                .await;
        }
        let file = self.inner.write(records)?;
        self.inner.sync_soon(file);
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
        self.inner.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::{ActorKind, AuditAction, AuditActor};

    fn record(n: u64) -> AuditRecord {
        let actor = AuditActor::of_kind(ActorKind::Host);
        AuditRecord {
            scope: Some("acme/shop/prod".into()),
            ..AuditRecord::new(AuditAction::Resolve, actor, format!("{n:016x}"), 100 + n)
        }
    }

    fn all(trail: &FileAudit) -> Vec<AuditRecord> {
        trail.inner.query(&AuditQuery { limit: 1000, ..AuditQuery::default() }).unwrap()
    }

    #[test]
    fn a_failed_write_leaves_no_part_of_its_line_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let trail = FileAudit::open(dir.path()).unwrap();
        let path = trail.inner.path(0);
        trail.inner.write(&[record(1)]).unwrap();
        let writable = trail.inner.state().open.file.clone();

        // A handle that can neither write nor cut: the write fails, and the
        // next line is started apart from whatever it left.
        trail.inner.state().open.file = Arc::new(File::open(&path).unwrap());
        let error = trail.inner.write(&[record(2)]).unwrap_err().to_string();
        assert!(
            error.contains("write the audit segment")
                && error.contains(&path.display().to_string()),
            "{error}"
        );
        assert!(trail.inner.state().open.torn);

        // What a failed write on a full disk leaves: half a line.
        let half = serde_json::to_vec(&[record(3)]).unwrap();
        (&*writable).write_all(&half[..half.len() / 2]).unwrap();
        {
            let mut state = trail.inner.state();
            state.open.file = writable;
            state.open.len = std::fs::metadata(&path).unwrap().len();
        }
        trail.inner.write(&[record(4)]).unwrap();
        assert!(!trail.inner.state().open.torn);
        assert_eq!(all(&trail), [record(1), record(4)]);
        drop(trail);
        let trail = FileAudit::open(dir.path()).unwrap();
        assert_eq!(all(&trail), [record(1), record(4)], "and after a reopen");
        trail.inner.write(&[record(5)]).unwrap();
        assert_eq!(all(&trail), [record(1), record(4), record(5)]);
    }

    #[test]
    fn segments_are_named_by_their_number() {
        assert_eq!(segment_seq(&segment_name(42)), Some(42));
        assert_eq!(segment_name(42), "000000000000002a.seg");
        assert_eq!(index_name(42), "000000000000002a.idx");
        assert_eq!(segment_seq("42.seg"), None);
        assert_eq!(segment_seq("000000000000002a.idx"), None);
    }
}

//! Reading the trail: a query takes the blocks that can hold what it asks
//! for and reads only their bytes; the retention's purge counts and removes
//! what is past its mark.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::{
    Block, Closed, Index, Inner, PURGED_FILE, Span, closed_index, index_name, io_error,
    line_records, replace_file, scan_lines, segment_name,
};
use crate::store::audit::{AuditQuery, AuditRecord};
use crate::store::{StoreError, UnixMillis};

/// The blocks of one segment to read for a query or a lookup.
pub(super) struct Reading {
    pub(super) path: PathBuf,
    pub(super) blocks: Vec<Block>,
}

impl Reading {
    /// The records of `block`, read from `file`.
    pub(super) fn records(
        &self,
        file: &mut File,
        block: &Block,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let bytes = read_range(file, block.offset, block.len)
            .map_err(|error| io_error("read", &self.path, error))?;
        let mut records = Vec::new();
        scan_lines(&bytes, block.offset, |offset, _, line| {
            records.extend(line_records(line, &self.path, offset));
        });
        Ok(records)
    }

    /// Opens the segment; `None` when it was purged meanwhile.
    pub(super) fn open(&self) -> Result<Option<File>, StoreError> {
        match File::open(&self.path) {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error("open", &self.path, error)),
        }
    }
}

/// What a reader needs of the trail, taken under the lock.
struct Snapshot {
    closed: Vec<Closed>,
    open_seq: u64,
    open_index: Index,
    purged_before: UnixMillis,
}

impl Inner {
    /// What a reader needs, taken under the lock.
    fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            closed: state.closed.clone(),
            open_seq: state.open.seq,
            open_index: state.open.index.clone(),
            purged_before: state.purged_before,
        }
    }

    /// The records `query` asks for.
    pub(super) fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let snapshot = self.snapshot();
        let start_at = query
            .after
            .as_ref()
            .map_or(query.since, |(at, _)| (*at).max(query.since))
            .max(snapshot.purged_before);
        let limit = query.page_size();
        let mut found: Vec<AuditRecord> = Vec::new();
        // The latest time a record can have and still be in the page.
        let bound = |found: &mut Vec<AuditRecord>| -> Option<UnixMillis> {
            if found.len() < limit {
                return None;
            }
            found.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
            found.truncate(limit);
            found.last().map(|record| record.at)
        };
        let mut segments: Vec<(Span, Option<u64>)> =
            snapshot.closed.iter().map(|closed| (closed.span, Some(closed.seq))).collect();
        if let Some(span) = snapshot.open_index.span() {
            segments.push((span, None));
        }
        segments.retain(|(span, _)| span.records > 0 && span.max_at >= start_at);
        segments.sort_by_key(|(span, _)| span.min_at);
        for (span, seq) in segments {
            if bound(&mut found).is_some_and(|bound| span.min_at > bound) {
                break;
            }
            let (seq, index) = match seq {
                Some(seq) => (seq, closed_index(&self.dir, seq, &self.limits)?),
                None => (snapshot.open_seq, snapshot.open_index.clone()),
            };
            let mut reading = Reading { path: self.path(seq), blocks: index.blocks };
            reading.blocks.retain(|block| {
                block.span.records > 0
                    && block.span.max_at >= start_at
                    && query.scope.as_ref().is_none_or(|scope| block.scopes.contains(scope))
            });
            reading.blocks.sort_by_key(|block| block.span.min_at);
            let Some(mut file) = reading.open()? else { continue };
            for block in &reading.blocks {
                if bound(&mut found).is_some_and(|bound| block.span.min_at > bound) {
                    break;
                }
                found.extend(
                    reading.records(&mut file, block)?.into_iter().filter(|record| {
                        record.at >= snapshot.purged_before && query.matches(record)
                    }),
                );
            }
        }
        found.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        found.truncate(limit);
        Ok(found)
    }

    /// Purges the records older than `before`: they leave every view at
    /// once (the mark), and the segments holding only them are deleted.
    pub(super) fn purge_before(&self, before: UnixMillis) -> Result<usize, StoreError> {
        let mut state = self.state();
        let from = state.purged_before;
        if before <= from {
            return Ok(0);
        }
        let mut purged = 0;
        let mut readings = Vec::new();
        for closed in &state.closed {
            if closed.span.min_at >= before || closed.span.max_at < from {
                continue;
            }
            if closed.span.min_at >= from && closed.span.max_at < before {
                purged += closed.span.records;
                continue;
            }
            let index = closed_index(&self.dir, closed.seq, &self.limits)?;
            readings.push(Reading { path: self.path(closed.seq), blocks: index.blocks });
        }
        readings.push(Reading {
            path: self.path(state.open.seq),
            blocks: state.open.index.blocks.clone(),
        });
        for reading in readings {
            let Some(mut file) = reading.open()? else { continue };
            for block in &reading.blocks {
                let span = block.span;
                if span.records == 0 || span.min_at >= before || span.max_at < from {
                    continue;
                }
                if span.min_at >= from && span.max_at < before {
                    purged += span.records;
                    continue;
                }
                let records = reading.records(&mut file, block)?;
                purged +=
                    records.iter().filter(|record| from <= record.at && record.at < before).count()
                        as u64;
            }
        }
        // With nothing purged, the mark moves in memory only: no record
        // lies between the stored mark and this one.
        if purged > 0 {
            replace_file(&self.dir, PURGED_FILE, before.to_string().as_bytes())
                .map_err(|error| io_error("write", &self.dir.join(PURGED_FILE), error))?;
        }
        state.purged_before = before;
        let (gone, kept): (Vec<Closed>, Vec<Closed>) = std::mem::take(&mut state.closed)
            .into_iter()
            .partition(|closed| closed.span.max_at < before);
        state.closed = kept;
        drop(state);
        for closed in gone {
            for name in [segment_name(closed.seq), index_name(closed.seq)] {
                let path = self.dir.join(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error("remove", &path, error)),
                }
            }
        }
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }
}

/// The byte range `offset..offset + len` of `file`.
fn read_range(file: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

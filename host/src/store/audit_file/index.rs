//! A segment's index ([`Index`]): its blocks, runs of whole lines of about
//! [`super::SegmentLimits::block_bytes`], each with its byte range, the
//! times and count of its records ([`Span`]) and the scopes they name; and
//! reading a segment's lines. Pure over bytes: the files are the caller's.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::UnixMillis;
use crate::store::audit::AuditRecord;

/// The times and count of a segment's or a block's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Span {
    pub(super) min_at: UnixMillis,
    pub(super) max_at: UnixMillis,
    pub(super) records: u64,
}

impl Span {
    pub(super) fn of(at: UnixMillis) -> Self {
        Span { min_at: at, max_at: at, records: 0 }
    }

    pub(super) fn take(&mut self, other: Span) {
        self.min_at = self.min_at.min(other.min_at);
        self.max_at = self.max_at.max(other.max_at);
        self.records += other.records;
    }

    pub(super) fn holds(&self, at: UnixMillis) -> bool {
        self.records > 0 && self.min_at <= at && at <= self.max_at
    }
}

/// A segment's index: its length and its blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Index {
    /// The segment's length when indexed.
    pub(super) len: u64,
    pub(super) blocks: Vec<Block>,
}

/// A run of whole lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Block {
    pub(super) offset: u64,
    pub(super) len: u64,
    #[serde(flatten)]
    pub(super) span: Span,
    pub(super) scopes: BTreeSet<String>,
}

impl Index {
    /// The span of every block, if any holds records.
    pub(super) fn span(&self) -> Option<Span> {
        let mut blocks = self.blocks.iter().filter(|block| block.span.records > 0);
        let mut span = blocks.next()?.span;
        for block in blocks {
            span.take(block.span);
        }
        Some(span)
    }

    /// Adds the line at `offset`, `len` bytes long, holding `heads`.
    pub(super) fn add_line(&mut self, offset: u64, len: u64, heads: &[Head<'_>], block_bytes: u64) {
        self.len = self.len.max(offset + len);
        if heads.is_empty() {
            return;
        }
        let mut span = Span::of(heads[0].at);
        for head in heads {
            span.take(Span { records: 1, ..Span::of(head.at) });
        }
        let scopes = heads.iter().filter_map(|head| head.scope.as_deref());
        match self.blocks.last_mut() {
            Some(block) if block.len < block_bytes && block.offset + block.len == offset => {
                block.len += len;
                block.span.take(span);
                block.scopes.extend(scopes.map(str::to_owned));
            }
            _ => self.blocks.push(Block {
                offset,
                len,
                span,
                scopes: scopes.map(str::to_owned).collect(),
            }),
        }
    }
}

/// What the index needs of a record.
#[derive(Deserialize)]
pub(super) struct Head<'a> {
    pub(super) at: UnixMillis,
    #[serde(default, borrow)]
    pub(super) scope: Option<std::borrow::Cow<'a, str>>,
}

/// The first line of an index file: what opening the trail reads of a
/// closed segment (its blocks follow on the second line).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IndexHeader {
    /// The segment's length when indexed.
    pub(super) len: u64,
    /// The span of its records, if it holds any.
    pub(super) span: Option<Span>,
}

/// The longest header line read.
const MAX_HEADER: u64 = 4096;

impl IndexHeader {
    /// The header of the index file at `path`; `None` when it is missing
    /// or unreadable.
    pub(super) fn read(path: &Path) -> Option<IndexHeader> {
        use std::io::{BufRead, Read};
        let file = std::fs::File::open(path).ok()?;
        let mut line = Vec::new();
        std::io::BufReader::new(file.take(MAX_HEADER)).read_until(b'\n', &mut line).ok()?;
        serde_json::from_slice(line.strip_suffix(b"\n")?).ok()
    }
}

impl Index {
    /// The index file's bytes: the [`IndexHeader`] line, then the blocks.
    pub(super) fn to_file(&self) -> Vec<u8> {
        let header = IndexHeader { len: self.len, span: self.span() };
        let mut bytes = serde_json::to_vec(&header).unwrap_or_default();
        bytes.push(b'\n');
        serde_json::to_writer(&mut bytes, &self.blocks).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// An index from its file's bytes; `None` when they are not one.
    pub(super) fn from_file(bytes: &[u8]) -> Option<Index> {
        let mut lines = bytes.splitn(2, |&byte| byte == b'\n');
        let header: IndexHeader = serde_json::from_slice(lines.next()?).ok()?;
        let blocks: Vec<Block> = serde_json::from_slice(lines.next()?).ok()?;
        let index = Index { len: header.len, blocks };
        (index.span() == header.span).then_some(index)
    }

    /// The index of a segment's `bytes` (read from `path`, named in
    /// warnings), and the length of its whole lines (a torn last line is
    /// not one).
    pub(super) fn of_segment(bytes: &[u8], path: &Path, block_bytes: u64) -> (Index, u64) {
        let mut index = Index::default();
        let whole = scan_lines(bytes, 0, |offset, len, line| {
            let heads = line_heads(line, path, offset).unwrap_or_default();
            index.add_line(offset, len, &heads, block_bytes);
        });
        index.len = bytes.len() as u64;
        (index, whole)
    }
}

/// Calls `each` with the offset (from `base`), length and bytes of every
/// whole, non-empty line of `bytes`; gives the length of the whole lines.
pub(super) fn scan_lines<'a>(
    bytes: &'a [u8],
    base: u64,
    mut each: impl FnMut(u64, u64, &'a [u8]),
) -> u64 {
    let mut at = 0;
    while let Some(end) = bytes[at..].iter().position(|&byte| byte == b'\n') {
        let line = &bytes[at..at + end];
        if !line.is_empty() {
            each(base + at as u64, end as u64 + 1, line);
        }
        at += end + 1;
    }
    at as u64
}

/// The heads of a line's records, or `None` (with a warning) when it is not
/// a JSON array of records.
fn line_heads<'a>(line: &'a [u8], path: &Path, offset: u64) -> Option<Vec<Head<'a>>> {
    match serde_json::from_slice::<Vec<Head<'a>>>(line) {
        Ok(heads) => Some(heads),
        Err(error) => {
            tracing::warn!(segment = %path.display(), offset, %error, "skipped an unreadable line of the audit trail (a write cut short)");
            None
        }
    }
}

/// The records of a line, or none (with a warning) when it is unreadable.
pub(super) fn line_records(line: &[u8], path: &Path, offset: u64) -> Vec<AuditRecord> {
    match serde_json::from_slice::<Vec<AuditRecord>>(line) {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(segment = %path.display(), offset, %error, "skipped an unreadable line of the audit trail (a write cut short)");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_cut_by_size_and_hold_their_lines_times_and_scopes() {
        let mut index = Index::default();
        let head = |at, scope: &'static str| Head { at, scope: Some(scope.into()) };
        index.add_line(0, 60, &[head(5, "a/b/c"), head(7, "a/b/d")], 100);
        index.add_line(60, 50, &[head(3, "a/b/c")], 100);
        index.add_line(110, 10, &[head(9, "x/y/z")], 100);
        // An unreadable line: no records, and the next block starts apart.
        index.add_line(120, 5, &[], 100);
        index.add_line(125, 5, &[head(1, "a/b/c")], 100);
        assert_eq!(index.len, 130);
        let blocks: Vec<_> = index
            .blocks
            .iter()
            .map(|block| (block.offset, block.len, block.span, block.scopes.len()))
            .collect();
        assert_eq!(
            blocks,
            [
                (0, 110, Span { min_at: 3, max_at: 7, records: 3 }, 2),
                (110, 10, Span { min_at: 9, max_at: 9, records: 1 }, 1),
                (125, 5, Span { min_at: 1, max_at: 1, records: 1 }, 1),
            ]
        );
        assert_eq!(index.span(), Some(Span { min_at: 1, max_at: 9, records: 5 }));
        assert!(index.blocks[0].span.holds(3) && !index.blocks[0].span.holds(8));
    }

    #[test]
    fn index_files_round_trip_and_their_header_reads_alone() {
        let mut index = Index::default();
        index.add_line(0, 60, &[Head { at: 5, scope: Some("a/b/c".into()) }], 100);
        index.add_line(60, 8, &[], 100);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.idx");
        std::fs::write(&path, index.to_file()).unwrap();
        assert_eq!(Index::from_file(&std::fs::read(&path).unwrap()), Some(index.clone()));
        let header = IndexHeader::read(&path).unwrap();
        assert_eq!(header, IndexHeader { len: 68, span: index.span() });
        // A header that disagrees with its blocks, half a file, no file.
        let bytes = index.to_file();
        let lied =
            String::from_utf8(bytes.clone()).unwrap().replacen("\"max_at\":5", "\"max_at\":6", 1);
        assert_eq!(Index::from_file(lied.as_bytes()), None);
        assert_eq!(Index::from_file(&bytes[..bytes.len() / 2]), None);
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(IndexHeader::read(&path), None);
        assert_eq!(IndexHeader::read(&dir.path().join("none.idx")), None);
    }
}

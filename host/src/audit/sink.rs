//! The JSON-lines copy of the audit trail for a log shipper: one record per
//! line, appended to a file (created owner-only) or written to stdout (the
//! host logs to stderr, so stdout carries records only). A file moved away
//! (log rotation) or replaced is noticed before the next batch, and its
//! path opened again.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::str::FromStr;

use crate::store::AuditRecord;

/// Where the JSON lines go: `-` for stdout, else a file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// The process's standard output.
    Stdout,
    /// A file, appended to (created with mode 0600).
    File(PathBuf),
}

impl FromStr for SinkTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "" => Err("expected `-` (standard output) or a file's path".to_owned()),
            "-" => Ok(SinkTarget::Stdout),
            path => Ok(SinkTarget::File(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for SinkTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkTarget::Stdout => f.write_str("standard output"),
            SinkTarget::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// An open JSON-lines sink.
pub struct JsonLines {
    target: SinkTarget,
    out: Output,
}

enum Output {
    Stdout(io::Stdout),
    /// The file, and the identity (device, inode) it had when opened.
    File(File, Option<(u64, u64)>),
}

/// The device and inode of `metadata`, where the platform has them.
fn identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// Opens `path` to append, creating it owner-only.
fn open_file(path: &std::path::Path) -> io::Result<Output> {
    let mut options = File::options();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    let opened = identity(&file.metadata()?);
    Ok(Output::File(file, opened))
}

impl fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLines").field("target", &self.target).finish_non_exhaustive()
    }
}

impl JsonLines {
    /// Opens `target`: a file is created owner-only if it is not there, and
    /// appended to.
    pub fn open(target: &SinkTarget) -> io::Result<Self> {
        let out = match target {
            SinkTarget::Stdout => Output::Stdout(io::stdout()),
            SinkTarget::File(path) => open_file(path)?,
        };
        Ok(JsonLines { target: target.clone(), out })
    }

    /// Where the lines go.
    pub fn target(&self) -> &SinkTarget {
        &self.target
    }

    /// Whether a write may block for long: a sync (`durable`) does, and so
    /// may standard output (a pipe whose reader is slow); a file's write
    /// goes to the page cache.
    pub fn may_block(&self, durable: bool) -> bool {
        durable || matches!(self.out, Output::Stdout(_))
    }

    /// Writes `records`, one line each, in one write; with `durable`, a file
    /// is synced to disk before this returns. An error (a full disk) means
    /// the batch may be partly written; the caller refuses its actions.
    pub fn write(&mut self, records: &[AuditRecord], durable: bool) -> io::Result<()> {
        let mut lines = Vec::with_capacity(records.len() * 256);
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(io::Error::other)?;
            lines.push(b'\n');
        }
        self.reopen_if_rotated()?;
        match &mut self.out {
            Output::Stdout(stdout) => {
                let mut stdout = stdout.lock();
                stdout.write_all(&lines)?;
                stdout.flush()
            }
            Output::File(file, _) => {
                file.write_all(&lines)?;
                if durable {
                    file.sync_data()?;
                }
                Ok(())
            }
        }
    }
}

impl JsonLines {
    /// Opens the path again when it no longer names the file open (moved
    /// away by log rotation, removed, or replaced).
    fn reopen_if_rotated(&mut self) -> io::Result<()> {
        let (SinkTarget::File(path), Output::File(_, opened)) = (&self.target, &self.out) else {
            return Ok(());
        };
        let current = std::fs::metadata(path).ok().and_then(|metadata| identity(&metadata));
        if current.is_none() || current != *opened {
            self.out = open_file(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::ActorKind;
    use crate::store::{AuditAction, AuditActor};

    #[test]
    fn targets_parse() {
        assert_eq!("-".parse::<SinkTarget>().unwrap(), SinkTarget::Stdout);
        assert_eq!(
            "/var/log/platos/audit.jsonl".parse::<SinkTarget>().unwrap(),
            SinkTarget::File("/var/log/platos/audit.jsonl".into())
        );
        assert!(" ".parse::<SinkTarget>().unwrap_err().contains("expected `-`"));
    }

    #[test]
    fn records_are_appended_as_lines_to_an_owner_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let target = SinkTarget::File(path.clone());
        let draft = crate::audit::AuditDraft::new(
            AuditAction::Resolve,
            AuditActor::of_kind(ActorKind::Host),
        );
        let mut sink = JsonLines::open(&target).unwrap();
        sink.write(&[draft.ok(), draft.refused("no_key_linked")], false).unwrap();
        drop(sink);
        JsonLines::open(&target).unwrap().write(&[draft.ok()], true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<AuditRecord> =
            text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].code.as_deref(), Some("no_key_linked"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_rotated_file_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut sink = JsonLines::open(&SinkTarget::File(path.clone())).unwrap();
        let draft = crate::audit::AuditDraft::new(
            AuditAction::Resolve,
            AuditActor::of_kind(ActorKind::Host),
        );
        sink.write(&[draft.ok()], false).unwrap();
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        sink.write(&[draft.ok(), draft.ok()], false).unwrap();
        let lines =
            |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap().lines().count();
        assert_eq!((lines("audit.jsonl.1"), lines("audit.jsonl")), (1, 2));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error() {
        let mut sink = JsonLines::open(&SinkTarget::File("/dev/full".into())).unwrap();
        let draft =
            crate::audit::AuditDraft::new(AuditAction::VarSet, AuditActor::of_kind(ActorKind::Cli));
        let error = sink.write(&[draft.ok()], true).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC));
    }
}

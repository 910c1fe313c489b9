//! The audit trail of earlier releases (up to commit `2115845`), a sled
//! database in `<data_dir>/audit`, copied into the segment files of
//! [`super::FileAudit`] the first time the trail opens there. Nothing is lost: the records are written (and synced)
//! before the database's files are removed, and a copy a crash interrupts is
//! done again on the next open, adding no record twice (the trail leaves out
//! ids it holds).
//!
//! Those kept their records in the tree `records` as pages: key
//! `{at: u64 BE}{first id (8 bytes)}`, value `{last id (8 bytes)}` then a
//! JSON array of the page's records; the tree `by-scope` only indexed them.

use std::path::Path;

use super::StoreError;
use super::audit::AuditRecord;

/// The files a sled database keeps in its directory.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];

/// The most records copied in one write.
const CHUNK: usize = 1024;

/// Copies the records of an earlier release's sled audit database in `dir`, if
/// there is one, through `write` (which makes them durable), then removes
/// the database's files.
pub(super) fn import_sled_trail(
    dir: &Path,
    mut write: impl FnMut(&[AuditRecord]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if !SLED_FILES[..2].iter().any(|name| dir.join(name).exists()) {
        return Ok(());
    }
    let records = read_pages(dir)?;
    for chunk in records.chunks(CHUNK) {
        write(chunk)?;
    }
    remove_sled_files(dir)?;
    tracing::info!(
        dir = %dir.display(),
        records = records.len(),
        "copied the audit records of an earlier release's sled database into the audit segments"
    );
    Ok(())
}

/// Every record of the database's pages, in key order (by time).
fn read_pages(dir: &Path) -> Result<Vec<AuditRecord>, StoreError> {
    let db = super::sled_db::open(dir, || {
        format!(
            "the audit database {} is in use (is a `platos-host serve` of an earlier release running on this data directory? stop it first)",
            dir.display()
        )
    })?;
    let pages = db.open_tree("records").map_err(StoreError::backend)?;
    let mut records = Vec::new();
    for entry in pages.iter() {
        let (key, value) = entry.map_err(StoreError::backend)?;
        let page: Vec<AuditRecord> = value
            .get(8..)
            .ok_or_else(|| "too short".to_owned())
            .and_then(|json| serde_json::from_slice(json).map_err(|error| error.to_string()))
            .map_err(|why| {
                StoreError::Corrupt(format!(
                    "the audit page {} of the sled database in {} is unreadable ({why}); nothing was copied or removed",
                    hex::encode(&key),
                    dir.display()
                ))
            })?;
        records.extend(page);
    }
    Ok(records)
}

/// Removes the sled database's files (its snapshots too).
fn remove_sled_files(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(StoreError::backend)? {
        let entry = entry.map_err(StoreError::backend)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let removed = if name == "blobs" {
            std::fs::remove_dir_all(&path)
        } else if SLED_FILES.contains(&name.as_ref()) || name.starts_with("snap.") {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        removed.map_err(StoreError::backend)?;
    }
    Ok(())
}

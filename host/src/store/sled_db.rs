//! Opening the host's sled databases (the store, the API tokens, the audit
//! trail) one way: in an owner-only directory (0700, files 0600, whatever
//! the umask), waiting a little for a handle this process just dropped, and
//! past a sled crash bug.

use std::path::Path;
use std::time::Duration;

use super::StoreError;

/// How long an open waits for the directory's lock: a database just dropped
/// in this process releases it once sled's background threads end.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens (or creates) the sled database in `path`. When another process
/// holds it, the error is `in_use()` (what it is, and what to do instead).
///
/// It works around a sled 0.34.7 crash bug: opening writes a new snapshot
/// as `snap.{lsn}.generating` and renames it when complete, but the next
/// open also considers `.generating` files and picks one over the last
/// complete snapshot, so a process killed while opening leaves a database
/// that fails with "Read corrupted data". An unfinished snapshot is never
/// the committed state (the rename is the commit), so on that error it is
/// removed and the open retried: sled then recovers from the last complete
/// snapshot and the log, which hold every acknowledged write.
pub(super) fn open(path: &Path, in_use: impl FnOnce() -> String) -> Result<sled::Db, StoreError> {
    open_with(path, sled::Config::new(), in_use)
}

/// [`open`] with `config` (its path set here).
pub(super) fn open_with(
    path: &Path,
    config: sled::Config,
    in_use: impl FnOnce() -> String,
) -> Result<sled::Db, StoreError> {
    crate::private_fs::create_private_dir(path).map_err(StoreError::backend)?;
    let config = config.path(path);
    let opened = match open_waiting(&config) {
        Err(sled::Error::Corruption { .. }) if remove_unfinished_snapshots(path)? > 0 => {
            tracing::warn!(
                path = %path.display(),
                "removed an unfinished sled snapshot left by a crash; recovering from the log"
            );
            open_waiting(&config)
        }
        result => result,
    };
    let db = opened.map_err(|error| match error {
        sled::Error::Io(error) if is_lock_error(&error) => {
            StoreError::backend(std::io::Error::other(in_use()))
        }
        error => StoreError::backend(error),
    })?;
    crate::private_fs::tighten_created(path);
    Ok(db)
}

/// Whether `error` is sled's "another process holds the directory".
fn is_lock_error(error: &std::io::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

fn open_waiting(config: &sled::Config) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(error))
                if is_lock_error(&error) && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Removes the `snap.*.generating` files of `path`. Returns how many.
fn remove_unfinished_snapshots(path: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(path).map_err(StoreError::backend)? {
        let entry = entry.map_err(StoreError::backend)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(StoreError::backend)?;
            removed += 1;
        }
    }
    Ok(removed)
}

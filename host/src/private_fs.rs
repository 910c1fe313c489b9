//! Files and directories only the host's user may read: everything the host
//! keeps (the data directory, the sled store's and the token database's files,
//! the generated master key and operator token, the compiled-plugin cache) is
//! created 0700 (directories) or 0600 (files), whatever the umask.
//!
//! Three layers: the binary sets its umask to 077 first thing
//! ([`restrict_umask`]), so whatever a dependency (sled) creates is private;
//! the host creates its own directories and files with explicit modes
//! ([`create_private_dir`], [`create_private_file`]), and restrict what a
//! library created under a permissive umask right after it did
//! ([`tighten_created`]); and opening a store tightens what an earlier, more
//! permissive run left, with a warning ([`tighten_data_dir`],
//! [`tighten_or_warn`]). Off Unix these are plain creations.

use std::fs::File;
use std::io;
use std::path::Path;

/// The mode of the host's directories.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the host's files.
pub const FILE_MODE: u32 = 0o600;

/// Whether permission bits `mode` give nothing to group or others.
pub fn is_private(mode: u32) -> bool {
    mode & 0o077 == 0
}

/// Sets the process umask to 077, so every file and directory this process
/// creates, through any library, has no group or other permissions. Call it
/// first in `main`, before any thread starts (the command line does, for
/// every command but `plugin new`).
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        // SAFETY: `umask` only replaces the process's file-creation mask; it
        // cannot fail and touches no memory.
        unsafe {
            libc::umask(0o077);
        }
    }
}

/// Creates `path` and its missing parents with mode 0700.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(path)
}

/// Creates the new file `path` with mode 0600 for writing (its parent 0700
/// if missing); fails if it exists.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    options.open(path)
}

/// Removes group and other permissions from `path` and, if it is a
/// directory, from everything under it (symbolic links are not followed).
/// Returns how many entries were changed.
pub fn tighten(path: &Path) -> io::Result<usize> {
    let metadata = std::fs::symlink_metadata(path)?;
    let mut changed = usize::from(tighten_one(path, &metadata)?);
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            // A file removed meanwhile (sled's temporary files) is no fault.
            match tighten(&entry.path()) {
                Ok(count) => changed += count,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(changed)
}

/// [`tighten`] after a library (sled) created files under `path`: what it
/// changed is logged at debug level (this process made it, under a
/// permissive umask), a failure as a warning.
pub fn tighten_created(path: &Path) {
    match tighten(path) {
        Ok(0) => {}
        Ok(changed) => tracing::debug!(changed, "restricted new files under {}", path.display()),
        Err(error) => {
            tracing::warn!(%error, "cannot restrict the permissions under {}", path.display())
        }
    }
}

/// [`tighten`] on what an earlier run left, with a warning naming what
/// changed or why it could not (the store still opens: its directory is
/// private either way).
pub fn tighten_or_warn(path: &Path) {
    match tighten(path) {
        Ok(0) => {}
        Ok(changed) => tracing::warn!(
            "{changed} file(s) or folder(s) under {} were readable by other users; now owner-only",
            path.display()
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot restrict the permissions under {}", path.display())
        }
    }
}

/// What the host keeps in its data directory: [`tighten_data_dir`] restricts
/// these and nothing else there.
pub const DATA_DIR_ENTRIES: [&str; 6] = [
    crate::store::STORE_DIR,
    crate::api::auth::TOKENS_DIR,
    crate::store::AUDIT_DIR,
    crate::api::bootstrap::ENCRYPTION_KEY_FILE,
    crate::api::bootstrap::OPERATOR_TOKEN_FILE,
    CACHE_DIR,
];

/// The compiled-plugin cache's directory under the data directory.
pub const CACHE_DIR: &str = "cache";

/// Restricts the data directory and the host's entries in it
/// ([`DATA_DIR_ENTRIES`]; other files there are not the host's), with a
/// warning when anything was open to other users, as a data directory an
/// earlier release or a permissive umask left. What cannot be changed (not
/// the owner) is left with a warning.
pub fn tighten_data_dir(path: &Path) {
    let Ok(metadata) = std::fs::metadata(path) else { return };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        match tighten_one(path, &metadata) {
            Ok(false) => {}
            Ok(true) => tracing::warn!(
                "the data directory {} was mode {mode:03o}, open to other users; set it to {DIR_MODE:03o}",
                path.display()
            ),
            Err(error) => tracing::warn!(
                %error,
                "the data directory {} is mode {mode:03o}, open to other users, and cannot be restricted",
                path.display()
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    for entry in DATA_DIR_ENTRIES {
        let entry = path.join(entry);
        if entry.exists() {
            tighten_or_warn(&entry);
        }
    }
}

/// Clears the group and other bits of one entry (not a symbolic link).
/// `true` if it changed.
fn tighten_one(path: &Path, metadata: &std::fs::Metadata) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if metadata.file_type().is_symlink() || is_private(mode) {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, metadata);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_modes() {
        assert!(is_private(0o600) && is_private(0o700) && is_private(0o100_600));
        assert!(!is_private(0o644) && !is_private(0o640) && !is_private(0o701));
    }

    #[cfg(unix)]
    #[test]
    fn created_private_and_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&nested)), (0o700, 0o700));
        let file = nested.join("f");
        drop(create_private_file(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert!(create_private_file(&file).is_err(), "an existing file is not reused");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(tighten(&root.path().join("a")).unwrap(), 2);
        assert_eq!((mode(&nested), mode(&file)), (0o700, 0o600));
        assert_eq!(tighten(&root.path().join("a")).unwrap(), 0);

        // The data directory: itself and the host's entries, nothing else.
        let data = root.path().join("data");
        create_private_dir(&data.join("store/blobs")).unwrap();
        for name in ["store/db", "encryption.key", "notes.txt"] {
            std::fs::write(data.join(name), "x").unwrap();
            std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        for dir in ["", "store", "store/blobs"] {
            std::fs::set_permissions(data.join(dir), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        tighten_data_dir(&data);
        for (name, want) in [
            ("", 0o700),
            ("store", 0o700),
            ("store/blobs", 0o700),
            ("store/db", 0o600),
            ("encryption.key", 0o600),
            ("notes.txt", 0o644),
        ] {
            assert_eq!(mode(&data.join(name)), want, "{name}");
        }
    }
}

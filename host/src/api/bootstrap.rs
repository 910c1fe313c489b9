//! The first start: a generated master key when `ENCRYPTION_KEY` is not set,
//! and an operator token when there is none. Both are written to files of
//! mode 0600 under the data directory, and only their paths are printed.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::auth::TokenStore;
use crate::crypto::{ENCRYPTION_KEY_VAR, Keyring};

/// The generated master key's file under the data directory.
pub const ENCRYPTION_KEY_FILE: &str = "encryption.key";
/// The first operator token's file under the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `ENCRYPTION_KEY` in the environment.
    Environment,
    /// A key file written by an earlier start.
    File(PathBuf),
    /// A key file generated just now.
    Generated(PathBuf),
}

/// Writes `contents` to a new file `path` readable by its owner only (0600,
/// its parent 0700 if missing), failing if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = crate::private_fs::create_private_file(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The keyring: `ENCRYPTION_KEY` (and `ENCRYPTION_KEY_PREVIOUS`) from
/// `lookup` when set (a malformed value is refused); otherwise the key in
/// `<data_dir>/encryption.key`, generated there (32 hex characters, 0600) on
/// the first start when `generate` is true.
pub fn keyring(
    data_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<OsString>,
    generate: bool,
) -> anyhow::Result<(Keyring, KeySource)> {
    if lookup(ENCRYPTION_KEY_VAR).is_some() {
        return Ok((Keyring::from_lookup(lookup)?, KeySource::Environment));
    }
    let path = data_dir.join(ENCRYPTION_KEY_FILE);
    let (text, source) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            crate::private_fs::tighten_or_warn(&path);
            (Zeroizing::new(text), KeySource::File(path.clone()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && generate => {
            let key = Zeroizing::new(hex::encode(crate::crypto::random_bytes::<16>()));
            let mut line = Zeroizing::new(key.as_str().to_owned());
            line.push('\n');
            write_private_file(&path, line.as_bytes()).with_context(|| {
                format!("cannot write the generated master key to {}", path.display())
            })?;
            (key, KeySource::Generated(path.clone()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{ENCRYPTION_KEY_VAR} is not set and there is no {}: set {ENCRYPTION_KEY_VAR} (32 ASCII bytes; `openssl rand -hex 16`), or start `platos-host serve` once to generate one",
            path.display()
        ),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the master key file {}", path.display()));
        }
    };
    let value = Zeroizing::new(text.trim().to_owned());
    let keyring = Keyring::from_lookup(&|name| {
        if name == ENCRYPTION_KEY_VAR { Some(OsString::from(value.as_str())) } else { lookup(name) }
    })
    .with_context(|| format!("the master key file {} is malformed", path.display()))?;
    Ok((keyring, source))
}

/// What [`operator_token`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorToken {
    /// One was created and written to this file.
    Created(PathBuf),
    /// One exists; the file from the first start is still there.
    InFile(PathBuf),
    /// One exists in the token records at this location, and this data
    /// directory has no file of it: the file was removed, or (on a shared
    /// store) another host created the token and wrote it in its own data
    /// directory.
    Exists(String),
}

/// Makes sure an operator token exists: with none, creates one and writes it
/// to `<data_dir>/operator.token` (0600, replacing a stale file). On a
/// shared store, of hosts starting together on an empty token table exactly
/// one creates it ([`TokenStore::create_first_operator`]).
pub async fn operator_token(data_dir: &Path, tokens: &TokenStore) -> anyhow::Result<OperatorToken> {
    let path = data_dir.join(OPERATOR_TOKEN_FILE);
    let Some(issued) = tokens.create_first_operator("first start").await? else {
        if !path.exists() {
            return Ok(OperatorToken::Exists(tokens.location()));
        }
        crate::private_fs::tighten_or_warn(&path);
        return Ok(OperatorToken::InFile(path));
    };
    if path.exists() {
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot replace the stale {}", path.display()))?;
    }
    let mut line = Zeroizing::new(issued.token.expose_secret().to_owned());
    line.push('\n');
    write_private_file(&path, line.as_bytes())
        .with_context(|| format!("cannot write the operator token to {}", path.display()))?;
    Ok(OperatorToken::Created(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_generated_once_then_reused_and_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let (first, source) = keyring(dir.path(), &none, true).unwrap();
        assert!(matches!(source, KeySource::Generated(_)));
        let path = dir.path().join(ENCRYPTION_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (second, source) = keyring(dir.path(), &none, true).unwrap();
        assert_eq!(source, KeySource::File(path));
        assert_eq!(first.current_id(), second.current_id());

        let malformed = |name: &str| (name == ENCRYPTION_KEY_VAR).then(|| OsString::from("short"));
        let error = keyring(dir.path(), &malformed, true).unwrap_err().to_string();
        assert!(error.contains("must be exactly 32 ASCII bytes"), "{error}");

        let empty = tempfile::tempdir().unwrap();
        let error = keyring(empty.path(), &none, false).unwrap_err().to_string();
        assert!(error.contains("is not set"), "{error}");
    }
}

//! Which backend holds the store: `--store sled|postgres://…` (env
//! `PLATOS_STORE`), and opening it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use super::{
    AuditTrail, Blocking, FileAudit, PostgresAudit, PostgresStore, PostgresTokens, SecretStore,
    SledStore, SledTokens, StoreError, StoreOptions, TokenRecords,
};
use crate::crypto::Keyring;

/// Where the store lives. `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreBackend {
    /// The embedded sled database under `<data_dir>/store` (the default).
    #[default]
    Sled,
    /// A PostgreSQL database, shared by every host given the same URL
    /// (`postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`).
    Postgres(String),
}

/// A `--store` value that is neither `sled` nor a PostgreSQL URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown store `{0}`: expected `sled` (the embedded store under the data directory) or postgres://USER@HOST:PORT/DATABASE"
)]
pub struct UnknownBackend(String);

impl FromStr for StoreBackend {
    type Err = UnknownBackend;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("sled") {
            return Ok(StoreBackend::Sled);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreBackend::Postgres(text.to_owned()));
        }
        // The text may be a mistyped URL holding a password: show its scheme only.
        let shown = text.split_once("://").map_or(text, |(scheme, _)| scheme);
        Err(UnknownBackend(shown.chars().take(40).collect()))
    }
}

impl fmt::Display for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreBackend::Sled => f.write_str("sled"),
            StoreBackend::Postgres(url) => f.write_str(&super::postgres_store::redacted(url)),
        }
    }
}

impl fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreBackend({self})")
    }
}

impl StoreBackend {
    /// Whether this is a PostgreSQL URL with a password in it (which must
    /// come from the environment, never from the command line).
    pub fn has_password(&self) -> bool {
        match self {
            StoreBackend::Sled => false,
            StoreBackend::Postgres(url) => tokio_postgres::Config::from_str(url)
                .is_ok_and(|config| config.get_password().is_some_and(|pw| !pw.is_empty())),
        }
    }

    /// Opens the store: sled under `data_dir` (created 0700), or the
    /// PostgreSQL database (migrated to this host's schema).
    pub async fn open(
        &self,
        data_dir: &Path,
        keyring: Keyring,
        options: StoreOptions,
    ) -> Result<Arc<dyn SecretStore>, StoreError> {
        Ok(match self {
            StoreBackend::Sled => {
                Arc::new(Blocking::new(SledStore::open_in_data_dir(data_dir, keyring, options)?))
            }
            StoreBackend::Postgres(url) => {
                Arc::new(PostgresStore::open(url, keyring, options).await?)
            }
        })
    }

    /// Opens the store ([`StoreBackend::open`]), its API tokens and its
    /// audit trail: for sled, the token database and the audit segments
    /// under `data_dir` ([`SledTokens`], [`FileAudit`]); for PostgreSQL, the
    /// token and audit tables of the same database, over the store's
    /// connections ([`PostgresTokens`], [`PostgresAudit`]).
    pub async fn open_all(
        &self,
        data_dir: &Path,
        keyring: Keyring,
        options: StoreOptions,
    ) -> Result<OpenedStore, StoreError> {
        Ok(match self {
            StoreBackend::Sled => OpenedStore {
                store: Arc::new(Blocking::new(SledStore::open_in_data_dir(
                    data_dir, keyring, options,
                )?)),
                tokens: Arc::new(SledTokens::open_in_data_dir(data_dir)?),
                audit: Arc::new(FileAudit::open_in_data_dir(data_dir)?),
            },
            StoreBackend::Postgres(url) => {
                let store = PostgresStore::open(url, keyring, options).await?;
                OpenedStore {
                    tokens: Arc::new(PostgresTokens::of_store(&store)),
                    audit: Arc::new(PostgresAudit::of_store(&store)),
                    store: Arc::new(store),
                }
            }
        })
    }

    /// The API tokens alone, without the master key (the `token` commands):
    /// the sled token database under `data_dir`, or the PostgreSQL token
    /// table (the schema migrated if it is behind).
    pub async fn open_tokens(&self, data_dir: &Path) -> Result<Arc<dyn TokenRecords>, StoreError> {
        Ok(match self {
            StoreBackend::Sled => Arc::new(SledTokens::open_in_data_dir(data_dir)?),
            StoreBackend::Postgres(url) => Arc::new(PostgresTokens::open(url).await?),
        })
    }

    /// The audit trail alone, without the master key (for the command
    /// line): the segment files under `<data_dir>/audit`, or the PostgreSQL
    /// audit table (the schema migrated if it is behind).
    pub async fn open_audit(&self, data_dir: &Path) -> Result<Arc<dyn AuditTrail>, StoreError> {
        Ok(match self {
            StoreBackend::Sled => Arc::new(FileAudit::open_in_data_dir(data_dir)?),
            StoreBackend::Postgres(url) => Arc::new(PostgresAudit::open(url).await?),
        })
    }
}

/// What [`StoreBackend::open_all`] opens: the store, its API tokens and its
/// audit trail.
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn SecretStore>,
    /// The API tokens' rows.
    pub tokens: Arc<dyn TokenRecords>,
    /// The audit trail.
    pub audit: Arc<dyn AuditTrail>,
}

impl fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedStore")
            .field("tokens", &self.tokens)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_and_never_show_a_password() {
        assert_eq!("sled".parse::<StoreBackend>().unwrap(), StoreBackend::Sled);
        assert_eq!(" SLED ".parse::<StoreBackend>().unwrap(), StoreBackend::Sled);
        let url = "postgres://platos:pw-canary-1@db.internal:5433/platos";
        let backend: StoreBackend = url.parse().unwrap();
        assert_eq!(backend, StoreBackend::Postgres(url.to_owned()));
        assert_eq!(backend.to_string(), "postgres://platos@db.internal:5433/platos");
        assert!(backend.has_password());
        assert!(
            !"postgres://platos@db.internal/platos".parse::<StoreBackend>().unwrap().has_password()
        );
        assert!(!StoreBackend::Sled.has_password());
        assert!(!format!("{backend:?}").contains("pw-canary"));
        assert!(matches!("postgresql://u@h/d".parse(), Ok(StoreBackend::Postgres(_))));
        for bad in ["", "sqlite", "mysql://root:pw-canary-2@h/d", "postgres:/x"] {
            let message = bad.parse::<StoreBackend>().unwrap_err().to_string();
            assert!(message.contains("expected `sled`"), "{message}");
            assert!(!message.contains("pw-canary"), "{message}");
        }
        assert_eq!(StoreBackend::default(), StoreBackend::Sled);
    }
}

//! [`TokenRecords`] in a small sled database of one host, at
//! `<data_dir>/tokens`: tree `tokens`, key the token id, value the
//! [`TokenRow`] as JSON (the layout of every earlier release). Every row is
//! cached in memory (tokens are few and checked on every request; this host
//! is the only writer, as sled holds the database's lock), and each change
//! is flushed to disk on a blocking thread before it returns.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;

use super::StoreError;
use super::tokens::{Pins, Revoked, TokenKind, TokenRecords, TokenRow, oldest_first};

/// The token database's directory under the data directory.
pub const TOKENS_DIR: &str = "tokens";

/// The sled token database, with every row cached in memory.
pub struct SledTokens {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    cache: RwLock<HashMap<String, TokenRow>>,
    /// Held across a check and the change it decides (first operator,
    /// revoke, pins), so they are one step.
    writing: Mutex<()>,
    path: PathBuf,
}

impl fmt::Debug for SledTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledTokens").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn sled_error(error: sled::Error) -> StoreError {
    StoreError::backend(error)
}

fn encode(row: &TokenRow) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(row).map_err(|error| StoreError::Corrupt(error.to_string()))
}

impl SledTokens {
    /// Opens (or creates) the token database at `<data_dir>/tokens`.
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, StoreError> {
        crate::private_fs::tighten_data_dir(data_dir);
        SledTokens::open(&data_dir.join(TOKENS_DIR))
    }

    /// Opens (or creates) the token database in the directory `path`,
    /// waiting up to two seconds for another handle in this process to let
    /// go of it; a database another process holds is refused, naming it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = super::sled_db::open(path, || {
            format!(
                "the token database {} is in use (is `platos-host serve` running on this data directory? then manage tokens through its API: POST /v1/tokens with the operator token)",
                path.display()
            )
        })?;
        let tree = db.open_tree("tokens").map_err(sled_error)?;
        let mut cache = HashMap::new();
        for entry in tree.iter() {
            let (_, value) = entry.map_err(sled_error)?;
            let row: TokenRow = serde_json::from_slice(&value).map_err(|error| {
                StoreError::Corrupt(format!("an unreadable token row: {error}"))
            })?;
            cache.insert(row.id.clone(), row);
        }
        Ok(SledTokens {
            inner: Arc::new(Inner {
                db,
                tree,
                cache: RwLock::new(cache),
                writing: Mutex::new(()),
                path: path.to_owned(),
            }),
        })
    }

    /// Runs `change` on a blocking thread (sled writes and flushes block).
    async fn blocking<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || change(&inner)).await.map_err(|_| {
            StoreError::backend(std::io::Error::other("a token database write was cancelled"))
        })?
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, TokenRow>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, TokenRow>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `row` durably, then caches it.
    fn put(&self, row: &TokenRow) -> Result<(), StoreError> {
        self.tree.insert(row.id.as_bytes(), encode(row)?).map_err(sled_error)?;
        self.db.flush().map_err(sled_error)?;
        self.write().insert(row.id.clone(), row.clone());
        Ok(())
    }

    fn operators(&self) -> usize {
        self.read().values().filter(|row| row.kind == TokenKind::Operator).count()
    }
}

#[async_trait]
impl TokenRecords for SledTokens {
    async fn insert(&self, row: &TokenRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.blocking(move |inner| {
            let _writing = inner.lock();
            inner.put(&row)
        })
        .await
    }

    async fn insert_first_operator(&self, row: &TokenRow) -> Result<bool, StoreError> {
        let row = row.clone();
        self.blocking(move |inner| {
            let _writing = inner.lock();
            if inner.operators() > 0 {
                return Ok(false);
            }
            inner.put(&row).map(|()| true)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self.inner.read().get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<TokenRow>, StoreError> {
        Ok(oldest_first(self.inner.read().values().cloned().collect()))
    }

    async fn set_pins(&self, id: &str, pins: &Pins) -> Result<bool, StoreError> {
        let (id, pins) = (id.to_owned(), pins.clone());
        self.blocking(move |inner| {
            let _writing = inner.lock();
            let Some(mut row) = inner.read().get(&id).cloned() else { return Ok(false) };
            row.pins = pins;
            inner.put(&row).map(|()| true)
        })
        .await
    }

    async fn revoke(&self, id: &str) -> Result<Revoked, StoreError> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            let _writing = inner.lock();
            let Some(kind) = inner.read().get(&id).map(|row| row.kind) else {
                return Ok(Revoked::NotFound);
            };
            if kind == TokenKind::Operator && inner.operators() <= 1 {
                return Ok(Revoked::LastOperator);
            }
            inner.tree.remove(id.as_bytes()).map_err(sled_error)?;
            inner.db.flush().map_err(sled_error)?;
            inner.write().remove(&id);
            Ok(Revoked::Revoked)
        })
        .await
    }

    async fn import(&self, rows: &[TokenRow]) -> Result<usize, StoreError> {
        let rows = rows.to_vec();
        self.blocking(move |inner| {
            let _writing = inner.lock();
            let mut added = 0;
            for row in rows {
                if !inner.read().contains_key(&row.id) {
                    inner.put(&row)?;
                    added += 1;
                }
            }
            Ok(added)
        })
        .await
    }

    fn location(&self) -> String {
        self.inner.path.display().to_string()
    }
}

//! Access tokens: one kind for operators (every scope, token management,
//! metrics) and one bound to a single `organization/project/environment`
//! for agents.
//!
//! A token is `platos_<id>_<secret>`: a 12-hex-digit public id and 256
//! random bits. Only `sha256(token)` is stored, in a small sled database at
//! `<data_dir>/tokens`; a presented token is found by its id and its digest
//! compared in constant time (`subtle`). The token itself is shown once, when
//! it is created, and never logged.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::scope::Scope;
use crate::store::{UnixMillis, now_millis};

/// The token database's directory under the data directory.
pub const TOKENS_DIR: &str = "tokens";
/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "platos_";
/// Hex digits of a token id.
const ID_HEX_LEN: usize = 12;
/// Hex digits of a token's secret part.
const SECRET_HEX_LEN: usize = 64;
/// The longest label accepted.
pub const MAX_LABEL_LEN: usize = 128;

/// What a token may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every scope, token management and metrics.
    Operator,
    /// One scope.
    Scope(Scope),
}

/// The kind of a token, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// An operator token.
    Operator,
    /// An agent token bound to one scope.
    Agent,
}

/// A token's public description: never the token or its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// The public id (the `<id>` in `platos_<id>_<secret>`).
    pub id: String,
    /// Operator or agent.
    pub kind: TokenKind,
    /// The scope of an agent token, `org/project/env`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A name for people.
    pub label: String,
    /// When it was created.
    pub created_at: UnixMillis,
}

/// The stored row: the description and the digest.
#[derive(Clone, Serialize, Deserialize)]
struct StoredToken {
    id: String,
    kind: TokenKind,
    scope: Option<String>,
    label: String,
    created_at: UnixMillis,
    /// `sha256(token)`, hex.
    digest: String,
}

impl StoredToken {
    fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            kind: self.kind,
            scope: self.scope.clone(),
            label: self.label.clone(),
            created_at: self.created_at,
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's public id.
    pub token_id: String,
    /// What it may reach.
    pub grant: Grant,
}

impl Caller {
    /// Whether the caller may act in `scope`.
    pub fn can_access(&self, scope: &Scope) -> bool {
        match &self.grant {
            Grant::Operator => true,
            Grant::Scope(own) => own == scope,
        }
    }

    /// Whether the caller holds an operator token.
    pub fn is_operator(&self) -> bool {
        self.grant == Grant::Operator
    }
}

/// A token just created: the only time its text exists outside the caller.
/// `Debug` redacts the token.
pub struct IssuedToken {
    /// Its description.
    pub info: TokenInfo,
    /// The token.
    pub token: SecretString,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("info", &self.info)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Why the token database failed. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Another process holds the database (a running server).
    #[error(
        "the token database {0} is in use (is `platos-host serve` running on this data directory? then manage tokens through its API: POST /v1/tokens with the operator token)"
    )]
    Locked(PathBuf),
    /// The label is empty, too long or has control characters.
    #[error("invalid label: expected 1-{MAX_LABEL_LEN} characters without control characters")]
    InvalidLabel,
    /// A stored row is unreadable.
    #[error("the token database is inconsistent: {0}")]
    Corrupt(String),
    /// sled failed.
    #[error("token database error: {0}")]
    Backend(#[from] sled::Error),
}

/// The token database, with every row cached in memory (tokens are few and
/// checked on every request).
pub struct TokenStore {
    db: sled::Db,
    tree: sled::Tree,
    cache: RwLock<HashMap<String, StoredToken>>,
    path: PathBuf,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A digest that matches no token, compared against when the id is unknown
/// so both paths cost the same.
const NO_DIGEST: [u8; 32] = [0; 32];

fn digest_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `label` is acceptable.
pub fn valid_label(label: &str) -> bool {
    !label.trim().is_empty()
        && label.chars().count() <= MAX_LABEL_LEN
        && !label.chars().any(char::is_control)
}

impl TokenStore {
    /// Opens (or creates) the token database at `<data_dir>/tokens`.
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, TokenError> {
        crate::private_fs::tighten_data_dir(data_dir);
        TokenStore::open(&data_dir.join(TOKENS_DIR))
    }

    /// Opens (or creates) the token database in the directory `path`,
    /// waiting up to two seconds for another handle in this process to let
    /// go of it.
    pub fn open(path: &Path) -> Result<Self, TokenError> {
        // Owner-only (0700 / 0600), whatever the umask.
        crate::private_fs::create_private_dir(path).map_err(sled::Error::Io)?;
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock") =>
                {
                    if started.elapsed() > Duration::from_secs(2) {
                        return Err(TokenError::Locked(path.to_owned()));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                result => break result?,
            }
        };
        crate::private_fs::tighten_created(path);
        let tree = db.open_tree("tokens")?;
        let mut cache = HashMap::new();
        for entry in tree.iter() {
            let (_, value) = entry?;
            let row: StoredToken = serde_json::from_slice(&value)
                .map_err(|error| TokenError::Corrupt(error.to_string()))?;
            cache.insert(row.id.clone(), row);
        }
        Ok(TokenStore { db, tree, cache: RwLock::new(cache), path: path.to_owned() })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, StoredToken>> {
        self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, StoredToken>> {
        self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a token for `grant`, durably, and returns it (the only time
    /// its text is available).
    pub fn create(&self, grant: &Grant, label: &str) -> Result<IssuedToken, TokenError> {
        if !valid_label(label) {
            return Err(TokenError::InvalidLabel);
        }
        let id = hex::encode(crate::crypto::random_bytes::<{ ID_HEX_LEN / 2 }>());
        let secret = zeroize::Zeroizing::new(hex::encode(crate::crypto::random_bytes::<
            { SECRET_HEX_LEN / 2 },
        >()));
        let token = SecretString::from(format!("{TOKEN_PREFIX}{id}_{}", secret.as_str()));
        let (kind, scope) = match grant {
            Grant::Operator => (TokenKind::Operator, None),
            Grant::Scope(scope) => (TokenKind::Agent, Some(scope.to_string())),
        };
        let row = StoredToken {
            id: id.clone(),
            kind,
            scope,
            label: label.trim().to_owned(),
            created_at: now_millis(),
            digest: hex::encode(digest_of(token.expose_secret())),
        };
        let bytes =
            serde_json::to_vec(&row).map_err(|error| TokenError::Corrupt(error.to_string()))?;
        self.tree.insert(id.as_bytes(), bytes)?;
        self.db.flush()?;
        let info = row.info();
        self.write().insert(id, row);
        Ok(IssuedToken { info, token })
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenInfo> {
        let mut tokens: Vec<TokenInfo> = self.read().values().map(StoredToken::info).collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        tokens
    }

    /// One token's description.
    pub fn get(&self, id: &str) -> Option<TokenInfo> {
        self.read().get(id).map(StoredToken::info)
    }

    /// Revokes a token, durably. `false` if there is none with this id.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        if !self.read().contains_key(id) {
            return Ok(false);
        }
        self.tree.remove(id.as_bytes())?;
        self.db.flush()?;
        Ok(self.write().remove(id).is_some())
    }

    /// How many operator tokens exist.
    pub fn operator_count(&self) -> usize {
        self.read().values().filter(|row| row.kind == TokenKind::Operator).count()
    }

    /// The caller a presented token stands for, if it is valid.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let id = presented
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == ID_HEX_LEN);
        let presented_digest = digest_of(presented);
        let cache = self.read();
        let row = id.and_then(|id| cache.get(id));
        let mut expected = NO_DIGEST;
        if let Some(row) = row
            && hex::decode_to_slice(&row.digest, &mut expected).is_err()
        {
            expected = NO_DIGEST;
        }
        let matches: bool = presented_digest.ct_eq(&expected).into();
        let row = row.filter(|_| matches)?;
        let grant = match (row.kind, &row.scope) {
            (TokenKind::Operator, _) => Grant::Operator,
            (TokenKind::Agent, Some(scope)) => Grant::Scope(scope.parse().ok()?),
            (TokenKind::Agent, None) => return None,
        };
        Some(Caller { token_id: row.id.clone(), grant })
    }

    /// The database's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_bind_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let scope: Scope = "acme/shop/dev".parse().unwrap();
        let agent = store.create(&Grant::Scope(scope.clone()), "ci").unwrap();
        let operator = store.create(&Grant::Operator, "root").unwrap();
        let text = agent.token.expose_secret();
        assert!(text.starts_with("platos_") && text.len() == 7 + 12 + 1 + 64, "{}", text.len());
        assert!(!format!("{agent:?}").contains(text));
        let caller = store.verify(text).unwrap();
        assert_eq!(caller.grant, Grant::Scope(scope.clone()));
        assert!(caller.can_access(&scope));
        assert!(!caller.can_access(&"acme/shop/prod".parse().unwrap()));
        assert!(store.verify(operator.token.expose_secret()).unwrap().is_operator());

        // One changed character, a wrong prefix, garbage: refused.
        let mut tampered = text.to_owned();
        tampered.pop();
        tampered.push(if text.ends_with('0') { '1' } else { '0' });
        for bad in [tampered.as_str(), "", "platos_", "platos_zz_zz", &text[1..]] {
            assert!(store.verify(bad).is_none(), "{bad}");
        }
        assert_eq!(store.operator_count(), 1);
        assert!(store.revoke(&agent.info.id).unwrap());
        assert!(!store.revoke(&agent.info.id).unwrap());
        assert!(store.verify(text).is_none());

        // Persisted: a reopen sees the operator token only.
        let operator_text = operator.token.expose_secret().to_owned();
        drop(store);
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.list().len(), 1);
        assert!(store.verify(&operator_text).is_some());
        assert!(matches!(store.create(&Grant::Operator, " "), Err(TokenError::InvalidLabel)));
    }
}

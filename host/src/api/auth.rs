//! Access tokens, of three kinds ([`TokenKind`]):
//!
//! - **operator**: every scope, token management, metrics;
//! - **admin**, bound to one `organization/project/environment`: everything
//!   an agent may do there, plus changing it: set and unset variables,
//!   relabel, enable and disable keys, and "test key" probes (a probe spends
//!   a request with the key and records its health for the whole scope);
//! - **agent**, bound to one scope: read it (providers, keys' metadata,
//!   variable names, explain, the picker, embedding status) and resolve in
//!   it (resolve, authorize and release its leases).
//!
//! Token management stays with operator tokens. A token bound to one scope
//! sees any other scope exactly as a scope that does not exist.
//!
//! A token is `platos_<id>_<secret>`: a 12-hex-digit public id and 256
//! random bits. Only `sha256(token)` is stored, in a small sled database at
//! `<data_dir>/tokens`; a presented token is found by its id and its digest
//! compared in constant time (`subtle`). The token itself is shown once, when
//! it is created, and never logged.
//!
//! An agent or admin token may carry [`Pins`]: per provider, the key a
//! resolve with this token spends when the request names no pin of its own
//! (the agent's "Provider key" setting). A token without pins resolves the
//! scope default.

use std::collections::{BTreeMap, HashMap};
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
/// The most pins a token carries (one per provider).
pub const MAX_PINS: usize = 64;

/// A token's default pins: provider slug to key id (the key's variable
/// name, e.g. `openai` → `OPENAI_API_KEY_2`).
pub type Pins = BTreeMap<String, String>;

/// What a token may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every scope, token management and metrics.
    Operator,
    /// Read and resolve in one scope.
    Agent(Scope),
    /// Read, resolve and change one scope.
    Admin(Scope),
}

impl Grant {
    /// The grant of a token of `kind`, bound to `scope`; `None` when they do
    /// not fit together (an operator token has no scope, the others need one).
    pub fn new(kind: TokenKind, scope: Option<Scope>) -> Option<Grant> {
        match (kind, scope) {
            (TokenKind::Operator, None) => Some(Grant::Operator),
            (TokenKind::Agent, Some(scope)) => Some(Grant::Agent(scope)),
            (TokenKind::Admin, Some(scope)) => Some(Grant::Admin(scope)),
            _ => None,
        }
    }

    /// The kind of token that carries this grant.
    pub fn kind(&self) -> TokenKind {
        match self {
            Grant::Operator => TokenKind::Operator,
            Grant::Agent(_) => TokenKind::Agent,
            Grant::Admin(_) => TokenKind::Admin,
        }
    }

    /// The scope it is bound to (none for an operator).
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Grant::Operator => None,
            Grant::Agent(scope) | Grant::Admin(scope) => Some(scope),
        }
    }

    /// The label of a token created without one.
    pub fn default_label(&self) -> String {
        match self.scope() {
            None => "operator".to_owned(),
            Some(scope) => format!("{} {scope}", self.kind().name()),
        }
    }
}

/// The kind of a token, as the API spells it (its `kind`, and the `role` a
/// token request asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// An operator token.
    Operator,
    /// An agent token bound to one scope.
    Agent,
    /// An admin token bound to one scope.
    Admin,
}

impl TokenKind {
    /// The name, as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Operator => "operator",
            TokenKind::Agent => "agent",
            TokenKind::Admin => "admin",
        }
    }
}

/// A token's public description: never the token or its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// The public id (the `<id>` in `platos_<id>_<secret>`).
    pub id: String,
    /// Operator, admin or agent.
    pub kind: TokenKind,
    /// The scope of an agent or admin token, `org/project/env`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A name for people.
    pub label: String,
    /// When it was created.
    #[schema(value_type = u64)]
    pub created_at: UnixMillis,
    /// Its default pins, provider slug to key id; absent when it has none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(example = json!({ "openai": "OPENAI_API_KEY_2" }))]
    pub pins: Pins,
}

/// The stored row: the description and the digest. Rows written before
/// admin tokens existed (kinds `operator` and `agent`), and before pins
/// (no `pins`: none), read unchanged; a row without pins is written as
/// before.
#[derive(Clone, Serialize, Deserialize)]
struct StoredToken {
    id: String,
    kind: TokenKind,
    scope: Option<String>,
    label: String,
    created_at: UnixMillis,
    /// `sha256(token)`, hex.
    digest: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pins: Pins,
}

impl StoredToken {
    fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            kind: self.kind,
            scope: self.scope.clone(),
            label: self.label.clone(),
            created_at: self.created_at,
            pins: self.pins.clone(),
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
    /// Whether the caller may read and resolve in `scope`.
    pub fn can_access(&self, scope: &Scope) -> bool {
        match &self.grant {
            Grant::Operator => true,
            Grant::Agent(own) | Grant::Admin(own) => own == scope,
        }
    }

    /// Whether the caller may change `scope`: its variables and its keys'
    /// metadata, and probe its keys.
    pub fn can_administer(&self, scope: &Scope) -> bool {
        match &self.grant {
            Grant::Operator => true,
            Grant::Admin(own) => own == scope,
            Grant::Agent(_) => false,
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
    /// A pin breaks a rule; the message names the entry (never its key id,
    /// which may be a pasted key).
    #[error("invalid pins: {0}")]
    InvalidPins(String),
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

/// [`valid_label`] as a JSON schema: a string of 1-[`MAX_LABEL_LEN`]
/// characters, not blank, without control characters; or null (absent).
pub fn label_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(MAX_LABEL_LEN))
        .pattern(Some(r"^\P{Cc}*[^\s\p{Cc}]\P{Cc}*$"))
        .description(Some(format!(
            "A name for people: 1-{MAX_LABEL_LEN} characters, not blank, no control characters (400 `invalid_label` otherwise)."
        )))
        .into()
}

/// Whether `label` is acceptable.
pub fn valid_label(label: &str) -> bool {
    !label.trim().is_empty()
        && label.chars().count() <= MAX_LABEL_LEN
        && !label.chars().any(char::is_control)
}

/// Checks the pins of a token of `kind`: only an agent or admin token
/// carries pins, at most [`MAX_PINS`], each a provider slug
/// ([`is_valid_slug`](crate::policy::names::is_valid_slug)) to a key id
/// ([`is_valid_env_var_name`](crate::policy::names::is_valid_env_var_name)).
pub fn check_pins(kind: TokenKind, pins: &Pins) -> Result<(), TokenError> {
    use crate::policy::names::{
        MAX_ENV_VAR_LEN, MAX_SLUG_LEN, is_valid_env_var_name, is_valid_slug,
    };
    if pins.is_empty() {
        return Ok(());
    }
    if kind == TokenKind::Operator {
        return Err(TokenError::InvalidPins(
            "an operator token carries no pins (it is bound to no scope): pin on an agent or admin token".to_owned(),
        ));
    }
    if pins.len() > MAX_PINS {
        return Err(TokenError::InvalidPins(format!(
            "{} pins: expected at most {MAX_PINS}, one per provider",
            pins.len()
        )));
    }
    for (provider, key) in pins {
        if !is_valid_slug(provider) {
            let shown: String = provider.chars().take(MAX_SLUG_LEN).collect();
            return Err(TokenError::InvalidPins(format!(
                "{shown:?} is not a provider slug: expected lowercase letters, digits and `-`, at most {MAX_SLUG_LEN} characters, e.g. \"openai\""
            )));
        }
        if !is_valid_env_var_name(key) {
            return Err(TokenError::InvalidPins(format!(
                "the key id of {provider:?} is not a key id (not repeated here, in case it is a key): expected a variable name (an uppercase letter, then uppercase letters, digits or `_`, at most {MAX_ENV_VAR_LEN} characters), e.g. {{\"{provider}\": \"OPENAI_API_KEY_2\"}}"
            )));
        }
    }
    Ok(())
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

    /// Creates a token for `grant` with its default `pins` ([`check_pins`]),
    /// durably, and returns it (the only time its text is available).
    pub fn create(
        &self,
        grant: &Grant,
        label: &str,
        pins: Pins,
    ) -> Result<IssuedToken, TokenError> {
        if !valid_label(label) {
            return Err(TokenError::InvalidLabel);
        }
        check_pins(grant.kind(), &pins)?;
        let id = hex::encode(crate::crypto::random_bytes::<{ ID_HEX_LEN / 2 }>());
        let secret = zeroize::Zeroizing::new(hex::encode(crate::crypto::random_bytes::<
            { SECRET_HEX_LEN / 2 },
        >()));
        let token = SecretString::from(format!("{TOKEN_PREFIX}{id}_{}", secret.as_str()));
        let row = StoredToken {
            id: id.clone(),
            kind: grant.kind(),
            scope: grant.scope().map(ToString::to_string),
            label: label.trim().to_owned(),
            created_at: now_millis(),
            digest: hex::encode(digest_of(token.expose_secret())),
            pins,
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

    /// The key id the token `id` pins for `provider`, if it pins one.
    pub fn pin(&self, id: &str, provider: &str) -> Option<String> {
        self.read().get(id).and_then(|row| row.pins.get(provider).cloned())
    }

    /// Replaces the pins of the token `id`, durably ([`check_pins`]); its
    /// new description, or `None` if there is no token with this id (a
    /// token revoked meanwhile stays revoked).
    pub fn set_pins(&self, id: &str, pins: Pins) -> Result<Option<TokenInfo>, TokenError> {
        let info = {
            let mut cache = self.write();
            let Some(row) = cache.get(id) else { return Ok(None) };
            check_pins(row.kind, &pins)?;
            let mut row = row.clone();
            row.pins = pins;
            let bytes =
                serde_json::to_vec(&row).map_err(|error| TokenError::Corrupt(error.to_string()))?;
            // Only a row still there is replaced: a revoke is never undone.
            let stored =
                self.tree.update_and_fetch(id.as_bytes(), |old| old.map(|_| bytes.clone()))?;
            if stored.is_none() {
                cache.remove(id);
                return Ok(None);
            }
            let info = row.info();
            cache.insert(id.to_owned(), row);
            info
        };
        self.db.flush()?;
        Ok(Some(info))
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
            (kind, Some(scope)) => Grant::new(kind, Some(scope.parse().ok()?))?,
            (_, None) => return None,
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
        let agent = store.create(&Grant::Agent(scope.clone()), "ci", Pins::new()).unwrap();
        let operator = store.create(&Grant::Operator, "root", Pins::new()).unwrap();
        let text = agent.token.expose_secret();
        assert!(text.starts_with("platos_") && text.len() == 7 + 12 + 1 + 64, "{}", text.len());
        assert!(!format!("{agent:?}").contains(text));
        let caller = store.verify(text).unwrap();
        assert_eq!(caller.grant, Grant::Agent(scope.clone()));
        assert!(caller.can_access(&scope));
        assert!(!caller.can_administer(&scope), "an agent token reads and resolves only");
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
        assert!(matches!(
            store.create(&Grant::Operator, " ", Pins::new()),
            Err(TokenError::InvalidLabel)
        ));
    }

    #[test]
    fn admin_tokens_administer_their_scope_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let (dev, prod): (Scope, Scope) =
            ("acme/shop/dev".parse().unwrap(), "acme/shop/prod".parse().unwrap());
        let admin = store.create(&Grant::Admin(dev.clone()), "deployer", Pins::new()).unwrap();
        assert_eq!(
            (admin.info.kind, admin.info.scope.as_deref()),
            (TokenKind::Admin, Some("acme/shop/dev"))
        );
        let caller = store.verify(admin.token.expose_secret()).unwrap();
        assert_eq!(caller.grant, Grant::Admin(dev.clone()));
        assert!(caller.can_access(&dev) && caller.can_administer(&dev));
        assert!(!caller.can_access(&prod) && !caller.can_administer(&prod));
        assert!(!caller.is_operator());
        let operator = store.create(&Grant::Operator, "root", Pins::new()).unwrap();
        let operator = store.verify(operator.token.expose_secret()).unwrap();
        assert!(operator.can_administer(&prod));
        assert_eq!(store.operator_count(), 1, "an admin token is not an operator token");

        // Persisted with its kind.
        let text = admin.token.expose_secret().to_owned();
        drop(store);
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.verify(&text).unwrap().grant, Grant::Admin(dev.clone()));
        let listed = serde_json::to_value(store.get(&admin.info.id).unwrap()).unwrap();
        assert_eq!(listed["kind"], "admin");

        // Kinds and scopes that do not fit together make no grant.
        assert_eq!(Grant::new(TokenKind::Operator, Some(dev.clone())), None);
        assert_eq!(Grant::new(TokenKind::Admin, None), None);
        assert_eq!(Grant::new(TokenKind::Agent, None), None);
        assert_eq!(Grant::Admin(dev.clone()).default_label(), "admin acme/shop/dev");
        assert_eq!(Grant::Agent(dev).default_label(), "agent acme/shop/dev");
    }

    /// The rows a token database held before admin tokens existed, byte for
    /// byte as that version wrote them.
    const OLD_ROWS: [(&str, &[u8]); 2] = [
        (
            "0a1b2c3d4e5f",
            br#"{"id":"0a1b2c3d4e5f","kind":"operator","scope":null,"label":"first start","created_at":1764175577000,"digest":"07e5837d4d9fea1ee8a3326ad1fc99c3cfe361e4c50bd12cf8a34566f60230c5"}"#,
        ),
        (
            "a1b2c3d4e5f6",
            br#"{"id":"a1b2c3d4e5f6","kind":"agent","scope":"acme/shop/prod","label":"checkout-agent","created_at":1764175578000,"digest":"d6c4aaa5e6a5d269c2616eb3d6d3d53ad573749c4ed9a252ad75af8db98cc707"}"#,
        ),
    ];

    #[test]
    fn a_token_database_from_before_admin_tokens_loads_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = db.open_tree("tokens").unwrap();
            for (id, row) in OLD_ROWS {
                tree.insert(id.as_bytes(), row).unwrap();
            }
            db.flush().unwrap();
        }
        let store = TokenStore::open(dir.path()).unwrap();
        let operator_text = format!("platos_0a1b2c3d4e5f_{}", "1".repeat(64));
        let agent_text = format!("platos_a1b2c3d4e5f6_{}", "2".repeat(64));
        assert_eq!(store.verify(&operator_text).unwrap().grant, Grant::Operator);
        let agent = store.verify(&agent_text).unwrap();
        assert_eq!(agent.grant, Grant::Agent("acme/shop/prod".parse().unwrap()));
        assert!(!agent.can_administer(&"acme/shop/prod".parse().unwrap()));
        let listed = serde_json::to_value(store.list()).unwrap();
        assert_eq!(
            listed,
            serde_json::json!([
                { "id": "0a1b2c3d4e5f", "kind": "operator", "label": "first start", "created_at": 1764175577000u64 },
                { "id": "a1b2c3d4e5f6", "kind": "agent", "scope": "acme/shop/prod", "label": "checkout-agent", "created_at": 1764175578000u64 },
            ])
        );
        assert_eq!(store.operator_count(), 1);
        // A new token beside them, and every row still reads after a reopen.
        store.create(&Grant::Admin("acme/shop/prod".parse().unwrap()), "ops", Pins::new()).unwrap();
        drop(store);
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.list().len(), 3);
        assert!(store.verify(&agent_text).is_some() && store.verify(&operator_text).is_some());
    }

    fn pins(entries: &[(&str, &str)]) -> Pins {
        entries.iter().map(|(provider, key)| ((*provider).to_owned(), (*key).to_owned())).collect()
    }

    #[test]
    fn pins_are_kept_replaced_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let agent = store
            .create(&Grant::Agent(scope.clone()), "ci", pins(&[("openai", "OPENAI_API_KEY_2")]))
            .unwrap();
        let id = agent.info.id.clone();
        assert_eq!(agent.info.pins, pins(&[("openai", "OPENAI_API_KEY_2")]));
        assert_eq!(store.pin(&id, "openai").as_deref(), Some("OPENAI_API_KEY_2"));
        assert_eq!(store.pin(&id, "anthropic"), None);
        let listed = serde_json::to_value(store.get(&id).unwrap()).unwrap();
        assert_eq!(listed["pins"], serde_json::json!({ "openai": "OPENAI_API_KEY_2" }));

        // Replaced as a whole.
        let replaced = pins(&[("anthropic", "ANTHROPIC_API_KEY_3")]);
        assert_eq!(store.set_pins(&id, replaced.clone()).unwrap().unwrap().pins, replaced);
        assert_eq!(store.pin(&id, "openai"), None);
        assert_eq!(store.set_pins("000000000000", replaced.clone()).unwrap(), None);

        // Persisted.
        drop(store);
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.get(&id).unwrap().pins, replaced);
        assert!(store.set_pins(&id, Pins::new()).unwrap().unwrap().pins.is_empty());
        drop(store);
        let store = TokenStore::open(dir.path()).unwrap();
        let listed = serde_json::to_value(store.get(&id).unwrap()).unwrap();
        assert!(listed.get("pins").is_none(), "no pins, no field: {listed}");

        // A revoked token gets no pins back.
        assert!(store.revoke(&id).unwrap());
        assert_eq!(store.set_pins(&id, replaced).unwrap(), None);
        assert!(store.get(&id).is_none());
    }

    #[test]
    fn invalid_pins_are_refused_naming_the_entry_but_never_the_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let grant = Grant::Admin("acme/shop/prod".parse().unwrap());
        let message = |pins: Pins| match store.create(&grant, "x", pins) {
            Err(TokenError::InvalidPins(message)) => message,
            other => panic!("{other:?}"),
        };
        let bad_slug = message(pins(&[("OpenAI", "OPENAI_API_KEY")]));
        assert!(bad_slug.contains("\"OpenAI\" is not a provider slug"), "{bad_slug}");
        let bad_key = message(pins(&[("openai", "sk-canary-pasted-key")]));
        assert!(bad_key.contains("\"openai\"") && !bad_key.contains("sk-canary"), "{bad_key}");
        let many: Pins = (0..=MAX_PINS).map(|n| (format!("p{n}"), "KEY".to_owned())).collect();
        assert!(message(many).contains("at most 64"));
        assert!(matches!(
            store.create(&Grant::Operator, "x", pins(&[("openai", "OPENAI_API_KEY")])),
            Err(TokenError::InvalidPins(message)) if message.contains("operator token")
        ));
        assert!(store.list().is_empty(), "nothing was created");
        let operator = store.create(&Grant::Operator, "root", Pins::new()).unwrap();
        assert!(matches!(
            store.set_pins(&operator.info.id, pins(&[("openai", "OPENAI_API_KEY")])),
            Err(TokenError::InvalidPins(_))
        ));
    }
}

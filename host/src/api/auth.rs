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
//! random bits. Only `sha256(token)` is stored, with the token's
//! description, in [`TokenRecords`]: a small sled database at
//! `<data_dir>/tokens` beside a sled store, or the table `platos_tokens` of
//! the store's PostgreSQL database, shared by every host that uses it. A
//! presented token is found by its id (on PostgreSQL, read from the table
//! on each request, so a revoke on any host counts at once) and its digest
//! compared in constant time (`subtle`). The token itself is shown once,
//! when it is created, and never logged.
//!
//! An agent or admin token may carry [`Pins`]: per provider, the key a
//! resolve with this token spends when the request names no pin of its own
//! (the agent's "Provider key" setting). A token without pins resolves the
//! scope default.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::scope::Scope;
pub use crate::store::TOKENS_DIR;
pub use crate::store::tokens::{Pins, TokenKind};
use crate::store::tokens::{Revoked, TokenRow};
use crate::store::{SledTokens, StoreError, TokenRecords, UnixMillis, now_millis};

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

/// The description of `row`.
fn info(row: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: row.id.clone(),
        kind: row.kind,
        scope: row.scope.clone(),
        label: row.label.clone(),
        created_at: row.created_at,
        pins: row.pins.clone(),
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's public id.
    pub token_id: String,
    /// What it may reach.
    pub grant: Grant,
    /// Its default pins, as stored when the request was verified.
    pub pins: Pins,
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

/// Why a token operation failed. Never carries a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The label is empty, too long or has control characters.
    #[error("invalid label: expected 1-{MAX_LABEL_LEN} characters without control characters")]
    InvalidLabel,
    /// A pin breaks a rule; the message names the entry (never its key id,
    /// which may be a pasted key).
    #[error("invalid pins: {0}")]
    InvalidPins(String),
    /// The token records failed, or cannot be reached
    /// ([`StoreError::Unavailable`]).
    #[error("token database error: {0}")]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The API's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidLabel => "invalid_label",
            TokenError::InvalidPins(_) => "invalid_pins",
            TokenError::Store(StoreError::Unavailable(_)) => "store_unavailable",
            TokenError::Store(_) => "store_error",
        }
    }
}

/// The tokens: the rules (labels, pins, kinds, verification) over one
/// [`TokenRecords`] backend. A cheap handle.
#[derive(Clone, Debug)]
pub struct TokenStore {
    records: Arc<dyn TokenRecords>,
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

/// The row of a new token for `grant` (its `label` and `pins` checked),
/// and the token.
fn new_row(grant: &Grant, label: &str, pins: Pins) -> Result<(TokenRow, SecretString), TokenError> {
    if !valid_label(label) {
        return Err(TokenError::InvalidLabel);
    }
    check_pins(grant.kind(), &pins)?;
    let id = hex::encode(crate::crypto::random_bytes::<{ ID_HEX_LEN / 2 }>());
    let secret = zeroize::Zeroizing::new(hex::encode(crate::crypto::random_bytes::<
        { SECRET_HEX_LEN / 2 },
    >()));
    let token = SecretString::from(format!("{TOKEN_PREFIX}{id}_{}", secret.as_str()));
    let row = TokenRow {
        id,
        kind: grant.kind(),
        scope: grant.scope().map(ToString::to_string),
        label: label.trim().to_owned(),
        created_at: now_millis(),
        digest: hex::encode(digest_of(token.expose_secret())),
        pins,
    };
    Ok((row, token))
}

/// A token made and checked but not stored yet ([`TokenStore::insert`]):
/// its id is known before it exists, for the audit record written first.
/// `Debug` shows its id only.
pub struct PreparedToken {
    row: TokenRow,
    token: SecretString,
}

impl PreparedToken {
    /// A new token of `grant`, labelled `label`, with `pins`: the label and
    /// the pins checked.
    pub fn new(grant: &Grant, label: &str, pins: Pins) -> Result<Self, TokenError> {
        let (row, token) = new_row(grant, label, pins)?;
        Ok(PreparedToken { row, token })
    }

    /// Its description.
    pub fn info(&self) -> TokenInfo {
        info(&self.row)
    }
}

impl fmt::Debug for PreparedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedToken").field("id", &self.row.id).finish_non_exhaustive()
    }
}

impl TokenStore {
    /// The tokens kept in `records`.
    pub fn new(records: Arc<dyn TokenRecords>) -> Self {
        TokenStore { records }
    }

    /// The sled token database at `<data_dir>/tokens`, opened (or created).
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self, TokenError> {
        Ok(TokenStore::new(Arc::new(SledTokens::open_in_data_dir(data_dir)?)))
    }

    /// Creates a token for `grant` with its default `pins` ([`check_pins`]),
    /// durably, and returns it (the only time its text is available).
    pub async fn create(
        &self,
        grant: &Grant,
        label: &str,
        pins: Pins,
    ) -> Result<IssuedToken, TokenError> {
        self.insert(PreparedToken::new(grant, label, pins)?).await
    }

    /// Stores `prepared`, durably.
    pub async fn insert(&self, prepared: PreparedToken) -> Result<IssuedToken, TokenError> {
        let PreparedToken { row, token } = prepared;
        self.records.insert(&row).await?;
        Ok(IssuedToken { info: info(&row), token })
    }

    /// Creates an operator token labelled `label` if there is no operator
    /// token: `None` if there is one (on a shared backend, of hosts starting
    /// together exactly one creates it).
    pub async fn create_first_operator(
        &self,
        label: &str,
    ) -> Result<Option<IssuedToken>, TokenError> {
        let (row, token) = new_row(&Grant::Operator, label, Pins::new())?;
        let created = self.records.insert_first_operator(&row).await?;
        Ok(created.then(|| IssuedToken { info: info(&row), token }))
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        Ok(self.records.list().await?.iter().map(info).collect())
    }

    /// One token's description.
    pub async fn get(&self, id: &str) -> Result<Option<TokenInfo>, TokenError> {
        Ok(self.records.get(id).await?.as_ref().map(info))
    }

    /// Replaces the pins of the token `id`, durably ([`check_pins`]); its
    /// new description, or `None` if there is no token with this id (a
    /// token revoked meanwhile stays revoked).
    pub async fn set_pins(&self, id: &str, pins: Pins) -> Result<Option<TokenInfo>, TokenError> {
        let Some(mut row) = self.records.get(id).await? else { return Ok(None) };
        check_pins(row.kind, &pins)?;
        if !self.records.set_pins(id, &pins).await? {
            return Ok(None);
        }
        row.pins = pins;
        Ok(Some(info(&row)))
    }

    /// Revokes a token, durably, unless it is the last operator token.
    pub async fn revoke(&self, id: &str) -> Result<Revoked, TokenError> {
        Ok(self.records.revoke(id).await?)
    }

    /// The token `id` if a revoke of it would go through now: `Err` with
    /// [`Revoked::NotFound`] or [`Revoked::LastOperator`] if not (what the
    /// audit record of a refused revoke names; [`TokenStore::revoke`] checks
    /// again in one step).
    pub async fn revocable(&self, id: &str) -> Result<Result<TokenInfo, Revoked>, TokenError> {
        let tokens = self.list().await?;
        let Some(token) = tokens.iter().find(|token| token.id == id) else {
            return Ok(Err(Revoked::NotFound));
        };
        let operators = tokens.iter().filter(|token| token.kind == TokenKind::Operator).count();
        if token.kind == TokenKind::Operator && operators < 2 {
            return Ok(Err(Revoked::LastOperator));
        }
        Ok(Ok(token.clone()))
    }

    /// The caller a presented token stands for: `None` if it is malformed,
    /// unknown or revoked; an error only if the records cannot answer.
    pub async fn verify(&self, presented: &str) -> Result<Option<Caller>, TokenError> {
        let id = presented
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == ID_HEX_LEN && id.bytes().all(|byte| byte.is_ascii_hexdigit()));
        let row = match id {
            Some(id) => self.records.get(id).await?,
            None => None,
        };
        let presented_digest = digest_of(presented);
        let mut expected = NO_DIGEST;
        if let Some(row) = &row
            && hex::decode_to_slice(&row.digest, &mut expected).is_err()
        {
            expected = NO_DIGEST;
        }
        let matches: bool = presented_digest.ct_eq(&expected).into();
        let Some(row) = row.filter(|_| matches) else { return Ok(None) };
        let grant = match (row.kind, &row.scope) {
            (TokenKind::Operator, _) => Grant::Operator,
            (kind, Some(scope)) => {
                let Some(grant) =
                    scope.parse().ok().and_then(|scope| Grant::new(kind, Some(scope)))
                else {
                    return Ok(None);
                };
                grant
            }
            (_, None) => return Ok(None),
        };
        Ok(Some(Caller { token_id: row.id, grant, pins: row.pins }))
    }

    /// Where the tokens live: a directory or `postgres://user@host:port/db`.
    pub fn location(&self) -> String {
        self.records.location()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn open(path: &Path) -> TokenStore {
        TokenStore::new(Arc::new(SledTokens::open(path).unwrap()))
    }

    #[tokio::test]
    async fn a_token_database_from_before_admin_tokens_loads_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = db.open_tree("tokens").unwrap();
            for (id, row) in OLD_ROWS {
                tree.insert(id.as_bytes(), row).unwrap();
            }
            db.flush().unwrap();
        }
        let store = open(dir.path());
        let operator_text = format!("platos_0a1b2c3d4e5f_{}", "1".repeat(64));
        let agent_text = format!("platos_a1b2c3d4e5f6_{}", "2".repeat(64));
        assert_eq!(store.verify(&operator_text).await.unwrap().unwrap().grant, Grant::Operator);
        let agent = store.verify(&agent_text).await.unwrap().unwrap();
        assert_eq!(agent.grant, Grant::Agent("acme/shop/prod".parse().unwrap()));
        assert!(!agent.can_administer(&"acme/shop/prod".parse().unwrap()));
        let listed = serde_json::to_value(store.list().await.unwrap()).unwrap();
        assert_eq!(
            listed,
            serde_json::json!([
                { "id": "0a1b2c3d4e5f", "kind": "operator", "label": "first start", "created_at": 1764175577000u64 },
                { "id": "a1b2c3d4e5f6", "kind": "agent", "scope": "acme/shop/prod", "label": "checkout-agent", "created_at": 1764175578000u64 },
            ])
        );
        assert!(store.create_first_operator("again").await.unwrap().is_none(), "one exists");
        // A new token beside them, and every row still reads after a reopen.
        let admin = Grant::Admin("acme/shop/prod".parse().unwrap());
        store.create(&admin, "ops", Pins::new()).await.unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.list().await.unwrap().len(), 3);
        assert!(store.verify(&agent_text).await.unwrap().is_some());
        assert!(store.verify(&operator_text).await.unwrap().is_some());
        // The old rows are still the bytes that version wrote: a row without
        // pins is written as before.
        drop(store);
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("tokens").unwrap();
        for (id, row) in OLD_ROWS {
            assert_eq!(&tree.get(id.as_bytes()).unwrap().unwrap()[..], row, "{id}");
        }
    }

    #[test]
    fn kinds_and_scopes_that_do_not_fit_make_no_grant() {
        let dev: Scope = "acme/shop/dev".parse().unwrap();
        assert_eq!(Grant::new(TokenKind::Operator, Some(dev.clone())), None);
        assert_eq!(Grant::new(TokenKind::Admin, None), None);
        assert_eq!(Grant::new(TokenKind::Agent, None), None);
        assert_eq!(Grant::Admin(dev.clone()).default_label(), "admin acme/shop/dev");
        assert_eq!(Grant::Agent(dev).default_label(), "agent acme/shop/dev");
        assert_eq!(Grant::Operator.default_label(), "operator");
    }
}

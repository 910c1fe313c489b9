//! Where API tokens' rows live: [`TokenRecords`], the one seam between the
//! token rules ([`crate::api::auth`]) and a backend. Two backends, one file
//! each: [`SledTokens`](super::SledTokens), a small sled database under
//! `<data_dir>/tokens` for one host; and
//! [`PostgresTokens`](super::PostgresTokens), the `platos_tokens` table in
//! the store's PostgreSQL database, shared by every host that uses it.
//!
//! A row holds a token's description and `sha256(token)`, never the token.
//! Verification (finding the row by id, comparing digests in constant time)
//! is the caller's, so both backends answer the same.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{StoreError, UnixMillis};

/// A token's default pins: provider slug to key id (the key's variable
/// name, e.g. `openai` → `OPENAI_API_KEY_2`).
pub type Pins = BTreeMap<String, String>;

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

    /// The kind named `name` ([`TokenKind::name`]).
    pub fn from_name(name: &str) -> Option<TokenKind> {
        [TokenKind::Operator, TokenKind::Agent, TokenKind::Admin]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// One stored token: its description and its digest. Serialized, it is the
/// sled row, byte for byte as earlier releases wrote it: rows written before
/// admin tokens existed (kinds `operator` and `agent`), and before pins (no
/// `pins`: none), read unchanged; a row without pins is written as before.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    /// The public id (the `<id>` in `platos_<id>_<secret>`).
    pub id: String,
    /// Operator, admin or agent.
    pub kind: TokenKind,
    /// The scope of an agent or admin token, `org/project/env`.
    pub scope: Option<String>,
    /// A name for people.
    pub label: String,
    /// When it was created.
    pub created_at: UnixMillis,
    /// `sha256(token)`, hex.
    pub digest: String,
    /// Its default pins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pins: Pins,
}

impl fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("scope", &self.scope)
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .field("pins", &self.pins)
            .finish_non_exhaustive()
    }
}

/// What [`TokenRecords::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The row is gone.
    Revoked,
    /// No row has this id.
    NotFound,
    /// It is the last operator token: kept.
    LastOperator,
}

/// The rows of API tokens. Every change is durable before it returns, and
/// on a shared backend seen by every host at once.
#[async_trait]
pub trait TokenRecords: Send + Sync + fmt::Debug {
    /// Adds `row` (its id is new).
    async fn insert(&self, row: &TokenRow) -> Result<(), StoreError>;

    /// Adds `row`, an operator token, only if no operator token exists: on a
    /// shared backend, of hosts starting together exactly one adds its row.
    /// `true` if it was added.
    async fn insert_first_operator(&self, row: &TokenRow) -> Result<bool, StoreError>;

    /// The row of `id`, if any: one lookup, read from the backend each time
    /// on a shared one (a revoke on another host is seen at once).
    async fn get(&self, id: &str) -> Result<Option<TokenRow>, StoreError>;

    /// Every row, oldest first.
    async fn list(&self) -> Result<Vec<TokenRow>, StoreError>;

    /// Replaces the pins of the row `id`; `false` if there is none (a token
    /// revoked meanwhile stays revoked).
    async fn set_pins(&self, id: &str, pins: &Pins) -> Result<bool, StoreError>;

    /// Removes the row `id`, unless it is the last operator token (checked
    /// and removed in one step, so two revokes never remove both of the
    /// last two).
    async fn revoke(&self, id: &str) -> Result<Revoked, StoreError>;

    /// Adds every row of `rows` whose id is not there yet (a copy between
    /// backends); how many were added.
    async fn import(&self, rows: &[TokenRow]) -> Result<usize, StoreError>;

    /// Where the rows live, for people: a directory or
    /// `postgres://user@host:port/db` (never a password).
    fn location(&self) -> String;
}

/// `rows` oldest first (then by id), the order [`TokenRecords::list`] answers.
pub(super) fn oldest_first(mut rows: Vec<TokenRow>) -> Vec<TokenRow> {
    rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    rows
}

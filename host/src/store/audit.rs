//! Where the audit trail lives: [`AuditTrail`], the one seam between the
//! audit service ([`crate::audit`]) and a backend. Two backends, one file
//! each: [`FileAudit`](super::FileAudit), append-only segment files under
//! `<data_dir>/audit` for one host (beside the sled store); and
//! [`PostgresAudit`](super::PostgresAudit), the `platos_audit` table in the
//! store's PostgreSQL database, shared by every host that uses it.
//!
//! An [`AuditRecord`] names who did what to which scope, provider key and
//! value version, and how it ended. It has no field that can hold a value:
//! values, tokens and leases never reach it (see `docs/security.md`).
//! Records are append-only: a backend adds them and removes them only when
//! they are past the retention ([`AuditTrail::purge_before`]).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{StoreError, UnixMillis};

/// The length of a record's id and a request's: 16 lowercase hex digits.
pub const AUDIT_ID_LEN: usize = 16;

/// The most records one query answers.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// What an audited action was. Serialized as `var.set`, `token.create`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AuditAction {
    /// A variable set where none was.
    #[serde(rename = "var.set")]
    VarSet,
    /// A variable given a new value (a new version).
    #[serde(rename = "var.rotate")]
    VarRotate,
    /// A variable unset.
    #[serde(rename = "var.unset")]
    VarUnset,
    /// A key row's label changed.
    #[serde(rename = "key.label")]
    KeyLabel,
    /// A key row disabled.
    #[serde(rename = "key.disable")]
    KeyDisable,
    /// A key row enabled again.
    #[serde(rename = "key.enable")]
    KeyEnable,
    /// A key row made the scope default for its provider.
    #[serde(rename = "key.default")]
    KeyDefault,
    /// A budget set on a key or a scope.
    #[serde(rename = "budget.set")]
    BudgetSet,
    /// A budget removed from a key or a scope.
    #[serde(rename = "budget.remove")]
    BudgetRemove,
    /// An API token created.
    #[serde(rename = "token.create")]
    TokenCreate,
    /// An API token revoked.
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// An API token's default pins replaced.
    #[serde(rename = "token.pins")]
    TokenPins,
    /// A key resolved for a turn (a lease handed out).
    #[serde(rename = "resolve")]
    Resolve,
    /// A request signed with a leased key (`.../authorize`).
    #[serde(rename = "authorize")]
    Authorize,
    /// A request forwarded with a leased key (`.../forward`).
    #[serde(rename = "forward")]
    Forward,
    /// A plugin loaded at start.
    #[serde(rename = "plugin.load")]
    PluginLoad,
    /// A plugin refused at start.
    #[serde(rename = "plugin.refuse")]
    PluginRefuse,
}

impl AuditAction {
    /// Every action, in the order above.
    pub const ALL: [AuditAction; 17] = [
        AuditAction::VarSet,
        AuditAction::VarRotate,
        AuditAction::VarUnset,
        AuditAction::KeyLabel,
        AuditAction::KeyDisable,
        AuditAction::KeyEnable,
        AuditAction::KeyDefault,
        AuditAction::BudgetSet,
        AuditAction::BudgetRemove,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::TokenPins,
        AuditAction::Resolve,
        AuditAction::Authorize,
        AuditAction::Forward,
        AuditAction::PluginLoad,
        AuditAction::PluginRefuse,
    ];

    /// The name, as records spell it (`var.set`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::VarSet => "var.set",
            AuditAction::VarRotate => "var.rotate",
            AuditAction::VarUnset => "var.unset",
            AuditAction::KeyLabel => "key.label",
            AuditAction::KeyDisable => "key.disable",
            AuditAction::KeyEnable => "key.enable",
            AuditAction::KeyDefault => "key.default",
            AuditAction::BudgetSet => "budget.set",
            AuditAction::BudgetRemove => "budget.remove",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::TokenPins => "token.pins",
            AuditAction::Resolve => "resolve",
            AuditAction::Authorize => "authorize",
            AuditAction::Forward => "forward",
            AuditAction::PluginLoad => "plugin.load",
            AuditAction::PluginRefuse => "plugin.refuse",
        }
    }

    /// The action named `name` ([`AuditAction::as_str`]).
    pub fn from_name(name: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|action| action.as_str() == name)
    }

    /// Whether the action changes what the store holds (its record is made
    /// durable before the change is made), rather than uses it.
    pub fn is_change(self) -> bool {
        !matches!(
            self,
            AuditAction::Resolve
                | AuditAction::Authorize
                | AuditAction::Forward
                | AuditAction::PluginLoad
                | AuditAction::PluginRefuse
        )
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The host allowed it; for a change, the record was written before the
    /// change was made.
    Ok,
    /// The host refused it (the record's `code` says why); nothing changed.
    Refused,
    /// The host allowed it and the store then failed to make it (a second
    /// record after the `ok` one, with the same `request`); nothing changed.
    Failed,
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ActorKind {
    /// An operator token.
    Operator,
    /// An admin token of one scope.
    Admin,
    /// An agent token of one scope.
    Agent,
    /// The command line (`platos-host env …`, `platos-host token …`).
    Cli,
    /// The self-host import (the `.env` file or the process environment).
    SelfHost,
    /// The host itself (loading plugins).
    Host,
}

/// Who acted: the kind, and for a token its public id (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditActor {
    /// The kind of actor.
    pub kind: ActorKind,
    /// The token's public id, for a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

impl AuditActor {
    /// An actor that is not a token.
    pub fn of_kind(kind: ActorKind) -> Self {
        AuditActor { kind, token_id: None }
    }
}

/// One audited action. It has no field for a value, a token or a lease; the
/// `detail` map carries only names the host chose (a label, a status, a
/// plugin's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// The record's id: [`AUDIT_ID_LEN`] hex digits, growing on each host
    /// in the order it writes records (with `at`, the trail's order).
    pub id: String,
    /// The action's id ([`AUDIT_ID_LEN`] random hex digits): a `failed`
    /// record has the `request` of the `ok` record before it.
    pub request: String,
    /// When it was recorded.
    #[schema(value_type = u64)]
    pub at: UnixMillis,
    /// What was done.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why it was refused or failed: the API's error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Who did it.
    pub actor: AuditActor,
    /// The scope, `organization/project/environment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The provider's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The variable (a key's id is its variable's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// The key's variant (1 for `OPENAI_API_KEY`, `n` for `OPENAI_API_KEY_n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<u32>,
    /// The value's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// What the action was about, when it is not a key: a token's public id,
    /// a plugin's `slug@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// More about the action, by name (no values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

impl AuditRecord {
    /// A record of `action` by `actor` with the id (and request) `id`, at
    /// `at`, `ok`, and no other field.
    pub fn new(action: AuditAction, actor: AuditActor, id: String, at: UnixMillis) -> Self {
        AuditRecord {
            request: id.clone(),
            id,
            at,
            action,
            outcome: AuditOutcome::Ok,
            code: None,
            actor,
            scope: None,
            provider: None,
            variable: None,
            variant: None,
            version: None,
            subject: None,
            detail: BTreeMap::new(),
        }
    }
}

/// Which records a query asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Only records of this scope (`organization/project/environment`).
    pub scope: Option<String>,
    /// Only records at or after this time.
    pub since: UnixMillis,
    /// Only records after this one, `(at, id)`: the previous page's last.
    pub after: Option<(UnixMillis, String)>,
    /// At most this many (at most [`MAX_AUDIT_PAGE`]).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `record` is one the query asks for (what a backend that scans
    /// checks; a backend that filters in its index answers the same).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        record.at >= self.since
            && self.scope.as_ref().is_none_or(|scope| record.scope.as_ref() == Some(scope))
            && self
                .after
                .as_ref()
                .is_none_or(|(at, id)| (record.at, record.id.as_str()) > (*at, id.as_str()))
    }

    /// The limit a backend applies: at least 1, at most [`MAX_AUDIT_PAGE`].
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_AUDIT_PAGE)
    }
}

/// A record id that is not [`AUDIT_ID_LEN`] lowercase hex digits (shown at
/// most 40 characters long).
#[derive(Debug, thiserror::Error)]
#[error(
    "the audit record id {0:?} is not {AUDIT_ID_LEN} lowercase hex digits (expected an id the audit service made, e.g. `0123456789abcdef`); nothing was written"
)]
struct InvalidAuditId(String);

/// The 8 bytes of a record's id ([`AUDIT_ID_LEN`] lowercase hex digits, so
/// byte order is the id's order); a malformed id is refused, naming it.
pub(super) fn id_bytes(id: &str) -> Result<[u8; AUDIT_ID_LEN / 2], StoreError> {
    let mut bytes = [0; AUDIT_ID_LEN / 2];
    let lowercase = id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    match hex::decode_to_slice(id, &mut bytes) {
        Ok(()) if lowercase => Ok(bytes),
        _ => Err(StoreError::backend(InvalidAuditId(id.chars().take(40).collect()))),
    }
}

/// The records of the audit trail. Append-only: a record is added once and
/// removed only by [`AuditTrail::purge_before`].
#[async_trait]
pub trait AuditTrail: Send + Sync + fmt::Debug {
    /// Adds `records` (one statement on PostgreSQL, one line of a segment
    /// file for one host). A record whose `(at, id)` is already there is not
    /// added again (a retried write adds nothing twice). With `durable` the
    /// records are on disk before this returns; without, they are within
    /// [`SYNC_INTERVAL`](super::SYNC_INTERVAL) (files) or at once
    /// (PostgreSQL commits).
    async fn append(&self, records: &[AuditRecord], durable: bool) -> Result<(), StoreError>;

    /// The records `query` asks for, ordered by `(at, id)`, at most
    /// [`AuditQuery::page_size`].
    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Removes every record older than `before` (the retention); how many.
    async fn purge_before(&self, before: UnixMillis) -> Result<usize, StoreError>;

    /// Where the records live, for people: a directory or
    /// `postgres://user@host:port/db` (never a password).
    fn location(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, at: UnixMillis, scope: Option<&str>) -> AuditRecord {
        let actor = AuditActor::of_kind(ActorKind::Host);
        AuditRecord {
            scope: scope.map(str::to_owned),
            ..AuditRecord::new(AuditAction::Resolve, actor, id.to_owned(), at)
        }
    }

    #[test]
    fn actions_round_trip_by_name() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::from_name(action.as_str()), Some(action));
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.as_str()));
        }
        assert_eq!(AuditAction::from_name("var.delete"), None);
        assert!(AuditAction::VarSet.is_change() && !AuditAction::Resolve.is_change());
    }

    #[test]
    fn queries_match_by_scope_time_and_cursor() {
        let query = AuditQuery {
            scope: Some("a/b/c".into()),
            since: 10,
            after: Some((20, "00000000000000bb".into())),
            limit: 0,
        };
        assert!(query.matches(&record("00000000000000cc", 20, Some("a/b/c"))));
        assert!(!query.matches(&record("00000000000000aa", 20, Some("a/b/c"))));
        assert!(!query.matches(&record("00000000000000cc", 20, Some("a/b/d"))));
        assert!(!query.matches(&record("00000000000000cc", 20, None)));
        assert!(query.matches(&record("0000000000000000", 21, Some("a/b/c"))));
        let all = AuditQuery { since: 10, ..AuditQuery::default() };
        assert!(!all.matches(&record("00", 9, None)));
        assert!(all.matches(&record("00", 10, None)));
        assert_eq!(query.page_size(), 1);
        assert_eq!(AuditQuery { limit: 5000, ..all }.page_size(), MAX_AUDIT_PAGE);
    }

    #[test]
    fn ids_are_sixteen_lowercase_hex_digits() {
        assert_eq!(
            id_bytes("0123456789abcdef").unwrap(),
            [1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        for bad in
            ["", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg"]
        {
            let message = id_bytes(bad).unwrap_err().to_string();
            assert!(message.contains(&format!("{bad:?}")), "{message}");
            assert!(message.contains("16 lowercase hex digits"), "{message}");
        }
    }
}

//! [`TokenRecords`] in the table `platos_tokens` of the store's PostgreSQL
//! database (its migration is the store's), shared by every host that uses
//! it: a token created on one host authenticates on all, and a revoke on
//! one is refused by all at the next request. Nothing is cached: each
//! lookup is one primary-key read, so no host answers from a stale copy.
//! A database that cannot be reached is [`StoreError::Unavailable`], as for
//! the store.
//!
//! Creating the first operator token and revoking one take a
//! transaction-scoped advisory lock ([`TOKENS_LOCK`]), so hosts starting
//! together create exactly one operator token and two revokes never remove
//! the last two.

use std::fmt;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;

use super::postgres_store::{backend, open_schema, pooled, prepared};
use super::tokens::{Pins, Revoked, TokenKind, TokenRecords, TokenRow};
use super::{PostgresStore, StoreError};

/// The advisory lock of the first operator token and of revokes (an
/// arbitrary constant: "tokens" in ASCII).
const TOKENS_LOCK: i64 = 0x746f_6b65_6e73;

const COLUMNS: &str = "id, digest, kind, scope, label, pins, created_at";

/// The token table of a PostgreSQL store.
#[derive(Clone)]
pub struct PostgresTokens {
    pool: Pool,
    /// `postgres://user@host:port/db`, never a password.
    location: String,
}

impl fmt::Debug for PostgresTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTokens").field("location", &self.location).finish_non_exhaustive()
    }
}

/// The row of [`COLUMNS`].
fn token_row(row: &Row) -> Result<TokenRow, StoreError> {
    let kind: &str = row.get("kind");
    let pins: serde_json::Value = row.get("pins");
    let created_at: i64 = row.get("created_at");
    Ok(TokenRow {
        id: row.get("id"),
        kind: TokenKind::from_name(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown token kind `{kind}`")))?,
        scope: row.get("scope"),
        label: row.get("label"),
        created_at: u64::try_from(created_at)
            .map_err(|_| StoreError::Corrupt(format!("negative creation time {created_at}")))?,
        digest: row.get("digest"),
        pins: serde_json::from_value(pins)
            .map_err(|error| StoreError::Corrupt(format!("unreadable token pins: {error}")))?,
    })
}

fn pins_json(pins: &Pins) -> serde_json::Value {
    serde_json::to_value(pins).expect("pins always serialize")
}

async fn insert_row(client: &impl GenericClient, row: &TokenRow) -> Result<u64, StoreError> {
    let created_at = i64::try_from(row.created_at).unwrap_or(i64::MAX);
    client
        .execute(
            &format!(
                "INSERT INTO platos_tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO NOTHING"
            ),
            &[
                &row.id,
                &row.digest,
                &row.kind.name(),
                &row.scope,
                &row.label,
                &pins_json(&row.pins),
                &created_at,
            ],
        )
        .await
        .map_err(backend)
}

impl PostgresTokens {
    /// The token table of `store`, over its connections.
    pub fn of_store(store: &PostgresStore) -> Self {
        PostgresTokens { pool: store.pool().clone(), location: store.location().to_owned() }
    }

    /// The token table of the database at `url`, its schema migrated, without
    /// the store's master key (for `platos-host token`).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, location) = open_schema(url).await?;
        Ok(PostgresTokens { pool, location })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        pooled(&self.pool, &self.location).await
    }
}

#[async_trait]
impl TokenRecords for PostgresTokens {
    async fn insert(&self, row: &TokenRow) -> Result<(), StoreError> {
        let client = self.client().await?;
        if insert_row(&client, row).await? == 0 {
            return Err(StoreError::Corrupt(format!("a token with the id {} exists", row.id)));
        }
        Ok(())
    }

    async fn insert_first_operator(&self, row: &TokenRow) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKENS_LOCK]).await.map_err(backend)?;
        let exists: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM platos_tokens WHERE kind = 'operator')", &[])
            .await
            .map_err(backend)?
            .get(0);
        if exists {
            return Ok(false);
        }
        insert_row(&tx, row).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn get(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        let client = self.client().await?;
        let statement =
            prepared(&client, &format!("SELECT {COLUMNS} FROM platos_tokens WHERE id = $1"))
                .await?;
        client
            .query_opt(&statement, &[&id])
            .await
            .map_err(backend)?
            .as_ref()
            .map(token_row)
            .transpose()
    }

    async fn list(&self) -> Result<Vec<TokenRow>, StoreError> {
        let client = self.client().await?;
        client
            .query(&format!("SELECT {COLUMNS} FROM platos_tokens ORDER BY created_at, id"), &[])
            .await
            .map_err(backend)?
            .iter()
            .map(token_row)
            .collect()
    }

    async fn set_pins(&self, id: &str, pins: &Pins) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let updated = client
            .execute("UPDATE platos_tokens SET pins = $2 WHERE id = $1", &[&id, &pins_json(pins)])
            .await
            .map_err(backend)?;
        Ok(updated > 0)
    }

    async fn revoke(&self, id: &str) -> Result<Revoked, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKENS_LOCK]).await.map_err(backend)?;
        let Some(row) = tx
            .query_opt("SELECT kind FROM platos_tokens WHERE id = $1", &[&id])
            .await
            .map_err(backend)?
        else {
            return Ok(Revoked::NotFound);
        };
        if row.get::<_, &str>(0) == TokenKind::Operator.name() {
            let operators: i64 = tx
                .query_one("SELECT count(*) FROM platos_tokens WHERE kind = 'operator'", &[])
                .await
                .map_err(backend)?
                .get(0);
            if operators <= 1 {
                return Ok(Revoked::LastOperator);
            }
        }
        tx.execute("DELETE FROM platos_tokens WHERE id = $1", &[&id]).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Revoked::Revoked)
    }

    async fn import(&self, rows: &[TokenRow]) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let mut added = 0;
        for row in rows {
            added += insert_row(&tx, row).await? as usize;
        }
        tx.commit().await.map_err(backend)?;
        Ok(added)
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

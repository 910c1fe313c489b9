//! [`AuditTrail`] in the table `platos_audit` of the store's PostgreSQL
//! database (its migration is the store's), shared by every host that uses
//! it: one trail, whichever host acted. A row is a record's id, time and
//! scope (for the indexes on `(at, id)` and `(scope, at, id)`) and the
//! record as JSON. A trigger refuses every `UPDATE`: rows are added, and
//! deleted only past the retention. A database that cannot be reached is
//! [`StoreError::Unavailable`], as for the store.
//!
//! An append is one statement for the whole batch (a round trip per batch
//! of resolve traffic, not per record), committed before it returns.

use std::fmt;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::audit::{AuditQuery, AuditRecord, AuditTrail, id_bytes};
use super::postgres_store::{backend, open_schema, pooled, prepared};
use super::{PostgresStore, StoreError, UnixMillis};

const APPEND: &str = "INSERT INTO platos_audit (id, at, scope, record)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])
     ON CONFLICT (id) DO NOTHING";
/// The page after `($1, $2)` (exclusive), `$3` records at most.
const QUERY_ALL: &str = "SELECT record FROM platos_audit
     WHERE (at, id) > ($1, $2) ORDER BY at, id LIMIT $3";
/// [`QUERY_ALL`] of the scope `$4`.
const QUERY_SCOPE: &str = "SELECT record FROM platos_audit
     WHERE scope = $4 AND (at, id) > ($1, $2) ORDER BY at, id LIMIT $3";
const PURGE: &str = "DELETE FROM platos_audit WHERE at < $1";

/// The audit table of a PostgreSQL store.
#[derive(Clone)]
pub struct PostgresAudit {
    pool: Pool,
    /// `postgres://user@host:port/db`, never a password.
    location: String,
}

impl fmt::Debug for PostgresAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAudit").field("location", &self.location).finish_non_exhaustive()
    }
}

/// A time as the table's `bigint`.
fn sql_time(at: UnixMillis) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

impl PostgresAudit {
    /// The audit table of `store`, over its connections.
    pub fn of_store(store: &PostgresStore) -> Self {
        PostgresAudit { pool: store.pool().clone(), location: store.location().to_owned() }
    }

    /// The audit table of the database at `url`, its schema migrated,
    /// without the store's master key.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, location) = open_schema(url).await?;
        Ok(PostgresAudit { pool, location })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        pooled(&self.pool, &self.location).await
    }
}

#[async_trait]
impl AuditTrail for PostgresAudit {
    /// Committed when it returns, so `durable` changes nothing here.
    async fn append(&self, records: &[AuditRecord], _durable: bool) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(records.len());
        let mut times = Vec::with_capacity(records.len());
        let mut scopes = Vec::with_capacity(records.len());
        let mut json = Vec::with_capacity(records.len());
        for record in records {
            id_bytes(&record.id)?;
            ids.push(record.id.as_str());
            times.push(sql_time(record.at));
            scopes.push(record.scope.as_deref());
            json.push(
                serde_json::to_string(record)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            );
        }
        let client = self.client().await?;
        let statement = prepared(&client, APPEND).await?;
        client.execute(&statement, &[&ids, &times, &scopes, &json]).await.map_err(backend)?;
        Ok(())
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        // After the cursor, or from `since` on: no id is empty, so
        // `(at, id) > (since, '')` is `at >= since`.
        let since = (query.since, "");
        let (at, id) = match &query.after {
            Some((at, id)) if (*at, id.as_str()) > since => (*at, id.as_str()),
            _ => since,
        };
        let limit = query.page_size() as i64;
        let client = self.client().await?;
        let rows = match &query.scope {
            None => {
                let statement = prepared(&client, QUERY_ALL).await?;
                client.query(&statement, &[&sql_time(at), &id, &limit]).await
            }
            Some(scope) => {
                let statement = prepared(&client, QUERY_SCOPE).await?;
                client.query(&statement, &[&sql_time(at), &id, &limit, scope]).await
            }
        }
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                serde_json::from_str(row.get(0)).map_err(|error| {
                    StoreError::Corrupt(format!("an unreadable audit record: {error}"))
                })
            })
            .collect()
    }

    async fn purge_before(&self, before: UnixMillis) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let statement = prepared(&client, PURGE).await?;
        let removed = client.execute(&statement, &[&sql_time(before)]).await.map_err(backend)?;
        Ok(removed as usize)
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

//! The audit trail over both backends: one suite ([`exercise`]) run for the
//! sled audit database and for the PostgreSQL audit table (one constructor
//! each); then what only one has: the table's trigger refusing an update,
//! a database that cannot be reached, and the sled database held by
//! another handle.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use platos_host::store::audit::{ActorKind, MAX_AUDIT_PAGE};
use platos_host::store::{
    AuditAction, AuditActor, AuditOutcome, AuditQuery, AuditRecord, AuditTrail, PostgresAudit,
    SledAudit, StoreBackend, UnixMillis,
};

/// Where a trail lives; [`Backend::open`] opens it again (a reopen after
/// the suite dropped its handle).
#[async_trait]
trait Backend: Send + Sync {
    async fn open(&self) -> Arc<dyn AuditTrail>;
}

struct Sled(tempfile::TempDir);

#[async_trait]
impl Backend for Sled {
    async fn open(&self) -> Arc<dyn AuditTrail> {
        Arc::new(SledAudit::open(self.0.path()).unwrap())
    }
}

struct Postgres(String);

#[async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn AuditTrail> {
        Arc::new(PostgresAudit::open(&self.0).await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_on_sled() {
    let backend = Sled(tempfile::tempdir().unwrap());
    exercise(&backend).await;
    // The scope index names exactly the pages holding records of a scope:
    // the purge left no entry behind. A page is `{last id (8)}` and a JSON
    // array of records that share its key's time.
    let db = sled::open(backend.0.path()).unwrap();
    let pages = db.open_tree("records").unwrap();
    let (mut scoped, mut scoped_records) = (BTreeSet::new(), 0);
    for entry in pages.iter() {
        let (key, value) = entry.unwrap();
        let records: Vec<AuditRecord> = serde_json::from_slice(&value[8..]).unwrap();
        assert_eq!(value[..8], hex::decode(&records.last().unwrap().id).unwrap()[..]);
        assert!(records.iter().all(|record| record.at.to_be_bytes() == key[..8]));
        for record in records {
            if let Some(scope) = record.scope {
                scoped.insert([scope.as_bytes(), &[0], &key].concat());
                scoped_records += 1;
            }
        }
    }
    let index = db.open_tree("by-scope").unwrap();
    let indexed: BTreeSet<Vec<u8>> = index.iter().keys().map(|key| key.unwrap().to_vec()).collect();
    let (stale, missing) =
        (indexed.difference(&scoped).count(), scoped.difference(&indexed).count());
    assert_eq!((stale, missing), (0, 0), "index entries without their page, pages not indexed");
    assert_eq!(
        scoped_records,
        20 + 32 * 50,
        "the kept records of two scopes and the concurrent ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_on_postgres() {
    exercise(&Postgres(support::postgres_database().await)).await;
}

const DEV: &str = "acme/shop/dev";
const PROD: &str = "acme/shop/prod";

/// A distinct id for each `n`, in no relation to `n`'s order.
fn id(n: u64) -> String {
    format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn record(id: String, at: UnixMillis, scope: Option<&str>) -> AuditRecord {
    let actor = AuditActor { kind: ActorKind::Agent, token_id: Some("t0k3n1d00001".into()) };
    AuditRecord {
        scope: scope.map(str::to_owned),
        provider: Some("openai".into()),
        variable: Some("OPENAI_API_KEY".into()),
        variant: Some(1),
        version: Some(3),
        detail: BTreeMap::from([("label".to_owned(), "main".to_owned())]),
        ..AuditRecord::new(AuditAction::Resolve, actor, id, at)
    }
}

/// `records` ordered by `(at, id)`, the order every query answers.
fn ordered(records: impl IntoIterator<Item = AuditRecord>) -> Vec<AuditRecord> {
    let mut records: Vec<_> = records.into_iter().collect();
    records.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    records
}

fn of_scope(records: &[AuditRecord], scope: &str, since: UnixMillis) -> Vec<AuditRecord> {
    let wanted =
        |record: &&AuditRecord| record.scope.as_deref() == Some(scope) && record.at >= since;
    records.iter().filter(wanted).cloned().collect()
}

fn everything() -> AuditQuery {
    AuditQuery { limit: MAX_AUDIT_PAGE, ..AuditQuery::default() }
}

/// Every record `query` reaches, page by page of `query.limit`, each page
/// checked to hold at most that many, all after the cursor.
async fn paged(trail: &dyn AuditTrail, mut query: AuditQuery) -> Vec<AuditRecord> {
    let mut all = Vec::new();
    loop {
        let page = trail.query(&query).await.unwrap();
        if let (Some((at, id)), Some(first)) = (&query.after, page.first()) {
            assert!((first.at, &first.id) > (*at, id), "a page starts at or before its cursor");
        }
        assert!(
            page.len() <= query.limit,
            "a page of {} for a limit of {}",
            page.len(),
            query.limit
        );
        let Some(last) = page.last() else { return all };
        query.after = Some((last.at, last.id.clone()));
        all.extend(page);
    }
}

/// The one suite: order, filters, paging, idempotent appends, reopening,
/// the retention purge, concurrent appends and a malformed id.
async fn exercise(backend: &dyn Backend) {
    let trail = backend.open().await;
    assert!(trail.query(&everything()).await.unwrap().is_empty());

    // Order by (at, id) across appends: 60 records over 20 milliseconds
    // (three per millisecond, ids in no order), appended last first in
    // three batches.
    let scopes = [Some(DEV), Some(PROD), None];
    let written: Vec<AuditRecord> =
        (0..60).map(|n| record(id(n), 1_000 + n % 20, scopes[(n % 3) as usize])).collect();
    for batch in written.chunks(20).rev() {
        let reversed: Vec<_> = batch.iter().rev().cloned().collect();
        trail.append(&reversed, false).await.unwrap();
    }
    let model = ordered(written.clone());
    assert_ne!(model, written, "the ids are not in the order of appending");
    assert_eq!(trail.query(&everything()).await.unwrap(), model);

    // The scope filter; a scope's prefix is another scope.
    let dev = AuditQuery { scope: Some(DEV.into()), ..everything() };
    assert_eq!(trail.query(&dev).await.unwrap(), of_scope(&model, DEV, 0));
    assert_eq!(of_scope(&model, DEV, 0).len(), 20);
    for other in ["acme/shop", "acme/shop/de", "acme/shop/dev/x", ""] {
        let query = AuditQuery { scope: Some(other.into()), ..everything() };
        assert!(trail.query(&query).await.unwrap().is_empty(), "{other}");
    }

    // Since: at or after, alone and with a scope.
    let since = AuditQuery { since: 1_015, ..everything() };
    let recent: Vec<_> = model.iter().filter(|record| record.at >= 1_015).cloned().collect();
    assert_eq!(recent.len(), 15);
    assert_eq!(trail.query(&since).await.unwrap(), recent);
    let dev_since = AuditQuery { since: 1_015, ..dev.clone() };
    assert_eq!(trail.query(&dev_since).await.unwrap(), of_scope(&model, DEV, 1_015));

    // Cursor paging reaches every record exactly once, pages of a limit
    // that divides nothing evenly; limit 0 means 1.
    for limit in [1, 7, 59] {
        assert_eq!(paged(trail.as_ref(), AuditQuery { limit, ..everything() }).await, model);
        let dev = AuditQuery { limit, ..dev.clone() };
        assert_eq!(paged(trail.as_ref(), dev).await, of_scope(&model, DEV, 0));
        let dev_since = AuditQuery { limit, ..dev_since.clone() };
        assert_eq!(paged(trail.as_ref(), dev_since).await, of_scope(&model, DEV, 1_015));
    }
    let one = AuditQuery { limit: 0, ..AuditQuery::default() };
    assert_eq!(trail.query(&one).await.unwrap(), model[..1]);
    // A cursor before `since` starts at `since`; one at the last record ends.
    let behind = AuditQuery { after: Some((10, id(0))), ..since.clone() };
    assert_eq!(trail.query(&behind).await.unwrap(), recent);
    let last = model.last().unwrap();
    let done = AuditQuery { after: Some((last.at, last.id.clone())), ..everything() };
    assert!(trail.query(&done).await.unwrap().is_empty());

    // Re-appending adds nothing: the same records again (durable, one
    // batch holding each twice), and a record with a known id and other
    // contents keeps the first.
    let twice: Vec<_> = written.iter().chain(&written).cloned().collect();
    trail.append(&twice, true).await.unwrap();
    let mut changed = written[0].clone();
    changed.outcome = AuditOutcome::Refused;
    changed.code = Some("forbidden".into());
    trail.append(&[changed], true).await.unwrap();
    assert_eq!(trail.query(&everything()).await.unwrap(), model);
    trail.append(&[], true).await.unwrap();

    // The records survive a reopen.
    drop(trail);
    let trail = backend.open().await;
    assert_eq!(trail.query(&everything()).await.unwrap(), model);

    // The retention removes exactly the older records, from every view.
    assert_eq!(trail.purge_before(1_010).await.unwrap(), 30);
    let kept: Vec<_> = model.iter().filter(|record| record.at >= 1_010).cloned().collect();
    assert_eq!(trail.query(&everything()).await.unwrap(), kept);
    for scope in [DEV, PROD] {
        let query = AuditQuery { scope: Some(scope.into()), limit: 3, ..everything() };
        assert_eq!(paged(trail.as_ref(), query).await, of_scope(&kept, scope, 0), "{scope}");
    }
    assert_eq!(trail.purge_before(1_010).await.unwrap(), 0);
    drop(trail);
    let trail = backend.open().await;
    assert_eq!(trail.query(&everything()).await.unwrap(), kept, "the purge persisted");

    // 32 tasks appending 50 records each, in batches of 10 (every other
    // one durable): every record there exactly once.
    let tasks: Vec<_> = (0..32u64)
        .map(|task| {
            let trail = trail.clone();
            tokio::spawn(async move {
                let records: Vec<_> = (0..50u64)
                    .map(|n| record(id(1_000 + task * 50 + n), 5_000 + n, Some(PROD)))
                    .collect();
                for (batch, records) in records.chunks(10).enumerate() {
                    trail.append(records, batch % 2 == 0).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let query = AuditQuery { since: 5_000, limit: 300, ..everything() };
    let concurrent = paged(trail.as_ref(), query).await;
    assert_eq!(concurrent.len(), 32 * 50);
    let ids: BTreeSet<_> = concurrent.iter().map(|record| record.id.clone()).collect();
    assert_eq!(ids, (0..32 * 50).map(|n| id(1_000 + n)).collect::<BTreeSet<_>>());
    assert_eq!(ordered(concurrent.clone()), concurrent);
    let query = AuditQuery { scope: Some(PROD.into()), since: 5_000, limit: 1_000, ..everything() };
    assert_eq!(paged(trail.as_ref(), query).await, concurrent, "the scope index agrees");

    // A malformed id is refused, naming it, and nothing of its batch is written.
    for bad in ["0123456789ABCDEF", "0123456789abcde", "not-an-id", ""] {
        let batch = [record(id(9_999), 9_000, Some(DEV)), record(bad.to_owned(), 9_000, None)];
        let error = trail.append(&batch, true).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&format!("{bad:?}")), "{message}");
        assert!(message.contains("16 lowercase hex digits"), "{message}");
    }
    let late = AuditQuery { since: 9_000, ..everything() };
    assert!(trail.query(&late).await.unwrap().is_empty(), "nothing of a refused batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_refuses_every_update_and_allows_the_retention() {
    let url = support::postgres_database().await;
    let trail = PostgresAudit::open(&url).await.unwrap();
    let kept = record(id(1), 1_000, Some(DEV));
    trail.append(&[kept.clone(), record(id(2), 500, None)], true).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    for update in [
        "UPDATE platos_audit SET scope = 'acme/shop/prod'",
        "UPDATE platos_audit SET record = '{}' WHERE at = 1000",
    ] {
        let error = client.batch_execute(update).await.unwrap_err();
        let message = error.as_db_error().map(|error| error.message().to_owned());
        assert_eq!(message.as_deref(), Some("platos_audit is append-only"), "{update}: {error}");
    }
    assert_eq!(trail.query(&everything()).await.unwrap()[1], kept, "unchanged");
    assert_eq!(trail.purge_before(1_000).await.unwrap(), 1);
    assert_eq!(trail.query(&everything()).await.unwrap(), [kept]);
    assert_eq!(trail.location(), url, "the test server's URL has no password to leave out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_trail_held_by_another_handle_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let held = SledAudit::open_in_data_dir(dir.path()).unwrap();
    assert_eq!(held.location(), dir.path().join("audit").display().to_string());
    let error = SledAudit::open_in_data_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains(&held.location()) && error.contains("in use"), "{error}");
    drop(held);
    SledAudit::open_in_data_dir(dir.path()).unwrap();
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_is_unavailable() {
    // Nothing listens on port 1 of the loopback.
    let backend: StoreBackend = "postgres://platos@127.0.0.1:1/platos".parse().unwrap();
    let error = backend.open_audit(std::path::Path::new("/nonexistent")).await.unwrap_err();
    assert_eq!(error.code(), "store_unavailable", "{error}");
}

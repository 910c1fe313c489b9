//! The audit trail over both backends: one suite ([`exercise`]) run for the
//! segment files (with their real sizes, and with tiny ones that cut many
//! segments and blocks) and for the PostgreSQL audit table (one constructor
//! each); then what only one has: the table's trigger refusing an update,
//! a database that cannot be reached; the files' torn lines, lost indexes,
//! whole-segment purges, lock, and the copy of an earlier release's sled trail.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use platos_host::store::audit::{ActorKind, MAX_AUDIT_PAGE};
use platos_host::store::{
    AuditAction, AuditActor, AuditOutcome, AuditQuery, AuditRecord, AuditTrail, FileAudit,
    PostgresAudit, SegmentLimits, StoreBackend, UnixMillis,
};

/// Where a trail lives; [`Backend::open`] opens it again (a reopen after
/// the suite dropped its handle).
#[async_trait]
trait Backend: Send + Sync {
    async fn open(&self) -> Arc<dyn AuditTrail>;
}

/// The segment files in a directory, cut at `limits`.
struct Files(tempfile::TempDir, SegmentLimits);

#[async_trait]
impl Backend for Files {
    async fn open(&self) -> Arc<dyn AuditTrail> {
        Arc::new(FileAudit::open_with_limits(self.0.path(), self.1).unwrap())
    }
}

/// Limits that cut a segment every few appends and a block every line.
const TINY: SegmentLimits = SegmentLimits { segment_bytes: 4096, block_bytes: 1 };

struct Postgres(String);

#[async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn AuditTrail> {
        Arc::new(PostgresAudit::open(&self.0).await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_in_files() {
    exercise(&Files(tempfile::tempdir().unwrap(), SegmentLimits::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_in_many_small_files() {
    let backend = Files(tempfile::tempdir().unwrap(), TINY);
    exercise(&backend).await;
    // The suite's records crossed many segments, each closed one indexed,
    // and the purge deleted the segments it emptied.
    let segments = files_ending(backend.0.path(), ".seg");
    assert!(segments.len() > 20, "{segments:?}");
    assert_eq!(files_ending(backend.0.path(), ".idx").len(), segments.len() - 1);
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
async fn a_trail_held_by_another_handle_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let held = FileAudit::open_in_data_dir(dir.path()).unwrap();
    assert_eq!(held.location(), dir.path().join("audit").display().to_string());
    let error = FileAudit::open_in_data_dir(dir.path()).unwrap_err().to_string();
    assert!(error.contains(&held.location()) && error.contains("in use"), "{error}");
    drop(held);
    FileAudit::open_in_data_dir(dir.path()).unwrap();
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn append_to(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_cut_off_and_a_broken_line_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..10).map(|n| record(id(n), 2_000 + n, Some(DEV))).collect();
    FileAudit::open(dir.path()).unwrap().append(&first, true).await.unwrap();
    let segment = files_ending(dir.path(), ".seg").pop().unwrap();
    let whole = std::fs::metadata(&segment).unwrap().len();

    // A crash in the middle of a write: the last line has no end.
    let second: Vec<_> = (10..20).map(|n| record(id(n), 2_000 + n, Some(PROD))).collect();
    let line = serde_json::to_vec(&second).unwrap();
    append_to(&segment, &line[..line.len() / 2]);
    let trail = FileAudit::open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole, "the torn line is cut off");
    assert_eq!(trail.query(&everything()).await.unwrap(), first);
    trail.append(&second, false).await.unwrap();
    assert_eq!(trail.query(&everything()).await.unwrap(), ordered([first, second].concat()));
    drop(trail);

    // A whole line that is not records (a write cut short, then a newline)
    // is skipped by every reader, the rest read as before.
    let before = std::fs::read(&segment).unwrap();
    append_to(&segment, b"[{\"id\":\"00000000000000aa\",\"at\":3\n");
    let third = vec![record(id(30), 2_030, Some(DEV))];
    let trail = FileAudit::open(dir.path()).unwrap();
    trail.append(&third, true).await.unwrap();
    let all = trail.query(&everything()).await.unwrap();
    assert_eq!(all.len(), 21);
    assert_eq!(all.last(), third.last());
    let dev = AuditQuery { scope: Some(DEV.into()), ..everything() };
    assert_eq!(trail.query(&dev).await.unwrap().len(), 11);
    assert!(std::fs::read(&segment).unwrap().starts_with(&before), "nothing written is changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_or_stale_indexes_are_rebuilt_from_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let trail = FileAudit::open_with_limits(dir.path(), TINY).unwrap();
    let written: Vec<_> = (0..120)
        .map(|n| record(id(n), 4_000 + n, [Some(DEV), Some(PROD)][n as usize % 2]))
        .collect();
    for batch in written.chunks(4) {
        trail.append(batch, false).await.unwrap();
    }
    trail.append(&[], true).await.unwrap();
    drop(trail);
    // Closing writes indexes on a blocking thread: wait for the last.
    let segments = files_ending(dir.path(), ".seg");
    assert!(segments.len() >= 4, "{segments:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while files_ending(dir.path(), ".idx").len() < segments.len() - 1 {
        assert!(std::time::Instant::now() < deadline, "the closed segments were not indexed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let indexes = files_ending(dir.path(), ".idx");
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], b"{not json").unwrap();
    // An index of another length: its segment changed behind it.
    let stale = std::fs::read_to_string(&indexes[2]).unwrap();
    std::fs::write(&indexes[2], stale.replacen("\"len\":", "\"len\":1", 1)).unwrap();

    // What a crash in the middle of writing an index leaves.
    let half_written = dir.path().join(".0000000000000000.idx.4242.0.tmp");
    std::fs::write(&half_written, b"{\"len\":").unwrap();

    let trail = FileAudit::open_with_limits(dir.path(), TINY).unwrap();
    assert!(!half_written.exists(), "a half-written file is removed");
    assert_eq!(paged(&trail, AuditQuery { limit: 7, ..everything() }).await, written);
    let dev = AuditQuery { scope: Some(DEV.into()), limit: 5, ..everything() };
    assert_eq!(paged(&trail, dev).await, of_scope(&written, DEV, 0));
    assert_eq!(files_ending(dir.path(), ".idx").len(), indexes.len(), "rewritten");
    let rebuilt = std::fs::read_to_string(&indexes[2]).unwrap();
    assert_eq!(rebuilt, stale);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_deletes_whole_segments_and_its_mark_survives() {
    let dir = tempfile::tempdir().unwrap();
    let trail = FileAudit::open_with_limits(dir.path(), TINY).unwrap();
    let written: Vec<_> = (0..100).map(|n| record(id(n), 10_000 + n * 10, Some(DEV))).collect();
    for batch in written.chunks(5) {
        trail.append(batch, false).await.unwrap();
    }
    let segments = files_ending(dir.path(), ".seg").len();
    // 10,500 falls inside a segment: its older records go from every view
    // at once, the segments wholly before it from the disk.
    assert_eq!(trail.purge_before(10_500).await.unwrap(), 50);
    let kept: Vec<_> = written[50..].to_vec();
    assert_eq!(trail.query(&everything()).await.unwrap(), kept);
    let left = files_ending(dir.path(), ".seg").len();
    assert!(left < segments && left > segments / 3, "{left} of {segments} segments left");
    // Records past the retention are not written again.
    trail.append(&written[..10], true).await.unwrap();
    assert_eq!(trail.query(&everything()).await.unwrap(), kept);
    drop(trail);
    let trail = FileAudit::open_with_limits(dir.path(), TINY).unwrap();
    assert_eq!(trail.query(&everything()).await.unwrap(), kept, "the mark is kept");
    assert_eq!(trail.purge_before(10_500).await.unwrap(), 0);
    assert_eq!(trail.purge_before(20_000).await.unwrap(), 50);
    assert!(trail.query(&everything()).await.unwrap().is_empty());
    std::fs::write(dir.path().join("purged-before"), "soon").unwrap();
    drop(trail);
    let error = FileAudit::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("purged-before") && error.contains("\"soon\""), "{error}");
}

// ---------------------------------------------------------------------------
// The upgrade promise: an earlier release's sled audit database
// (`tests/fixtures/datadir-sled-audit`) is copied into the segments.

const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/datadir-sled-audit/data");
/// The clock its records were written at.
const FIXTURE_T0: UnixMillis = 1_764_000_000_000;

/// A copy of the fixture's data directory (opening the trail changes it).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    for name in ["conf", "db"] {
        std::fs::copy(Path::new(FIXTURE).join("audit").join(name), audit.join(name)).unwrap();
    }
    dir
}

/// Checks the records of the fixture, as `generate.rs` wrote them.
fn assert_fixture_records(records: &[AuditRecord]) {
    let fixture_id = |n: u64| format!("{:016x}", 0x0a00_0000_0000_0000 + n);
    let ids: Vec<&str> = records.iter().map(|record| record.id.as_str()).collect();
    let expected: Vec<String> = (1..26).map(fixture_id).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    let set = &records[0];
    assert_eq!(
        (set.at, set.action, set.outcome),
        (FIXTURE_T0, AuditAction::VarSet, AuditOutcome::Ok)
    );
    assert_eq!(set.actor, AuditActor { kind: ActorKind::Admin, token_id: Some("tok0001".into()) });
    assert_eq!((set.scope.as_deref(), set.provider.as_deref()), (Some(PROD), Some("openai")));
    assert_eq!(
        (set.variable.as_deref(), set.variant, set.version),
        (Some("OPENAI_API_KEY"), Some(1), Some(1))
    );
    assert_eq!(records[1].detail["label"], "équipe \"backup\"\n");
    let refused = &records[2];
    assert_eq!((refused.at, refused.outcome), (FIXTURE_T0 + 1, AuditOutcome::Refused));
    assert_eq!(refused.code.as_deref(), Some("invalid_name"));
    let failed = &records[3];
    assert_eq!(
        (failed.outcome, failed.subject.as_deref()),
        (AuditOutcome::Failed, Some("tok0009"))
    );
    assert_eq!(failed.request, "0b00000000000001");
    let load = &records[4];
    assert_eq!((load.actor.kind, load.subject.as_deref()), (ActorKind::Host, Some("openai@0.2.0")));
    assert_eq!(load.detail["sha256"], "ab".repeat(32));
    for (n, resolve) in (6..).zip(&records[5..]) {
        assert_eq!((resolve.at, resolve.action), (FIXTURE_T0 + 1_000 * n, AuditAction::Resolve));
        assert_eq!(resolve.scope.as_deref(), Some(if n % 2 == 0 { PROD } else { DEV }));
        assert_eq!(resolve.detail["chosen_by"], "scope-default");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sled_trail_of_an_earlier_release_is_copied_in_and_reads_the_same() {
    let data = fixture_copy();
    let audit = data.path().join("audit");
    let trail = FileAudit::open_in_data_dir(data.path()).unwrap();
    let records = trail.query(&everything()).await.unwrap();
    assert_fixture_records(&records);
    let dev = AuditQuery { scope: Some(DEV.into()), since: FIXTURE_T0 + 1, ..everything() };
    let expected: Vec<_> = records
        .iter()
        .filter(|record| record.scope.as_deref() == Some(DEV) && record.at > FIXTURE_T0)
        .cloned()
        .collect();
    assert_eq!(trail.query(&dev).await.unwrap(), expected);
    assert_eq!(expected.len(), 11);
    for name in ["conf", "db", "blobs"] {
        assert!(!audit.join(name).exists(), "{name} of the sled database is removed");
    }
    drop(trail);
    let trail = FileAudit::open_in_data_dir(data.path()).unwrap();
    assert_eq!(trail.query(&everything()).await.unwrap(), records, "reopened");
    drop(trail);

    // A copy a crash cut short before the sled files went is done again,
    // and adds nothing twice.
    for name in ["conf", "db"] {
        std::fs::copy(Path::new(FIXTURE).join("audit").join(name), audit.join(name)).unwrap();
    }
    let trail = FileAudit::open_in_data_dir(data.path()).unwrap();
    assert_eq!(trail.query(&everything()).await.unwrap(), records);
    assert!(!audit.join("db").exists());
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_is_unavailable() {
    // Nothing listens on port 1 of the loopback.
    let backend: StoreBackend = "postgres://platos@127.0.0.1:1/platos".parse().unwrap();
    let error = backend.open_audit(std::path::Path::new("/nonexistent")).await.unwrap_err();
    assert_eq!(error.code(), "store_unavailable", "{error}");
}

/// Spawns the trail's crash writer (`platos-host audit-torture`), kills it
/// with SIGKILL at a random moment, reopens the trail and checks that it
/// opens, that every record acknowledged is there exactly once, in order,
/// and that no record is there that was not written: 30 cycles by default,
/// `PLATOS_CRASH_CYCLES` for more. Its small segments close every few
/// dozen batches, so kills land in closes and index writes too.
#[test]
fn acknowledged_records_survive_sigkill() {
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let cycles: u32 =
        std::env::var("PLATOS_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let trail_dir = dir.path().join("audit");
    let limits = SegmentLimits { segment_bytes: 16 << 10, block_bytes: 2 << 10 };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    // Per run, the highest record acknowledged.
    let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
    for run in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
            .args(["audit-torture", "--run", &run.to_string(), "--dir"])
            .arg(&trail_dir)
            .env("PLATOS_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the writer starts");
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || support::crash::read_acks(stdout, first_tx));
        // Odd runs: kill anywhere from start-up on (opening, cutting a torn
        // line); even runs: once appends flow.
        if run % 2 == 0 {
            let started = first_rx.recv_timeout(Duration::from_secs(30));
            assert!(started.is_ok(), "run {run}: the writer acknowledged nothing");
        }
        std::thread::sleep(Duration::from_micros(support::crash::random_u64() % 40_000));
        assert!(child.try_wait().unwrap().is_none(), "run {run}: the writer exited");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(&last) = reader.join().unwrap().last() {
            acked.insert(run, last);
        }

        let trail = FileAudit::open_with_limits(&trail_dir, limits)
            .unwrap_or_else(|error| panic!("run {run}: the trail does not open: {error}"));
        let all = runtime.block_on(paged(&trail, AuditQuery { limit: 997, ..everything() }));
        assert_eq!(ordered(all.clone()), all, "run {run}: out of order");
        let mut seen: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        for record in &all {
            let of_run = u32::from_str_radix(&record.id[..8], 16).unwrap();
            let n = u64::from_str_radix(&record.id[8..], 16).unwrap();
            assert!(seen.entry(of_run).or_default().insert(n), "run {run}: {} twice", record.id);
            assert_eq!(record.scope, Some(format!("torture/audit/{}", n % 3)));
        }
        for (of_run, last) in &acked {
            let numbers = seen.get(of_run).cloned().unwrap_or_default();
            // Every acknowledged record, and at most one batch (7) more.
            assert!(
                (1..=*last).all(|n| numbers.contains(&n)),
                "run {run}: an acknowledged record of run {of_run} (up to {last}) is missing"
            );
            assert!(numbers.iter().all(|n| *n <= last + 7), "run {run}: records never written");
        }
        let scoped = runtime.block_on(paged(
            &trail,
            AuditQuery { scope: Some("torture/audit/1".into()), limit: 500, ..everything() },
        ));
        let expected: Vec<_> = all
            .iter()
            .filter(|record| record.scope.as_deref() == Some("torture/audit/1"))
            .cloned()
            .collect();
        assert_eq!(scoped, expected, "run {run}: the scope's blocks");
    }
    assert!(
        acked.len() as u32 >= cycles / 2,
        "the writer was killed before acknowledging anything"
    );
}

//! The audit trail: one [`AuditRecord`] per change to a variable, a key
//! row, a budget or a token, per resolve, authorize and forward, and per
//! plugin loaded or refused. Vault's audit devices are the model.
//!
//! - **Record first.** A change's record is written (and made durable)
//!   before the change is made; a resolve's before its values are answered.
//!   If it cannot be written, the action is refused with 503
//!   `audit_unavailable` and nothing happens ([`OnAuditError::Refuse`], the
//!   default); [`OnAuditError::Allow`] logs the failure and goes on.
//! - **Where.** The store's trail ([`AuditTrail`]: segment files under
//!   `<data_dir>/audit` beside sled, or the PostgreSQL table every host
//!   shares),
//!   queryable through `GET /v1/audit`; optionally a JSON-lines copy
//!   ([`sink`]) for a log shipper. Every device must take a record.
//! - **Group commit.** Records from concurrent requests are written in one
//!   batch by one writer task ([`Auditor`]): one append and one write per
//!   batch, so resolve-heavy traffic keeps its throughput.
//! - **Never a value.** A record has no field for one ([`AuditRecord`]).
//! - **Retention.** Records older than [`AuditConfig::retention`] are purged
//!   by the maintenance loop.

mod draft;
pub mod sink;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use draft::{AuditDraft, cli_actor, key_update_action};
pub use sink::{JsonLines, SinkTarget};

use crate::store::{AuditOutcome, AuditRecord, AuditTrail, StoreError, UnixMillis, now_millis};

/// How long records are kept by default: 90 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The most records one batch writes.
const MAX_BATCH: usize = 1024;

/// The most records waiting for the writer; more wait to be queued.
const QUEUE_LEN: usize = 8 * MAX_BATCH;

/// What the host does when a record cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnAuditError {
    /// Refuse the action (fail closed): nothing happens without its record.
    #[default]
    Refuse,
    /// Log the failure, count it, and go on (fail open).
    Allow,
}

impl FromStr for OnAuditError {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "refuse" => Ok(OnAuditError::Refuse),
            "allow" => Ok(OnAuditError::Allow),
            other => Err(format!(
                "`{other}`: expected `refuse` (an action whose record cannot be written is refused) or `allow` (it goes on, and the failure is logged)"
            )),
        }
    }
}

impl fmt::Display for OnAuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnAuditError::Refuse => "refuse",
            OnAuditError::Allow => "allow",
        })
    }
}

/// How the audit trail runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Whether actions are recorded at all.
    pub enabled: bool,
    /// What happens when a record cannot be written.
    pub on_error: OnAuditError,
    /// How long records are kept.
    pub retention: Duration,
    /// The JSON-lines copy, if any.
    pub sink: Option<SinkTarget>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            on_error: OnAuditError::Refuse,
            retention: DEFAULT_RETENTION,
            sink: None,
        }
    }
}

/// Why a record could not be written. Never holds a value (records have
/// none).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The store's trail refused the batch.
    #[error("the audit trail in {location} could not be written: {reason}")]
    Trail {
        /// Where the trail is.
        location: String,
        /// Why.
        reason: String,
        /// Whether the store cannot be reached right now
        /// ([`StoreError::Unavailable`]): retrying shortly may succeed.
        unavailable: bool,
    },
    /// The JSON-lines copy refused the batch (a full disk).
    #[error("the audit log {target} could not be written: {reason}")]
    Sink {
        /// Where the lines go.
        target: String,
        /// Why.
        reason: String,
    },
    /// The writer has stopped (the host is shutting down).
    #[error("the audit writer has stopped")]
    Stopped,
}

/// How many records were written and how many could not be.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Records written to every device.
    pub written: AtomicU64,
    /// Records that could not be written.
    pub failed: AtomicU64,
}

/// The audit trail's writer: a cheap handle. A disabled one records nothing.
#[derive(Clone)]
pub struct Auditor {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queue: mpsc::Sender<Pending>,
    trail: Arc<dyn AuditTrail>,
    on_error: OnAuditError,
    retention: Duration,
    counters: Arc<AuditCounters>,
}

/// A record waiting for its batch, and who waits for it.
struct Pending {
    record: AuditRecord,
    done: oneshot::Sender<Result<(), AuditError>>,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Auditor(disabled)"),
            Some(inner) => f
                .debug_struct("Auditor")
                .field("trail", &inner.trail.location())
                .field("on_error", &inner.on_error)
                .finish_non_exhaustive(),
        }
    }
}

impl Auditor {
    /// An auditor that records nothing (`--audit off`).
    pub fn disabled() -> Self {
        Auditor { inner: None }
    }

    /// Starts the writer over `trail` and the JSON-lines copy `config`
    /// names, on the current Tokio runtime. Fails if the copy cannot be
    /// opened. A disabled `config` gives [`Auditor::disabled`].
    pub fn start(trail: Arc<dyn AuditTrail>, config: &AuditConfig) -> Result<Self, AuditError> {
        let AuditConfig { enabled, on_error, retention, sink } = config;
        if !enabled {
            return Ok(Auditor::disabled());
        }
        let sink = match sink {
            Some(target) => Some(JsonLines::open(target).map_err(|error| AuditError::Sink {
                target: target.to_string(),
                reason: error.to_string(),
            })?),
            None => None,
        };
        let (queue, pending) = mpsc::channel(QUEUE_LEN);
        let counters = Arc::new(AuditCounters::default());
        tokio::spawn(write_batches(pending, trail.clone(), sink, counters.clone()));
        Ok(Auditor {
            inner: Some(Arc::new(Inner {
                queue,
                trail,
                on_error: *on_error,
                retention: *retention,
                counters,
            })),
        })
    }

    /// The store's trail, to query; `None` when auditing is off.
    pub fn trail(&self) -> Option<&Arc<dyn AuditTrail>> {
        self.inner.as_ref().map(|inner| &inner.trail)
    }

    /// The counts of records written and failed; `None` when auditing is off.
    pub fn counters(&self) -> Option<&AuditCounters> {
        self.inner.as_ref().map(|inner| &*inner.counters)
    }

    /// Writes `record` with the batch it joins, and waits until every device
    /// has it. With [`OnAuditError::Allow`], a failure is logged and
    /// `Ok(())` returned.
    pub async fn write(&self, record: AuditRecord) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else { return Ok(()) };
        let action = record.action;
        let (done, written) = oneshot::channel();
        let result = match inner.queue.send(Pending { record, done }).await {
            Ok(()) => written.await.unwrap_or(Err(AuditError::Stopped)),
            Err(_) => Err(AuditError::Stopped),
        };
        match result {
            Err(error) if inner.on_error == OnAuditError::Allow => {
                tracing::error!(%error, %action, "an audit record was lost (--audit-on-error allow): the action goes on");
                Ok(())
            }
            result => result,
        }
    }

    /// Records `draft` as allowed: the action may go on only if this is `Ok`.
    pub async fn allow(&self, draft: &AuditDraft) -> Result<(), AuditError> {
        self.write(draft.ok()).await
    }

    /// Records `draft` as refused with `code`. Nothing was done, so a record
    /// that cannot be written is logged, and the refusal stands.
    pub async fn refuse(&self, draft: &AuditDraft, code: &str) {
        if let Err(error) = self.write(draft.refused(code)).await {
            tracing::error!(%error, action = %draft.action(), code, "the audit record of a refused action could not be written");
        }
    }

    /// Records that `draft`, allowed, then failed with `code` in the store.
    pub async fn fail(&self, draft: &AuditDraft, code: &str) {
        if let Err(error) = self.write(draft.failed(code)).await {
            tracing::error!(%error, action = %draft.action(), code, "the audit record of a failed action could not be written");
        }
    }

    /// Makes every record written so far durable (at shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.inner {
            Some(inner) => inner.trail.append(&[], true).await,
            None => Ok(()),
        }
    }

    /// Removes the records past the retention, as of `now`; how many.
    pub async fn purge_expired(&self, now: UnixMillis) -> Result<usize, StoreError> {
        let Some(inner) = &self.inner else { return Ok(0) };
        let retention = u64::try_from(inner.retention.as_millis()).unwrap_or(u64::MAX);
        inner.trail.purge_before(now.saturating_sub(retention)).await
    }
}

/// Gives each record its place in the trail as the writer takes it: `at`
/// never goes back and ids grow, so on one host `(at, id)` is the order
/// records were written in, and a reader paging with `after` misses none
/// written later. Ids start at a random point per process.
struct Stamp {
    last_at: UnixMillis,
    next_id: u64,
}

impl Stamp {
    fn new() -> Self {
        let start = u64::from_be_bytes(crate::crypto::random_bytes::<8>());
        // Room for 2^62 records before the ids wrap.
        Stamp { last_at: 0, next_id: start >> 2 }
    }

    fn stamp(&mut self, record: &mut AuditRecord, now: UnixMillis) {
        self.last_at = self.last_at.max(now);
        record.at = self.last_at;
        record.id = format!("{:016x}", self.next_id);
        self.next_id += 1;
    }
}

/// The writer: takes what is queued (up to [`MAX_BATCH`]), writes it to the
/// JSON-lines copy and the trail, and answers every waiter. When one device
/// took a batch the other refused, it gets a `failed` record of each, so
/// both say the actions did not happen.
async fn write_batches(
    mut pending: mpsc::Receiver<Pending>,
    trail: Arc<dyn AuditTrail>,
    mut sink: Option<JsonLines>,
    counters: Arc<AuditCounters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stamp = Stamp::new();
    // A copy lost to a failed blocking task refuses every later batch.
    let copy_target = sink.as_ref().map(|sink| sink.target().to_string());
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let now = now_millis();
        let (mut records, waiters): (Vec<AuditRecord>, Vec<_>) =
            batch.drain(..).map(|waiting| (waiting.record, waiting.done)).unzip();
        for record in &mut records {
            stamp.stamp(record, now);
        }
        let durable = records.iter().any(|record| record.action.is_change());
        let (returned, sunk) = match (&sink, &copy_target) {
            (None, Some(target)) => (
                None,
                Err(AuditError::Sink {
                    target: target.clone(),
                    reason: "its writer stopped".to_owned(),
                }),
            ),
            _ => write_sink(sink.take(), &records, durable).await,
        };
        sink = returned;
        let result = match sunk {
            Err(error) => Err(error),
            Ok(()) => match trail.append(&records, durable).await {
                Ok(()) => Ok(()),
                Err(error) => {
                    let error = AuditError::Trail {
                        location: trail.location(),
                        reason: error.to_string(),
                        unavailable: matches!(error, StoreError::Unavailable(_)),
                    };
                    if sink.is_some() {
                        let mut undone = undone(&records);
                        for record in &mut undone {
                            stamp.stamp(record, now_millis());
                        }
                        let (returned, _) = write_sink(sink.take(), &undone, true).await;
                        sink = returned;
                    }
                    Err(error)
                }
            },
        };
        let count = waiters.len() as u64;
        match &result {
            Ok(()) => counters.written.fetch_add(count, Ordering::Relaxed),
            Err(_) => counters.failed.fetch_add(count, Ordering::Relaxed),
        };
        for done in waiters {
            let _ = done.send(result.clone());
        }
    }
}

/// The `failed` records saying each of `records` did not happen, because
/// its record could not be written everywhere.
fn undone(records: &[AuditRecord]) -> Vec<AuditRecord> {
    records
        .iter()
        .filter(|record| record.outcome == AuditOutcome::Ok)
        .map(|record| AuditRecord {
            outcome: AuditOutcome::Failed,
            code: Some("audit_unavailable".to_owned()),
            ..record.clone()
        })
        .collect()
}

/// Writes `records` to the JSON-lines copy, if there is one: in place when
/// the write cannot block for long (a file's page cache), else on a blocking
/// thread (a sync, or a pipe that may be full); gives the copy back.
async fn write_sink(
    sink: Option<JsonLines>,
    records: &[AuditRecord],
    durable: bool,
) -> (Option<JsonLines>, Result<(), AuditError>) {
    let Some(mut sink) = sink else { return (None, Ok(())) };
    let failed = |sink: &JsonLines, error: std::io::Error| AuditError::Sink {
        target: sink.target().to_string(),
        reason: error.to_string(),
    };
    if !sink.may_block(durable) {
        let result = sink.write(records, durable).map_err(|error| failed(&sink, error));
        return (Some(sink), result);
    }
    let records = records.to_vec();
    let written = tokio::task::spawn_blocking(move || {
        let result = sink.write(&records, durable);
        (sink, result)
    })
    .await;
    match written {
        Ok((sink, result)) => {
            let result = result.map_err(|error| failed(&sink, error));
            (Some(sink), result)
        }
        Err(_) => (None, Err(AuditError::Stopped)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_error_parses_with_a_clear_error() {
        assert_eq!("refuse".parse::<OnAuditError>().unwrap(), OnAuditError::Refuse);
        assert_eq!(" Allow ".parse::<OnAuditError>().unwrap(), OnAuditError::Allow);
        let error = "ignore".parse::<OnAuditError>().unwrap_err();
        assert!(error.contains("`ignore`") && error.contains("expected `refuse`"), "{error}");
        assert_eq!(OnAuditError::default(), OnAuditError::Refuse);
    }

    #[test]
    fn stamps_keep_the_written_order_even_when_the_clock_steps_back() {
        let mut stamp = Stamp::new();
        let draft = AuditDraft::new(
            crate::store::AuditAction::Resolve,
            crate::store::AuditActor::of_kind(crate::store::audit::ActorKind::Host),
        );
        let mut records: Vec<AuditRecord> = (0..5).map(|_| draft.ok()).collect();
        for (record, now) in records.iter_mut().zip([10, 10, 9, 12, 11]) {
            stamp.stamp(record, now);
        }
        let places: Vec<(UnixMillis, String)> =
            records.iter().map(|record| (record.at, record.id.clone())).collect();
        let mut sorted = places.clone();
        sorted.sort();
        assert_eq!(places, sorted);
        assert_eq!(places.iter().map(|place| place.0).collect::<Vec<_>>(), [10, 10, 10, 12, 12]);
        assert!(places.iter().all(|(_, id)| id.len() == crate::store::audit::AUDIT_ID_LEN));
    }

    #[test]
    fn undone_records_follow_only_the_allowed_ones() {
        let draft = AuditDraft::new(
            crate::store::AuditAction::VarSet,
            crate::store::AuditActor::of_kind(crate::store::audit::ActorKind::Cli),
        );
        let undone = undone(&[draft.ok(), draft.refused("invalid_name")]);
        assert_eq!(undone.len(), 1);
        assert_eq!(undone[0].request, draft.ok().request);
        assert_eq!(undone[0].outcome, AuditOutcome::Failed);
        assert_eq!(undone[0].code.as_deref(), Some("audit_unavailable"));
    }
}

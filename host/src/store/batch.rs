//! Batches: many jobs of one handler under one batch id, with counts a
//! client can watch and completion callbacks.
//!
//! The jobs are enqueued in chunks, each chunk atomic (one transaction, one
//! script); the batch row, made with the first chunk, knows the total. The
//! store keeps per-batch counters of succeeded, dead and cancelled jobs,
//! updated in the same atomic step that ends a job, and in that step also
//! enqueues the callbacks, so each fires exactly once however many hosts
//! share the store:
//!
//! - `on_complete`, when every job has finished (succeeded, dead or
//!   cancelled);
//! - `on_success`, when every job has succeeded.
//!
//! A dead job retried from the DLQ counts as unfinished again. Then
//! `on_complete`, once fired, stays fired (it is not enqueued again), while
//! `on_success` fires when the retry makes the batch all-succeeded (still
//! once). A callback's payload gets the batch id under [`BATCH`].
//!
//! A waiting job of a batch removed by a queue purge counts as cancelled.
//! A batch whose maker died between chunks has `enqueued < total` (its
//! first items: chunks are written in order) and does not finish. Started
//! with an idempotency key, a repeat of the start writes the rest: a
//! batch's job ids derive from its id and the item's index
//! ([`JobId::nth_of`]), so every start names the same jobs. Without a key,
//! cancel it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobId, NewJob, Priority};
use crate::store::chain::StoredStep;
use crate::store::{StoreError, StoreResult};
use crate::worker::retry::RetryPolicy;

/// The payload member a callback gets the batch id under.
pub const BATCH: &str = "batch";

/// The most jobs one batch may have.
pub const MAX_JOBS: usize = 10_000;

/// Jobs per atomic chunk unless the caller says otherwise.
pub const DEFAULT_CHUNK: usize = 1_000;

/// A batch to make.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub handler: String,
    pub queue: String,
    pub priority: Priority,
    pub max_attempts: u32,
    /// The jobs' own retry policy, instead of their handler's.
    pub retry: Option<RetryPolicy>,
    /// One job per item, the item its payload.
    pub items: Vec<Value>,
    /// Jobs per atomic chunk (1..=[`MAX_JOBS`]).
    pub chunk: usize,
    /// Enqueued once when every job has finished.
    pub on_complete: Option<NewJob>,
    /// Enqueued once when every job has succeeded.
    pub on_success: Option<NewJob>,
    /// Makes the start safe to repeat: within the store's idempotency TTL,
    /// a start under the same key (scoped by handler) answers the batch it
    /// made, and writes the jobs that start did not get to (its maker died
    /// between chunks); one with other items or settings is refused.
    pub idempotency_key: Option<String>,
    /// A hash of what the caller asked for ([`request_hash`] over the
    /// fields it gave, not the defaults filled in), which a repeat under
    /// the key must match; without it, the batch's own settings and items.
    pub asked: Option<String>,
}

impl NewBatch {
    /// A batch of `items` for `handler` on the default queue, default chunk.
    pub fn new(handler: impl Into<String>, items: Vec<Value>) -> Self {
        let job = NewJob::new(handler, Value::Null);
        Self {
            handler: job.handler,
            queue: job.queue,
            priority: job.priority,
            max_attempts: job.max_attempts,
            retry: None,
            items,
            chunk: DEFAULT_CHUNK,
            on_complete: None,
            on_success: None,
            idempotency_key: None,
            asked: None,
        }
    }
}

/// A callback as the store reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchCallback {
    pub handler: String,
    /// The callback's job id (fixed when the batch is made; the job exists
    /// once fired).
    #[schema(value_type = String, format = Uuid)]
    pub job: JobId,
    /// Whether it was enqueued.
    pub fired: bool,
}

/// A batch as stored, with its jobs' counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Batch {
    #[schema(value_type = String, format = Uuid)]
    pub id: JobId,
    pub handler: String,
    /// Jobs the batch was made with.
    pub total: u64,
    /// Jobs in the store so far (less than `total` only while the chunks
    /// are being written, or when their maker died in between).
    pub enqueued: u64,
    /// Waiting (or not yet enqueued): neither running nor finished.
    pub pending: u64,
    pub running: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
    /// Finished (succeeded, dead, cancelled) of total, 0 to 100.
    pub percent: f64,
    /// Every job has finished.
    pub finished: bool,
    pub created_at: DateTime<Utc>,
    /// When the last job finished (cleared by a DLQ retry of one).
    pub finished_at: Option<DateTime<Utc>>,
    pub on_complete: Option<BatchCallback>,
    pub on_success: Option<BatchCallback>,
}

/// A batch as made: the batch and its jobs' ids in item order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StartedBatch {
    pub batch: Batch,
    #[schema(value_type = Vec<String>)]
    pub jobs: Vec<JobId>,
    /// False when the idempotency key named a batch an earlier start made
    /// (this one wrote only what that one had not). Hosts older than the
    /// field made every batch they answered.
    #[serde(default = "made")]
    pub created: bool,
}

fn made() -> bool {
    true
}

/// The batch row's fixed part as both backends keep it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredBatch {
    pub handler: String,
    pub queue: String,
    pub priority: u8,
    pub max_attempts: u32,
    /// The jobs' own retry policy as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    pub total: u64,
    pub on_complete: Option<StoredStep>,
    pub on_success: Option<StoredStep>,
    /// The scoped idempotency key the batch was started under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A hash of what the start asked for (see [`NewBatch::asked`]): a
    /// start under its key must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A checked batch: the row, then its jobs' payloads (JSON text), written
/// `chunk` at a time under ids derived from the batch id.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub id: JobId,
    pub head: StoredBatch,
    pub payloads: Vec<String>,
    pub chunk: usize,
}

impl Prepared {
    /// The jobs' ids in item order.
    pub fn job_ids(&self) -> Vec<JobId> {
        (0..self.payloads.len())
            .map(|i| JobId::nth_of(self.id, i))
            .collect()
    }

    /// The chunk of jobs (ids and payloads) from item `start` on; empty
    /// past the last.
    pub fn chunk_from(&self, start: usize) -> Vec<(JobId, String)> {
        let start = start.min(self.payloads.len());
        let end = (start + self.chunk).min(self.payloads.len());
        (start..end)
            .map(|n| (JobId::nth_of(self.id, n), self.payloads[n].clone()))
            .collect()
    }
}

/// What writing a chunk of a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// The chunk is written (or was, by a retried call).
    Written,
    /// Nothing (a first chunk): the key is bound to `batch`, made by an
    /// earlier start with the same fingerprint, which holds its first
    /// `written` items (chunks are written in order, each whole) of
    /// `total`; the rest are written to it instead.
    BoundTo {
        batch: JobId,
        written: u64,
        total: u64,
    },
    /// Nothing: the batch was cancelled before this chunk, which closed it
    /// at the jobs it had; no more are written.
    Closed,
}

/// The refusal of a start whose (scoped) key is bound to a batch asked to
/// do something else; it names the key as the caller gave it.
pub(crate) fn key_reused(scoped: &str, batch: JobId) -> StoreError {
    // `batch:<handler length>:<handler>:<key>`
    let given = scoped
        .strip_prefix("batch:")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(len, rest)| rest.get(len.parse::<usize>().ok()? + 1..))
        .unwrap_or(scoped);
    StoreError::Invalid(format!(
        "idempotency key {given:?} was used to start batch {batch} with other items or settings"
    ))
}

/// Writes a prepared batch a chunk at a time through `add(id, head,
/// first, jobs)`; when the first chunk finds the key bound to an earlier
/// start's batch, writes the items that batch does not have yet to it
/// (none, when its start finished). Answers the batch id, whether this
/// call made it, and its jobs' ids.
pub(crate) async fn write<F, Fut>(
    mut p: Prepared,
    mut add: F,
) -> StoreResult<(JobId, bool, Vec<JobId>)>
where
    F: FnMut(JobId, std::sync::Arc<StoredBatch>, bool, Vec<(JobId, String)>) -> Fut,
    Fut: std::future::Future<Output = StoreResult<Added>>,
{
    let head = std::sync::Arc::new(std::mem::replace(&mut p.head, StoredBatch::empty()));
    let (mut created, mut at, mut end) = (true, 0, p.payloads.len());
    let index = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    while at < end {
        let first = created && at == 0;
        let jobs = p.chunk_from(at);
        let n = jobs.len();
        match add(p.id, head.clone(), first, jobs).await? {
            Added::Written => at += n,
            Added::BoundTo {
                batch,
                written,
                total,
            } => {
                (p.id, created) = (batch, false);
                (at, end) = (index(written), end.min(index(total)));
            }
            Added::Closed => break,
        }
    }
    Ok((p.id, created, p.job_ids()))
}

impl StoredBatch {
    fn empty() -> StoredBatch {
        StoredBatch {
            handler: String::new(),
            queue: String::new(),
            priority: 0,
            max_attempts: 0,
            retry: None,
            total: 0,
            on_complete: None,
            on_success: None,
            key: None,
            fingerprint: None,
        }
    }
}

/// The counters a store reads back, from which [`Batch`] is made.
pub(crate) struct Counters {
    pub total: u64,
    pub enqueued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub complete_fired: bool,
    pub success_fired: bool,
}

/// Checks a batch and gives its jobs and callbacks their ids.
pub(crate) fn prepare(batch: &NewBatch) -> Result<Prepared, String> {
    let n = batch.items.len();
    if n == 0 || n > MAX_JOBS {
        return Err(format!("a batch has 1 to {MAX_JOBS} items, not {n}"));
    }
    if batch.chunk == 0 || batch.chunk > MAX_JOBS {
        return Err(format!(
            "batch_size {} is outside 1..={MAX_JOBS}",
            batch.chunk
        ));
    }
    let mut job = NewJob::new(batch.handler.clone(), Value::Null).priority(batch.priority);
    if let Some(own) = &batch.retry {
        job = job.retry(own.clone());
    }
    job = job.max_attempts(batch.max_attempts);
    job.queue = batch.queue.clone();
    job.idempotency_key = batch.idempotency_key.clone();
    job.validate()?;
    let callback = |name: &str, cb: &Option<NewJob>| -> Result<Option<StoredStep>, String> {
        let Some(cb) = cb else { return Ok(None) };
        cb.validate().map_err(|e| format!("{name}: {e}"))?;
        let Value::Object(map) = &cb.payload else {
            return Err(format!("{name}: the payload must be a JSON object"));
        };
        if map.contains_key(BATCH) {
            return Err(format!(
                "{name}: the payload member {BATCH:?} is reserved for the batch id"
            ));
        }
        if cb.run_at.is_some() || cb.idempotency_key.is_some() || cb.unique_key.is_some() {
            return Err(format!(
                "{name}: a callback takes no run_at, idempotency or unique key"
            ));
        }
        StoredStep::of(cb).map(Some)
    };
    let mut head = StoredBatch {
        handler: batch.handler.clone(),
        queue: batch.queue.clone(),
        priority: batch.priority.rank(),
        max_attempts: batch.max_attempts,
        retry: job.retry_json(),
        total: n as u64,
        on_complete: callback("on_complete", &batch.on_complete)?,
        on_success: callback("on_success", &batch.on_success)?,
        key: None,
        fingerprint: None,
    };
    let mut payloads = Vec::with_capacity(n);
    for (i, item) in batch.items.iter().enumerate() {
        payloads.push(serde_json::to_string(item).map_err(|e| format!("items[{i}]: {e}"))?);
    }
    if let Some(key) = &batch.idempotency_key {
        head.key = Some(format!(
            "batch:{}",
            crate::store::scoped_idempotency_key(&batch.handler, key)
        ));
        head.fingerprint = Some(match &batch.asked {
            Some(asked) => asked.clone(),
            None => fingerprint(&head, &payloads),
        });
    }
    Ok(Prepared {
        id: JobId::generate(),
        head,
        payloads,
        chunk: batch.chunk,
    })
}

/// A batch as a hash: its head without the callbacks' job ids (fresh in
/// every start), then each item.
fn fingerprint(head: &StoredBatch, payloads: &[String]) -> String {
    let mut asked = head.clone();
    for cb in [&mut asked.on_complete, &mut asked.on_success]
        .into_iter()
        .flatten()
    {
        cb.job.clear();
    }
    request_hash(
        &serde_json::to_value(&asked).expect("a batch head serializes"),
        payloads.iter().map(String::as_str),
    )
}

/// SHA-256 of a start's settings (JSON) and its items (JSON texts).
pub fn request_hash<'a>(settings: &Value, items: impl Iterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(settings.to_string().as_bytes());
    for item in items {
        hash.update((item.len() as u64).to_le_bytes());
        hash.update(item.as_bytes());
    }
    format!("{:x}", hash.finalize())
}

/// A callback's payload (JSON text) with the batch id spliced in first.
pub(crate) fn callback_payload(payload: &str, batch: JobId) -> String {
    crate::store::chain::with_first(&format!("\"{BATCH}\":\"{batch}\""), payload)
}

/// The view of a stored batch.
pub(crate) fn view(
    id: JobId,
    head: &StoredBatch,
    c: &Counters,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
) -> Result<Batch, String> {
    let done = c.succeeded + c.dead + c.cancelled;
    let callback = |cb: &Option<StoredStep>, fired: bool| -> Result<_, String> {
        cb.as_ref()
            .map(|cb| {
                Ok(BatchCallback {
                    handler: cb.handler.clone(),
                    job: cb
                        .job
                        .parse()
                        .map_err(|_| format!("batch callback job id {:?}", cb.job))?,
                    fired,
                })
            })
            .transpose()
    };
    Ok(Batch {
        id,
        handler: head.handler.clone(),
        total: c.total,
        enqueued: c.enqueued,
        pending: c.total.saturating_sub(done + c.running),
        running: c.running,
        succeeded: c.succeeded,
        dead: c.dead,
        cancelled: c.cancelled,
        percent: if c.total == 0 {
            100.0
        } else {
            (done as f64 * 10_000.0 / c.total as f64).floor() / 100.0
        },
        finished: done >= c.total,
        created_at,
        finished_at,
        on_complete: callback(&head.on_complete, c.complete_fired)?,
        on_success: callback(&head.on_success, c.success_fired)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_id_leads_the_callback_payload() {
        let id = JobId::generate();
        let v: Value = serde_json::from_str(&callback_payload("{}", id)).unwrap();
        assert_eq!(v, serde_json::json!({"batch": id.to_string()}));
        let v: Value = serde_json::from_str(&callback_payload(r#"{"to":"ops"}"#, id)).unwrap();
        assert_eq!(v, serde_json::json!({"batch": id.to_string(), "to": "ops"}));
    }

    #[test]
    fn a_batch_names_its_jobs_in_item_order_the_same_way_every_time() {
        let mut b = NewBatch::new("h", vec![Value::Null; 300]);
        b.chunk = 128;
        let p = prepare(&b).unwrap();
        let ids = p.job_ids();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "item order");
        let chunked: Vec<JobId> = [0, 128, 256]
            .into_iter()
            .flat_map(|at| p.chunk_from(at).into_iter().map(|(id, _)| id))
            .collect();
        assert_eq!(chunked, ids);
        let other = prepare(&b).unwrap().job_ids();
        assert!(
            other.iter().all(|id| !ids.contains(id)),
            "another batch, other ids"
        );
        assert_eq!(JobId::nth_of(p.id, 7), ids[7]);
        let v = ids[7].as_uuid();
        assert_eq!(
            (v.get_version_num(), v.get_variant()),
            (7, uuid::Variant::RFC4122)
        );
    }

    #[test]
    fn the_fingerprint_covers_items_and_settings_but_not_callback_ids() {
        let keyed = |items: Vec<Value>, attempts: u32| {
            let mut b = NewBatch::new("h", items);
            b.idempotency_key = Some("k".into());
            b.max_attempts = attempts;
            b.on_complete = Some(NewJob::new("cb", serde_json::json!({})));
            prepare(&b).unwrap().head.fingerprint.unwrap()
        };
        let one = keyed(vec![Value::from(1)], 3);
        assert_eq!(
            one,
            keyed(vec![Value::from(1)], 3),
            "callback ids differ, fingerprints not"
        );
        assert_ne!(one, keyed(vec![Value::from(2)], 3));
        assert_ne!(one, keyed(vec![Value::from(1)], 4));
        assert!(
            prepare(&NewBatch::new("h", vec![Value::Null]))
                .unwrap()
                .head
                .fingerprint
                .is_none()
        );
    }

    #[test]
    fn a_reused_key_is_named_as_given() {
        let scoped = format!(
            "batch:{}",
            crate::store::scoped_idempotency_key("a:b", "k:1")
        );
        let err = key_reused(&scoped, JobId::generate()).to_string();
        assert!(err.contains("idempotency key \"k:1\" was used"), "{err}");
    }

    #[test]
    fn bad_batches_are_refused() {
        assert!(prepare(&NewBatch::new("h", vec![])).is_err());
        let mut b = NewBatch::new("h", vec![Value::Null; 3]);
        b.chunk = 0;
        assert!(prepare(&b).is_err());
        let mut b = NewBatch::new("h", vec![Value::Null; 3]);
        b.on_complete = Some(NewJob::new("cb", serde_json::json!([1])));
        assert!(prepare(&b).unwrap_err().contains("on_complete"));
        let mut b = NewBatch::new("h", vec![Value::Null; 5]);
        b.chunk = 2;
        let p = prepare(&b).unwrap();
        let sizes: Vec<_> = [0, 2, 4, 5].map(|at| p.chunk_from(at).len()).into();
        assert_eq!(sizes, [2, 2, 1, 0]);
    }
}

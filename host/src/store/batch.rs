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
//! A batch whose maker died between chunks has `enqueued < total` and never
//! finishes; cancel it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobId, NewJob, Priority};
use crate::store::chain::StoredStep;
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
}

/// A checked batch: the row, then the jobs' ids and payloads (JSON text)
/// in chunks.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub id: JobId,
    pub head: StoredBatch,
    pub chunks: Vec<Vec<(JobId, String)>>,
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
    let head = StoredBatch {
        handler: batch.handler.clone(),
        queue: batch.queue.clone(),
        priority: batch.priority.rank(),
        max_attempts: batch.max_attempts,
        retry: job.retry_json(),
        total: n as u64,
        on_complete: callback("on_complete", &batch.on_complete)?,
        on_success: callback("on_success", &batch.on_success)?,
    };
    let mut jobs = Vec::with_capacity(n);
    for (i, item) in batch.items.iter().enumerate() {
        let text = serde_json::to_string(item).map_err(|e| format!("items[{i}]: {e}"))?;
        jobs.push((JobId::generate(), text));
    }
    let chunks = jobs.chunks(batch.chunk).map(<[_]>::to_vec).collect();
    Ok(Prepared {
        id: JobId::generate(),
        head,
        chunks,
    })
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
        let sizes: Vec<_> = p.chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
    }
}

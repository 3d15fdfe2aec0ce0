//! The job store: one trait every backend implements, so the worker,
//! scheduler and API never know which backend they talk to.
//!
//! Delivery is at-least-once. A job is leased with a fencing token; a lease
//! that is not renewed returns the job to its queue with the run counted, so
//! a job that kills its host every time ends in the DLQ instead of looping.
//! The [`conformance`] suite pins down this behaviour for every backend.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use crate::job::{Job, JobId, JobStatus, NewJob, RunReport};

pub mod batch;
pub mod chain;
#[cfg(test)]
pub mod conformance;
pub mod limits;
pub mod redis;
mod schedule;
pub mod sqlite;
pub mod sweeper;
mod types;

pub use limits::{HandlerLimit, LimitState};
pub use schedule::{MissedPolicy, OverlapPolicy, Schedule};
pub use types::{
    CountRow, Counts, Enqueued, FailAction, HostRecord, Lease, LeaseRequest, LeaseToken, ListQuery,
    Page, PluginRelease, PluginReleases, QueueInfo, StoreConfig, SummaryPage, SweepReport,
    Termination,
};

/// Why a store operation failed. Callers branch on the variant; the message
/// names the input that caused it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The token is no longer the job's current lease: the lease expired and
    /// the job was re-leased, released, or finished. Nothing was recorded.
    #[error(
        "lease on job {0} is lost: it expired and the job moved on; the result was not recorded"
    )]
    LeaseLost(JobId),
    /// No job with this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// No chain with this id.
    #[error("chain {0} not found")]
    ChainNotFound(JobId),
    /// No batch with this id.
    #[error("batch {0} not found")]
    BatchNotFound(JobId),
    /// No schedule with this name.
    #[error("schedule {0:?} not found")]
    ScheduleNotFound(String),
    /// The job exists but its state does not allow the operation.
    #[error("job {id} is {status}; cannot {action}")]
    WrongState {
        /// The job.
        id: JobId,
        /// Its current state.
        status: JobStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The stored data was written by a newer release.
    #[error(
        "store {location} has schema version {found}, newer than this build supports ({supported}); upgrade taskhost"
    )]
    SchemaTooNew {
        /// File or URL of the store.
        location: String,
        /// Version found.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The store file is damaged, lost commits, or was replaced; the host
    /// refuses to use it rather than run with jobs silently missing.
    #[error("store {location} is damaged: {reason}; {recovery}")]
    Damaged {
        /// File or URL of the store.
        location: String,
        /// What was found.
        reason: String,
        /// The steps that recover it.
        recovery: String,
    },
    /// The disk (or the store's size limit) is full: nothing was written.
    #[error(
        "the store is full: the disk holding {location} has no space left; nothing was written (free space, or lower [store] retention and run `taskhost store compact`)"
    )]
    Full {
        /// File or URL of the store.
        location: String,
    },
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The backend failed (I/O, corruption, connection).
    #[error("store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A backend error carrying only a message.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend(message.into().into())
    }
}

/// The form an idempotency key is stored under. Keys are scoped by
/// handler: a plugin that enqueues `hello` with key `payment-42` must not
/// make a client's later `payments.retry` job with that key answer with the
/// `hello` job and create nothing. The handler's length leads, so no pair
/// of (handler, key) can spell another's.
pub fn scoped_idempotency_key(handler: &str, key: &str) -> String {
    format!("{}:{handler}:{key}", handler.len())
}

/// The job once it has reached a final state, or as it stands at
/// `deadline`. Woken by the commit that ends a job ([`Store::job_ends`]), not
/// by a timer, so it answers within a millisecond or two of the end.
pub async fn wait_for_end(
    store: &dyn Store,
    id: JobId,
    deadline: tokio::time::Instant,
) -> StoreResult<Job> {
    let mut ends = store.job_ends();
    loop {
        // Mark what was seen before reading, so an end in between wakes us.
        ends.borrow_and_update();
        let job = store.get(id).await?;
        if job.status.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(job);
        }
        tokio::select! {
            _ = ends.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A job store. Used as `Arc<dyn Store>`; every method is cheap to call from
/// tokio (backends do blocking I/O on their own threads).
#[async_trait]
pub trait Store: Send + Sync {
    /// Adds a job. With an idempotency key seen within the TTL for the same
    /// handler, adds nothing and answers the original job's id. Keys are
    /// scoped by handler ([`scoped_idempotency_key`]).
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued>;

    /// Adds several jobs atomically: all or none.
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>>;

    /// Leases up to `req.max` due jobs of the given queues and handlers, in
    /// strict priority order, then by run-at. Expired leases are reaped first.
    /// Empty queue or handler lists lease nothing.
    async fn lease(&self, req: &LeaseRequest) -> StoreResult<Vec<Lease>>;

    /// Extends a lease to now + `lease_for`; answers the new expiry.
    ///
    /// A lease stays usable past its expiry until it is reaped (by `lease` or
    /// `reap_expired`): nobody else holds the job until then. After that the
    /// holder gets [`StoreError::LeaseLost`] here and in `complete`, `fail`
    /// and `release`.
    async fn renew(&self, token: &LeaseToken, lease_for: Duration) -> StoreResult<DateTime<Utc>>;

    /// Records success. `report.outcome` must be `succeeded`.
    async fn complete(
        &self,
        token: &LeaseToken,
        result: Value,
        report: RunReport,
    ) -> StoreResult<()>;

    /// Records a failed run and retries or buries the job; answers the state
    /// it ended in (`retrying` or `dead`).
    async fn fail(
        &self,
        token: &LeaseToken,
        action: FailAction,
        report: RunReport,
    ) -> StoreResult<JobStatus>;

    /// Gives a running job back without counting the run (graceful shutdown).
    async fn release(&self, token: &LeaseToken) -> StoreResult<()>;

    /// Returns jobs whose lease expired to their queue (or to `dead` when out
    /// of attempts), recording a `lease-expired` attempt; answers how many.
    async fn reap_expired(&self) -> StoreResult<u64>;

    /// Cancels a job that has not started (scheduled, pending or retrying).
    async fn cancel(&self, id: JobId) -> StoreResult<()>;

    /// Cancels a job whatever it is doing: one that has not started is
    /// cancelled at once (as [`Store::cancel`]); for a running one the
    /// request is recorded, ticks [`Store::changes`] on every process, and
    /// the host holding the lease stops the run and ends it with
    /// [`FailAction::Cancel`]. A lease of a job with a request that expires
    /// (its host died) ends the job `cancelled` too. A finished job is
    /// [`StoreError::WrongState`].
    async fn terminate(&self, id: JobId) -> StoreResult<Termination>;

    /// Which of `jobs` are running with a termination requested: what a
    /// host asks, on each change tick, about the jobs it runs. One read.
    async fn termination_requested(&self, jobs: &[JobId]) -> StoreResult<Vec<JobId>>;

    /// Makes a chain of `steps` and enqueues its first, atomically; each
    /// next step is enqueued by the commit that records its predecessor's
    /// success (see [`chain`]). Answers the chain as made.
    async fn enqueue_chain(&self, steps: Vec<NewJob>) -> StoreResult<chain::Chain>;

    /// One chain with its steps' statuses.
    async fn get_chain(&self, id: JobId) -> StoreResult<chain::Chain>;

    /// Makes a batch and enqueues its jobs in chunks, each chunk atomic;
    /// the batch's counters move and its callbacks fire in the commit that
    /// ends each job (see [`batch`]). Answers the batch and its jobs' ids.
    async fn start_batch(&self, batch: batch::NewBatch) -> StoreResult<batch::StartedBatch>;

    /// One batch with its counts.
    async fn get_batch(&self, id: JobId) -> StoreResult<batch::Batch>;

    /// Cancels a batch's waiting jobs and asks the hosts running its
    /// running ones to stop them (as [`Store::terminate`]), atomically.
    /// Answers the batch as it stands.
    async fn cancel_batch(&self, id: JobId) -> StoreResult<batch::Batch>;

    /// One job.
    async fn get(&self, id: JobId) -> StoreResult<Job>;

    /// The job `handler`'s idempotency `key` is bound to, while the key
    /// lives (one index probe; the dashboard's search).
    async fn find_by_idempotency_key(&self, handler: &str, key: &str)
    -> StoreResult<Option<JobId>>;

    /// A page of jobs, newest first.
    async fn list(&self, query: &ListQuery) -> StoreResult<Page>;

    /// Job counts by queue × priority × status.
    async fn counts(&self) -> StoreResult<Counts>;

    /// When the next job of these queues and handlers becomes leasable (a due
    /// time or a lease expiry), so workers can sleep until then.
    async fn next_due_at(
        &self,
        queues: &[String],
        handlers: &[String],
    ) -> StoreResult<Option<DateTime<Utc>>>;

    /// Where each limited handler stands by its limits (running jobs on
    /// every host, next rate slot), read with the store's time; workers
    /// sleep on it when a lease left jobs held back.
    async fn limit_states(&self, limits: &[HandlerLimit]) -> StoreResult<Vec<LimitState>>;

    /// Ticks when work may have become available: local enqueues, retries,
    /// releases, resumes, and (where the backend can tell) other processes'
    /// writes. Workers wait on this or on `next_due_at`, never on a timer loop.
    fn changes(&self) -> watch::Receiver<u64>;

    /// Ticks after a commit that ended a job's run or life (success,
    /// failure, cancel, an expired lease reaped), and on other processes'
    /// writes: what a caller waiting for a job's end sleeps on. Waiters
    /// must still re-read the job (a tick may be about another job).
    fn job_ends(&self) -> watch::Receiver<u64> {
        self.changes()
    }

    /// Jobs in the DLQ, newest first.
    async fn dlq_list(
        &self,
        queue: Option<&str>,
        after: Option<JobId>,
        limit: u32,
    ) -> StoreResult<Page> {
        self.list(&ListQuery {
            status: Some(JobStatus::Dead),
            queue: queue.map(str::to_owned),
            after,
            limit,
            ..ListQuery::default()
        })
        .await
    }

    /// Puts a dead job back in its queue with a fresh attempt budget.
    async fn dlq_retry(&self, id: JobId) -> StoreResult<()>;

    /// [`Store::dlq_retry`] for every dead job (of one queue); answers how many.
    async fn dlq_retry_all(&self, queue: Option<&str>) -> StoreResult<u64>;

    /// Removes dead jobs (of one queue); answers how many.
    async fn dlq_purge(&self, queue: Option<&str>) -> StoreResult<u64>;

    /// Removes a queue's waiting jobs (scheduled, pending, retrying); running
    /// and finished jobs stay. Answers how many.
    async fn purge_queue(&self, queue: &str) -> StoreResult<u64>;

    /// Stops leasing from a queue; enqueues still land.
    async fn pause_queue(&self, queue: &str) -> StoreResult<()>;

    /// Resumes leasing from a queue.
    async fn resume_queue(&self, queue: &str) -> StoreResult<()>;

    /// Queues that hold jobs or were ever paused, by name.
    async fn queues(&self) -> StoreResult<Vec<QueueInfo>>;

    /// Records a serving host's heartbeat (inserting it the first time).
    async fn host_seen(&self, host: &HostRecord) -> StoreResult<()>;

    /// Forgets a host that stopped cleanly.
    async fn host_gone(&self, id: &str) -> StoreResult<()>;

    /// The hosts seen at or after `since`, newest heartbeat first.
    async fn hosts(&self, since: DateTime<Utc>) -> StoreResult<Vec<HostRecord>>;

    /// Removes finished jobs past retention, expired idempotency keys and old
    /// schedule ticks, in bounded steps, then gives freed space back to the
    /// file system where the backend can. Dead jobs stay until purged.
    async fn sweep(&self) -> StoreResult<SweepReport>;

    /// Answers whether this host can work with the store now: a small real
    /// write commits, and no operation of this process failed in the backend
    /// in the last minute (a worker's failed lease, renewal or result commit,
    /// or a read of a damaged page, counts). `/health` asks this.
    async fn check_writable(&self) -> StoreResult<()>;

    /// Claims the sweep of the period ending now: true for exactly one of
    /// the hosts sharing the store per `every`. [`sweeper`] asks this before
    /// sweeping.
    async fn claim_sweep(&self, every: Duration) -> StoreResult<bool>;

    /// Records the (schedule, tick) pair and enqueues `job` in one atomic
    /// step. Exactly one caller, across all processes, gets `Some`.
    async fn claim_tick(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        job: NewJob,
    ) -> StoreResult<Option<JobId>>;

    /// The job of the schedule's latest claimed tick, if that job has not
    /// finished yet (it is scheduled, pending, running or retrying). The
    /// scheduler asks this before claiming a tick of a schedule whose overlap
    /// policy is `skip`; one indexed lookup, however many ticks are kept.
    async fn active_schedule_job(&self, schedule: &str) -> StoreResult<Option<JobId>>;

    /// Creates or replaces a schedule by name, keeping its `last_tick`.
    async fn upsert_schedule(&self, schedule: &Schedule) -> StoreResult<()>;

    /// One schedule.
    async fn get_schedule(&self, name: &str) -> StoreResult<Schedule>;

    /// All schedules by name.
    async fn list_schedules(&self) -> StoreResult<Vec<Schedule>>;

    /// Removes a schedule (its claimed ticks stay until swept).
    async fn delete_schedule(&self, name: &str) -> StoreResult<()>;

    /// Enables or disables a schedule.
    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> StoreResult<()>;

    /// Stores a plugin component (once per `digest`, the sha256 hex of
    /// `bytes`) and makes it the release in service of plugin `name`,
    /// bumping the plugin generation. Deploying the version already in
    /// service changes nothing. Answers the release in service.
    async fn put_plugin(
        &self,
        name: &str,
        digest: &str,
        bytes: Vec<u8>,
    ) -> StoreResult<PluginRelease>;

    /// The component stored under `digest`.
    async fn plugin_blob(&self, digest: &str) -> StoreResult<Option<Vec<u8>>>;

    /// The plugin generation: bumped by every `put_plugin` that changed a
    /// release and every `rollback_plugin`. Hosts poll it (one small read).
    async fn plugin_generation(&self) -> StoreResult<u64>;

    /// The release in service of every deployed plugin, with the
    /// generation read before them.
    async fn plugin_releases(&self) -> StoreResult<PluginReleases>;

    /// Takes plugin `name`'s release in service out of the stack, so the
    /// one deployed before it is in service again; bumps the generation.
    /// [`StoreError::Invalid`] when there is no earlier release.
    async fn rollback_plugin(&self, name: &str) -> StoreResult<PluginRelease>;

    /// Finishes pending writes and releases the backend. Further calls answer
    /// [`StoreError::Closed`].
    async fn close(&self) -> StoreResult<()>;
}

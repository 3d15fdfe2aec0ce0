//! The embedded store: one SQLite file in WAL mode, created on first start.
//!
//! Writes go through one writer thread with group commit ([`writer`]);
//! reads go to a small pool of reader threads ([`readers`]). Several
//! processes may open the same file (a CLI enqueue while `serve` runs):
//! SQLite's locking serialises their writes, and the writer notices other
//! processes' commits through `PRAGMA data_version` to wake local workers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::job::{Job, JobId, JobStatus, NewJob, RunReport};
use crate::store::batch::{Batch, NewBatch, StartedBatch};
use crate::store::chain::Chain;
use crate::store::{
    Counts, Enqueued, FailAction, HandlerLimit, HostRecord, Lease, LeaseRequest, LeaseToken,
    LimitState, ListQuery, Page, PluginRelease, PluginReleases, QueueInfo, Schedule, Store,
    StoreConfig, StoreError, StoreResult, SweepReport, Termination,
};

mod admin;
mod batches;
mod chains;
mod codec;
mod hosts;
pub(crate) mod integrity;
mod jobs;
mod leases;
mod limits;
pub mod maintenance;
mod plugins;
mod readers;
mod schedules;
pub(crate) mod schema;
mod staleness;
mod terminate;
#[cfg(test)]
mod tests;
mod writer;

pub use schema::Durability;

use readers::Readers;
use writer::{LastFailure, Place, Signals, Writer, WriterSettings};

/// How to open the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Settings shared with every backend.
    pub store: StoreConfig,
    /// Commit durability; see [`Durability`].
    pub durability: Durability,
    /// Reader threads.
    pub readers: usize,
    /// Most operations per group commit.
    pub max_batch: usize,
    /// How often an idle writer looks for other processes' commits.
    pub foreign_write_poll: Duration,
    /// See `WriterSettings::start_delay`.
    #[cfg(test)]
    pub writer_start_delay: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            durability: Durability::Normal,
            readers: 2,
            max_batch: 512,
            foreign_write_poll: Duration::from_millis(25),
            #[cfg(test)]
            writer_start_delay: Duration::ZERO,
        }
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    writer: Writer,
    readers: Arc<Readers>,
    signals: Arc<Signals>,
    last_failure: LastFailure,
    next_judgement: staleness::NextJudgement,
}

/// How recent a failed write must be for [`Store::check_writable`] to report it.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl SqliteStore {
    /// Opens (creating and migrating as needed) the store at `path`.
    pub async fn open(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let path = path.as_ref().to_owned();
        tokio::task::spawn_blocking(move || {
            let location = path.display().to_string();
            // A full disk can stop the open itself (the WAL index, a
            // checkpoint): say so as plainly as a full disk at a write.
            Self::open_blocking(path, options, clock).map_err(|e| match e {
                e if writer::store_error_is_full(&e) => StoreError::Full { location },
                e => e,
            })
        })
        .await
        .map_err(|e| StoreError::backend(format!("store open task failed: {e}")))?
    }

    fn open_blocking(
        path: PathBuf,
        options: SqliteOptions,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let location = path.display().to_string();
        // The writer connection lives on one thread: SQLite's own per-call
        // mutexes would only cost time (they showed in the profile).
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| StoreError::backend(format!("cannot open store file {location}: {e}")))?;
        schema::configure(&conn, options.durability)?;
        // Damage first: a damaged, emptied or replaced file is refused before
        // anything (a migration of an "empty" file) writes to it.
        integrity::verify(&conn, &path)?;
        // Two processes starting on a new file at once: switching to WAL
        // answers "locked" without waiting, so wait here.
        schema::retry_while_locked(|| schema::configure_writer(&conn, &location))?;
        schema::retry_while_locked(|| schema::migrate(&mut conn, schema::LATEST, &location))?;
        let state = integrity::current(&conn)?.ok_or_else(|| {
            StoreError::backend(format!("{location}: store_meta has no store_id"))
        })?;
        // Without a record, damage goes unnoticed but nothing is lost: warn.
        if let Err(e) = integrity::write_record(&path, &state) {
            tracing::warn!(
                error = %e,
                record = %integrity::record_path(&path).display(),
                "cannot write the store's state record"
            );
        }
        let last_failure = LastFailure::default();
        let next_judgement = staleness::NextJudgement::default();
        let readers = Arc::new(Readers::start(&path, options.readers, options.durability)?);
        let signals = Arc::new(Signals::default());
        let settings = WriterSettings {
            max_batch: options.max_batch.max(1),
            poll: options.foreign_write_poll,
            #[cfg(test)]
            start_delay: options.writer_start_delay,
        };
        let place = Place {
            path: path.clone(),
            state,
            last_failure: Arc::clone(&last_failure),
            next_judgement: Arc::clone(&next_judgement),
        };
        let writer = Writer::start(
            conn,
            place,
            Arc::clone(&clock),
            options.store,
            settings,
            Arc::clone(&signals),
        )
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            path,
            clock,
            writer,
            readers,
            signals,
            last_failure,
            next_judgement,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a reader with the current time. A backend failure (a
    /// damaged page, an I/O error) is noted for [`Store::check_writable`]:
    /// a host whose workers cannot read their next job cannot do its job.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, DateTime<Utc>) -> StoreResult<T> + Send + 'static,
    {
        let now = self.clock.now();
        let result = self.readers.call(move |conn| f(conn, now)).await;
        if let Err(StoreError::Backend(e)) = &result
            && let Ok(mut last) = self.last_failure.lock()
        {
            *last = Some((std::time::Instant::now(), format!("a read failed: {e}")));
        }
        result
    }
}

/// Names as a JSON array, the form the SQL takes them in (`json_each`), so
/// statements stay the same whatever the list length.
fn json_list(names: &[String]) -> StoreResult<String> {
    Ok(serde_json::to_string(names)?)
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued> {
        self.writer
            .call(move |c, ctx| jobs::enqueue(c, ctx, job))
            .await
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        // Validate all first: an operation must refuse before it writes.
        for (i, job) in jobs.iter().enumerate() {
            job.validate()
                .map_err(|e| StoreError::Invalid(format!("job {i} of the batch: {e}")))?;
        }
        // One operation, so the batch commits or fails as a whole.
        self.writer
            .call(move |c, ctx| jobs.into_iter().map(|j| jobs::enqueue(c, ctx, j)).collect())
            .await
    }

    async fn lease(&self, req: &LeaseRequest) -> StoreResult<Vec<Lease>> {
        leases::validate(req)?;
        if req.queues.is_empty() || req.handlers.is_empty() {
            return Ok(Vec::new());
        }
        let (queues, handlers) = (json_list(&req.queues)?, json_list(&req.handlers)?);
        let req = req.clone();
        self.writer
            .call(move |c, ctx| leases::lease(c, ctx, &req, &queues, &handlers))
            .await
    }

    async fn renew(&self, token: &LeaseToken, lease_for: Duration) -> StoreResult<DateTime<Utc>> {
        let token = *token;
        self.writer
            .call(move |c, ctx| leases::renew(c, ctx, &token, lease_for))
            .await
    }

    async fn complete(
        &self,
        token: &LeaseToken,
        result: Value,
        report: RunReport,
    ) -> StoreResult<()> {
        let token = *token;
        self.writer
            .call(move |c, ctx| leases::complete(c, ctx, &token, &result, &report))
            .await
    }

    async fn fail(
        &self,
        token: &LeaseToken,
        action: FailAction,
        report: RunReport,
    ) -> StoreResult<JobStatus> {
        let token = *token;
        self.writer
            .call(move |c, ctx| leases::fail(c, ctx, &token, action, &report))
            .await
    }

    async fn release(&self, token: &LeaseToken) -> StoreResult<()> {
        let token = *token;
        self.writer
            .call(move |c, ctx| leases::release(c, ctx, &token))
            .await
    }

    async fn reap_expired(&self) -> StoreResult<u64> {
        self.writer.call(leases::reap).await
    }

    async fn cancel(&self, id: JobId) -> StoreResult<()> {
        self.writer
            .call(move |c, ctx| jobs::cancel(c, ctx, id))
            .await
    }

    async fn enqueue_chain(&self, steps: Vec<NewJob>) -> StoreResult<Chain> {
        let steps = crate::store::chain::stored_steps(&steps).map_err(StoreError::Invalid)?;
        let id = self
            .writer
            .call(move |c, ctx| chains::create(c, ctx, &steps))
            .await?;
        self.get_chain(id).await
    }

    async fn get_chain(&self, id: JobId) -> StoreResult<Chain> {
        self.read(move |c, _| chains::get(c, id)).await
    }

    async fn start_batch(&self, batch: NewBatch) -> StoreResult<StartedBatch> {
        let prepared = crate::store::batch::prepare(&batch).map_err(StoreError::Invalid)?;
        // One operation per chunk: each commits whole, and other writers
        // (workers completing the first chunk's jobs) get turns in between.
        let (id, created, jobs) = crate::store::batch::write(prepared, |id, head, first, chunk| {
            self.writer
                .call(move |c, ctx| batches::add_chunk(c, ctx, id, &head, first, &chunk))
        })
        .await?;
        Ok(StartedBatch {
            batch: self.get_batch(id).await?,
            jobs,
            created,
        })
    }

    async fn get_batch(&self, id: JobId) -> StoreResult<Batch> {
        self.read(move |c, _| batches::get(c, id)).await
    }

    async fn cancel_batch(&self, id: JobId) -> StoreResult<Batch> {
        self.writer
            .call(move |c, ctx| batches::cancel(c, ctx, id))
            .await?;
        self.get_batch(id).await
    }

    async fn terminate(&self, id: JobId) -> StoreResult<Termination> {
        self.writer
            .call(move |c, ctx| terminate::terminate(c, ctx, id))
            .await
    }

    async fn termination_requested(&self, jobs: &[JobId]) -> StoreResult<Vec<JobId>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = jobs.to_vec();
        self.read(move |c, _| terminate::requested(c, &jobs)).await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        self.read(move |c, now| jobs::get(c, now, id)).await
    }

    async fn find_by_idempotency_key(
        &self,
        handler: &str,
        key: &str,
    ) -> StoreResult<Option<JobId>> {
        let key = crate::store::scoped_idempotency_key(handler, key);
        self.read(move |c, now| jobs::bound_to_key(c, now, &key))
            .await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Page> {
        let query = query.clone();
        self.read(move |c, now| jobs::list(c, now, &query)).await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        self.read(jobs::counts).await
    }

    async fn next_due_at(
        &self,
        queues: &[String],
        handlers: &[String],
    ) -> StoreResult<Option<DateTime<Utc>>> {
        if queues.is_empty() || handlers.is_empty() {
            return Ok(None);
        }
        let (queues, handlers) = (json_list(queues)?, json_list(handlers)?);
        let next = self
            .read(move |c, _| jobs::next_due_at(c, &queues, &handlers))
            .await?;
        // Follow the latest time another host committed before comparing:
        // a job it made due is due here, whatever this host's clock says.
        if let Some(high) = next.clock_high {
            self.clock.observe(high);
        }
        let (run_at, expiry) = (next.run_at, next.expiry);
        // A lease whose expiry looks past is reaped only once judged stale:
        // wake for that judgement, not in a loop on the past expiry.
        let now = self.clock.now();
        let expiry = match (expiry, self.next_judgement.lock().ok().and_then(|n| *n)) {
            (Some(at), Some(judged)) if at <= now => {
                let wait = judged.saturating_sub(self.clock.elapsed());
                Some(now + chrono::Duration::from_std(wait).unwrap_or_default())
            }
            (expiry, _) => expiry,
        };
        Ok(match (run_at, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn limit_states(&self, limits: &[HandlerLimit]) -> StoreResult<Vec<LimitState>> {
        if limits.is_empty() {
            return Ok(Vec::new());
        }
        let limits = limits.to_vec();
        self.read(move |c, now| limits::states(c, codec::micros(now), &limits))
            .await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.signals.work.subscribe()
    }

    fn job_ends(&self) -> watch::Receiver<u64> {
        self.signals.ends.subscribe()
    }

    async fn dlq_retry(&self, id: JobId) -> StoreResult<()> {
        self.writer
            .call(move |c, ctx| admin::dlq_retry(c, ctx, id))
            .await
    }

    async fn dlq_retry_all(&self, queue: Option<&str>) -> StoreResult<u64> {
        let queue = queue.map(str::to_owned);
        self.writer
            .call(move |c, ctx| admin::dlq_retry_all(c, ctx, queue.as_deref()))
            .await
    }

    async fn dlq_purge(&self, queue: Option<&str>) -> StoreResult<u64> {
        let queue = queue.map(str::to_owned);
        self.writer
            .call(move |c, _| admin::dlq_purge(c, queue.as_deref()))
            .await
    }

    async fn purge_queue(&self, queue: &str) -> StoreResult<u64> {
        let queue = queue.to_owned();
        self.writer
            .call(move |c, ctx| admin::purge_queue(c, ctx, &queue))
            .await
    }

    async fn pause_queue(&self, queue: &str) -> StoreResult<()> {
        let queue = queue.to_owned();
        self.writer
            .call(move |c, ctx| admin::set_paused(c, ctx, &queue, true))
            .await
    }

    async fn resume_queue(&self, queue: &str) -> StoreResult<()> {
        let queue = queue.to_owned();
        self.writer
            .call(move |c, ctx| admin::set_paused(c, ctx, &queue, false))
            .await
    }

    async fn queues(&self) -> StoreResult<Vec<QueueInfo>> {
        self.read(|c, _| admin::queues(c)).await
    }

    async fn host_seen(&self, host: &HostRecord) -> StoreResult<()> {
        let host = host.clone();
        self.writer
            .call(move |c, ctx| hosts::seen(c, ctx, &host))
            .await
    }

    async fn host_gone(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer
            .call(move |c, ctx| hosts::gone(c, ctx, &id))
            .await
    }

    async fn hosts(&self, since: DateTime<Utc>) -> StoreResult<Vec<HostRecord>> {
        self.read(move |c, _| hosts::list(c, since)).await
    }

    async fn put_plugin(
        &self,
        name: &str,
        digest: &str,
        bytes: Vec<u8>,
    ) -> StoreResult<PluginRelease> {
        let (name, digest) = (name.to_owned(), digest.to_owned());
        self.writer
            .call(move |c, ctx| plugins::put(c, ctx, &name, &digest, &bytes))
            .await
    }

    async fn plugin_blob(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        let digest = digest.to_owned();
        self.read(move |c, _| plugins::blob(c, &digest)).await
    }

    async fn plugin_generation(&self) -> StoreResult<u64> {
        self.read(|c, _| plugins::generation(c)).await
    }

    async fn plugin_releases(&self) -> StoreResult<PluginReleases> {
        self.read(|c, _| plugins::active(c)).await
    }

    async fn rollback_plugin(&self, name: &str) -> StoreResult<PluginRelease> {
        let name = name.to_owned();
        self.writer
            .call(move |c, ctx| plugins::rollback(c, ctx, &name))
            .await
    }

    async fn sweep(&self) -> StoreResult<SweepReport> {
        let mut total = SweepReport::default();
        loop {
            let step = self.writer.call(admin::sweep_step).await?;
            total.jobs += step.jobs;
            total.idempotency_keys += step.idempotency_keys;
            total.ticks += step.ticks;
            total.chains += step.chains;
            total.batches += step.batches;
            let full = admin::SWEEP_STEP as u64;
            if step.jobs < full
                && step.idempotency_keys < full
                && step.ticks < full
                && step.chains < full
                && step.batches < full
            {
                break;
            }
        }
        loop {
            let freed = self.writer.call(admin::vacuum_step).await?;
            total.pages_freed += freed;
            if freed < admin::VACUUM_STEP as u64 {
                return Ok(total);
            }
        }
    }

    async fn check_writable(&self) -> StoreResult<()> {
        self.writer.call(admin::probe_write).await?;
        let last = self.last_failure.lock().ok().and_then(|l| l.clone());
        match last {
            Some((at, why)) if at.elapsed() < FAILURE_WINDOW => Err(StoreError::backend(format!(
                "{}s ago: {why}",
                at.elapsed().as_secs()
            ))),
            _ => Ok(()),
        }
    }

    async fn claim_sweep(&self, every: Duration) -> StoreResult<bool> {
        self.writer
            .call(move |c, ctx| admin::claim_sweep(c, ctx, every))
            .await
    }

    async fn claim_tick(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        job: NewJob,
    ) -> StoreResult<Option<JobId>> {
        let schedule = schedule.to_owned();
        self.writer
            .call(move |c, ctx| schedules::claim_tick(c, ctx, &schedule, tick, job))
            .await
    }

    async fn active_schedule_job(&self, schedule: &str) -> StoreResult<Option<JobId>> {
        let schedule = schedule.to_owned();
        self.read(move |c, _| schedules::active_job(c, &schedule))
            .await
    }

    async fn upsert_schedule(&self, schedule: &Schedule) -> StoreResult<()> {
        let schedule = schedule.clone();
        self.writer
            .call(move |c, _| schedules::upsert(c, &schedule))
            .await
    }

    async fn get_schedule(&self, name: &str) -> StoreResult<Schedule> {
        let name = name.to_owned();
        self.read(move |c, _| schedules::get(c, &name)).await
    }

    async fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        self.read(|c, _| schedules::list(c)).await
    }

    async fn delete_schedule(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.writer
            .call(move |c, _| schedules::delete(c, &name))
            .await
    }

    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> StoreResult<()> {
        let name = name.to_owned();
        self.writer
            .call(move |c, _| schedules::set_enabled(c, &name, enabled))
            .await
    }

    /// Closes in the order that leaves the `.db` file complete: readers
    /// first (joined, their connections closed), then the writer, which
    /// checkpoints the WAL and closes the last connection.
    async fn close(&self) -> StoreResult<()> {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.close())
            .await
            .map_err(|e| StoreError::backend(format!("closing the store readers failed: {e}")))?;
        self.writer.close().await
    }
}

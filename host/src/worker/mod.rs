//! The worker pool: leases due jobs of the configured queues, runs each in
//! the sandbox, and records how it ended — success, a retry at the time the
//! policy (or the plugin's retry-after) says, or the dead-letter queue.
//!
//! Workers never poll on a timer: an idle dispatcher sleeps until the next
//! job is due (or a lease expires) and wakes early on the store's change
//! signal. Leases are renewed by heartbeat while a job runs, so a killed
//! host's jobs return to their queue one lease period later.

mod lifecycle;
pub mod rate;
pub mod retry;
mod stats;
mod terminate;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::AbortHandle;

use crate::clock::Clock;
use crate::config::WorkerSettings;
use crate::enqueue::Enqueuer;
use crate::job::{Job, JobId, JobStatus, OutcomeKind, RunReport};
use crate::metrics::JobEvent;
use crate::runtime::{JobInput, JobReport, Outcome, Runtime};
use crate::store::{
    FailAction, HandlerLimit, Lease, LeaseRequest, LeaseToken, LimitState, Store, StoreError,
};

pub use stats::{Disposition, StatsSnapshot, WorkerStats};

/// Most jobs one lease call takes.
const LEASE_BATCH: usize = 256;
/// How long a dispatcher under a backlog waits for more free slots before
/// leasing (never when idle: an idle host starts a new job at once).
const BATCH_WAIT: Duration = Duration::from_micros(500);
/// How long an idle dispatcher sleeps when nothing at all is scheduled.
const IDLE_SLEEP: Duration = Duration::from_secs(60);

/// Where a dispatcher's handlers stand by their limits.
struct HeldBack {
    /// The handlers a job may start of now.
    open: Vec<String>,
    /// The earliest rate slot of a handler held back by its rate alone.
    slot: Option<chrono::DateTime<chrono::Utc>>,
    /// Some handler is held back by its concurrency: a job's end may free it.
    full: bool,
}

/// What an idle dispatcher wakes on.
struct Signals<'a> {
    changes: &'a mut watch::Receiver<u64>,
    ends: &'a mut watch::Receiver<u64>,
    plugins: &'a mut watch::Receiver<u64>,
    shutdown: &'a mut watch::Receiver<bool>,
}

/// The workers of one host.
pub struct Workers {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    enqueuer: Arc<Enqueuer>,
    clock: Arc<dyn Clock>,
    settings: WorkerSettings,
    host_id: String,
    stats: WorkerStats,
    running: Mutex<RunningTable>,
    /// Per-handler rate and concurrency limits, which the store enforces
    /// in the lease across every host sharing it.
    limits: Vec<HandlerLimit>,
}

/// The jobs this host runs: their lease, the task running each, and the
/// signal that stops it when its job is terminated.
type RunningTable = HashMap<JobId, Running>;

/// One entry of the [`RunningTable`].
struct Running {
    token: LeaseToken,
    task: AbortHandle,
    /// Notified when someone asked to terminate the job.
    stop: Arc<Notify>,
}

/// Runs `fut`, turning a panic inside it into `Err` with the panic's text.
async fn catch_panic<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|panic| crate::panic_message(&*panic))
}

/// What a shutdown left behind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs that finished within the grace period.
    pub finished: usize,
    /// Jobs stopped at the end of the grace period, their leases released
    /// (the attempt is not counted) so another host runs them.
    pub released: usize,
}

impl Workers {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        enqueuer: Arc<Enqueuer>,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
        host_id: String,
    ) -> Arc<Workers> {
        let limits = HandlerLimit::from_config(runtime.config());
        Arc::new(Workers {
            limits,
            store,
            runtime,
            enqueuer,
            clock,
            settings,
            host_id,
            stats: WorkerStats::default(),
            running: Mutex::new(HashMap::new()),
        })
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// Runs until `shutdown` turns true, then lets running jobs finish for
    /// the grace period and releases the leases of the rest.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) -> ShutdownReport {
        let mut slots = Vec::new();
        let mut dispatchers = Vec::new();
        for (queue, &concurrency) in &self.settings.queues {
            let sem = Arc::new(Semaphore::new(concurrency.max(1) as usize));
            slots.push((sem.clone(), concurrency.max(1)));
            dispatchers.push(tokio::spawn(self.clone().dispatch(
                queue.clone(),
                sem,
                shutdown.clone(),
            )));
        }
        let terminations = tokio::spawn(self.clone().watch_terminations());
        for d in dispatchers {
            let _ = d.await;
        }
        let in_flight = self.running.lock().expect("running lock").len();
        let deadline = tokio::time::Instant::now() + self.settings.shutdown_grace;
        for (sem, n) in &slots {
            let _ = tokio::time::timeout_at(deadline, sem.acquire_many(*n)).await;
        }
        terminations.abort();
        let leftover: Vec<(LeaseToken, AbortHandle)> = self
            .running
            .lock()
            .expect("running lock")
            .drain()
            .map(|(_, r)| (r.token, r.task))
            .collect();
        for (token, abort) in &leftover {
            abort.abort();
            if let Err(e) = self.store.release(token).await {
                tracing::warn!(job = %token.job, "cannot release lease at shutdown: {e}");
            }
        }
        ShutdownReport {
            finished: in_flight - leftover.len(),
            released: leftover.len(),
        }
    }

    /// Leases jobs of one queue while it has free slots; sleeps otherwise.
    async fn dispatch(
        self: Arc<Self>,
        queue: String,
        slots: Arc<Semaphore>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let queues = vec![queue];
        let mut plugins = self.runtime.generation();
        let mut seen_generation = *plugins.borrow_and_update();
        let mut handlers = self.runtime.registry().handler_names();
        let mut changes = self.store.changes();
        let mut ends = self.store.job_ends();
        let concurrency = slots.available_permits();
        // Whether the last lease call got all it asked for: more may be waiting.
        let mut backlog = false;
        while !*shutdown.borrow() {
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("worker semaphore is never closed"),
                _ = shutdown.changed() => break,
            };
            // A reload changed the handler set: lease for the new one.
            let generation = *plugins.borrow();
            if generation != seen_generation {
                seen_generation = generation;
                handlers = self.runtime.registry().handler_names();
            }
            if backlog && 1 + slots.available_permits() < concurrency / 2 {
                // Under a backlog, slots free one job at a time; a moment's
                // wait turns many one-job lease calls into one larger call.
                tokio::time::sleep(BATCH_WAIT).await;
            }
            let want = (1 + slots.available_permits()).min(LEASE_BATCH);
            let request = LeaseRequest {
                queues: queues.clone(),
                handlers: handlers.clone(),
                worker: self.host_id.clone(),
                lease_for: self.settings.lease,
                max: want as u32,
                limits: self.limits.clone(),
            };
            let leases = match self.store.lease(&request).await {
                Ok(leases) => leases,
                Err(e) => {
                    tracing::error!(queue = %queues[0], "leasing failed: {e}");
                    drop(first);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            backlog = leases.len() == want;
            if leases.is_empty() {
                drop(first);
                self.idle(
                    &queues,
                    &handlers,
                    Signals {
                        changes: &mut changes,
                        ends: &mut ends,
                        plugins: &mut plugins,
                        shutdown: &mut shutdown,
                    },
                )
                .await;
                continue;
            }
            let mut permits = vec![first];
            for _ in 1..leases.len() {
                permits.push(
                    slots
                        .clone()
                        .try_acquire_owned()
                        .expect("leased no more than the free slots"),
                );
            }
            for (lease, permit) in leases.into_iter().zip(permits) {
                self.clone().start(lease, permit);
            }
        }
    }

    /// Sleeps until a job of `queues` is due (or a lease expires), waking
    /// on writes. A write that made nothing due here (another queue's
    /// enqueue, a completion) costs one read, not a lease transaction, so
    /// idle queues do not slow the busy ones.
    ///
    /// Jobs of a handler its limits hold back are not due: the wait is for
    /// its next rate slot, or for a job's end when its concurrency is taken.
    async fn idle(&self, queues: &[String], handlers: &[String], signals: Signals<'_>) {
        let Signals {
            changes,
            ends,
            plugins,
            shutdown,
        } = signals;
        loop {
            // Mark what we have seen before asking what is next, so a write
            // in between wakes us rather than being missed.
            changes.borrow_and_update();
            ends.borrow_and_update();
            let held = match self.held_back(handlers).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!("cannot read the handlers' limits: {e}");
                    HeldBack {
                        open: handlers.to_vec(),
                        slot: Some(self.clock.now() + chrono::Duration::seconds(1)),
                        full: false,
                    }
                }
            };
            let HeldBack { open, slot, full } = held;
            let due = match self.store.next_due_at(queues, &open).await {
                Ok(at) => at,
                Err(e) => {
                    tracing::warn!("cannot read the next due time: {e}");
                    Some(self.clock.now() + chrono::Duration::seconds(1))
                }
            };
            let wait = match due.into_iter().chain(slot).min() {
                Some(at) => (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO),
                None => IDLE_SLEEP,
            };
            if wait.is_zero() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => return,
                _ = changes.changed() => {}
                // A job ended: a handler held by its concurrency may start.
                _ = ends.changed(), if full => return,
                // The handler set changed: the caller leases for the new one.
                _ = plugins.changed() => return,
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Which of `handlers` their limits let start a job now.
    async fn held_back(&self, handlers: &[String]) -> Result<HeldBack, StoreError> {
        let limits: Vec<HandlerLimit> = self
            .limits
            .iter()
            .filter(|l| handlers.contains(&l.handler))
            .cloned()
            .collect();
        if limits.is_empty() {
            return Ok(HeldBack {
                open: handlers.to_vec(),
                slot: None,
                full: false,
            });
        }
        let states = self.store.limit_states(&limits).await?;
        let full = |state: &LimitState, limit: &HandlerLimit| {
            limit
                .concurrency
                .is_some_and(|n| state.running >= u64::from(n.get()))
        };
        let held: Vec<(&LimitState, &HandlerLimit)> =
            states.iter().zip(&limits).filter(|(s, _)| s.held).collect();
        Ok(HeldBack {
            open: handlers
                .iter()
                .filter(|h| !held.iter().any(|(s, _)| &s.handler == *h))
                .cloned()
                .collect(),
            slot: held
                .iter()
                .filter(|(s, l)| !full(s, l))
                .filter_map(|(s, _)| s.next_start)
                .min(),
            full: held.iter().any(|(s, l)| full(s, l)),
        })
    }

    fn start(self: Arc<Self>, lease: Lease, permit: OwnedSemaphorePermit) {
        let (id, token) = (lease.job.id, lease.token);
        // Hold the lock across the spawn so the task cannot finish (and
        // remove its entry) before the entry exists.
        let mut running = self.running.lock().expect("running lock");
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(self.clone().execute(lease, permit, stop.clone()));
        running.insert(
            id,
            Running {
                token,
                task: task.abort_handle(),
                stop,
            },
        );
    }

    async fn execute(
        self: Arc<Self>,
        lease: Lease,
        permit: OwnedSemaphorePermit,
        stop: Arc<Notify>,
    ) {
        let Lease { job, token, .. } = lease;
        let metrics = crate::metrics::global();
        // However this task ends (a return, a panic, an abort at shutdown),
        // the heartbeat stops and the job leaves the running table: a lease
        // renewed for a task that is gone would hold its job forever.
        let _running = RunningGuard {
            running: &self.running,
            job: job.id,
            heartbeat: tokio::spawn(heartbeat(
                self.store.clone(),
                token,
                self.settings.lease,
                stop.clone(),
            ))
            .abort_handle(),
        };
        let began = std::time::Instant::now();
        let run = async {
            metrics.job(JobEvent::Started, &job.handler, 1);
            lifecycle::started(&job);
            catch_panic(self.runtime.run(job_input(&job))).await
        };
        // A termination request drops the run where it stands: the guest
        // at its next epoch tick (a few ms even in a tight loop), a host
        // call at its next await, with the instance and its resources.
        let report = tokio::select! {
            ran = run => match ran {
                Ok(report) => report,
                Err(panic) => Ok(self.host_panic(&job, panic)),
            },
            () = stop.notified() => {
                _running.heartbeat.abort();
                let disposition = self.terminated(&job, &token, began.elapsed()).await;
                self.stats.record(disposition, began.elapsed(), 0);
                drop(permit);
                return;
            }
        };
        _running.heartbeat.abort();
        let (disposition, duration, fuel) = match report {
            Ok(report) => {
                let (d, f) = (report.duration, report.fuel_used);
                (self.settle(&job, &token, report).await, d, f)
            }
            Err(e) => {
                // The lease filters on loaded handlers, so the plugin was
                // taken out of service since; the job waits for it without
                // burning an attempt.
                tracing::warn!(job = %job.id, "{e}; the job goes back to wait for it");
                let _ = self.store.release(&token).await;
                (Disposition::Retried, Duration::ZERO, 0)
            }
        };
        self.stats.record(disposition, duration, fuel);
        metrics.run(&job.handler, duration, fuel);
        match disposition {
            Disposition::Succeeded => metrics.job(JobEvent::Succeeded, &job.handler, 1),
            Disposition::Retried => {
                metrics.job(JobEvent::Failed, &job.handler, 1);
                metrics.job(JobEvent::Retried, &job.handler, 1);
            }
            Disposition::Dead => {
                metrics.job(JobEvent::Failed, &job.handler, 1);
                metrics.job(JobEvent::Dead, &job.handler, 1);
            }
            Disposition::Cancelled => metrics.job(JobEvent::Cancelled, &job.handler, 1),
            Disposition::LeaseLost => metrics.lease_lost(),
        }
        drop(permit);
    }

    /// A panic on the host's side of a job (a bug in a capability, say)
    /// ends that job as a trap, retried like one, instead of leaving it
    /// leased to a task that no longer runs.
    fn host_panic(&self, job: &Job, what: String) -> JobReport {
        tracing::error!(job = %job.id, handler = %job.handler, "host panic while running the job: {what}");
        let plugin = self
            .runtime
            .registry()
            .handler(&job.handler)
            .map_or_else(String::new, |h| h.plugin.name.to_string());
        JobReport {
            outcome: Outcome::Trap {
                message: format!("the host failed while running the job: {what}"),
                plugin,
                handler: job.handler.clone(),
            },
            fuel_used: 0,
            duration: Duration::ZERO,
            log: String::new(),
            log_truncated: false,
            plugin_digest: None,
        }
    }

    /// Records how a run ended and decides what happens next.
    async fn settle(&self, job: &Job, token: &LeaseToken, report: JobReport) -> Disposition {
        let run = RunReport {
            outcome: OutcomeKind::from_str(report.outcome.kind())
                .expect("every outcome kind is a store outcome kind"),
            message: (!report.outcome.is_success()).then(|| report.outcome.message()),
            duration: report.duration,
            fuel: Some(report.fuel_used),
            log: (!report.log.is_empty()).then_some(report.log),
            plugin_digest: report.plugin_digest,
        };
        let mut retry_in = Duration::ZERO;
        let (action, disposition) = match &report.outcome {
            Outcome::Success { result } => {
                return match self.store.complete(token, result.clone(), run).await {
                    Ok(()) => {
                        lifecycle::succeeded(job, report.duration, report.fuel_used);
                        Disposition::Succeeded
                    }
                    Err(e) => self.store_refused(job, e),
                };
            }
            outcome if !outcome.may_retry() || job.attempt >= job.max_attempts => {
                (FailAction::Dead, Disposition::Dead)
            }
            outcome => {
                let delay = match outcome {
                    Outcome::Retryable {
                        retry_after: Some(d),
                        ..
                    } => (*d).min(self.settings.max_retry_after),
                    // The job's own policy, else its handler's.
                    _ => job
                        .retry
                        .clone()
                        .or_else(|| self.enqueuer.policy(&job.handler))
                        .map(|p| p.delay_after(job.attempt))
                        .unwrap_or(Duration::from_secs(1)),
                };
                retry_in = delay;
                let at = crate::clock::after(self.clock.now(), delay);
                (FailAction::Retry { at }, Disposition::Retried)
            }
        };
        match self.store.fail(token, action, run).await {
            Ok(status) => {
                // Logged after the commit, as the store recorded it.
                let (d, fuel) = (report.duration, report.fuel_used);
                match status {
                    JobStatus::Retrying => {
                        lifecycle::retrying(job, &report.outcome, retry_in, d, fuel)
                    }
                    // Terminated while it failed: not retried.
                    JobStatus::Cancelled => {
                        lifecycle::cancelled(job, d);
                        return Disposition::Cancelled;
                    }
                    _ => lifecycle::dead(job, &report.outcome, d, fuel),
                }
                disposition
            }
            Err(e) => self.store_refused(job, e),
        }
    }

    fn store_refused(&self, job: &Job, e: StoreError) -> Disposition {
        match e {
            StoreError::LeaseLost(_) => {
                tracing::warn!(job = %job.id, "lease lost: another worker owns this job now; result not recorded");
                Disposition::LeaseLost
            }
            e => {
                tracing::error!(job = %job.id, "cannot record the run: {e}");
                Disposition::LeaseLost
            }
        }
    }
}

/// Stops a job's heartbeat and removes it from the running table when the
/// task that runs the job ends, however it ends.
struct RunningGuard<'a> {
    running: &'a Mutex<RunningTable>,
    job: JobId,
    heartbeat: AbortHandle,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.job);
    }
}

/// Renews a lease every third of its length until aborted. Each renewal
/// also asks whether the job was terminated, a backstop for a request the
/// change-signal watch ([`Workers::watch_terminations`]) missed.
async fn heartbeat(
    store: Arc<dyn Store>,
    token: LeaseToken,
    lease_for: Duration,
    stop: Arc<Notify>,
) {
    let mut tick = tokio::time::interval(lease_for / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.renew(&token, lease_for).await {
            Ok(_) => {
                if let Ok(asked) = store.termination_requested(&[token.job]).await
                    && !asked.is_empty()
                {
                    stop.notify_one();
                }
            }
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!(job = %token.job, "lease lost while running");
                return;
            }
            Err(e) => tracing::warn!(job = %token.job, "lease renewal failed: {e}"),
        }
    }
}

/// The handler's view of a leased job.
pub fn job_input(job: &Job) -> JobInput {
    JobInput {
        id: job.id.to_string(),
        handler: job.handler.clone(),
        queue: job.queue.clone(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        enqueued_at_ms: job.created_at.timestamp_millis().max(0) as u64,
        scheduled_for_ms: job.run_at.timestamp_millis().max(0) as u64,
        payload: job.payload.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_job_becomes_an_error_with_its_text() {
        let fine = catch_panic(async { 7 }).await;
        assert_eq!(fine, Ok(7));
        let failed = catch_panic(async {
            if std::hint::black_box(true) {
                panic!("capability bug for job {}", 42);
            }
            7
        })
        .await;
        assert_eq!(failed, Err("capability bug for job 42".to_string()));
    }

    /// A job task that dies of a panic still stops its heartbeat and
    /// leaves the running table: nothing renews a lease for a dead task.
    #[tokio::test]
    async fn a_dying_job_task_stops_its_heartbeat_and_leaves_the_table() {
        let running: Arc<Mutex<RunningTable>> = Arc::default();
        let heartbeat = tokio::spawn(std::future::pending::<()>());
        let job = JobId::generate();
        let token = LeaseToken { job, fence: 1 };
        running.lock().unwrap().insert(
            job,
            Running {
                token,
                task: heartbeat.abort_handle(),
                stop: Arc::default(),
            },
        );
        let table = running.clone();
        let beat = heartbeat.abort_handle();
        let task = tokio::spawn(async move {
            let _guard = RunningGuard {
                running: &table,
                job,
                heartbeat: beat,
            };
            if std::hint::black_box(true) {
                panic!("the job task failed");
            }
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(
            heartbeat.await.unwrap_err().is_cancelled(),
            "heartbeat stopped"
        );
        assert!(running.lock().unwrap().is_empty(), "entry removed");
    }
}

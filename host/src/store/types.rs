//! Requests and answers of the [`Store`](super::Store) trait, shared by every
//! backend.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{Job, JobId, JobStatus, JobSummary, Priority};

/// Settings every backend honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// How long an idempotency key keeps answering with its original job id,
    /// even after that job finished or was removed.
    pub idempotency_ttl: Duration,
    /// How long succeeded and cancelled jobs are kept after they finish. Dead
    /// jobs are kept until purged.
    pub finished_retention: Duration,
    /// How long claimed schedule ticks are remembered. Must exceed the longest
    /// catch-up window of any schedule, or an old tick could fire again.
    pub tick_retention: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            finished_retention: Duration::from_secs(7 * 24 * 3600),
            tick_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The job's id; for a repeated idempotency key, the original job's id.
    pub id: JobId,
    /// False when the idempotency key was already seen within its TTL and no
    /// new job was made.
    pub created: bool,
}

/// What a worker asks for when it wants work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Queues to take from. Paused queues are skipped.
    pub queues: Vec<String>,
    /// Handlers this host has loaded; jobs for other handlers are left alone.
    pub handlers: Vec<String>,
    /// Worker/host id, recorded on the job and in its attempt history.
    pub worker: String,
    /// How long the lease lasts unless renewed.
    pub lease_for: Duration,
    /// The most jobs to lease at once.
    pub max: u32,
    /// Rate and concurrency limits of the handlers, counted across every
    /// host sharing the store; a job they hold back is not leased.
    pub limits: Vec<super::HandlerLimit>,
}

/// Proof of holding a lease (a fencing token). Every lease gets a new one, so
/// a holder whose lease expired and was re-leased is refused with
/// [`StoreError::LeaseLost`](super::StoreError::LeaseLost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseToken {
    /// The leased job.
    pub job: JobId,
    /// Random per lease.
    pub fence: u64,
}

impl LeaseToken {
    /// A new token for `job`.
    pub fn generate(job: JobId) -> Self {
        Self {
            job,
            fence: rand::random(),
        }
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:016x}", self.job, self.fence)
    }
}

impl FromStr for LeaseToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid lease token {s:?}: expected <job id>.<16 hex digits>");
        let (job, fence) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            job: job.parse().map_err(|_| bad())?,
            fence: u64::from_str_radix(fence, 16).map_err(|_| bad())?,
        })
    }
}

/// A leased job.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The job, already counted as `running` with its attempt incremented.
    pub job: Job,
    /// Needed to renew, complete, fail or release.
    pub token: LeaseToken,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// What to do with a job whose run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Run again at `at`. Becomes [`FailAction::Dead`] when the job has no
    /// attempts left, so no caller can loop a job forever.
    Retry {
        /// Earliest next run.
        at: DateTime<Utc>,
    },
    /// Send to the DLQ now (for errors a retry cannot fix).
    Dead,
    /// End the job `cancelled`: it was stopped because someone asked to
    /// terminate it ([`Store::terminate`](super::Store::terminate)); never
    /// retried. The run's outcome must be `cancelled`.
    Cancel,
}

/// The answer to [`Store::terminate`](super::Store::terminate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Termination {
    /// The job had not started; it is `cancelled` now.
    Cancelled,
    /// The job is running; the request is recorded and the host running it
    /// stops it and records it `cancelled`.
    Requested,
}

/// A page request for [`Store::list`](super::Store::list). Jobs come newest
/// first; `after` is the last id of the previous page. Because ids grow with
/// creation, jobs enqueued while paging never shift later pages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs of this handler.
    pub handler: Option<String>,
    /// Only jobs enqueued by this schedule's ticks.
    pub schedule: Option<String>,
    /// Continue after this id (exclusive).
    pub after: Option<JobId>,
    /// Page size; 0 means [`ListQuery::DEFAULT_LIMIT`], capped at [`ListQuery::MAX_LIMIT`].
    pub limit: u32,
}

impl ListQuery {
    /// Page size when none is given.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page size.
    pub const MAX_LIMIT: u32 = 1000;

    /// The page size to use.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// One page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page {
    /// The jobs, newest first.
    pub jobs: Vec<Job>,
    /// Cursor for the next page; `None` on the last page.
    #[schema(value_type = Option<String>)]
    pub next: Option<JobId>,
}

/// One page of jobs as lists show them (the API's `/jobs` and `/dlq`, the
/// CLI's tables): summaries, not whole jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummaryPage {
    /// The jobs, newest first.
    pub jobs: Vec<JobSummary>,
    /// Cursor for the next page; `None` on the last page.
    #[schema(value_type = Option<String>)]
    pub next: Option<JobId>,
}

impl From<Page> for SummaryPage {
    fn from(page: Page) -> SummaryPage {
        SummaryPage {
            jobs: page.jobs.into_iter().map(JobSummary::from).collect(),
            next: page.next,
        }
    }
}

/// The number of jobs in one (queue, priority, status) cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRow {
    /// Queue name.
    pub queue: String,
    /// Priority.
    pub priority: Priority,
    /// Status (`scheduled` jobs that are due count as `pending`).
    pub status: JobStatus,
    /// How many jobs.
    pub count: u64,
}

/// All non-empty count cells, from one consistent read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// The cells.
    pub rows: Vec<CountRow>,
}

impl Counts {
    /// The sum over the cells matching every given filter.
    pub fn sum(
        &self,
        queue: Option<&str>,
        priority: Option<Priority>,
        status: Option<JobStatus>,
    ) -> u64 {
        self.rows
            .iter()
            .filter(|r| queue.is_none_or(|q| r.queue == q))
            .filter(|r| priority.is_none_or(|p| r.priority == p))
            .filter(|r| status.is_none_or(|s| r.status == s))
            .map(|r| r.count)
            .sum()
    }
}

/// A queue the store knows about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Paused queues are not leased from; enqueues still land.
    pub paused: bool,
}

/// A serving host as the store knows it: renewed by the host's heartbeat,
/// removed when it stops cleanly, stale once not seen for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostRecord {
    /// `hostname:pid`.
    pub id: String,
    /// The queues its workers serve (empty when its workers are off).
    pub queues: Vec<String>,
    pub started_at: DateTime<Utc>,
    /// Its latest heartbeat.
    pub seen_at: DateTime<Utc>,
}

/// What a retention sweep removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SweepReport {
    /// Succeeded and cancelled jobs past their retention.
    pub jobs: u64,
    /// Idempotency keys past their TTL.
    pub idempotency_keys: u64,
    /// Schedule ticks past their retention.
    pub ticks: u64,
    /// Succeeded and cancelled chains past the jobs' retention (their
    /// step jobs go by the jobs' rule).
    pub chains: u64,
    /// Finished batches past the jobs' retention with none of their dead
    /// jobs left in the DLQ.
    pub batches: u64,
    /// Free database pages given back to the file system afterwards.
    pub pages_freed: u64,
}

impl SweepReport {
    /// Whether the sweep removed or reclaimed anything.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_token_round_trips_through_text() {
        let token = LeaseToken::generate(JobId::generate());
        assert_eq!(token.to_string().parse::<LeaseToken>(), Ok(token));
        assert!("x.y".parse::<LeaseToken>().unwrap_err().contains("\"x.y\""));
    }

    #[test]
    fn list_limit_defaults_and_caps() {
        let mut q = ListQuery::default();
        assert_eq!(q.effective_limit(), ListQuery::DEFAULT_LIMIT);
        q.limit = 5000;
        assert_eq!(q.effective_limit(), ListQuery::MAX_LIMIT);
    }
}

/// One plugin version deployed through the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginRelease {
    /// The plugin's name (its file stem, `hello`).
    pub name: String,
    /// sha256 (hex) of the component.
    pub digest: String,
    pub deployed_at: DateTime<Utc>,
}

/// The releases in service, with the store's plugin generation when read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginReleases {
    /// Bumped by every deploy and rollback.
    pub generation: u64,
    /// The release in service of every deployed plugin, by name.
    pub releases: Vec<PluginRelease>,
}

//! The job model: what a job is, what state it is in, and what each run left
//! behind.
//!
//! These types are shared by every store, the worker, the scheduler and the
//! API, so they carry no storage details (no lease tokens, no row layout).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::worker::retry::RetryPolicy;

/// The queue a job goes to when its enqueuer names none.
pub const DEFAULT_QUEUE: &str = "default";

/// How many runs a job gets when its enqueuer does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How far ahead a job may be set to run (by a delay, a run-at time or a
/// retry-after): far enough for any real calendar, near enough that time
/// arithmetic on it never overflows.
pub const MAX_RUN_AHEAD: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The largest attempt budget a job may have. A budget is what turns a
/// poisoned job into a dead one; an effectively endless one never does.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;

/// The longest queue name, handler name or idempotency key accepted.
pub const MAX_NAME_LEN: usize = 200;

/// A job's identity: a UUIDv7, so ids sort by creation time. That ordering is
/// what makes cursor pagination stable while jobs keep arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh id. Ids made by one process are strictly increasing.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The 16 bytes, in the order that sorts like the id.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from [`JobId::as_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// The id of item `n` (below 2^14) of the batch `batch`: the batch
    /// id's time and random bits with `n` in place of its bits 66–79. The
    /// same batch always names the same jobs (so a resumed start skips the
    /// ones already written), and a batch's jobs sort in item order.
    pub fn nth_of(batch: JobId, n: usize) -> JobId {
        assert!(n < 1 << 14, "batch item {n} is beyond 2^14");
        let mut bytes = *batch.as_bytes();
        bytes[8] = 0x80 | (n >> 8) as u8; // the RFC 9562 variant, then n
        bytes[9] = n as u8;
        JobId::from_bytes(bytes)
    }
}

impl From<Uuid> for JobId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|e| format!("invalid job id {s:?}: {e}"))
    }
}

/// Declares a closed set of names that round-trip through text (`as_str`,
/// `FromStr`, serde), so every enum below spells its values in one place.
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $text)] $var),+ }

        // By hand: utoipa's derive does not see serde renames made inside
        // a macro, and the schema must list the names the JSON carries.
        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The value's name as it appears in the API, the config and the store.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$var),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?} (expected one of: {})"),
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

pub(crate) use named_enum;

named_enum!(
    /// Priority is strict: a `high` job never waits behind a `normal` one.
    /// Declaration order is leasing order.
    Priority, "priority" {
        /// Before everything else.
        Critical = "critical",
        /// Before normal work.
        High = "high",
        /// The default.
        Normal = "normal",
        /// Only when nothing else is due.
        Low = "low",
    }
);

named_enum!(
    /// Where a job is in its life.
    JobStatus, "job status" {
        /// Waiting for a `run_at` in the future.
        Scheduled = "scheduled",
        /// Due, waiting for a worker.
        Pending = "pending",
        /// Leased to a worker.
        Running = "running",
        /// Finished with a result.
        Succeeded = "succeeded",
        /// Failed a run and waits for its next one.
        Retrying = "retrying",
        /// Out of attempts (or failed for good); kept in the DLQ until retried or purged.
        Dead = "dead",
        /// Cancelled before it ran, or terminated while running.
        Cancelled = "cancelled",
    }
);

named_enum!(
    /// How one run ended: the runtime's outcome kinds, plus the one only the
    /// store can see (a lease nobody renewed).
    OutcomeKind, "outcome kind" {
        /// The handler returned a result.
        Succeeded = "success",
        /// The handler returned an error another attempt may cure.
        Retryable = "retryable",
        /// The handler returned an error no retry can cure.
        Permanent = "permanent",
        /// The run used up its fuel budget.
        OutOfFuel = "out-of-fuel",
        /// The run hit its wall-clock deadline.
        DeadlineExceeded = "deadline-exceeded",
        /// Linear memory hit its cap.
        MemoryLimit = "memory-limit",
        /// The run made more host calls than its budget.
        HostCallLimit = "host-call-limit",
        /// The handler's result was over `[limits] max_result` (not retried).
        ResultTooLarge = "result-too-large",
        /// The component trapped (panic, stack overflow, bad access).
        Trap = "trap",
        /// The worker stopped renewing its lease (killed, hung, machine gone).
        LeaseExpired = "lease-expired",
        /// The run was stopped by a request to terminate the job.
        Cancelled = "cancelled",
    }
);

impl Priority {
    /// The sort rank: lower runs first.
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// The priority of a [`Priority::rank`].
    pub fn from_rank(rank: u8) -> Option<Self> {
        Self::ALL.get(usize::from(rank)).copied()
    }
}

impl JobStatus {
    /// True for states a job never leaves by itself (only by DLQ retry or removal).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }

    /// True for states in which a job waits to be leased.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Scheduled | Self::Pending | Self::Retrying)
    }
}

/// One run of a job, as kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Which run this was (1-based).
    pub attempt: u32,
    /// When the run started.
    pub at: DateTime<Utc>,
    /// The worker/host that ran it.
    pub host: String,
    /// How it ended.
    pub outcome: OutcomeKind,
    /// The error message, or a note such as when a lease expired.
    pub message: Option<String>,
    /// Wall time of the run in milliseconds.
    pub duration_ms: u64,
    /// Fuel the run consumed, when the runtime measured it.
    pub fuel: Option<u64>,
    /// sha256 (hex) of the plugin version the run ran on; absent when no
    /// plugin ran (an expired lease) and in records older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
}

/// What a worker reports about a run when it completes or fails a job. The
/// store turns it into an [`Attempt`], adding the attempt number, start time
/// and host it already knows from the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// How the run ended.
    pub outcome: OutcomeKind,
    /// The error message, if any.
    pub message: Option<String>,
    /// Wall time of the run.
    pub duration: Duration,
    /// Fuel consumed, if measured.
    pub fuel: Option<u64>,
    /// The log the run captured; when given, replaces the job's previous log.
    pub log: Option<String>,
    /// sha256 (hex) of the plugin version that ran; every backend copies it
    /// into the [`Attempt`] it records.
    pub plugin_digest: Option<String>,
}

impl RunReport {
    /// A successful run.
    pub fn succeeded(duration: Duration) -> Self {
        Self {
            outcome: OutcomeKind::Succeeded,
            message: None,
            duration,
            fuel: None,
            log: None,
            plugin_digest: None,
        }
    }

    /// A failed run.
    pub fn failed(outcome: OutcomeKind, message: impl Into<String>, duration: Duration) -> Self {
        Self {
            outcome,
            message: Some(message.into()),
            duration,
            fuel: None,
            log: None,
            plugin_digest: None,
        }
    }

    /// Adds the fuel the run consumed.
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Adds the digest of the plugin version that ran.
    pub fn with_plugin_digest(mut self, digest: impl Into<String>) -> Self {
        self.plugin_digest = Some(digest.into());
        self
    }

    /// Adds the run's captured log.
    pub fn with_log(mut self, log: impl Into<String>) -> Self {
        self.log = Some(log.into());
        self
    }
}

/// Who holds a running job and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaseInfo {
    /// The worker/host id given when leasing.
    pub worker: String,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// Identity, sortable by creation.
    #[schema(value_type = String, format = Uuid)]
    pub id: JobId,
    /// The queue it waits in.
    pub queue: String,
    /// The handler (exported by a plugin) that runs it.
    pub handler: String,
    /// The handler's input.
    pub payload: Value,
    /// Leasing priority.
    pub priority: Priority,
    /// Current state. `scheduled` turns into `pending` by itself once `run_at` passes.
    pub status: JobStatus,
    /// Runs started so far (an expired lease counts as a run).
    pub attempt: u32,
    /// Runs allowed before the job goes to the DLQ.
    pub max_attempts: u32,
    /// Earliest time of the next run.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its latest run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// One entry per finished run, oldest first.
    pub attempts: Vec<Attempt>,
    /// The handler's result, once succeeded.
    pub result: Option<Value>,
    /// The latest run's captured log.
    pub log: Option<String>,
    /// The key that deduplicates enqueues, if one was given.
    pub idempotency_key: Option<String>,
    /// The current lease, while running.
    pub lease: Option<LeaseInfo>,
    /// The schedule whose tick enqueued it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The job's own retry policy, given at enqueue (a chain step's, for
    /// one); absent, its handler's policy applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub retry: Option<RetryPolicy>,
}

/// The longest last-error text a [`JobSummary`] carries.
pub const SUMMARY_ERROR_LEN: usize = 300;

/// What a list shows of a job: who, where, how far along and how its last
/// run failed — never its payload, result, log or attempt history, so a page
/// of a thousand jobs stays small whatever the jobs carry. The whole job is
/// one request away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: JobId,
    pub queue: String,
    pub handler: String,
    pub priority: Priority,
    pub status: JobStatus,
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// The schedule whose tick enqueued it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How the latest finished run ended.
    pub last_outcome: Option<OutcomeKind>,
    /// Its error message, cut to a few hundred bytes (ending in `…` when cut).
    pub last_error: Option<String>,
}

impl From<Job> for JobSummary {
    fn from(job: Job) -> JobSummary {
        let last = job.attempts.last();
        let last_error = last.and_then(|a| a.message.as_deref()).map(|m| {
            if m.len() <= SUMMARY_ERROR_LEN {
                m.to_owned()
            } else {
                format!("{}…", &m[..m.floor_char_boundary(SUMMARY_ERROR_LEN)])
            }
        });
        JobSummary {
            last_outcome: last.map(|a| a.outcome),
            last_error,
            id: job.id,
            queue: job.queue,
            handler: job.handler,
            priority: job.priority,
            status: job.status,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            idempotency_key: job.idempotency_key,
            schedule: job.schedule,
        }
    }
}

/// A job to enqueue, built with [`NewJob::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// The handler to run. Whether it exists is for the caller to check.
    pub handler: String,
    /// The handler's input.
    pub payload: Value,
    /// Target queue.
    pub queue: String,
    /// Leasing priority.
    pub priority: Priority,
    /// Earliest run; `None` means now.
    pub run_at: Option<DateTime<Utc>>,
    /// Runs allowed before the DLQ.
    pub max_attempts: u32,
    /// Deduplicates enqueues within the store's idempotency TTL.
    pub idempotency_key: Option<String>,
    /// The schedule whose tick enqueues it.
    pub schedule: Option<String>,
    /// While a job of the same handler with this key is waiting or running,
    /// enqueueing adds nothing and answers that job's id (a handler's
    /// `unique = "while-active"`). Scoped by handler like idempotency keys.
    #[serde(default)]
    pub unique_key: Option<String>,
    /// Replaces the handler's retry policy for this job. Its attempt
    /// budget is `max_attempts`, whatever the policy says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

impl NewJob {
    /// A job for `handler` on the default queue, normal priority, due now.
    pub fn new(handler: impl Into<String>, payload: Value) -> Self {
        Self {
            handler: handler.into(),
            payload,
            queue: DEFAULT_QUEUE.to_owned(),
            priority: Priority::Normal,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            idempotency_key: None,
            schedule: None,
            unique_key: None,
            retry: None,
        }
    }

    /// Makes the job unique under `key` while it is active.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the earliest run time.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Sets how many runs the job gets.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Gives the job its own retry policy, and the policy's attempt budget.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.max_attempts = policy.max_attempts();
        self.retry = Some(policy);
        self
    }

    /// The stored form of its own retry policy, if it has one.
    pub fn retry_json(&self) -> Option<String> {
        self.retry
            .as_ref()
            .map(|p| serde_json::to_string(&p.clone().with_max_attempts(self.max_attempts)))
            .transpose()
            .expect("a retry policy serializes")
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Names the schedule whose tick enqueues it.
    pub fn schedule(mut self, name: impl Into<String>) -> Self {
        self.schedule = Some(name.into());
        self
    }

    /// Checks what the store can check without knowing the loaded handlers;
    /// the message names the offending field and value.
    pub fn validate(&self) -> Result<(), String> {
        check_name("handler", &self.handler)?;
        check_queue_name(&self.queue)?;
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(format!(
                "max_attempts {} of job for handler {:?} is outside 1..={MAX_ATTEMPTS_LIMIT}",
                self.max_attempts, self.handler
            ));
        }
        if let Some(key) = &self.idempotency_key {
            check_name("idempotency key", key)?;
        }
        if let Some(key) = &self.unique_key {
            check_name("unique key", key)?;
        }
        Ok(())
    }
}

/// Checks a queue name: 1–200 characters of letters, digits, `_`, `-`, `.`, `:`.
pub fn check_queue_name(queue: &str) -> Result<(), String> {
    check_name("queue name", queue)?;
    if let Some(c) = queue
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(format!(
            "queue name {queue:?} contains {c:?}; use letters, digits, '_', '-', '.', ':'"
        ));
    }
    Ok(())
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} {:?}… is {} bytes long; the limit is {MAX_NAME_LEN}",
            &value[..value.floor_char_boundary(32)],
            value.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
        }
        assert_eq!(
            "deadline-exceeded".parse::<OutcomeKind>(),
            Ok(OutcomeKind::DeadlineExceeded)
        );
        let err = "urgent".parse::<Priority>().unwrap_err();
        assert!(err.contains("\"urgent\"") && err.contains("critical, high, normal, low"));
        assert_eq!(
            serde_json::to_string(&OutcomeKind::LeaseExpired).unwrap(),
            "\"lease-expired\""
        );
    }

    #[test]
    fn priority_rank_is_leasing_order() {
        let ranks: Vec<u8> = Priority::ALL.iter().map(|p| p.rank()).collect();
        assert_eq!(ranks, [0, 1, 2, 3]);
        assert_eq!(Priority::from_rank(1), Some(Priority::High));
        assert_eq!(Priority::from_rank(4), None);
    }

    #[test]
    fn job_ids_increase_and_round_trip() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert!(b > a);
        assert_eq!(JobId::from_bytes(*a.as_bytes()), a);
        assert_eq!(a.to_string().parse::<JobId>(), Ok(a));
        assert!("nope".parse::<JobId>().unwrap_err().contains("\"nope\""));
    }

    #[test]
    fn new_job_defaults_and_validation() {
        let job = NewJob::new("email.send", serde_json::json!({}));
        assert_eq!(job.queue, DEFAULT_QUEUE);
        assert_eq!(job.priority, Priority::Normal);
        assert!(job.validate().is_ok());
        let err = job.clone().queue("bad queue").validate().unwrap_err();
        assert!(err.contains("\"bad queue\""), "{err}");
        assert!(job.clone().max_attempts(0).validate().is_err());
        assert!(
            NewJob::new(" ", serde_json::json!(null))
                .validate()
                .is_err()
        );
        assert!(job.idempotency_key("").validate().is_err());
    }
}

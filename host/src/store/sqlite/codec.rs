//! How model values map to SQLite values and rows back to jobs. Times are
//! integer microseconds since the Unix epoch, so they sort and compare in SQL.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Type;

use crate::job::{Job, JobId, JobStatus, LeaseInfo, Priority};
use crate::store::StoreError;
use crate::worker::retry::RetryPolicy;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// The columns [`job_from_row`] reads, in its order.
pub(super) const JOB_COLUMNS: &str = "id, queue, handler, payload, priority, status, attempt, \
     max_attempts, run_at, created_at, started_at, finished_at, history, result, log, \
     idempotency_key, lease_worker, lease_expires_at, schedule, retry";

/// How many columns [`JOB_COLUMNS`] names; the next column of a row is free
/// for extras such as the lease fence.
pub(super) const JOB_COLUMN_COUNT: usize = 20;

/// Waiting states, as the SQL list that the `jobs_ready` partial index is
/// declared with (queries must repeat it verbatim to use the index).
pub(super) const WAITING: &str = "('scheduled', 'pending', 'retrying')";

/// A time as stored.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A span as stored (saturating; spans beyond 292k years are not a concern).
pub(super) fn span_micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A stored time.
pub(super) fn time(idx: usize, v: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| bad(idx, Type::Integer, format!("time {v}")))
}

fn opt_time(idx: usize, v: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    v.map(|v| time(idx, v)).transpose()
}

/// A conversion error for column `idx`, naming the stored value.
pub(super) fn bad(idx: usize, ty: Type, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, format!("unreadable stored {what}").into())
}

/// A job id as stored.
pub(super) fn job_id(idx: usize, row: &Row) -> rusqlite::Result<JobId> {
    let bytes: Vec<u8> = row.get(idx)?;
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(idx, Type::Blob, format!("job id of {} bytes", b.len())))?;
    Ok(JobId::from_bytes(bytes))
}

/// Parses a stored text column with `FromStr` (statuses, priorities, policies).
pub(super) fn parsed<T: std::str::FromStr<Err = String>>(
    idx: usize,
    row: &Row,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    text.parse().map_err(|e: String| bad(idx, Type::Text, e))
}

/// Parses a stored JSON text column.
pub(super) fn json<T: serde::de::DeserializeOwned>(idx: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| bad(idx, Type::Text, format!("JSON: {e}")))
}

/// Builds a job from a row selected with [`JOB_COLUMNS`]; `now` decides
/// whether a scheduled job already shows as pending.
pub(super) fn job_from_row(row: &Row, now: i64) -> rusqlite::Result<Job> {
    let rank: u8 = row.get(4)?;
    let priority = Priority::from_rank(rank)
        .ok_or_else(|| bad(4, Type::Integer, format!("priority rank {rank}")))?;
    let mut status: JobStatus = parsed(5, row)?;
    let run_at: i64 = row.get(8)?;
    if status == JobStatus::Scheduled && run_at <= now {
        status = JobStatus::Pending;
    }
    let payload: String = row.get(3)?;
    let history: String = row.get(12)?;
    let result: Option<String> = row.get(13)?;
    let worker: Option<String> = row.get(16)?;
    let expires: Option<i64> = row.get(17)?;
    let max_attempts: u32 = row.get(7)?;
    Ok(Job {
        id: job_id(0, row)?,
        queue: row.get(1)?,
        handler: row.get(2)?,
        payload: json(3, &payload)?,
        priority,
        status,
        attempt: row.get(6)?,
        max_attempts,
        run_at: time(8, run_at)?,
        created_at: time(9, row.get(9)?)?,
        started_at: opt_time(10, row.get(10)?)?,
        finished_at: opt_time(11, row.get(11)?)?,
        attempts: json(12, &history)?,
        result: result.as_deref().map(|r| json(13, r)).transpose()?,
        log: row.get(14)?,
        idempotency_key: row.get(15)?,
        lease: match (worker, expires) {
            (Some(worker), Some(at)) => Some(LeaseInfo {
                worker,
                expires_at: time(17, at)?,
            }),
            _ => None,
        },
        schedule: row.get(18)?,
        // Shown with the budget in force (a DLQ retry raises it).
        retry: row
            .get::<_, Option<String>>(19)?
            .map(|r| json::<RetryPolicy>(19, &r).map(|p| p.with_max_attempts(max_attempts)))
            .transpose()?,
    })
}

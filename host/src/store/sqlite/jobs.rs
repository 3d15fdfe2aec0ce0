//! Adding, reading, listing, counting and cancelling jobs.

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{JOB_COLUMNS, WAITING, job_from_row, job_id, micros, parsed, span_micros, time};
use super::writer::Ctx;
use crate::job::{Job, JobId, JobStatus, NewJob, Priority};
use crate::store::{CountRow, Counts, Enqueued, ListQuery, Page, StoreError, StoreResult};

/// The job a live (scoped) idempotency key is bound to.
pub(super) fn bound_to_key(
    conn: &Connection,
    now: DateTime<Utc>,
    key: &str,
) -> StoreResult<Option<JobId>> {
    Ok(conn
        .prepare_cached("SELECT job_id FROM idempotency_keys WHERE key = ?1 AND expires_at > ?2")?
        .query_row(params![key, micros(now)], |r| job_id(0, r))
        .optional()?)
}

/// Adds one job (or answers the id already bound to its idempotency key).
pub(super) fn enqueue(conn: &Connection, ctx: &Ctx, job: NewJob) -> StoreResult<Enqueued> {
    job.validate().map_err(StoreError::Invalid)?;
    let now = micros(ctx.now);
    let key = job
        .idempotency_key
        .as_deref()
        .map(|k| crate::store::scoped_idempotency_key(&job.handler, k));
    if let Some(key) = &key
        && let Some(id) = bound_to_key(conn, ctx.now, key)?
    {
        return Ok(Enqueued { id, created: false });
    }
    let unique = job
        .unique_key
        .as_deref()
        .map(|k| crate::store::scoped_idempotency_key(&job.handler, k));
    if let Some(unique) = &unique
        && let Some(id) = active_with_unique_key(conn, unique)?
    {
        return Ok(Enqueued { id, created: false });
    }
    let id = JobId::generate();
    let run_at = job.run_at.map_or(now, micros);
    let status = if run_at > now {
        JobStatus::Scheduled
    } else {
        JobStatus::Pending
    };
    conn.prepare_cached(
        "INSERT INTO jobs (id, queue, handler, payload, priority, status, max_attempts, run_at,
                           created_at, idempotency_key, schedule, unique_key, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        id.as_bytes(),
        job.queue,
        job.handler,
        serde_json::to_string(&job.payload)?,
        job.priority.rank(),
        status.as_str(),
        job.max_attempts,
        run_at,
        now,
        job.idempotency_key,
        job.schedule,
        unique,
        job.retry_json(),
    ])?;
    if let Some(key) = &key {
        let expires = now.saturating_add(span_micros(ctx.config.idempotency_ttl));
        conn.prepare_cached(
            "INSERT OR REPLACE INTO idempotency_keys (key, job_id, expires_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![key, id.as_bytes(), expires])?;
    }
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")?
        .execute([&job.queue])?;
    ctx.notify();
    Ok(Enqueued { id, created: true })
}

/// The waiting or running job that holds a (scoped) unique key.
fn active_with_unique_key(conn: &Connection, key: &str) -> StoreResult<Option<JobId>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM jobs INDEXED BY jobs_unique_active
              WHERE unique_key = ?1
                AND status IN ('scheduled', 'pending', 'running', 'retrying')
              LIMIT 1",
        )?
        .query_row([key], |r| job_id(0, r))
        .optional()?)
}

/// One job, as seen at `now`.
pub(super) fn get(conn: &Connection, now: DateTime<Utc>, id: JobId) -> StoreResult<Job> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row([id.as_bytes()], |r| job_from_row(r, micros(now)))
        .optional()?
        .ok_or(StoreError::NotFound(id))
}

/// The stored status of a job, for explaining why a conditional update
/// matched nothing.
pub(super) fn stored_status(conn: &Connection, id: JobId) -> StoreResult<JobStatus> {
    conn.prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| parsed(0, r))
        .optional()?
        .ok_or(StoreError::NotFound(id))
}

/// The error for an update of `id` that matched nothing because the job is
/// missing or in the wrong state.
pub(super) fn refusal(conn: &Connection, id: JobId, action: &'static str) -> StoreError {
    match stored_status(conn, id) {
        Ok(status) => StoreError::WrongState { id, status, action },
        Err(e) => e,
    }
}

/// SQL condition selecting jobs whose status *as seen at `?now`* is `status`.
fn status_condition(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "(status = 'pending' OR (status = 'scheduled' AND run_at <= :now))",
        JobStatus::Scheduled => "(status = 'scheduled' AND run_at > :now)",
        _ => "status = :status",
    }
}

/// A page of jobs, newest first.
pub(super) fn list(conn: &Connection, now: DateTime<Utc>, q: &ListQuery) -> StoreResult<Page> {
    let limit = q.effective_limit();
    let mut conditions = vec!["1 = 1"];
    let mut args: Vec<(&str, SqlValue)> = vec![(":now", micros(now).into())];
    if let Some(status) = q.status {
        conditions.push(status_condition(status));
        args.push((":status", status.as_str().to_owned().into()));
    }
    if let Some(queue) = &q.queue {
        conditions.push("queue = :queue");
        args.push((":queue", queue.clone().into()));
    }
    if let Some(handler) = &q.handler {
        conditions.push("handler = :handler");
        args.push((":handler", handler.clone().into()));
    }
    if let Some(schedule) = &q.schedule {
        conditions.push("schedule = :schedule");
        args.push((":schedule", schedule.clone().into()));
    }
    if let Some(after) = q.after {
        conditions.push("id < :after");
        args.push((":after", after.as_bytes().to_vec().into()));
    }
    args.push((":limit", i64::from(limit + 1).into()));
    // Only bind the names the statement uses (`:now` and `:status` may be unused).
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY id DESC LIMIT :limit",
        conditions.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let named: Vec<(&str, &dyn rusqlite::ToSql)> = args
        .iter()
        .filter(|(name, _)| sql.contains(name))
        .map(|(name, v)| (*name, v as &dyn rusqlite::ToSql))
        .collect();
    let mut jobs = stmt
        .query_map(named.as_slice(), |r| job_from_row(r, micros(now)))?
        .collect::<Result<Vec<_>, _>>()?;
    let next = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Page { jobs, next })
}

/// Counts by queue × priority × status as seen at `now`. One scan of the
/// jobs table: fine for dashboards polling every few seconds, not for hot paths.
pub(super) fn counts(conn: &Connection, now: DateTime<Utc>) -> StoreResult<Counts> {
    // The trigger-kept counts, with scheduled jobs already due moved to
    // pending (found through `jobs_scheduled_due`, not a scan).
    let sql = "WITH due AS (
             SELECT queue, priority, COUNT(*) AS n FROM jobs
             WHERE status = 'scheduled' AND run_at <= ?1 GROUP BY queue, priority),
         cells AS (
             SELECT c.queue, c.priority, c.status,
                    c.n - CASE WHEN c.status = 'scheduled' THEN coalesce(d.n, 0) ELSE 0 END AS n
             FROM job_counts c LEFT JOIN due d ON d.queue = c.queue AND d.priority = c.priority
             UNION ALL
             SELECT queue, priority, 'pending', n FROM due)
         SELECT queue, priority, status, SUM(n) FROM cells
         GROUP BY queue, priority, status HAVING SUM(n) > 0
         ORDER BY queue, priority, status";
    let rows = conn
        .prepare_cached(sql)?
        .query_map([micros(now)], |r| {
            let rank: u8 = r.get(1)?;
            Ok(CountRow {
                queue: r.get(0)?,
                priority: Priority::from_rank(rank).ok_or_else(|| {
                    super::codec::bad(
                        1,
                        rusqlite::types::Type::Integer,
                        format!("priority {rank}"),
                    )
                })?,
                status: parsed(2, r)?,
                count: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Counts { rows })
}

/// Cancels a job that has not started.
pub(super) fn cancel(conn: &Connection, ctx: &Ctx, id: JobId) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?2
             WHERE id = ?1 AND status IN {WAITING}"
        ))?
        .execute(params![id.as_bytes(), micros(ctx.now)])?;
    if changed == 0 {
        return Err(refusal(conn, id, "cancel it"));
    }
    ctx.ended();
    super::batches::job_ended(conn, ctx, id, JobStatus::Cancelled)?;
    super::chains::job_ended(conn, ctx, id, JobStatus::Cancelled, None)
}

/// When work may next be there for these workers.
pub(super) struct NextDue {
    /// The earliest due time of a waiting job.
    pub run_at: Option<DateTime<Utc>>,
    /// The earliest expiry of a running job's lease.
    pub expiry: Option<DateTime<Utc>>,
    /// The latest time any host committed (`store_meta.clock_high`).
    pub clock_high: Option<DateTime<Utc>>,
}

/// The earliest due time and lease expiry among jobs these workers could
/// take, with the store's latest committed time.
pub(super) fn next_due_at(conn: &Connection, queues: &str, handlers: &str) -> StoreResult<NextDue> {
    let (run_at, expiry, high): (Option<i64>, Option<i64>, Option<i64>) = conn
        .prepare_cached(&format!(
            "SELECT
                (SELECT MIN(run_at) FROM jobs
                  WHERE status IN {WAITING}
                    AND queue IN (SELECT value FROM json_each(?1))
                    AND handler IN (SELECT value FROM json_each(?2))
                    AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)),
                (SELECT MIN(lease_expires_at) FROM jobs
                  WHERE status = 'running'
                    AND queue IN (SELECT value FROM json_each(?1))
                    AND handler IN (SELECT value FROM json_each(?2))),
                (SELECT CAST(value AS INTEGER) FROM store_meta WHERE key = 'clock_high')"
        ))?
        .query_row(params![queues, handlers], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(NextDue {
        run_at: run_at.map(|t| time(0, t)).transpose()?,
        expiry: expiry.map(|t| time(1, t)).transpose()?,
        clock_high: high.map(|t| time(2, t)).transpose()?,
    })
}

//! Batches on SQLite: a `batches` row holds the fixed part and the
//! counters; each job names its batch. The hooks here run inside the write
//! transaction that ends, revives or removes a job, so the counters never
//! drift from the jobs and each callback is enqueued exactly once.

use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{WAITING, micros, span_micros, time};
use super::writer::Ctx;
use crate::job::{JobId, JobStatus};
use crate::store::batch::{self, Added, Batch, Counters, StoredBatch};
use crate::store::chain::StoredStep;
use crate::store::{StoreError, StoreResult};

/// Writes one chunk of a batch's jobs; the first also makes the batch row
/// and binds its key, unless the key is bound to an earlier start's batch
/// (then nothing is written and that batch answered). Later chunks take
/// the jobs' settings from the stored batch, and stop at a batch closed by
/// a cancel. A job already written (by a concurrent resume of the same
/// batch) is skipped.
pub(super) fn add_chunk(
    conn: &Connection,
    ctx: &Ctx,
    id: JobId,
    head: &StoredBatch,
    first: bool,
    jobs: &[(JobId, String)],
) -> StoreResult<Added> {
    let now = micros(ctx.now);
    let stored;
    let head = if first {
        if let Some(key) = &head.key
            && let Some(earlier) = super::jobs::bound_to_key(conn, ctx.now, key)?
            && let Some(row) = stored_head(conn, earlier)?
        {
            if row.head.fingerprint != head.fingerprint {
                return Err(batch::key_reused(key, earlier));
            }
            return Ok(Added::BoundTo {
                batch: earlier,
                written: row.written,
                total: row.total,
            });
        }
        conn.prepare_cached(
            "INSERT INTO batches (id, head, total, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            id.as_bytes(),
            serde_json::to_string(head)?,
            head.total as i64,
            now
        ])?;
        conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")?
            .execute([&head.queue])?;
        if let Some(key) = &head.key {
            let expires = now.saturating_add(span_micros(ctx.config.idempotency_ttl));
            conn.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (key, job_id, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, id.as_bytes(), expires])?;
        }
        head
    } else {
        let row = stored_head(conn, id)?.ok_or(StoreError::BatchNotFound(id))?;
        if row.written >= row.total {
            return Ok(Added::Closed);
        }
        stored = row.head;
        &stored
    };
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO jobs (id, queue, handler, payload, priority, status, max_attempts,
                                     run_at, created_at, batch, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7, ?8, ?9)",
    )?;
    let mut added = 0;
    for (job, payload) in jobs {
        added += insert.execute(params![
            job.as_bytes(),
            head.queue,
            head.handler,
            payload,
            head.priority,
            head.max_attempts,
            now,
            id.as_bytes(),
            head.retry,
        ])?;
    }
    conn.prepare_cached("UPDATE batches SET enqueued = enqueued + ?2 WHERE id = ?1")?
        .execute(params![id.as_bytes(), added as i64])?;
    ctx.notify();
    Ok(Added::Written)
}

/// A batch's stored head, how many of its jobs are written, and of how
/// many (fewer than asked once a cancel closed it).
struct StoredRow {
    head: StoredBatch,
    written: u64,
    total: u64,
}

fn stored_head(conn: &Connection, id: JobId) -> StoreResult<Option<StoredRow>> {
    let row = conn
        .prepare_cached("SELECT head, enqueued, total FROM batches WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    row.map(|(head, written, total)| {
        Ok(StoredRow {
            head: serde_json::from_str(&head)?,
            written: written as u64,
            total: total as u64,
        })
    })
    .transpose()
}

/// Counts `job`'s end (a final `status`) in its batch, if it has one.
pub(super) fn job_ended(
    conn: &Connection,
    ctx: &Ctx,
    job: JobId,
    status: JobStatus,
) -> StoreResult<()> {
    let batch = conn
        .prepare_cached("SELECT batch FROM jobs WHERE id = ?1 AND batch IS NOT NULL")?
        .query_row([job.as_bytes()], |r| super::codec::job_id(0, r))
        .optional()?;
    member_ended(conn, ctx, batch, status, 1)
}

/// Counts `n` jobs of `batch` (if any) reaching `status`, then fires what
/// became due.
pub(super) fn member_ended(
    conn: &Connection,
    ctx: &Ctx,
    batch: Option<JobId>,
    status: JobStatus,
    n: i64,
) -> StoreResult<()> {
    let Some(batch) = batch else { return Ok(()) };
    let column = match status {
        JobStatus::Succeeded => "succeeded",
        JobStatus::Dead => "dead",
        JobStatus::Cancelled => "cancelled",
        _ => return Ok(()),
    };
    conn.prepare_cached(&format!(
        "UPDATE batches SET {column} = {column} + ?2 WHERE id = ?1"
    ))?
    .execute(params![batch.as_bytes(), n])?;
    settle(conn, ctx, batch)
}

/// Marks a finished batch and enqueues the callbacks that are due and not
/// yet fired.
fn settle(conn: &Connection, ctx: &Ctx, batch: JobId) -> StoreResult<()> {
    let row = conn
        .prepare_cached(
            "SELECT head, total, succeeded, dead, cancelled, complete_fired, success_fired,
                    finished_at
               FROM batches WHERE id = ?1",
        )?
        .query_row([batch.as_bytes()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, Option<i64>>(7)?,
            ))
        })
        .optional()?;
    // A batch swept while a dead job of it stayed in the DLQ: nothing to do.
    let Some((head, total, ok, dead, cancelled, complete_fired, success_fired, finished)) = row
    else {
        return Ok(());
    };
    if ok + dead + cancelled < total {
        return Ok(());
    }
    let head: StoredBatch = serde_json::from_str(&head)?;
    let now = micros(ctx.now);
    if finished.is_none() {
        conn.prepare_cached("UPDATE batches SET finished_at = ?2 WHERE id = ?1")?
            .execute(params![batch.as_bytes(), now])?;
    }
    if let Some(cb) = head.on_complete.as_ref().filter(|_| !complete_fired) {
        fire(conn, ctx, batch, cb)?;
        conn.prepare_cached("UPDATE batches SET complete_fired = 1 WHERE id = ?1")?
            .execute([batch.as_bytes()])?;
    }
    if let Some(cb) = head
        .on_success
        .as_ref()
        .filter(|_| !success_fired && ok == total)
    {
        fire(conn, ctx, batch, cb)?;
        conn.prepare_cached("UPDATE batches SET success_fired = 1 WHERE id = ?1")?
            .execute([batch.as_bytes()])?;
    }
    Ok(())
}

/// Enqueues a callback under its fixed job id.
fn fire(conn: &Connection, ctx: &Ctx, batch: JobId, cb: &StoredStep) -> StoreResult<()> {
    let job: JobId = cb
        .job
        .parse()
        .map_err(|_| StoreError::backend(format!("batch callback job id {:?}", cb.job)))?;
    let now = micros(ctx.now);
    conn.prepare_cached(
        "INSERT INTO jobs (id, queue, handler, payload, priority, status, max_attempts, run_at,
                           created_at, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7, ?8)",
    )?
    .execute(params![
        job.as_bytes(),
        cb.queue,
        cb.handler,
        batch::callback_payload(&cb.payload, batch),
        cb.priority,
        cb.max_attempts,
        now,
        cb.retry,
    ])?;
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")?
        .execute([&cb.queue])?;
    ctx.notify();
    Ok(())
}

/// A dead job of a batch went back to its queue: it is unfinished again.
pub(super) fn job_revived(conn: &Connection, job: JobId) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE batches SET dead = dead - 1, finished_at = NULL
          WHERE id = (SELECT batch FROM jobs WHERE id = ?1)",
    )?
    .execute([job.as_bytes()])?;
    Ok(())
}

/// Every dead job of `queue` (or any) is about to go back: called before
/// a DLQ retry-all revives them.
pub(super) fn dead_revived(conn: &Connection, queue: Option<&str>) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE batches SET finished_at = NULL,
                dead = dead - (SELECT count(*) FROM jobs
                                WHERE batch = batches.id AND status = 'dead'
                                  AND (?1 IS NULL OR queue = ?1))
          WHERE id IN (SELECT batch FROM jobs
                        WHERE status = 'dead' AND batch IS NOT NULL
                          AND (?1 IS NULL OR queue = ?1))",
    )?
    .execute([queue])?;
    Ok(())
}

/// The dead jobs of `queue` (or any) are about to be purged: counted, so
/// a finished batch none of whose dead jobs is left in the DLQ can be swept.
pub(super) fn dead_purged(conn: &Connection, queue: Option<&str>) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE batches SET
                purged = purged + (SELECT count(*) FROM jobs
                                    WHERE batch = batches.id AND status = 'dead'
                                      AND (?1 IS NULL OR queue = ?1))
          WHERE id IN (SELECT batch FROM jobs
                        WHERE status = 'dead' AND batch IS NOT NULL
                          AND (?1 IS NULL OR queue = ?1))",
    )?
    .execute([queue])?;
    Ok(())
}

/// How many waiting jobs of `queue` each batch has: read before a purge
/// removes them, then given to [`purged`].
pub(super) fn waiting_in(conn: &Connection, queue: &str) -> StoreResult<Vec<(JobId, i64)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT batch, count(*) FROM jobs
              WHERE queue = ?1 AND status IN {WAITING} AND batch IS NOT NULL GROUP BY batch"
        ))?
        .query_map([queue], |r| Ok((super::codec::job_id(0, r)?, r.get(1)?)))?
        .collect::<Result<Vec<(JobId, i64)>, _>>()?)
}

/// Purged waiting jobs count as cancelled in their batches, so the batches
/// can still finish (a callback fired here lands after the purge).
pub(super) fn purged(conn: &Connection, ctx: &Ctx, groups: Vec<(JobId, i64)>) -> StoreResult<()> {
    for (batch, n) in groups {
        member_ended(conn, ctx, Some(batch), JobStatus::Cancelled, n)?;
    }
    Ok(())
}

/// Cancels the batch's waiting jobs and requests the running ones to stop.
pub(super) fn cancel(conn: &Connection, ctx: &Ctx, id: JobId) -> StoreResult<()> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM batches WHERE id = ?1")?
        .query_row([id.as_bytes()], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::BatchNotFound(id));
    }
    // A batch whose start has not written every job (its maker died, or is
    // still writing) is closed at the jobs it has: no more are written, and
    // it finishes with them.
    let closed = conn
        .prepare_cached("UPDATE batches SET total = enqueued WHERE id = ?1 AND enqueued < total")?
        .execute([id.as_bytes()])?;
    let cancelled = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?2
              WHERE batch = ?1 AND status IN {WAITING}"
        ))?
        .execute(params![id.as_bytes(), micros(ctx.now)])?;
    if cancelled > 0 {
        ctx.ended();
        member_ended(conn, ctx, Some(id), JobStatus::Cancelled, cancelled as i64)?;
    }
    let requested = conn
        .prepare_cached(
            "UPDATE jobs SET cancel_requested = 1
              WHERE batch = ?1 AND status = 'running' AND cancel_requested = 0",
        )?
        .execute([id.as_bytes()])?;
    if requested > 0 {
        ctx.notify();
    }
    if closed > 0 {
        settle(conn, ctx, id)?;
    }
    Ok(())
}

/// One batch with its counts.
pub(super) fn get(conn: &Connection, id: JobId) -> StoreResult<Batch> {
    let row = conn
        .prepare_cached(
            "SELECT head, total, enqueued, succeeded, dead, cancelled, complete_fired,
                    success_fired, created_at, finished_at
               FROM batches WHERE id = ?1",
        )?
        .query_row([id.as_bytes()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Counters {
                    total: r.get(1)?,
                    enqueued: r.get(2)?,
                    running: 0,
                    succeeded: r.get(3)?,
                    dead: r.get(4)?,
                    cancelled: r.get(5)?,
                    complete_fired: r.get(6)?,
                    success_fired: r.get(7)?,
                },
                time(8, r.get(8)?)?,
                r.get::<_, Option<i64>>(9)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::BatchNotFound(id))?;
    let (head, mut counters, created, finished) = row;
    counters.running = conn
        .prepare_cached("SELECT count(*) FROM jobs WHERE batch = ?1 AND status = 'running'")?
        .query_row([id.as_bytes()], |r| r.get(0))?;
    let head: StoredBatch = serde_json::from_str(&head)?;
    let finished = finished.map(|f| time(9, f)).transpose()?;
    batch::view(id, &head, &counters, created, finished).map_err(StoreError::backend)
}

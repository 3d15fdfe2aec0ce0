//! Operator actions: the DLQ, queue pause/resume/purge, and the retention
//! sweep.

use rusqlite::{Connection, params};

use super::codec::{WAITING, micros, span_micros};
use super::jobs::refusal;
use super::writer::Ctx;
use crate::job::{JobId, check_queue_name};
use crate::store::{QueueInfo, StoreError, StoreResult, SweepReport};

/// The most rows one sweep step deletes, so a large sweep never holds the
/// writer (and everybody's enqueues) for long.
pub(super) const SWEEP_STEP: i64 = 5000;

fn valid_queue(queue: &str) -> StoreResult<()> {
    check_queue_name(queue).map_err(StoreError::Invalid)
}

/// A dead job's fresh attempt budget: as many runs again as its budget
/// gave it, numbered on from the runs it had (attempt 3 follows attempt 2,
/// so the history never holds two "attempt 1"s).
const FRESH_BUDGET: &str =
    "max_attempts = attempt + (max_attempts - attempt_base), attempt_base = attempt";

/// Puts one dead job back with a fresh attempt budget.
pub(super) fn dlq_retry(conn: &Connection, ctx: &Ctx, id: JobId) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'pending', run_at = ?2, finished_at = NULL, {FRESH_BUDGET}
              WHERE id = ?1 AND status = 'dead'"
        ))?
        .execute(params![id.as_bytes(), micros(ctx.now)])?;
    if changed == 0 {
        return Err(refusal(conn, id, "retry it from the DLQ"));
    }
    super::chains::job_revived(conn, id)?;
    super::batches::job_revived(conn, id)?;
    ctx.notify();
    Ok(())
}

/// Puts every dead job (of `queue`) back; answers how many.
pub(super) fn dlq_retry_all(conn: &Connection, ctx: &Ctx, queue: Option<&str>) -> StoreResult<u64> {
    super::chains::dead_steps_revived(conn, queue)?;
    super::batches::dead_revived(conn, queue)?;
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'pending', run_at = ?2, finished_at = NULL, {FRESH_BUDGET}
              WHERE status = 'dead' AND (?1 IS NULL OR queue = ?1)"
        ))?
        .execute(params![queue, micros(ctx.now)])?;
    if changed > 0 {
        ctx.notify();
    }
    Ok(changed as u64)
}

/// Deletes dead jobs (of `queue`); answers how many.
pub(super) fn dlq_purge(conn: &Connection, queue: Option<&str>) -> StoreResult<u64> {
    super::batches::dead_purged(conn, queue)?;
    let removed = conn
        .prepare_cached("DELETE FROM jobs WHERE status = 'dead' AND (?1 IS NULL OR queue = ?1)")?
        .execute([queue])?;
    Ok(removed as u64)
}

/// Deletes a queue's waiting jobs; answers how many.
pub(super) fn purge_queue(conn: &Connection, ctx: &Ctx, queue: &str) -> StoreResult<u64> {
    valid_queue(queue)?;
    let batches = super::batches::waiting_in(conn, queue)?;
    let removed = conn
        .prepare_cached(&format!(
            "DELETE FROM jobs WHERE queue = ?1 AND status IN {WAITING}"
        ))?
        .execute([queue])?;
    super::batches::purged(conn, ctx, batches)?;
    Ok(removed as u64)
}

/// Pauses or resumes a queue (remembering it even before it has jobs).
pub(super) fn set_paused(
    conn: &Connection,
    ctx: &Ctx,
    queue: &str,
    paused: bool,
) -> StoreResult<()> {
    valid_queue(queue)?;
    conn.prepare_cached(
        "INSERT INTO queues (name, paused) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
    )?
    .execute(params![queue, paused])?;
    if !paused {
        ctx.notify();
    }
    Ok(())
}

/// Known queues by name.
pub(super) fn queues(conn: &Connection) -> StoreResult<Vec<QueueInfo>> {
    let rows = conn
        .prepare_cached("SELECT name, paused FROM queues ORDER BY name")?
        .query_map([], |r| {
            Ok(QueueInfo {
                name: r.get(0)?,
                paused: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes one step's worth of finished jobs past retention.
pub(super) const SWEEP_JOBS_SQL: &str = "DELETE FROM jobs WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_finished
     WHERE status IN ('succeeded', 'cancelled') AND finished_at <= ?1 LIMIT ?2)";

/// One bounded step of the retention sweep. The caller repeats it while a
/// step reports [`SWEEP_STEP`] removals of any kind.
pub(super) fn sweep_step(conn: &Connection, ctx: &Ctx) -> StoreResult<SweepReport> {
    let now = micros(ctx.now);
    let jobs_before = now.saturating_sub(span_micros(ctx.config.finished_retention));
    let ticks_before = now.saturating_sub(span_micros(ctx.config.tick_retention));
    let jobs = conn
        .prepare_cached(SWEEP_JOBS_SQL)?
        .execute(params![jobs_before, SWEEP_STEP])?;
    let idempotency_keys = conn
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE key IN (
                SELECT key FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
        )?
        .execute(params![now, SWEEP_STEP])?;
    let ticks = conn
        .prepare_cached(
            "DELETE FROM schedule_ticks WHERE (schedule, tick) IN (
                SELECT schedule, tick FROM schedule_ticks WHERE tick <= ?1 LIMIT ?2)",
        )?
        .execute(params![ticks_before, SWEEP_STEP])?;
    let chains = conn
        .prepare_cached(
            "DELETE FROM chains WHERE id IN (
                SELECT id FROM chains INDEXED BY chains_finished
                 WHERE status IN ('succeeded', 'cancelled') AND finished_at <= ?1 LIMIT ?2)",
        )?
        .execute(params![jobs_before, SWEEP_STEP])?;
    let batches = conn
        .prepare_cached(
            "DELETE FROM batches WHERE id IN (
                SELECT id FROM batches INDEXED BY batches_finished
                 WHERE finished_at IS NOT NULL AND dead = purged AND finished_at <= ?1
                 LIMIT ?2)",
        )?
        .execute(params![jobs_before, SWEEP_STEP])?;
    Ok(SweepReport {
        jobs: jobs as u64,
        idempotency_keys: idempotency_keys as u64,
        ticks: ticks as u64,
        chains: chains as u64,
        batches: batches as u64,
        pages_freed: 0,
    })
}

/// The most free pages one reclaim step gives back (4 KiB each), so that
/// reclaiming after a large sweep never holds the writer for long either.
pub(super) const VACUUM_STEP: i64 = 2000;

/// Gives up to [`VACUUM_STEP`] free pages back to the file system; answers
/// how many. A no-op (0) on a file without incremental auto-vacuum.
pub(super) fn vacuum_step(conn: &Connection, _ctx: &Ctx) -> StoreResult<u64> {
    let free = |conn: &Connection| -> rusqlite::Result<i64> {
        conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
    };
    let before = free(conn)?;
    if before == 0 {
        return Ok(0);
    }
    // Each step of the pragma frees one page: step it to completion.
    let mut stmt = conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(before.saturating_sub(free(conn)?) as u64)
}

/// A small real write, so a health check finds a store that cannot commit
/// (full disk, read-only or damaged file) instead of trusting a read.
pub(super) fn probe_write(conn: &Connection, ctx: &Ctx) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO store_meta (key, value) VALUES ('health_probe', CAST(?1 AS TEXT))
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([micros(ctx.now)])?;
    Ok(())
}

/// Claims the sweep of the current period: answers true for exactly one of
/// the hosts sharing the file per `every`, so they do not all sweep at once.
pub(super) fn claim_sweep(
    conn: &Connection,
    ctx: &Ctx,
    every: std::time::Duration,
) -> StoreResult<bool> {
    let now = micros(ctx.now);
    // A tenth of slack, so the jittered timers of one host still claim.
    let due = now.saturating_sub(span_micros(every) / 10 * 9);
    let changed = conn
        .prepare_cached(
            "UPDATE store_meta SET value = CAST(?1 AS TEXT)
              WHERE key = 'last_sweep' AND CAST(value AS INTEGER) <= ?2",
        )?
        .execute(params![now, due])?;
    Ok(changed == 1)
}

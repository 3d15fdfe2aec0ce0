//! Chains on SQLite: a `chains` row holds the steps; each step's job names
//! its chain and index. The hooks here run inside the write transaction
//! that ends or revives a job, so the next step is enqueued exactly once,
//! atomically with its predecessor's success.

use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{job_id, micros, time};
use super::writer::Ctx;
use crate::job::{JobId, JobStatus};
use crate::store::chain::{self, Chain, ChainStatus, StoredStep};
use crate::store::{StoreError, StoreResult};

/// Makes the chain and enqueues its first step.
pub(super) fn create(conn: &Connection, ctx: &Ctx, steps: &[StoredStep]) -> StoreResult<JobId> {
    let id = JobId::generate();
    conn.prepare_cached(
        "INSERT INTO chains (id, status, steps, created_at) VALUES (?1, 'running', ?2, ?3)",
    )?
    .execute(params![
        id.as_bytes(),
        serde_json::to_string(steps)?,
        micros(ctx.now)
    ])?;
    insert_step(conn, ctx, id, 0, &steps[0], &steps[0].payload)?;
    Ok(id)
}

fn insert_step(
    conn: &Connection,
    ctx: &Ctx,
    chain: JobId,
    index: usize,
    step: &StoredStep,
    payload: &str,
) -> StoreResult<()> {
    let job: JobId = step
        .job
        .parse()
        .map_err(|_| StoreError::backend(format!("chain step job id {:?}", step.job)))?;
    let now = micros(ctx.now);
    conn.prepare_cached(
        "INSERT INTO jobs (id, queue, handler, payload, priority, status, max_attempts, run_at,
                           created_at, chain, chain_step, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        job.as_bytes(),
        step.queue,
        step.handler,
        payload,
        step.priority,
        step.max_attempts,
        now,
        chain.as_bytes(),
        index as i64,
        step.retry,
    ])?;
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")?
        .execute([&step.queue])?;
    ctx.notify();
    Ok(())
}

/// Moves `job`'s chain on after the job reached `status` (with `result`,
/// JSON text, on success): the next step, or the chain's own end.
pub(super) fn job_ended(
    conn: &Connection,
    ctx: &Ctx,
    job: JobId,
    status: JobStatus,
    result: Option<&str>,
) -> StoreResult<()> {
    let step = conn
        .prepare_cached("SELECT chain, chain_step FROM jobs WHERE id = ?1 AND chain IS NOT NULL")?
        .query_row([job.as_bytes()], |r| {
            Ok((job_id(0, r)?, r.get::<_, i64>(1)?))
        })
        .optional()?;
    step_ended(conn, ctx, step, status, result)
}

/// [`job_ended`] for a job whose chain and step index the caller read
/// already (`None`: not a chain step), saving the lookup on the hot path.
pub(super) fn step_ended(
    conn: &Connection,
    ctx: &Ctx,
    step: Option<(JobId, i64)>,
    status: JobStatus,
    result: Option<&str>,
) -> StoreResult<()> {
    let Some((chain, index)) = step else {
        return Ok(());
    };
    let ended = match status {
        JobStatus::Succeeded => {
            let steps = steps_of(conn, chain)?;
            let next = usize::try_from(index + 1).unwrap_or(usize::MAX);
            if let Some(step) = steps.get(next) {
                let payload = chain::next_payload(&step.payload, result.unwrap_or("null"));
                return insert_step(conn, ctx, chain, next, step, &payload);
            }
            ChainStatus::Succeeded
        }
        JobStatus::Dead => ChainStatus::Failed,
        JobStatus::Cancelled => ChainStatus::Cancelled,
        _ => return Ok(()),
    };
    conn.prepare_cached("UPDATE chains SET status = ?2, finished_at = ?3 WHERE id = ?1")?
        .execute(params![chain.as_bytes(), ended.as_str(), micros(ctx.now)])?;
    Ok(())
}

/// A chain whose failed step went back to its queue runs again.
pub(super) fn job_revived(conn: &Connection, job: JobId) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE chains SET status = 'running', finished_at = NULL
          WHERE id = (SELECT chain FROM jobs WHERE id = ?1)",
    )?
    .execute([job.as_bytes()])?;
    Ok(())
}

/// Every chain with a dead step of `queue` (or any) runs again: called
/// before a DLQ retry-all revives those steps.
pub(super) fn dead_steps_revived(conn: &Connection, queue: Option<&str>) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE chains SET status = 'running', finished_at = NULL
          WHERE id IN (SELECT chain FROM jobs
                        WHERE status = 'dead' AND chain IS NOT NULL
                          AND (?1 IS NULL OR queue = ?1))",
    )?
    .execute([queue])?;
    Ok(())
}

fn steps_of(conn: &Connection, chain: JobId) -> StoreResult<Vec<StoredStep>> {
    let text: String = conn
        .prepare_cached("SELECT steps FROM chains WHERE id = ?1")?
        .query_row([chain.as_bytes()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::ChainNotFound(chain))?;
    Ok(serde_json::from_str(&text)?)
}

/// One chain with its steps' statuses.
pub(super) fn get(conn: &Connection, id: JobId) -> StoreResult<Chain> {
    let (status, steps, created, finished): (String, String, i64, Option<i64>) = conn
        .prepare_cached("SELECT status, steps, created_at, finished_at FROM chains WHERE id = ?1")?
        .query_row([id.as_bytes()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?
        .ok_or(StoreError::ChainNotFound(id))?;
    let status = ChainStatus::parse(&status)
        .ok_or_else(|| StoreError::backend(format!("chain status {status:?}")))?;
    let steps: Vec<StoredStep> = serde_json::from_str(&steps)?;
    let mut statuses = Vec::with_capacity(steps.len());
    let mut stmt = conn.prepare_cached("SELECT status FROM jobs WHERE id = ?1")?;
    for step in &steps {
        let job: JobId = step.job.parse().map_err(StoreError::backend)?;
        let st: Option<String> = stmt.query_row([job.as_bytes()], |r| r.get(0)).optional()?;
        statuses.push(st.and_then(|s| s.parse().ok()));
    }
    Ok(Chain {
        id,
        status,
        created_at: time(0, created)?,
        finished_at: finished.map(|f| time(0, f)).transpose()?,
        steps: chain::step_views(&steps, &statuses, status).map_err(StoreError::backend)?,
    })
}

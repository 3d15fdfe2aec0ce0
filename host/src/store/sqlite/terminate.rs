//! Terminating jobs: a waiting job is cancelled at once; a running one gets
//! a recorded request that the host holding its lease acts on.

use rusqlite::{Connection, params};

use super::codec::{WAITING, job_id, micros};
use super::jobs::{refusal, stored_status};
use super::writer::Ctx;
use crate::job::{JobId, JobStatus};
use crate::store::{StoreResult, Termination};

/// Ids one `termination_requested` statement looks up (well under
/// SQLite's limit of bound parameters).
const LOOKUP_CHUNK: usize = 500;

/// Cancels a waiting job or records a request to stop a running one.
pub(super) fn terminate(conn: &Connection, ctx: &Ctx, id: JobId) -> StoreResult<Termination> {
    let cancelled = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?2
             WHERE id = ?1 AND status IN {WAITING}"
        ))?
        .execute(params![id.as_bytes(), micros(ctx.now)])?;
    if cancelled == 1 {
        ctx.ended();
        super::chains::job_ended(conn, ctx, id, JobStatus::Cancelled, None)?;
        super::batches::job_ended(conn, ctx, id, JobStatus::Cancelled)?;
        return Ok(Termination::Cancelled);
    }
    if stored_status(conn, id)? != JobStatus::Running {
        return Err(refusal(conn, id, "terminate it"));
    }
    conn.prepare_cached("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1")?
        .execute([id.as_bytes()])?;
    // Local workers wake on the change signal; other processes see the
    // commit through `data_version`.
    ctx.notify();
    Ok(Termination::Requested)
}

/// Which of `jobs` are running with a termination requested.
pub(super) fn requested(conn: &Connection, jobs: &[JobId]) -> StoreResult<Vec<JobId>> {
    let mut found = Vec::new();
    for chunk in jobs.chunks(LOOKUP_CHUNK) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM jobs WHERE id IN ({marks}) AND status = 'running' AND cancel_requested = 1"
        ))?;
        let ids = stmt
            .query_map(
                rusqlite::params_from_iter(chunk.iter().map(|id| id.as_bytes().to_vec())),
                |r| job_id(0, r),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        found.extend(ids);
    }
    Ok(found)
}

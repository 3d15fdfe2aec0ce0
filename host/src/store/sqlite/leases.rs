//! Leasing and everything a lease holder does: renew, complete, fail,
//! release; and reaping leases whose holder went quiet.
//!
//! A lease is the pair (job id, fence). Every write by a holder matches on
//! both, so a holder whose lease was reaped and re-leased matches nothing and
//! is told [`StoreError::LeaseLost`]; its result is never recorded.

use std::sync::LazyLock;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::codec::{
    JOB_COLUMN_COUNT, JOB_COLUMNS, WAITING, job_from_row, job_id, micros, span_micros, time,
};
use super::limits;
use super::staleness::Seen;
use super::writer::Ctx;
use crate::job::{Attempt, JobStatus, OutcomeKind, Priority, RunReport};
use crate::store::{
    FailAction, HandlerLimit, Lease, LeaseRequest, LeaseToken, StoreError, StoreResult,
};

/// The most jobs one lease call may take.
pub(super) const MAX_LEASE_BATCH: u32 = 1000;

/// Checks a lease request; the message names the bad field.
pub(super) fn validate(req: &LeaseRequest) -> StoreResult<()> {
    if req.max == 0 || req.max > MAX_LEASE_BATCH {
        return Err(StoreError::Invalid(format!(
            "lease max of {} is out of range 1..={MAX_LEASE_BATCH}",
            req.max
        )));
    }
    if req.lease_for.is_zero() {
        return Err(StoreError::Invalid(format!(
            "lease duration for worker {:?} must be positive",
            req.worker
        )));
    }
    if req.worker.trim().is_empty() {
        return Err(StoreError::Invalid(
            "lease worker id must not be empty".into(),
        ));
    }
    Ok(())
}

/// Leases the due jobs of one priority. One range scan of `jobs_ready` per
/// priority keeps future-dated jobs out of the scan; `random()` gives each
/// lease its own 64-bit fence.
pub(super) static LEASE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = ?1,
                lease_fence = random(), lease_worker = ?2, lease_expires_at = ?3,
                lease_ms = ?8
          WHERE id IN (
                SELECT id FROM jobs INDEXED BY jobs_ready
                 WHERE status IN {WAITING} AND priority = ?4 AND run_at <= ?1
                   AND queue IN (SELECT value FROM json_each(?5))
                   AND handler IN (SELECT value FROM json_each(?6))
                   AND queue NOT IN (SELECT name FROM queues WHERE paused = 1)
                 ORDER BY run_at, id LIMIT ?7)
         RETURNING {JOB_COLUMNS}, lease_fence"
    )
});

/// Reaps expired leases, then leases due jobs: all of the most urgent
/// priority first, oldest run-at first within it.
///
/// Handlers with flow limits take part only up to their budget (what
/// their concurrency leaves, one start per rate slot); within a priority
/// they are leased before the unlimited handlers, whose backlog would
/// otherwise fill every lease and starve them.
pub(super) fn lease(
    conn: &Connection,
    ctx: &Ctx,
    req: &LeaseRequest,
    queues: &str,
    handlers: &str,
) -> StoreResult<Vec<Lease>> {
    reap(conn, ctx)?;
    let now = micros(ctx.now);
    let expires = now.saturating_add(span_micros(req.lease_for));
    let expires_at = time(0, expires)?;
    // Handlers leased together (JSON), their limit with its booked next
    // start and starting budget, and the budget left.
    type Limited<'a> = Option<(&'a HandlerLimit, Option<i64>, u32)>;
    let mut groups: Vec<(String, Limited, u32)> = Vec::new();
    let limited: Vec<&HandlerLimit> = req
        .limits
        .iter()
        .filter(|l| req.handlers.contains(&l.handler))
        .collect();
    for limit in &limited {
        let (running, next) = limits::standing(conn, &limit.handler)?;
        let budget = limit.budget(running, next, now);
        if budget > 0 {
            let one = serde_json::to_string(&[&limit.handler])?;
            groups.push((one, Some((*limit, next, budget)), budget));
        }
    }
    if limited.is_empty() {
        groups.push((handlers.to_owned(), None, u32::MAX));
    } else {
        let free: Vec<&String> = req
            .handlers
            .iter()
            .filter(|h| !limited.iter().any(|l| &l.handler == *h))
            .collect();
        if !free.is_empty() {
            groups.push((serde_json::to_string(&free)?, None, u32::MAX));
        }
    }
    let mut stmt = conn.prepare_cached(&LEASE_SQL)?;
    let mut leases = Vec::new();
    for priority in Priority::ALL {
        for (group, _, budget) in groups.iter_mut() {
            let group: &str = group;
            let want = (req.max as usize - leases.len()).min(*budget as usize);
            if want == 0 {
                continue;
            }
            let mut batch = stmt
                .query_map(
                    params![
                        now,
                        req.worker,
                        expires,
                        priority.rank(),
                        queues,
                        group,
                        want as i64,
                        lease_ms(req.lease_for)
                    ],
                    |r| {
                        let job = job_from_row(r, now)?;
                        let fence: i64 = r.get(JOB_COLUMN_COUNT)?;
                        Ok(Lease {
                            token: LeaseToken {
                                job: job.id,
                                fence: fence as u64,
                            },
                            expires_at,
                            job,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING order is unspecified; restore leasing order.
            batch.sort_by_key(|l| (l.job.run_at, l.job.id));
            *budget -= batch.len() as u32;
            leases.extend(batch);
        }
    }
    for (_, limit, left) in &groups {
        if let Some((limit, next, budget)) = limit {
            limits::book(conn, limit, *next, now, budget - left)?;
        }
    }
    let mut watch = ctx.leases.borrow_mut();
    for l in &leases {
        watch.wrote(l.token.job, l.token.fence as i64, expires, ctx.mono);
    }
    Ok(leases)
}

/// A lease length as stored (`jobs.lease_ms`).
fn lease_ms(lease_for: std::time::Duration) -> i64 {
    i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX)
}

/// What a holder's write needs to know about the job it holds.
struct Held {
    attempt: u32,
    max_attempts: u32,
    started_at: DateTime<Utc>,
    worker: String,
    /// Someone asked to terminate the job.
    cancel_requested: bool,
    /// The chain and step index, for a chain step.
    chain: Option<(crate::job::JobId, i64)>,
    /// The batch, for a job of one.
    batch: Option<crate::job::JobId>,
}

/// Checks that `token` is the job's current lease.
fn held(conn: &Connection, token: &LeaseToken) -> StoreResult<Held> {
    let row = conn
        .prepare_cached(
            "SELECT status, lease_fence, attempt, max_attempts, started_at, lease_worker,
                    cancel_requested, chain, chain_step, batch
               FROM jobs WHERE id = ?1",
        )?
        .query_row([token.job.as_bytes()], |r| {
            let status: String = r.get(0)?;
            let fence: Option<i64> = r.get(1)?;
            let current =
                status == JobStatus::Running.as_str() && fence == Some(token.fence as i64);
            Ok(current.then(|| -> rusqlite::Result<Held> {
                Ok(Held {
                    attempt: r.get(2)?,
                    max_attempts: r.get(3)?,
                    started_at: time(4, r.get(4)?)?,
                    worker: r.get(5)?,
                    cancel_requested: r.get(6)?,
                    chain: match r.get::<_, Option<Vec<u8>>>(7)? {
                        Some(_) => Some((job_id(7, r)?, r.get(8)?)),
                        None => None,
                    },
                    batch: match r.get::<_, Option<Vec<u8>>>(9)? {
                        Some(_) => Some(job_id(9, r)?),
                        None => None,
                    },
                })
            }))
        })
        .optional()?;
    match row {
        None => Err(StoreError::NotFound(token.job)),
        Some(None) => Err(StoreError::LeaseLost(token.job)),
        Some(Some(held)) => Ok(held?),
    }
}

/// Extends a lease.
pub(super) fn renew(
    conn: &Connection,
    ctx: &Ctx,
    token: &LeaseToken,
    lease_for: std::time::Duration,
) -> StoreResult<DateTime<Utc>> {
    if lease_for.is_zero() {
        return Err(StoreError::Invalid(format!(
            "lease renewal for job {} must extend by a positive duration",
            token.job
        )));
    }
    held(conn, token)?;
    let expires = micros(ctx.now).saturating_add(span_micros(lease_for));
    conn.prepare_cached("UPDATE jobs SET lease_expires_at = ?2, lease_ms = ?3 WHERE id = ?1")?
        .execute(params![token.job.as_bytes(), expires, lease_ms(lease_for)])?;
    ctx.leases
        .borrow_mut()
        .wrote(token.job, token.fence as i64, expires, ctx.mono);
    Ok(time(0, expires)?)
}

/// How a holder's run ends, as stored.
struct Ending<'a> {
    status: JobStatus,
    run_at: Option<i64>,
    result: Option<&'a Value>,
    report: &'a RunReport,
}

/// Ends the run `held` by `token`: records the attempt, sets the new state and
/// drops the lease.
fn end_run(
    conn: &Connection,
    ctx: &Ctx,
    token: &LeaseToken,
    held: Held,
    end: Ending,
) -> StoreResult<()> {
    let (chain, batch) = (held.chain, held.batch);
    let attempt = Attempt {
        attempt: held.attempt,
        at: held.started_at,
        host: held.worker,
        outcome: end.report.outcome,
        message: end.report.message.clone(),
        duration_ms: u64::try_from(end.report.duration.as_millis()).unwrap_or(u64::MAX),
        fuel: end.report.fuel,
        plugin_digest: end.report.plugin_digest.clone(),
    };
    let now = micros(ctx.now);
    let finished = end.status.is_final().then_some(now);
    let result = end.result.map(serde_json::to_string).transpose()?;
    conn.prepare_cached(
        "UPDATE jobs SET status = ?2, run_at = COALESCE(?3, run_at), finished_at = ?4,
                result = ?5, log = COALESCE(?6, log),
                history = json_insert(history, '$[#]', json(?7)),
                lease_fence = NULL, lease_worker = NULL, lease_expires_at = NULL
          WHERE id = ?1",
    )?
    .execute(params![
        token.job.as_bytes(),
        end.status.as_str(),
        end.run_at,
        finished,
        result,
        end.report.log,
        serde_json::to_string(&attempt)?,
    ])?;
    ctx.leases
        .borrow_mut()
        .forget(token.job, token.fence as i64);
    ctx.ended();
    super::batches::member_ended(conn, ctx, batch, end.status, 1)?;
    super::chains::step_ended(conn, ctx, chain, end.status, result.as_deref())
}

/// Records success.
pub(super) fn complete(
    conn: &Connection,
    ctx: &Ctx,
    token: &LeaseToken,
    result: &Value,
    report: &RunReport,
) -> StoreResult<()> {
    if report.outcome != OutcomeKind::Succeeded {
        return Err(StoreError::Invalid(format!(
            "complete of job {} reports outcome {}; use fail for unsuccessful runs",
            token.job, report.outcome
        )));
    }
    let end = Ending {
        status: JobStatus::Succeeded,
        run_at: None,
        result: Some(result),
        report,
    };
    end_run(conn, ctx, token, held(conn, token)?, end)
}

/// Records a failed run; answers the state the job ended in.
pub(super) fn fail(
    conn: &Connection,
    ctx: &Ctx,
    token: &LeaseToken,
    action: FailAction,
    report: &RunReport,
) -> StoreResult<JobStatus> {
    if matches!(
        report.outcome,
        OutcomeKind::Succeeded | OutcomeKind::LeaseExpired
    ) {
        return Err(StoreError::Invalid(format!(
            "fail of job {} reports outcome {}, which is not a failure a worker can report",
            token.job, report.outcome
        )));
    }
    if (report.outcome == OutcomeKind::Cancelled) != (action == FailAction::Cancel) {
        return Err(StoreError::Invalid(format!(
            "fail of job {}: outcome cancelled goes with the cancel action, and only it",
            token.job
        )));
    }
    let held = held(conn, token)?;
    let (status, run_at) = match action {
        FailAction::Cancel => (JobStatus::Cancelled, None),
        // A job someone asked to terminate is not run again.
        FailAction::Retry { .. } if held.cancel_requested => (JobStatus::Cancelled, None),
        FailAction::Retry { at } if held.attempt < held.max_attempts => {
            ctx.notify();
            (JobStatus::Retrying, Some(micros(at)))
        }
        _ => (JobStatus::Dead, None),
    };
    let end = Ending {
        status,
        run_at,
        result: None,
        report,
    };
    end_run(conn, ctx, token, held, end)?;
    Ok(status)
}

/// Gives a running job back without counting the run.
pub(super) fn release(conn: &Connection, ctx: &Ctx, token: &LeaseToken) -> StoreResult<()> {
    held(conn, token)?;
    conn.prepare_cached(
        "UPDATE jobs SET status = 'pending', attempt = attempt - 1, run_at = ?2,
                lease_fence = NULL, lease_worker = NULL, lease_expires_at = NULL
          WHERE id = ?1",
    )?
    .execute(params![token.job.as_bytes(), micros(ctx.now)])?;
    ctx.leases
        .borrow_mut()
        .forget(token.job, token.fence as i64);
    ctx.notify();
    Ok(())
}

/// Selects leases whose expiry looks past. Without `INDEXED BY` the planner
/// (lacking statistics) prefers the status index and scans every running job.
/// A lease from before `lease_ms` existed counts as the default 30 s.
pub(super) const EXPIRED_SQL: &str =
    "SELECT id, attempt, max_attempts, started_at, lease_worker, lease_expires_at,
            lease_fence, COALESCE(lease_ms, 30000), cancel_requested
       FROM jobs INDEXED BY jobs_leased WHERE status = 'running' AND lease_expires_at <= ?1";

/// Returns the jobs of stale leases to their queue, or to the DLQ when out
/// of attempts, each with a `lease-expired` attempt. A lease is stale when
/// its expiry looks past *and* it was not renewed for a whole lease length
/// on this host's monotonic clock (see [`super::staleness`]). Uses the
/// `jobs_leased` index, so it costs one index probe when nothing expired.
pub(super) fn reap(conn: &Connection, ctx: &Ctx) -> StoreResult<u64> {
    let now = micros(ctx.now);
    let looks_expired = conn
        .prepare_cached(EXPIRED_SQL)?
        .query_map([now], |r| {
            Ok((
                (
                    job_id(0, r)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, u32>(2)?,
                    time(3, r.get(3)?)?,
                    r.get::<_, String>(4)?,
                    time(5, r.get(5)?)?,
                    r.get::<_, bool>(8)?,
                ),
                Seen {
                    job: job_id(0, r)?,
                    marker: r.get(5)?,
                    fence: r.get(6)?,
                    lease: std::time::Duration::from_millis(r.get::<_, i64>(7)?.max(0) as u64),
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let (rows, seen): (Vec<_>, Vec<_>) = looks_expired.into_iter().unzip();
    let stale = {
        let mut watch = ctx.leases.borrow_mut();
        let stale = watch.stale(&seen, ctx.mono);
        for &i in &stale {
            watch.forget(seen[i].job, seen[i].fence);
        }
        stale
    };
    let expired: Vec<_> = stale.into_iter().map(|i| rows[i].clone()).collect();
    let mut update = conn.prepare_cached(
        "UPDATE jobs SET status = ?2, run_at = ?3, finished_at = ?4,
                history = json_insert(history, '$[#]', json(?5)),
                lease_fence = NULL, lease_worker = NULL, lease_expires_at = NULL
          WHERE id = ?1",
    )?;
    if !expired.is_empty() {
        let n = expired.len() as u64;
        ctx.after_commit(move || crate::metrics::global().lease_expired(n));
    }
    for (id, attempt, max_attempts, started, worker, expired_at, terminate) in &expired {
        let entry = expired_attempt(*attempt, *started, worker, *expired_at);
        // A job whose termination was asked for ends here: its host died
        // before it could stop it, and nobody wants it run again.
        let status = if *terminate {
            JobStatus::Cancelled
        } else if attempt >= max_attempts {
            JobStatus::Dead
        } else {
            JobStatus::Retrying
        };
        update.execute(params![
            id.as_bytes(),
            status.as_str(),
            now,
            status.is_final().then_some(now),
            serde_json::to_string(&entry)?,
        ])?;
        super::chains::job_ended(conn, ctx, *id, status, None)?;
        super::batches::job_ended(conn, ctx, *id, status)?;
        let (id, worker, attempt) = (*id, worker.clone(), *attempt);
        // Logged once committed: a reap rolled back (a full disk) did not happen.
        ctx.after_commit(move || {
            tracing::warn!(job = %id, worker, attempt, %status, "lease expired");
        });
    }
    if !expired.is_empty() {
        ctx.notify();
        ctx.ended();
    }
    Ok(expired.len() as u64)
}

fn expired_attempt(
    attempt: u32,
    started: DateTime<Utc>,
    worker: &str,
    expired: DateTime<Utc>,
) -> Attempt {
    let ran = (expired - started).max(TimeDelta::zero());
    Attempt {
        attempt,
        at: started,
        host: worker.to_owned(),
        outcome: OutcomeKind::LeaseExpired,
        message: Some(format!(
            "lease of worker {worker:?} expired at {expired} without renewal"
        )),
        duration_ms: u64::try_from(ran.num_milliseconds()).unwrap_or(0),
        fuel: None,
        plugin_digest: None,
    }
}

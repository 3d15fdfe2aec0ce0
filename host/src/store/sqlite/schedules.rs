//! Stored schedules and the once-only claim of their ticks.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::codec::{bad, job_id, json, micros, parsed, time};
use super::jobs;
use super::writer::Ctx;
use crate::job::{JobId, NewJob, Priority};
use crate::store::{Schedule, StoreError, StoreResult};

const COLUMNS: &str = "name, spec, timezone, handler, payload, queue, priority, max_attempts, \
                       enabled, missed, overlap, last_tick";

fn from_row(r: &Row) -> rusqlite::Result<Schedule> {
    let payload: String = r.get(4)?;
    let rank: u8 = r.get(6)?;
    Ok(Schedule {
        name: r.get(0)?,
        spec: r.get(1)?,
        timezone: r.get(2)?,
        handler: r.get(3)?,
        payload: json(4, &payload)?,
        queue: r.get(5)?,
        priority: Priority::from_rank(rank).ok_or_else(|| {
            bad(
                6,
                rusqlite::types::Type::Integer,
                format!("priority {rank}"),
            )
        })?,
        max_attempts: r.get(7)?,
        enabled: r.get(8)?,
        missed: parsed(9, r)?,
        overlap: parsed(10, r)?,
        last_tick: r
            .get::<_, Option<i64>>(11)?
            .map(|t| time(11, t))
            .transpose()?,
    })
}

/// Creates or replaces a schedule, keeping its last tick.
pub(super) fn upsert(conn: &Connection, s: &Schedule) -> StoreResult<()> {
    s.validate()?;
    conn.prepare_cached(&format!(
        "INSERT INTO schedules ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL)
         ON CONFLICT (name) DO UPDATE SET
            spec = excluded.spec, timezone = excluded.timezone, handler = excluded.handler,
            payload = excluded.payload, queue = excluded.queue, priority = excluded.priority,
            max_attempts = excluded.max_attempts, enabled = excluded.enabled,
            missed = excluded.missed, overlap = excluded.overlap"
    ))?
    .execute(params![
        s.name,
        s.spec,
        s.timezone,
        s.handler,
        serde_json::to_string(&s.payload)?,
        s.queue,
        s.priority.rank(),
        s.max_attempts,
        s.enabled,
        s.missed.as_str(),
        s.overlap.as_str(),
    ])?;
    Ok(())
}

/// One schedule.
pub(super) fn get(conn: &Connection, name: &str) -> StoreResult<Schedule> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM schedules WHERE name = ?1"))?
        .query_row([name], from_row)
        .optional()?
        .ok_or_else(|| StoreError::ScheduleNotFound(name.to_owned()))
}

/// All schedules by name.
pub(super) fn list(conn: &Connection) -> StoreResult<Vec<Schedule>> {
    let rows = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM schedules ORDER BY name"))?
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Removes a schedule.
pub(super) fn delete(conn: &Connection, name: &str) -> StoreResult<()> {
    let removed = conn
        .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
        .execute([name])?;
    if removed == 0 {
        return Err(StoreError::ScheduleNotFound(name.to_owned()));
    }
    Ok(())
}

/// Enables or disables a schedule.
pub(super) fn set_enabled(conn: &Connection, name: &str, enabled: bool) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("UPDATE schedules SET enabled = ?2 WHERE name = ?1")?
        .execute(params![name, enabled])?;
    if changed == 0 {
        return Err(StoreError::ScheduleNotFound(name.to_owned()));
    }
    Ok(())
}

/// Claims (schedule, tick) and enqueues its job. Runs inside the writer's
/// `BEGIN IMMEDIATE` transaction, which no other connection in any process
/// can interleave with, so check-then-insert is atomic.
pub(super) fn claim_tick(
    conn: &Connection,
    ctx: &Ctx,
    schedule: &str,
    tick: DateTime<Utc>,
    job: NewJob,
) -> StoreResult<Option<JobId>> {
    if schedule.trim().is_empty() {
        return Err(StoreError::Invalid(
            "schedule name must not be empty".into(),
        ));
    }
    let tick = micros(tick);
    let claimed = conn
        .prepare_cached("SELECT 1 FROM schedule_ticks WHERE schedule = ?1 AND tick = ?2")?
        .query_row(params![schedule, tick], |_| Ok(()))
        .optional()?;
    if claimed.is_some() {
        return Ok(None);
    }
    let id = jobs::enqueue(conn, ctx, job)?.id;
    conn.prepare_cached(
        "INSERT INTO schedule_ticks (schedule, tick, job_id, claimed_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![schedule, tick, id.as_bytes(), micros(ctx.now)])?;
    conn.prepare_cached(
        "UPDATE schedules SET last_tick = MAX(COALESCE(last_tick, ?2), ?2) WHERE name = ?1",
    )?
    .execute(params![schedule, tick])?;
    Ok(Some(id))
}

/// The job of the schedule's latest tick, if it has not finished. The
/// primary key `(schedule, tick)` finds the latest tick without a scan.
pub(super) fn active_job(conn: &Connection, schedule: &str) -> StoreResult<Option<JobId>> {
    let id = conn
        .prepare_cached(
            "SELECT j.id FROM
                (SELECT job_id FROM schedule_ticks WHERE schedule = ?1 ORDER BY tick DESC LIMIT 1) t
             JOIN jobs j ON j.id = t.job_id
             WHERE j.status IN ('scheduled', 'pending', 'running', 'retrying')",
        )?
        .query_row([schedule], |r| job_id(0, r))
        .optional()?;
    Ok(id)
}

//! Flow limits in the embedded store (see [`crate::store::limits`]): a
//! handler's running jobs are counted from `jobs` (a partial index), its
//! booked next start lives in `handler_limits`. The lease reads both and
//! books inside its own write transaction, so processes sharing the file
//! count against one budget.

use rusqlite::{Connection, OptionalExtension, params};

use super::codec::time;
use crate::store::{HandlerLimit, LimitState, StoreResult};

/// A limited handler's running jobs and booked next start (µs).
pub(super) fn standing(conn: &Connection, handler: &str) -> StoreResult<(u64, Option<i64>)> {
    let running: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM jobs INDEXED BY jobs_running_by_handler
              WHERE status = 'running' AND handler = ?1",
        )?
        .query_row([handler], |r| r.get(0))?;
    let next: Option<i64> = conn
        .prepare_cached("SELECT next_start FROM handler_limits WHERE handler = ?1")?
        .query_row([handler], |r| r.get(0))
        .optional()?;
    Ok((running as u64, next))
}

/// Books the handler's next start after a lease at `now` started `taken`
/// of its jobs. Only rate-limited handlers book.
pub(super) fn book(
    conn: &Connection,
    limit: &HandlerLimit,
    next: Option<i64>,
    now: i64,
    taken: u32,
) -> StoreResult<()> {
    if limit.interval.is_none() || taken == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO handler_limits (handler, next_start) VALUES (?1, ?2)
         ON CONFLICT (handler) DO UPDATE SET next_start = excluded.next_start",
    )?
    .execute(params![limit.handler, limit.book(next, now, taken)])?;
    Ok(())
}

/// Where each limited handler stands at `now` (µs).
pub(super) fn states(
    conn: &Connection,
    now: i64,
    limits: &[HandlerLimit],
) -> StoreResult<Vec<LimitState>> {
    limits
        .iter()
        .map(|limit| {
            let (running, next) = standing(conn, &limit.handler)?;
            Ok(LimitState {
                handler: limit.handler.clone(),
                running,
                next_start: next.map(|t| time(0, t)).transpose()?,
                held: limit.budget(running, next, now) == 0,
            })
        })
        .collect()
}

//! The hosts serving this store, by heartbeat.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::codec::{micros, time};
use super::writer::Ctx;
use crate::store::{HostRecord, StoreResult};

pub(super) fn seen(conn: &Connection, _ctx: &Ctx, host: &HostRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO hosts (id, queues, started_at, seen_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET queues = excluded.queues, seen_at = excluded.seen_at",
    )?
    .execute(params![
        host.id,
        serde_json::to_string(&host.queues)?,
        micros(host.started_at),
        micros(host.seen_at),
    ])?;
    // Hosts not seen for a day are gone for good (killed, never stopped).
    conn.prepare_cached("DELETE FROM hosts WHERE seen_at < ?1")?
        .execute([micros(host.seen_at) - 86_400_000_000])?;
    Ok(())
}

pub(super) fn gone(conn: &Connection, _ctx: &Ctx, id: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM hosts WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

pub(super) fn list(conn: &Connection, since: DateTime<Utc>) -> StoreResult<Vec<HostRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, queues, started_at, seen_at FROM hosts WHERE seen_at >= ?1 ORDER BY seen_at DESC",
    )?;
    let rows = stmt
        .query_map([micros(since)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                time(2, r.get(2)?)?,
                time(3, r.get(3)?)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, queues, started_at, seen_at)| {
            Ok(HostRecord {
                id,
                queues: serde_json::from_str(&queues)?,
                started_at,
                seen_at,
            })
        })
        .collect()
}

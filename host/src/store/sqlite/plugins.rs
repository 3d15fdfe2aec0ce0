//! Plugin versions deployed through the store: each component once by
//! digest, and per plugin name a stack of releases whose top is in service.
//! Every change bumps `plugin_generation` in `store_meta`, which hosts poll.

use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{micros, time};
use super::writer::Ctx;
use crate::store::{PluginRelease, PluginReleases, StoreError, StoreResult};

fn bump_generation(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE store_meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
          WHERE key = 'plugin_generation'",
    )?
    .execute([])?;
    Ok(())
}

fn top(conn: &Connection, name: &str) -> StoreResult<Option<PluginRelease>> {
    Ok(conn
        .prepare_cached(
            "SELECT digest, deployed_at FROM plugin_releases
              WHERE name = ?1 AND rolled_back = 0 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([name], |r| {
            Ok(PluginRelease {
                name: name.to_owned(),
                digest: r.get(0)?,
                deployed_at: time(1, r.get(1)?)?,
            })
        })
        .optional()?)
}

pub(super) fn put(
    conn: &Connection,
    ctx: &Ctx,
    name: &str,
    digest: &str,
    bytes: &[u8],
) -> StoreResult<PluginRelease> {
    conn.prepare_cached("INSERT OR IGNORE INTO plugin_blobs (digest, bytes) VALUES (?1, ?2)")?
        .execute(params![digest, bytes])?;
    if let Some(current) = top(conn, name)?
        && current.digest == digest
    {
        return Ok(current);
    }
    conn.prepare_cached(
        "INSERT INTO plugin_releases (name, digest, deployed_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![name, digest, micros(ctx.now)])?;
    bump_generation(conn)?;
    top(conn, name)?.ok_or_else(|| StoreError::backend("the release just written is missing"))
}

pub(super) fn rollback(conn: &Connection, _ctx: &Ctx, name: &str) -> StoreResult<PluginRelease> {
    let Some(current) = top(conn, name)? else {
        return Err(StoreError::Invalid(format!(
            "plugin {name:?} was never deployed through the store"
        )));
    };
    let previous: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM plugin_releases WHERE name = ?1 AND rolled_back = 0
              ORDER BY seq DESC LIMIT 1 OFFSET 1",
        )?
        .query_row([name], |r| r.get(0))
        .optional()?;
    if previous.is_none() {
        return Err(StoreError::Invalid(format!(
            "plugin {name:?} has no earlier deployed version to roll back to (only sha256:{})",
            current.digest
        )));
    }
    conn.prepare_cached(
        "UPDATE plugin_releases SET rolled_back = 1
          WHERE seq = (SELECT seq FROM plugin_releases WHERE name = ?1 AND rolled_back = 0
                        ORDER BY seq DESC LIMIT 1)",
    )?
    .execute([name])?;
    bump_generation(conn)?;
    top(conn, name)?.ok_or_else(|| StoreError::backend("the release rolled back to is missing"))
}

pub(super) fn blob(conn: &Connection, digest: &str) -> StoreResult<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT bytes FROM plugin_blobs WHERE digest = ?1")?
        .query_row([digest], |r| r.get(0))
        .optional()?)
}

pub(super) fn generation(conn: &Connection) -> StoreResult<u64> {
    let value: Option<String> = conn
        .prepare_cached("SELECT value FROM store_meta WHERE key = 'plugin_generation'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

pub(super) fn active(conn: &Connection) -> StoreResult<PluginReleases> {
    // The generation is read first: a change landing between the two reads
    // is in the set and bumps the generation past the one answered, so a
    // host that remembers it applies the change again (a no-op) rather than miss it.
    let generation = generation(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT r.name, r.digest, r.deployed_at FROM plugin_releases r
          WHERE r.rolled_back = 0 AND r.seq = (SELECT MAX(seq) FROM plugin_releases
                 WHERE name = r.name AND rolled_back = 0)
          ORDER BY r.name",
    )?;
    let releases = stmt
        .query_map([], |r| {
            Ok(PluginRelease {
                name: r.get(0)?,
                digest: r.get(1)?,
                deployed_at: time(2, r.get(2)?)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PluginReleases {
        generation,
        releases,
    })
}

//! Damage detection at open: SQLite's `quick_check`, and a small record of
//! the last committed state kept beside the store file.
//!
//! SQLite reads past some damage without an error: a `-wal` with a flipped
//! or cut frame is silently ignored from that frame on (its commits vanish),
//! and an emptied `.db` simply looks like a new store. `quick_check` finds
//! damaged pages; the state record finds lost commits and replaced files.
//!
//! The record (`<store>.state`, e.g. `taskhost.db.state`) holds the store's
//! identity (a random id made with the file) and the highest commit count
//! this machine has seen committed. Every group commit increments the count
//! inside the store (`store_meta.commits`); the writer rewrites the record
//! after commits (at most every [`RECORD_EVERY`]) and on close. At open, a
//! store whose id differs, or whose count is lower than the record's, is
//! refused: commits the host acknowledged are missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::store::{StoreError, StoreResult};

/// How often, at most, a busy writer rewrites the state record.
pub(super) const RECORD_EVERY: Duration = Duration::from_secs(1);

/// What the state record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StateRecord {
    /// `store_meta.store_id` of the file this record belongs to.
    pub store_id: String,
    /// The highest `store_meta.commits` seen committed.
    pub commits: i64,
}

/// The record's file beside the store file.
pub(crate) fn record_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_owned();
    name.push(".state");
    store.with_file_name(name)
}

/// The steps that recover a damaged store, in every refusal's message.
fn recovery(store: &Path) -> String {
    let record = record_path(store);
    format!(
        "to recover: stop every host using it; keep a copy of {store} and any {store}-wal \
         beside it; then either restore your latest backup (`taskhost store backup` makes \
         one) to {store}, or, to go on with what is left, run \
         `sqlite3 {store} .recover | sqlite3 recovered.db` and move recovered.db to {store}; \
         after restoring on purpose, delete {record} so the older state is accepted \
         (see README: Backup and recovery)",
        store = store.display(),
        record = record.display()
    )
}

/// Runs `PRAGMA quick_check`; a damaged file is refused with the first
/// problems SQLite names and the recovery steps.
pub(super) fn quick_check(conn: &Connection, store: &Path) -> StoreResult<()> {
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| damaged(store, &e.to_string()))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(damaged(store, &problems.join("; ")))
}

fn damaged(store: &Path, what: &str) -> StoreError {
    StoreError::Damaged {
        location: store.display().to_string(),
        reason: format!("the integrity check failed: {what}"),
        recovery: recovery(store),
    }
}

/// The store's identity and commit count, if the file has them yet.
pub(super) fn current(conn: &Connection) -> rusqlite::Result<Option<StateRecord>> {
    let id: Option<String> = conn
        .query_row(
            "SELECT value FROM store_meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(store_id) = id else { return Ok(None) };
    let commits: Option<String> = conn
        .query_row(
            "SELECT value FROM store_meta WHERE key = 'commits'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Some(StateRecord {
        store_id,
        commits: commits.and_then(|c| c.parse().ok()).unwrap_or(0),
    }))
}

/// Whether the file has tables at all (a new or emptied file has none).
fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table')",
        [],
        |r| r.get(0),
    )
}

/// Reads the record beside `store`, if there is one.
fn read_record(store: &Path) -> StoreResult<Option<StateRecord>> {
    let path = record_path(store);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            StoreError::backend(format!(
                "the store's state record {} is not valid ({e}); delete it to accept the store as it is",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::backend(format!(
            "cannot read the store's state record {}: {e}",
            path.display()
        ))),
    }
}

/// Compares the file before migration (`found`, `None` when it had no
/// tables) with the record beside it; refuses a file that lost commits or
/// is not the one the record describes.
fn compare(store: &Path, found: Option<&StateRecord>) -> StoreResult<()> {
    let Some(record) = read_record(store)? else {
        return Ok(());
    };
    let refuse = |reason: String| StoreError::Damaged {
        location: store.display().to_string(),
        reason,
        recovery: recovery(store),
    };
    match found {
        None => Err(refuse(format!(
            "the file is empty or new, but {} says it held store {} with {} commits: \
             it was emptied, replaced or lost",
            record_path(store).display(),
            record.store_id,
            record.commits
        ))),
        Some(found) if found.store_id != record.store_id => Err(refuse(format!(
            "the file is store {}, but {} says this place held store {}: the file was replaced",
            found.store_id,
            record_path(store).display(),
            record.store_id
        ))),
        Some(found) if found.commits < record.commits => Err(refuse(format!(
            "the file has {} commits, but {} commits were acknowledged before \
             (per {}): {} commits are missing, typically from a damaged or lost -wal file",
            found.commits,
            record.commits,
            record_path(store).display(),
            record.commits - found.commits
        ))),
        Some(_) => Ok(()),
    }
}

/// Everything checked before a store is used: `quick_check`, then the file
/// against the state record beside it.
pub(super) fn verify(conn: &Connection, store: &Path) -> StoreResult<()> {
    quick_check(conn, store)?;
    let found = if has_tables(conn)? {
        // A file with tables but no identity was made by an older release.
        Some(current(conn).ok().flatten().unwrap_or(StateRecord {
            store_id: "(none: made by an older release)".into(),
            commits: 0,
        }))
    } else {
        None
    };
    compare(store, found.as_ref())
}

/// Writes the record (to a temporary file renamed over the old one, so a
/// crash never leaves half a record).
pub(super) fn write_record(store: &Path, record: &StateRecord) -> std::io::Result<()> {
    let path = record_path(store);
    let tmp = path.with_extension("state.tmp");
    let text = serde_json::to_string(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

/// Increments the commit count inside the current write transaction.
pub(super) fn count_commit(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO store_meta (key, value) VALUES ('commits', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)
         RETURNING CAST(value AS INTEGER)",
    )?
    .query_row([], |r| r.get(0))
}

//! Operator maintenance of the store file: online backup, compaction and
//! the integrity check (`taskhost store backup|compact|check`).
//!
//! Each works on its own connection, so it runs while hosts serve from the
//! same file (compaction then makes their writes wait; see [`compact`]).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::integrity;
use super::schema::{self, BUSY_TIMEOUT, Durability};
use crate::store::{StoreError, StoreResult};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Jobs in the copy.
    pub jobs: u64,
    /// Size of the copy in bytes.
    pub bytes: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// File size before, in bytes.
    pub before: u64,
    /// File size after, in bytes.
    pub after: u64,
}

/// Opens an existing store file (never creates one: a typo in a path must
/// not make an empty store) and checks it.
fn open_existing(path: &Path, flags: OpenFlags) -> StoreResult<Connection> {
    if !path.is_file() {
        return Err(StoreError::Invalid(format!(
            "there is no store file at {}",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(
        |e| StoreError::backend(format!("cannot open store file {}: {e}", path.display())),
    )?;
    schema::configure(&conn, Durability::Normal)?;
    Ok(conn)
}

/// Checks the store: `quick_check`, and the state record beside it.
pub fn check(path: &Path) -> StoreResult<()> {
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.execute_batch("PRAGMA query_only = ON")?;
    integrity::verify(&conn, path)
}

/// Copies the store to `dest` while hosts keep running, with `VACUUM INTO`:
/// one read transaction, so the copy is a consistent snapshot of the last
/// commit, however busy the hosts are (SQLite's page-by-page backup API
/// restarts whenever another process writes, and may never finish under
/// load). The copy is compact and checked before this answers. Refuses an
/// existing `dest`.
pub fn backup(path: &Path, dest: &Path) -> StoreResult<BackupReport> {
    if dest.exists() {
        return Err(StoreError::Invalid(format!(
            "{} already exists; a backup never overwrites a file",
            dest.display()
        )));
    }
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    integrity::quick_check(&conn, path)?;
    let target = dest.to_str().ok_or_else(|| {
        StoreError::Invalid(format!("backup path {} is not UTF-8", dest.display()))
    })?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(|e| {
        let _ = std::fs::remove_file(dest);
        StoreError::backend(format!("backup to {} failed: {e}", dest.display()))
    })?;
    drop(conn);
    let copy = open_existing(dest, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    integrity::quick_check(&copy, dest)?;
    let jobs: i64 = copy.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        jobs: jobs as u64,
        bytes,
    })
}

/// Rewrites the file without free pages (`VACUUM`) and switches it to
/// incremental auto-vacuum, so later sweeps give space back on their own.
/// Holds the write lock for the whole rewrite: hosts' writes wait (up to
/// their busy timeout, then fail and are retried), so run it at a quiet time
/// or with the hosts stopped.
pub fn compact(path: &Path) -> StoreResult<CompactReport> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(path);
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(BUSY_TIMEOUT.max(std::time::Duration::from_secs(30)))?;
    integrity::quick_check(&conn, path)?;
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         VACUUM;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .map_err(|e| StoreError::backend(format!("compacting {} failed: {e}", path.display())))?;
    conn.close()
        .map_err(|(_, e)| StoreError::backend(format!("closing {}: {e}", path.display())))?;
    Ok(CompactReport {
        before,
        after: size(path),
    })
}

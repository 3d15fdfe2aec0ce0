//! The schema, its versions, and the connection settings.
//!
//! The version lives in `PRAGMA user_version`. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction and re-reads the version inside it, so two
//! processes opening an old file at once migrate it exactly once. Migrations
//! are append-only: a released one is never edited, so an upgrade never
//! needs a wipe.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{StoreError, StoreResult};

/// Migration `i` brings the schema from version `i` to `i + 1`.
///
/// Version 1 holds the queue (jobs, idempotency keys, queue flags); version 2
/// adds the scheduler's tables. Both ship in the first release. Version 3
/// adds `store_meta`, version 4 `jobs.lease_ms`, version 5 `hosts`, version
/// 6 `jobs.attempt_base` and `jobs.schedule`, version 7 the `job_counts`
/// table its triggers keep, version 8 the deployed plugins, version 9
/// `jobs.cancel_requested`, `jobs.unique_key` and the chains, version 10
/// the flow limits (`handler_limits`), version 11 the batches, version 12
/// `jobs.retry`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: jobs, idempotency keys, queues.
    "
    CREATE TABLE jobs (
        id               BLOB    NOT NULL PRIMARY KEY,  -- UUIDv7 bytes, sort by creation
        queue            TEXT    NOT NULL,
        handler          TEXT    NOT NULL,
        payload          TEXT    NOT NULL,              -- JSON
        priority         INTEGER NOT NULL,              -- 0 critical .. 3 low
        status           TEXT    NOT NULL,
        attempt          INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL,
        run_at           INTEGER NOT NULL,              -- microseconds since epoch
        created_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER,
        history          TEXT    NOT NULL DEFAULT '[]', -- JSON array of attempts
        result           TEXT,                          -- JSON
        log              TEXT,
        idempotency_key  TEXT,
        lease_fence      INTEGER,                       -- current lease token
        lease_worker     TEXT,
        lease_expires_at INTEGER
    );
    -- Leasing: per priority, due jobs by run_at.
    CREATE INDEX jobs_ready ON jobs (priority, run_at, id)
        WHERE status IN ('scheduled', 'pending', 'retrying');
    -- Reaping expired leases.
    CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
    -- Listing by status (and the DLQ), newest first.
    CREATE INDEX jobs_status ON jobs (status, id);
    -- Listing and purging by queue.
    CREATE INDEX jobs_queue ON jobs (queue, id);
    -- Retention.
    CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('succeeded', 'cancelled');

    CREATE TABLE idempotency_keys (
        key        TEXT    NOT NULL PRIMARY KEY,
        job_id     BLOB    NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

    CREATE TABLE queues (
        name   TEXT    NOT NULL PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    ",
    // 2: schedules and their claimed ticks.
    "
    CREATE TABLE schedules (
        name         TEXT    NOT NULL PRIMARY KEY,
        spec         TEXT    NOT NULL,
        timezone     TEXT    NOT NULL,
        handler      TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        queue        TEXT    NOT NULL,
        priority     INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        enabled      INTEGER NOT NULL,
        missed       TEXT    NOT NULL,
        overlap      TEXT    NOT NULL,
        last_tick    INTEGER
    ) WITHOUT ROWID;

    CREATE TABLE schedule_ticks (
        schedule   TEXT    NOT NULL,
        tick       INTEGER NOT NULL,
        job_id     BLOB    NOT NULL,
        claimed_at INTEGER NOT NULL,
        PRIMARY KEY (schedule, tick)
    ) WITHOUT ROWID;
    CREATE INDEX schedule_ticks_tick ON schedule_ticks (tick);
    ",
    // 3: facts about the store itself: its identity (to tell a replaced
    // file from the one the host last wrote) and when it was last swept (so
    // that of several hosts on one file only one sweeps per period).
    "
    CREATE TABLE store_meta (
        key   TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO store_meta (key, value) VALUES
        ('store_id', lower(hex(randomblob(16)))),
        ('last_sweep', '0');
    ",
    // 4: the length of each lease, so another host can tell a lease whose
    // holder stopped renewing (no renewal for this long on its monotonic
    // clock) from one that merely looks expired on a stepped clock.
    "
    ALTER TABLE jobs ADD COLUMN lease_ms INTEGER;
    ",
    // 5: the hosts serving the store and their queues, renewed by heartbeat,
    // so an enqueue into a queue no running host serves can say so.
    "
    CREATE TABLE hosts (
        id         TEXT    NOT NULL PRIMARY KEY,
        queues     TEXT    NOT NULL,              -- JSON array of queue names
        started_at INTEGER NOT NULL,
        seen_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 6: attempt numbers that keep counting across DLQ retries (the runs
    // before the latest retry), and the schedule that enqueued a job.
    "
    ALTER TABLE jobs ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN schedule TEXT;
    CREATE INDEX jobs_schedule ON jobs (schedule, id) WHERE schedule IS NOT NULL;
    ",
    // 7: job counts per (queue, priority, status), kept by triggers, so
    // that the counts the stats, metrics and dashboard show cost a read of
    // a few rows instead of a scan of every job (1,000,000 jobs: ~1.3 s).
    // Scheduled jobs already due count as pending; the index finds them.
    "
    CREATE TABLE job_counts (
        queue    TEXT    NOT NULL,
        priority INTEGER NOT NULL,
        status   TEXT    NOT NULL,
        n        INTEGER NOT NULL,
        PRIMARY KEY (queue, priority, status)
    ) WITHOUT ROWID;
    INSERT INTO job_counts (queue, priority, status, n)
        SELECT queue, priority, status, COUNT(*) FROM jobs GROUP BY queue, priority, status;
    CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (queue, priority, status, n)
            VALUES (NEW.queue, NEW.priority, NEW.status, 1)
            ON CONFLICT (queue, priority, status) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1
            WHERE queue = OLD.queue AND priority = OLD.priority AND status = OLD.status;
    END;
    CREATE TRIGGER job_counts_update AFTER UPDATE OF queue, priority, status ON jobs
        WHEN OLD.queue IS NOT NEW.queue OR OLD.priority IS NOT NEW.priority
            OR OLD.status IS NOT NEW.status
    BEGIN
        UPDATE job_counts SET n = n - 1
            WHERE queue = OLD.queue AND priority = OLD.priority AND status = OLD.status;
        INSERT INTO job_counts (queue, priority, status, n)
            VALUES (NEW.queue, NEW.priority, NEW.status, 1)
            ON CONFLICT (queue, priority, status) DO UPDATE SET n = n + 1;
    END;
    CREATE INDEX jobs_scheduled_due ON jobs (run_at) WHERE status = 'scheduled';
    ",
    // 8: plugin versions deployed through the store (`POST /api/v1/plugins`):
    // each component once by digest, per name a stack of releases whose
    // newest not rolled back is in service, and a generation every host polls.
    "
    CREATE TABLE plugin_blobs (
        digest TEXT NOT NULL PRIMARY KEY,  -- sha256 hex of bytes
        bytes  BLOB NOT NULL
    );
    CREATE TABLE plugin_releases (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT    NOT NULL,
        digest      TEXT    NOT NULL,
        deployed_at INTEGER NOT NULL,
        rolled_back INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX plugin_releases_name ON plugin_releases (name, seq) WHERE rolled_back = 0;
    INSERT INTO store_meta (key, value) VALUES ('plugin_generation', '0');
    ",
    // 9: a request to terminate a running job, which the host running it
    // sees (`Store::termination_requested`) and acts on; and the key that
    // keeps a job unique while it is active, found by its own index; and
    // chains, whose steps' jobs name them.
    "
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN unique_key TEXT;
    CREATE INDEX jobs_unique_active ON jobs (unique_key)
        WHERE unique_key IS NOT NULL
          AND status IN ('scheduled', 'pending', 'running', 'retrying');
    ALTER TABLE jobs ADD COLUMN chain BLOB;
    ALTER TABLE jobs ADD COLUMN chain_step INTEGER;
    CREATE TABLE chains (
        id          BLOB    NOT NULL PRIMARY KEY,
        status      TEXT    NOT NULL,
        steps       TEXT    NOT NULL,              -- JSON array of steps
        created_at  INTEGER NOT NULL,
        finished_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX chains_finished ON chains (finished_at)
        WHERE status IN ('succeeded', 'cancelled');
    ",
    // 10: flow limits: the next start each rate-limited handler booked, and
    // an index that counts a handler's running jobs without a scan.
    "
    CREATE TABLE handler_limits (
        handler    TEXT    NOT NULL PRIMARY KEY,
        next_start INTEGER NOT NULL               -- µs, the store's time
    ) WITHOUT ROWID;
    CREATE INDEX jobs_running_by_handler ON jobs (handler) WHERE status = 'running';
    ",
    // 11: batches, whose jobs name them; the counters move in the commit
    // that ends a job, which also enqueues a callback whose time came.
    "
    ALTER TABLE jobs ADD COLUMN batch BLOB;
    CREATE INDEX jobs_batch ON jobs (batch, status) WHERE batch IS NOT NULL;
    CREATE TABLE batches (
        id             BLOB    NOT NULL PRIMARY KEY,
        head           TEXT    NOT NULL,              -- JSON: handler, queue, callbacks
        total          INTEGER NOT NULL,
        enqueued       INTEGER NOT NULL DEFAULT 0,
        succeeded      INTEGER NOT NULL DEFAULT 0,
        dead           INTEGER NOT NULL DEFAULT 0,
        cancelled      INTEGER NOT NULL DEFAULT 0,
        purged         INTEGER NOT NULL DEFAULT 0,    -- dead jobs purged from the DLQ
        complete_fired INTEGER NOT NULL DEFAULT 0,
        success_fired  INTEGER NOT NULL DEFAULT 0,
        created_at     INTEGER NOT NULL,
        finished_at    INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX batches_finished ON batches (finished_at)
        WHERE finished_at IS NOT NULL AND dead = purged;
    ",
    // 12: a job's own retry policy (JSON), given at enqueue; NULL means its
    // handler's policy.
    "
    ALTER TABLE jobs ADD COLUMN retry TEXT;
    ",
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: a commit survives a killed process. A power loss
    /// or OS crash may lose the transactions committed since the last WAL
    /// checkpoint (acknowledged enqueues and completions then reappear as
    /// missing or re-run, at-least-once still holds for older work), but
    /// never corrupts the file.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced; survives power loss, at
    /// the cost of one fsync per group commit.
    Full,
}

/// The WAL is truncated back to this size after a checkpoint, so a burst of
/// writes does not leave a large file behind.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How long a connection waits for another process's write lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings every connection gets.
pub(super) fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let synchronous = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Settings of the writing connection: WAL mode (persistent in the file),
/// bounded checkpoints, and, for a new file, incremental auto-vacuum so the
/// retention sweep can give freed pages back to the file system (a file made
/// by an older build gets it from `taskhost store compact`).
pub(super) fn configure_writer(conn: &Connection, location: &str) -> StoreResult<()> {
    // Takes effect only while the file has no tables yet; a no-op after.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(format!(
            "{location}: could not switch to WAL mode (journal mode is {mode})"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = 1000;
         PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT};"
    ))?;
    Ok(())
}

/// Runs `step` again while another connection holds the lock it needs, for
/// up to [`BUSY_TIMEOUT`]. For the steps of opening a file, where SQLite
/// answers `SQLITE_BUSY` at once instead of calling the busy handler.
pub(super) fn retry_while_locked<T>(mut step: impl FnMut() -> StoreResult<T>) -> StoreResult<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(StoreError::Backend(e))
                if is_locked(&*e) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn is_locked(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<rusqlite::Error>()
            .and_then(|e| e.sqlite_error_code()),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The file's schema version.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the schema to `target` (normally [`LATEST`]); refuses files newer
/// than this build.
pub(crate) fn migrate(conn: &mut Connection, target: i64, location: &str) -> StoreResult<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        if current > LATEST {
            return Err(StoreError::SchemaTooNew {
                location: location.to_owned(),
                found: current,
                supported: LATEST,
            });
        }
        if current >= target {
            return Ok(());
        }
        let step = usize::try_from(current).map_err(|_| {
            StoreError::backend(format!("{location}: negative schema version {current}"))
        })?;
        tx.execute_batch(MIGRATIONS[step])?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
        tracing::info!(
            store = location,
            version = current + 1,
            "migrated store schema"
        );
    }
}

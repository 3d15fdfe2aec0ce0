//! The conformance suite on the embedded store, plus what only SQLite has:
//! migrations, WAL settings, several processes on one file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};
use serde_json::json;
use tempfile::TempDir;

use super::schema::{self, Durability, LATEST};
use super::{SqliteOptions, SqliteStore, admin, leases};
use crate::clock::ManualClock;
use crate::job::{JobId, JobStatus, NewJob};
use crate::store::conformance::{self, Backend, conformance_suite};
use crate::store::{Store, StoreError};

/// A store file in a fresh temporary directory.
struct SqliteBackend {
    dir: TempDir,
}

impl SqliteBackend {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("taskhost.db")
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn open(&self, clock: Arc<ManualClock>) -> Arc<dyn Store> {
        Arc::new(open(&self.path(), clock).await.expect("open store"))
    }
}

async fn open(path: &Path, clock: Arc<ManualClock>) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(path, SqliteOptions::default(), clock).await
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(conformance::start()))
}

conformance_suite!(SqliteBackend::new());

#[tokio::test]
async fn creates_and_migrates_an_empty_file() {
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    store.close().await.unwrap();
    let conn = Connection::open(backend.path()).unwrap();
    assert_eq!(schema::version(&conn).unwrap(), LATEST);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn migrates_from_the_previous_version_keeping_data() {
    let backend = SqliteBackend::new();
    let id = JobId::generate();
    {
        let mut conn = Connection::open(backend.path()).unwrap();
        schema::migrate(&mut conn, LATEST - 1, "test").unwrap();
        // A job as the previous version stored it.
        conn.execute(
            "INSERT INTO jobs (id, queue, handler, payload, priority, status, max_attempts, run_at, created_at)
             VALUES (?1, 'default', 'old', '{\"v\":1}', 2, 'pending', 3, 0, 0)",
            params![id.as_bytes()],
        )
        .unwrap();
    }
    let store = open(&backend.path(), clock()).await.unwrap();
    let job = store.get(id).await.unwrap();
    assert_eq!(
        (job.handler.as_str(), job.payload.clone(), job.status),
        ("old", json!({"v": 1}), JobStatus::Pending)
    );
    let claimed = store.claim_tick(
        "new-table",
        conformance::start(),
        NewJob::new("h", json!(null)),
    );
    assert!(
        claimed.await.unwrap().is_some(),
        "tables of the new version exist"
    );
    store.close().await.unwrap();
    assert_eq!(
        schema::version(&Connection::open(backend.path()).unwrap()).unwrap(),
        LATEST
    );
}

#[tokio::test]
async fn refuses_a_file_from_a_newer_release() {
    let backend = SqliteBackend::new();
    Connection::open(backend.path())
        .unwrap()
        .pragma_update(None, "user_version", LATEST + 1)
        .unwrap();
    let err = open(&backend.path(), clock()).await.err().expect("refused");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, .. } if found == LATEST + 1),
        "{err}"
    );
    assert!(err.to_string().contains("taskhost.db"), "{err}");
}

#[tokio::test]
async fn another_process_write_wakes_local_workers() {
    let backend = SqliteBackend::new();
    let serve = open(&backend.path(), clock()).await.unwrap();
    let cli = open(&backend.path(), clock()).await.unwrap();
    let mut changes = serve.changes();
    changes.borrow_and_update();
    let id = cli.enqueue(conformance::job("from-cli")).await.unwrap().id;
    // Waits for the event (the writer's data_version check), not for time to pass.
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("serve noticed the other connection's commit")
        .unwrap();
    assert_eq!(conformance::lease_one(&serve, "from-cli").await.job.id, id);
    cli.close().await.unwrap();
    serve.close().await.unwrap();
}

#[tokio::test]
async fn tick_claimed_once_across_processes() {
    let backend = SqliteBackend::new();
    let (a, b) = (
        open(&backend.path(), clock()).await.unwrap(),
        open(&backend.path(), clock()).await.unwrap(),
    );
    let tick = conformance::start();
    for round in 0..20 {
        let tick = tick + chrono::Duration::minutes(round);
        let (x, y) = tokio::join!(
            a.claim_tick("shared", tick, conformance::job("cron")),
            b.claim_tick("shared", tick, conformance::job("cron")),
        );
        let winners = [x.unwrap(), y.unwrap()].iter().flatten().count();
        assert_eq!(winners, 1, "tick {round}");
    }
    assert_eq!(a.counts().await.unwrap().sum(None, None, None), 20);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn wal_does_not_grow_without_bound() {
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    let payload = json!({ "blob": "x".repeat(2000) });
    for _ in 0..100 {
        let batch = (0..100)
            .map(|_| NewJob::new("big", payload.clone()))
            .collect();
        store.enqueue_batch(batch).await.unwrap();
    }
    // ~20 MB written; the WAL is checkpointed and reused every ~4 MB.
    let wal = std::fs::metadata(backend.path().with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(wal < 12 * 1024 * 1024, "WAL is {wal} bytes");
    store.close().await.unwrap();
}

#[test]
fn durability_sets_synchronous() {
    let conn = Connection::open_in_memory().unwrap();
    for (durability, level) in [(Durability::Normal, 1), (Durability::Full, 2)] {
        schema::configure(&conn, durability).unwrap();
        let got: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(got, level, "{durability:?}");
    }
}

#[tokio::test]
async fn leasing_reaping_and_sweeping_use_their_indexes() {
    let backend = SqliteBackend::new();
    open(&backend.path(), clock())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let conn = Connection::open(backend.path()).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let args = rusqlite::params_from_iter(std::iter::repeat_n(5, stmt.parameter_count()));
        let rows = stmt.query_map(args, |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let lease = plan(&leases::LEASE_SQL);
    assert!(
        lease.contains("USING INDEX jobs_ready (priority=? AND run_at<?)"),
        "{lease}"
    );
    let reap = plan(leases::EXPIRED_SQL);
    assert!(
        reap.contains("USING INDEX jobs_leased (lease_expires_at<?)"),
        "{reap}"
    );
    let sweep = plan(admin::SWEEP_JOBS_SQL);
    assert!(
        sweep.contains("USING INDEX jobs_finished (finished_at<?)"),
        "{sweep}"
    );
}

#[tokio::test]
async fn an_operation_refusing_after_a_write_leaves_nothing_behind() {
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    let answer = store
        .writer
        .call(|conn, _| -> Result<(), StoreError> {
            conn.execute("INSERT INTO queues (name) VALUES ('half-done')", [])?;
            Err(StoreError::Invalid("refused too late".into()))
        })
        .await;
    assert!(matches!(answer, Err(StoreError::Invalid(_))), "{answer:?}");
    assert!(
        store.queues().await.unwrap().is_empty(),
        "the write was rolled back"
    );
    store
        .enqueue(conformance::job("after"))
        .await
        .expect("the writer carries on");
    store.close().await.unwrap();
}

#[test]
fn job_column_count_matches_the_column_list() {
    let names = super::codec::JOB_COLUMNS.split(',').count();
    assert_eq!(names, super::codec::JOB_COLUMN_COUNT);
}

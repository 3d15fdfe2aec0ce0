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
use crate::clock::{Clock, ManualClock};
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
    // The counts table starts from the jobs already stored, then follows.
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.sum(Some("default"), None, Some(JobStatus::Pending)),
        1
    );
    store.cancel(id).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (
            counts.sum(None, None, Some(JobStatus::Pending)),
            counts.sum(None, None, Some(JobStatus::Cancelled))
        ),
        (0, 1)
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

/// A commit by another process right after `open` returns wakes the local
/// workers even when the machine starts the writer thread late (the flaky
/// cross-process test: the baseline `data_version` used to be read on the
/// new thread, after such a commit, which was then never noticed).
#[tokio::test]
async fn a_commit_right_after_open_wakes_local_workers_on_a_slow_start() {
    let backend = SqliteBackend::new();
    open(&backend.path(), clock())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let options = SqliteOptions {
        writer_start_delay: Duration::from_millis(300),
        ..SqliteOptions::default()
    };
    let serve = SqliteStore::open(backend.path(), options, clock())
        .await
        .unwrap();
    let mut changes = serve.changes();
    changes.borrow_and_update();
    // Another process's commit, while the writer thread has not run yet.
    let other = Connection::open(backend.path()).unwrap();
    other
        .execute("INSERT INTO queues (name, paused) VALUES ('other', 0)", [])
        .unwrap();
    drop(other);
    tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("the commit made right after open woke the local workers")
        .unwrap();
    serve.close().await.unwrap();
}

/// Close leaves every commit in the `.db` file: no `-wal` remains, and a
/// copy of the `.db` alone holds all jobs.
#[tokio::test]
async fn close_checkpoints_into_the_db_file_and_removes_the_wal() {
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    for _ in 0..20 {
        let batch = (0..100).map(|_| conformance::job("wal")).collect();
        store.enqueue_batch(batch).await.unwrap();
    }
    // Readers hold connections too; use them so they are open for real.
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 2000);
    store.close().await.unwrap();
    let wal = backend.path().with_extension("db-wal");
    assert!(!wal.exists(), "{} remains after close", wal.display());
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(backend.path(), copy.path().join("taskhost.db")).unwrap();
    let conn = Connection::open(copy.path().join("taskhost.db")).unwrap();
    let jobs: i64 = conn
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jobs, 2000);
}

/// Of several hosts on one file, one claims each period's sweep.
#[tokio::test]
async fn one_host_claims_each_sweep_period() {
    let backend = SqliteBackend::new();
    let clock = clock();
    let a = open(&backend.path(), clock.clone()).await.unwrap();
    let b = open(&backend.path(), clock.clone()).await.unwrap();
    let every = Duration::from_secs(60);
    for period in 0..5 {
        let (x, y) = tokio::join!(a.claim_sweep(every), b.claim_sweep(every));
        let winners = [x.unwrap(), y.unwrap()].iter().filter(|w| **w).count();
        assert_eq!(winners, 1, "period {period}");
        assert!(
            !a.claim_sweep(every).await.unwrap(),
            "claimed once per period"
        );
        clock.advance(chrono::Duration::seconds(60));
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A new file reclaims the space a sweep frees.
#[tokio::test]
async fn sweep_gives_freed_pages_back() {
    let backend = SqliteBackend::new();
    let clock = clock();
    let store = open(&backend.path(), clock.clone()).await.unwrap();
    let payload = json!({ "blob": "x".repeat(2000) });
    let batch = (0..2000)
        .map(|_| NewJob::new("big", payload.clone()))
        .collect();
    store.enqueue_batch(batch).await.unwrap();
    for _ in 0..2 {
        for lease in conformance::lease(&store, &["big"], 1000).await {
            conformance::finish(&store, &lease).await;
        }
    }
    let pages = |store: &SqliteStore| {
        let conn = Connection::open(store.path()).unwrap();
        conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let before = pages(&store);
    clock.advance(chrono::Duration::days(8));
    let report = store.sweep().await.unwrap();
    assert_eq!(report.jobs, 2000);
    assert!(report.pages_freed > 0, "{report:?}");
    let after = pages(&store);
    assert!(after * 4 < before, "{before} pages before, {after} after");
    store.close().await.unwrap();
}

/// A forward step of one host's clock does not reap leases that another
/// host keeps renewing; a lease nobody renews is reaped once it has gone a
/// whole lease length unrenewed on the reaper's monotonic clock.
#[tokio::test]
async fn a_forward_clock_step_does_not_reap_renewed_leases() {
    let backend = SqliteBackend::new();
    let (clock_a, clock_b) = (clock(), clock());
    let a = open(&backend.path(), clock_a.clone()).await.unwrap();
    let b = open(&backend.path(), clock_b.clone()).await.unwrap();
    b.enqueue(conformance::job("long")).await.unwrap();
    let lease = conformance::lease_one(&b, "long").await;

    clock_a.step(chrono::Duration::hours(1));
    assert_eq!(
        a.reap_expired().await.unwrap(),
        0,
        "first look after the step"
    );
    for _ in 0..4 {
        clock_a.advance(conformance::secs(20));
        clock_b.advance(conformance::secs(20));
        b.renew(&lease.token, conformance::LEASE).await.unwrap();
        assert_eq!(a.reap_expired().await.unwrap(), 0, "renewed meanwhile");
    }
    // B stops renewing: A reaps after a lease length without renewal.
    clock_a.advance(conformance::secs(29));
    assert_eq!(a.reap_expired().await.unwrap(), 0);
    clock_a.advance(conformance::secs(2));
    assert_eq!(a.reap_expired().await.unwrap(), 1);
    assert!(matches!(
        b.renew(&lease.token, conformance::LEASE).await,
        Err(StoreError::LeaseLost(_))
    ));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A host never reaps its own lease because its clock stepped: it knows
/// when it last renewed.
#[tokio::test]
async fn a_hosts_own_live_lease_survives_its_clock_step() {
    let backend = SqliteBackend::new();
    let clock = clock();
    let store = open(&backend.path(), clock.clone()).await.unwrap();
    store.enqueue(conformance::job("mine")).await.unwrap();
    let lease = conformance::lease_one(&store, "mine").await;
    clock.step(chrono::Duration::hours(1));
    assert_eq!(store.reap_expired().await.unwrap(), 0);
    store.renew(&lease.token, conformance::LEASE).await.unwrap();
    // Unrenewed for a lease length: reaped on time, no second look needed.
    clock.advance(conformance::secs(31));
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    store.close().await.unwrap();
}

/// An idle worker whose queue holds a lease that looks expired but is not
/// yet judged stale is told to wake at the judgement, not at once (which
/// would spin).
#[tokio::test]
async fn next_due_waits_for_the_staleness_judgement() {
    let backend = SqliteBackend::new();
    let (clock_a, clock_b) = (clock(), clock());
    let a = open(&backend.path(), clock_a.clone()).await.unwrap();
    let b = open(&backend.path(), clock_b.clone()).await.unwrap();
    b.enqueue(conformance::job("long")).await.unwrap();
    conformance::lease_one(&b, "long").await;
    clock_a.step(chrono::Duration::hours(1));
    assert_eq!(a.reap_expired().await.unwrap(), 0);
    let names = |n: &str| vec![n.to_string()];
    let next = a
        .next_due_at(&names("default"), &names("long"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, clock_a.now() + chrono::Duration::seconds(30));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// What an operation defers to after the commit (the reaper's "lease
/// expired" log and metric) happens only if its batch commits.
#[tokio::test]
async fn after_commit_work_runs_only_when_the_batch_commits() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    let ran = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&ran);
    let failed = store
        .writer
        .call(move |_, ctx| -> Result<(), StoreError> {
            ctx.after_commit(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            Err(StoreError::backend("the batch fails after the reap"))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(ran.load(Ordering::SeqCst), 0, "rolled back: nothing logged");
    let counter = Arc::clone(&ran);
    store
        .writer
        .call(move |_, ctx| -> Result<(), StoreError> {
            ctx.after_commit(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "committed: logged once");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_ending_a_job_wakes_a_waiter() {
    let backend = SqliteBackend::new();
    let api = open(&backend.path(), clock()).await.unwrap();
    let worker = open(&backend.path(), clock()).await.unwrap();
    let id = api.enqueue(conformance::job("elsewhere")).await.unwrap().id;
    let held = conformance::lease_one(&worker, "elsewhere").await;
    // An hour's deadline: only the store's watch on the other connection's
    // commit can end this wait within the test's ceiling.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    let (job, ()) = tokio::join!(
        async {
            tokio::time::timeout(
                Duration::from_secs(30),
                crate::store::wait_for_end(&api, id, deadline),
            )
            .await
            .expect("the other process's commit woke the waiter")
            .unwrap()
        },
        conformance::finish(&worker, &held),
    );
    assert_eq!(job.status, JobStatus::Succeeded);
    worker.close().await.unwrap();
    api.close().await.unwrap();
}

/// Writes the first chunk of [`conformance::keyed_batch`] only, as a start
/// that died before the next would have; answers the batch id.
async fn partial_start(store: &SqliteStore) -> JobId {
    let p = crate::store::batch::prepare(&conformance::keyed_batch()).unwrap();
    let (id, head, first) = (p.id, p.head.clone(), p.chunk_from(0));
    store
        .writer
        .call(move |c, ctx| super::batches::add_chunk(c, ctx, id, &head, true, &first))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_batch_start_repeated_under_its_key_writes_what_its_maker_did_not() {
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    let id = partial_start(&store).await;
    conformance::resumed_batch_writes_only_what_is_missing(&store, id).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_partly_written_batch_closes_it() {
    let backend = SqliteBackend::new();
    let store = open(&backend.path(), clock()).await.unwrap();
    let id = partial_start(&store).await;
    conformance::cancelled_partial_batch_is_closed(&store, id).await;
    store.close().await.unwrap();
}

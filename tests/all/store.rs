//! The embedded store under real `taskhost serve` processes: a clean stop
//! leaves every commit in the `.db` file, retention runs by itself, damaged
//! or replaced files are refused, a full disk is named as such, and
//! `/health` tells when the host cannot write.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskhost::store::Store;

use crate::http_client::Server;
use crate::support::{TestHost, eventually, plugin_dir, shared_cache_dir, stderr, taskhost_bin};

/// Enqueues `count` jobs of `handler` through the API in batches of 500.
fn enqueue(server: &Server, count: usize, handler: &str, payload: Value) {
    let mut left = count;
    while left > 0 {
        let n = left.min(500);
        let jobs: Vec<Value> = (0..n)
            .map(|_| json!({"handler": handler, "payload": payload}))
            .collect();
        let r = server.post("/api/v1/jobs/batch", None, &json!({ "jobs": jobs }));
        assert_eq!(r.status, 201, "{}", r.text());
        left -= n;
    }
}

/// A raw connection to a store file, for what only SQL can tell.
fn sql(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn scalar(path: &Path, query: &str) -> i64 {
    sql(path).query_row(query, [], |r| r.get(0)).unwrap()
}

fn wal_of(db: &Path) -> PathBuf {
    db.with_extension("db-wal")
}

/// Opens a store file with the library, as a host would.
async fn open(
    path: &Path,
) -> Result<taskhost::store::sqlite::SqliteStore, taskhost::store::StoreError> {
    taskhost::store::sqlite::SqliteStore::open(
        path,
        Default::default(),
        std::sync::Arc::new(taskhost::clock::SystemClock),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_every_commit_in_the_db_file() {
    const JOBS: usize = 8000;
    let host = TestHost::new("[workers]\nenabled = false\n");
    let db = host.config().store_path();
    let server = Server::start(&host);
    enqueue(&server, JOBS, "hello", json!({"name": "wal"}));
    server.stop();

    let wal = wal_of(&db);
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "{} remains after a clean stop ({} bytes)",
        wal.display(),
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
    );
    // The .db alone, as a copy or a file-level backup would take it.
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("taskhost.db");
    std::fs::copy(&db, &copy).unwrap();
    assert_eq!(
        sql(&copy)
            .query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
    assert_eq!(scalar(&copy, "SELECT count(*) FROM jobs"), JOBS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_a_serving_store_and_refuses_to_overwrite() {
    let host = TestHost::new("[workers]\nenabled = false\n");
    let server = Server::start(&host);
    enqueue(&server, 1500, "hello", json!({"name": "backup"}));
    let dest = host.path().join("backup.db");
    let out = host.run_cli(&["store", "backup", dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1500 job(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The copy opens as a store of its own, with every job.
    let copy = open(&dest).await.unwrap();
    assert_eq!(copy.counts().await.unwrap().sum(None, None, None), 1500);
    copy.close().await.unwrap();

    let again = host.run_cli(&["store", "backup", dest.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_in_serve_and_gives_space_back() {
    const JOBS: usize = 3000;
    let host = TestHost::new(
        "[store]\nretention = \"1s\"\nidempotency_ttl = \"1s\"\nsweep_every = \"1s\"\n\
         [workers]\nqueues = { default = 8 }\n",
    );
    let db = host.config().store_path();
    let server = Server::start(&host);
    let big = "x".repeat(2000);
    enqueue(&server, JOBS, "hello", json!({"name": big}));
    for i in 0..20 {
        let r = server.post(
            "/api/v1/jobs",
            None,
            &json!({"handler": "hello", "payload": {"name": "k"}, "idempotency_key": format!("key-{i}")}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let peak = scalar(&db, "PRAGMA page_count");
    // Every job finishes, then the sweep removes it: wait for the event.
    eventually(
        Duration::from_secs(120),
        "the sweep to empty the store",
        || async { (scalar(&db, "SELECT count(*) FROM jobs") == 0).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(60),
        "idempotency keys to expire",
        || async { (scalar(&db, "SELECT count(*) FROM idempotency_keys") == 0).then_some(()) },
    )
    .await;
    let after = eventually(
        Duration::from_secs(60),
        "space to be given back",
        || async {
            let pages = scalar(&db, "PRAGMA page_count");
            (pages * 4 < peak).then_some(pages)
        },
    )
    .await;
    println!("retention: {peak} pages at the peak, {after} after the sweep");
    server.stop();
}

/// A store with jobs whose last commits are still in the `-wal` (the host
/// was killed), with its state record up to date. Answers the host and the
/// store file.
fn killed_with_commits_in_the_wal() -> (TestHost, PathBuf) {
    let host = TestHost::new("[workers]\nenabled = false\n");
    let db = host.config().store_path();
    let mut server = Server::start(&host);
    enqueue(&server, 2000, "hello", json!({"name": "damage"}));
    // Wait until the state record beside the file has caught up with the
    // store's own commit count (the writer records it within a second).
    let record = db.with_extension("db.state");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let commits = scalar(
            &db,
            "SELECT CAST(value AS INTEGER) FROM store_meta WHERE key = 'commits'",
        );
        let recorded = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["commits"].as_i64());
        if recorded == Some(commits) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the state record never caught up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(wal_of(&db).exists(), "a killed host leaves its -wal");
    (host, db)
}

/// A store with jobs, stopped cleanly.
fn stopped_cleanly() -> (TestHost, PathBuf) {
    let host = TestHost::new("[workers]\nenabled = false\n");
    let db = host.config().store_path();
    let server = Server::start(&host);
    enqueue(&server, 2000, "hello", json!({"name": "damage"}));
    server.stop();
    (host, db)
}

/// Starts `taskhost serve` and expects it to refuse: exit non-zero within a
/// generous ceiling with the damage named and the recovery steps.
fn assert_serve_refuses(host: &TestHost, what: &str, expected: &str) {
    let mut child = Command::new(taskhost_bin())
        .arg("--config")
        .arg(host.config_path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: serve started on a damaged store instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{what}: {err}");
    for needle in [
        "is damaged",
        expected,
        "to recover",
        "taskhost store backup",
    ] {
        assert!(err.contains(needle), "{what}: {needle:?} not in: {err}");
    }
    let check = host.run_cli(&["store", "check"]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "{what}: store check: {}",
        stderr(&check)
    );
    assert!(
        stderr(&check).contains(expected),
        "{what}: {}",
        stderr(&check)
    );
}

#[test]
fn a_truncated_wal_is_refused() {
    let (host, db) = killed_with_commits_in_the_wal();
    let wal = wal_of(&db);
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_serve_refuses(&host, "truncated -wal", "commits are missing");
}

#[test]
fn a_flipped_byte_in_the_wal_is_refused() {
    let (host, db) = killed_with_commits_in_the_wal();
    let wal = wal_of(&db);
    let mut bytes = std::fs::read(&wal).unwrap();
    let at = bytes.len() - 100; // inside the last frame's page
    bytes[at] ^= 0x5a;
    std::fs::write(&wal, bytes).unwrap();
    assert_serve_refuses(&host, "flipped -wal byte", "commits are missing");
}

#[test]
fn an_emptied_db_is_refused() {
    let (host, db) = stopped_cleanly();
    std::fs::File::create(&db).unwrap(); // truncates to 0 bytes
    assert_serve_refuses(&host, "emptied .db", "emptied, replaced or lost");
}

#[test]
fn a_replaced_db_is_refused() {
    let (host, db) = stopped_cleanly();
    let other = TestHost::new("[workers]\nenabled = false\n");
    let other_db = other.config().store_path();
    let server = Server::start(&other);
    server.stop();
    std::fs::copy(&other_db, &db).unwrap();
    assert_serve_refuses(&host, "replaced .db", "the file was replaced");
}

#[test]
fn flipped_page_bytes_are_refused() {
    let (host, db) = stopped_cleanly();
    let root = scalar(
        &db,
        "SELECT rootpage FROM sqlite_schema WHERE name = 'jobs'",
    );
    let page_size = scalar(&db, "PRAGMA page_size");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = ((root - 1) * page_size) as usize;
    for b in &mut bytes[at..at + 12] {
        *b ^= 0xff;
    }
    std::fs::write(&db, bytes).unwrap();
    assert_serve_refuses(&host, "flipped page bytes", "integrity check failed");
}

/// A small real file system that fills up, unmounted when the test ends.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size`, or explains loudly why this machine cannot.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                crate::support::skip_unless_ci(&format!(
                    "the disk-full test needs to mount a tmpfs (run as root); mount said: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
                None
            }
            Err(e) => {
                crate::support::skip_unless_ci(&format!(
                    "the disk-full test cannot run `mount`: {e}"
                ));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_named_store_full_and_health_says_so() {
    let Some(disk) = Tmpfs::mount("3M") else {
        return;
    };
    let host = TestHost::with_host_table(
        &format!(
            "plugins = {:?}\ncache = {:?}\ndata = {:?}\n",
            plugin_dir().display().to_string(),
            shared_cache_dir().display().to_string(),
            disk.dir.path().display().to_string()
        ),
        "[workers]\nenabled = false\nmax_payload = \"64KiB\"\n",
    );
    let server = Server::start(&host);
    let health = server.get("/health", None);
    assert_eq!(health.status, 200, "{}", health.text());

    let big = "y".repeat(30_000);
    let full = (0..400).find_map(|_| {
        let jobs: Vec<Value> = (0..10)
            .map(|_| json!({"handler": "hello", "payload": {"name": big}}))
            .collect();
        let r = server.post("/api/v1/jobs/batch", None, &json!({ "jobs": jobs }));
        (r.status != 201).then_some(r)
    });
    let full = full.expect("a 3 MiB disk filled up");
    // Fill what is left with single jobs, as the CLI below sends.
    let single = json!({"handler": "hello", "payload": {"name": big}});
    let last = (0..100)
        .map(|_| server.post("/api/v1/jobs", None, &single))
        .find(|r| r.status != 201)
        .expect("single jobs filled the rest");
    assert_eq!(last.code(), "store_full", "{}", last.text());
    assert_eq!(full.status, 507, "{}", full.text());
    assert_eq!(full.code(), "store_full");
    assert!(
        full.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no space left")
    );

    let health = server.get("/health", None);
    assert_eq!(health.status, 503, "{}", health.text());
    assert!(health.text().contains("full"), "{}", health.text());

    let out = host.run_cli(&[
        "enqueue",
        "hello",
        "--payload",
        &json!({"name": big}).to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("the store is full").count(),
        1,
        "said once: {}",
        stderr(&out)
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_backup_follows_the_documented_steps() {
    let host = TestHost::new("[workers]\nenabled = false\n");
    let db = host.config().store_path();
    let server = Server::start(&host);
    enqueue(&server, 100, "hello", json!({"name": "before"}));
    let backup = host.path().join("backup.db");
    let out = host.run_cli(&["store", "backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    enqueue(&server, 100, "hello", json!({"name": "after"}));
    server.stop();

    // Put the backup in place: the state record knows it is older.
    std::fs::copy(&backup, &db).unwrap();
    assert_serve_refuses(&host, "restored backup", "commits are missing");
    // As documented: delete the record to accept the restored file.
    std::fs::remove_file(db.with_extension("db.state")).unwrap();
    let check = host.run_cli(&["store", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let store = open(&db).await.unwrap();
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 100);
    store.close().await.unwrap();
}

#[test]
fn compact_gives_an_older_file_its_space_back_and_incremental_reclaiming() {
    let host = TestHost::new("[workers]\nenabled = false\n");
    let db = host.config().store_path();
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        // A file as an older release made it: no auto-vacuum.
        let conn = sql(&db);
        conn.execute_batch(
            "PRAGMA auto_vacuum = NONE; PRAGMA journal_mode = WAL;
             CREATE TABLE padding (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO padding SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
    }
    let server = Server::start(&host);
    server.stop();
    sql(&db).execute_batch("DROP TABLE padding").unwrap();
    let before = scalar(&db, "PRAGMA page_count");
    assert_eq!(scalar(&db, "PRAGMA auto_vacuum"), 0);

    let out = host.run_cli(&["store", "compact"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = scalar(&db, "PRAGMA page_count");
    assert!(after * 10 < before, "{before} pages before, {after} after");
    assert_eq!(
        scalar(&db, "PRAGMA auto_vacuum"),
        2,
        "incremental from now on"
    );
}

//! `taskhost bench store`: operations per second of the embedded store
//! (or of the Redis store), measured through the [`Store`] trait as the
//! worker and API use it.
//!
//! Every figure is for acknowledged (committed) operations with the default
//! durability (`synchronous=NORMAL`; on Redis, whatever the server is set
//! to). Each scenario gets a fresh file (a fresh key prefix on Redis).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::task::JoinSet;

use crate::clock::SystemClock;
use crate::job::{NewJob, RunReport};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{LeaseRequest, Store};

/// Jobs per enqueue scenario.
const ENQUEUE_JOBS: usize = 20_000;
/// Jobs per lease+complete scenario.
const CYCLE_JOBS: usize = 50_000;
/// Jobs one lease call takes.
const LEASE_BATCH: u32 = 64;

/// One measured scenario.
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Operations done.
    pub ops: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl Figure {
    /// Operations per second.
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Which store a run measures.
#[derive(Debug, Clone)]
pub enum Target {
    /// Fresh SQLite files.
    Sqlite,
    /// The Redis at this URL, under fresh key prefixes.
    Redis(String),
}

/// All figures of one run.
pub struct Report {
    /// What was measured, for the heading.
    pub target: Target,
    /// The scenarios in run order.
    pub figures: Vec<Figure>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Sqlite => writeln!(
                f,
                "embedded store (SQLite, WAL, synchronous=NORMAL, group commit)"
            )?,
            Target::Redis(url) => writeln!(
                f,
                "Redis store ({}, one script per change, completions batched)",
                crate::store::redis::redact(url)
            )?,
        }
        for fig in &self.figures {
            writeln!(
                f,
                "  {:<52} {:>10.0} ops/s  ({} ops in {:.2} s)",
                fig.name,
                fig.per_second(),
                fig.ops,
                fig.elapsed.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// Runs every scenario on store files under `dir` (or on Redis).
pub async fn run(dir: &Path) -> anyhow::Result<Report> {
    run_on(dir, Target::Sqlite).await
}

/// Runs every scenario on `target`.
pub async fn run_on(dir: &Path, target: Target) -> anyhow::Result<Report> {
    let fresh = |name: String| {
        let target = target.clone();
        async move { fresh(dir, &name, &target).await }
    };
    let mut figures = Vec::new();
    for clients in [1, 8] {
        let store = fresh(format!("enqueue-{clients}")).await?;
        figures.push(enqueue_single(&store, clients).await?);
        store.close().await?;
    }
    let store = fresh("enqueue-batch".into()).await?;
    figures.push(enqueue_batches(&store).await?);
    store.close().await?;
    for (workers, concurrent) in [(1, false), (1, true), (8, true)] {
        let store = fresh(format!("cycle-{workers}-{concurrent}")).await?;
        fill(&store, CYCLE_JOBS).await?;
        figures.push(cycles(&store, workers, concurrent).await?);
        store.close().await?;
    }
    Ok(Report { target, figures })
}

async fn fresh(dir: &Path, name: &str, target: &Target) -> anyhow::Result<Arc<dyn Store>> {
    if let Target::Redis(url) = target {
        let options = crate::store::redis::RedisOptions {
            prefix: format!("bench:{}:{name}:", uuid::Uuid::now_v7()),
            ..crate::store::redis::RedisOptions::new(url.clone())
        };
        let store = crate::store::redis::RedisStore::open(options, Arc::new(SystemClock)).await?;
        return Ok(Arc::new(store));
    }
    let path = dir.join(format!("bench-{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open(&path, SqliteOptions::default(), Arc::new(SystemClock))
        .await
        .with_context(|| format!("opening bench store {}", path.display()))?;
    Ok(Arc::new(store))
}

fn new_job(n: usize) -> NewJob {
    NewJob::new("bench.noop", json!({ "n": n }))
}

async fn enqueue_single(store: &Arc<dyn Store>, clients: usize) -> anyhow::Result<Figure> {
    let per_client = ENQUEUE_JOBS / clients;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            for n in 0..per_client {
                store.enqueue(new_job(c * per_client + n)).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(Figure {
        name: format!("enqueue, single, {clients} concurrent client(s)"),
        ops: per_client * clients,
        elapsed: started.elapsed(),
    })
}

async fn enqueue_batches(store: &Arc<dyn Store>) -> anyhow::Result<Figure> {
    let started = Instant::now();
    for b in 0..ENQUEUE_JOBS / 100 {
        store
            .enqueue_batch((0..100).map(|n| new_job(b * 100 + n)).collect())
            .await?;
    }
    Ok(Figure {
        name: "enqueue, batches of 100 (jobs/s)".into(),
        ops: ENQUEUE_JOBS,
        elapsed: started.elapsed(),
    })
}

async fn fill(store: &Arc<dyn Store>, jobs: usize) -> anyhow::Result<()> {
    for b in 0..jobs / 1000 {
        store
            .enqueue_batch((0..1000).map(|n| new_job(b * 1000 + n)).collect())
            .await?;
    }
    Ok(())
}

/// `workers` tasks each lease up to [`LEASE_BATCH`] jobs and complete them,
/// all at once (`concurrent`, like a worker with that many slots) or one
/// after another, until the queue is empty.
async fn cycles(
    store: &Arc<dyn Store>,
    workers: usize,
    concurrent: bool,
) -> anyhow::Result<Figure> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            let req = LeaseRequest {
                queues: vec!["default".into()],
                handlers: vec!["bench.noop".into()],
                worker: format!("bench-{w}"),
                lease_for: Duration::from_secs(60),
                max: LEASE_BATCH,
                limits: Vec::new(),
            };
            let mut done = 0usize;
            loop {
                let leases = store.lease(&req).await?;
                if leases.is_empty() {
                    return anyhow::Ok(done);
                }
                done += leases.len();
                let report = RunReport::succeeded(Duration::from_micros(50));
                if concurrent {
                    let mut completes = JoinSet::new();
                    for lease in leases {
                        let (store, report) = (Arc::clone(&store), report.clone());
                        completes.spawn(async move {
                            store.complete(&lease.token, json!(null), report).await
                        });
                    }
                    while let Some(r) = completes.join_next().await {
                        r??;
                    }
                } else {
                    for lease in leases {
                        store
                            .complete(&lease.token, json!(null), report.clone())
                            .await?;
                    }
                }
            }
        });
    }
    let mut ops = 0;
    while let Some(done) = tasks.join_next().await {
        ops += done??;
    }
    let how = if concurrent {
        "completes concurrent"
    } else {
        "completes one by one"
    };
    Ok(Figure {
        name: format!("lease+complete, {workers} worker(s), batch {LEASE_BATCH}, {how}"),
        ops,
        elapsed: started.elapsed(),
    })
}

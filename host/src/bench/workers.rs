//! `taskhost bench workers`: the job system end to end with no-op `hello`
//! jobs, a fresh sandbox per job, on the embedded store and (with
//! `--store redis`) on the Redis store beside it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::config::Config;
use crate::enqueue::EnqueueRequest;
use crate::job::JobStatus;
use crate::services::Services;
use crate::worker::Workers;

const BATCH: usize = 100;

/// How many jobs each phase takes.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Jobs enqueued one at a time.
    pub single: usize,
    /// Batches of [`BATCH`] jobs.
    pub batches: usize,
    /// Jobs timed one at a time into an idle pool.
    pub latency: usize,
}

impl Size {
    /// The figures the issues quote.
    pub const FULL: Size = Size {
        single: 5_000,
        batches: 200,
        latency: 1_000,
    };
    /// A tenth of it, for a debug build or a quick look.
    pub const QUICK: Size = Size {
        single: 500,
        batches: 20,
        latency: 100,
    };
}

pub struct Report {
    pub latency_jobs: usize,
    pub enqueue_single: f64,
    pub enqueue_batch: f64,
    pub jobs: usize,
    pub concurrency: u32,
    pub processed_per_second: f64,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
    pub wait_p50: Duration,
    pub wait_p99: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "enqueue, single, 1 client:      {:>9.0} jobs/s",
            self.enqueue_single
        )?;
        writeln!(
            f,
            "enqueue, batches of {BATCH}:       {:>9.0} jobs/s",
            self.enqueue_batch
        )?;
        writeln!(
            f,
            "processed end to end:           {:>9.0} jobs/s ({} hello jobs, concurrency {})",
            self.processed_per_second, self.jobs, self.concurrency
        )?;
        writeln!(
            f,
            "idle enqueue→start latency ({} jobs): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.latency_jobs,
            ms(self.latency_p50),
            ms(self.latency_p99),
            ms(self.latency_max)
        )?;
        writeln!(
            f,
            "idle enqueue→wait returns ({} jobs): p50 {:.3} ms, p99 {:.3} ms   (the API's /wait path)",
            self.latency_jobs,
            ms(self.wait_p50),
            ms(self.wait_p99),
        )
    }
}

fn hello() -> EnqueueRequest {
    EnqueueRequest {
        handler: "hello".into(),
        payload: json!({"name": "bench"}),
        ..Default::default()
    }
}

/// Measures with the plugins of `config` and a fresh store under `scratch`
/// (or on the Redis store `config` names, under a fresh key prefix).
pub async fn run(config: &Config, scratch: &Path, size: Size) -> anyhow::Result<Report> {
    let Size {
        single,
        batches,
        latency: latency_jobs,
    } = size;
    let mut config = config.clone();
    config.host.data = scratch.join("bench-data");
    config.store.prefix = format!("{}bench:{}:", config.store.prefix, uuid::Uuid::now_v7());
    let concurrency = config.workers.queues.get("default").copied().unwrap_or(16);
    let config = Arc::new(config);
    let s = Services::open(config.clone()).await?;

    let started = Instant::now();
    for _ in 0..single {
        s.enqueuer.enqueue(hello()).await?;
    }
    let enqueue_single = single as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..batches {
        s.enqueuer
            .enqueue_batch((0..BATCH).map(|_| hello()).collect())
            .await
            .map_err(|(_, e)| e)?;
    }
    let enqueue_batch = (batches * BATCH) as f64 / started.elapsed().as_secs_f64();
    let jobs = single + batches * BATCH;

    // Everything is queued: start the workers and time the drain.
    let (stop, stopped) = watch::channel(false);
    let workers = Workers::new(
        s.store.clone(),
        s.runtime.clone(),
        s.enqueuer.clone(),
        s.clock.clone(),
        config.workers.clone(),
        "bench".into(),
    );
    let pool = tokio::spawn(workers.clone().run(stopped));
    let started = Instant::now();
    while (workers.stats().processed as usize) < jobs {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let processed_per_second = jobs as f64 / started.elapsed().as_secs_f64();
    let succeeded = s
        .store
        .counts()
        .await?
        .sum(None, None, Some(JobStatus::Succeeded));
    anyhow::ensure!(
        succeeded as usize == jobs,
        "only {succeeded} of {jobs} jobs succeeded"
    );

    // Idle latency: one job at a time into an idle pool.
    let mut latencies = Vec::with_capacity(latency_jobs);
    let mut changes = s.store.changes();
    for _ in 0..latency_jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let id = s.enqueuer.enqueue(hello()).await?.id;
        let job = loop {
            let job = s.store.get(id).await?;
            if job.status.is_final() {
                break job;
            }
            let _ = tokio::time::timeout(Duration::from_millis(10), changes.changed()).await;
        };
        let start = job.attempts.first().map(|a| a.at).unwrap_or(job.created_at);
        latencies.push((start - job.created_at).to_std().unwrap_or_default());
    }
    latencies.sort();

    // Enqueue → wait returns: what a client of `/jobs/{id}/wait` sees.
    let mut waits = Vec::with_capacity(latency_jobs);
    for _ in 0..latency_jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let started = Instant::now();
        let id = s.enqueuer.enqueue(hello()).await?.id;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let job = crate::store::wait_for_end(&*s.store, id, deadline).await?;
        anyhow::ensure!(job.status.is_final(), "job {id} did not end within 30 s");
        waits.push(started.elapsed());
    }
    waits.sort();
    let _ = stop.send(true);
    pool.await?;
    s.store.close().await?;
    Ok(Report {
        latency_jobs,
        enqueue_single,
        enqueue_batch,
        jobs,
        concurrency,
        processed_per_second,
        latency_p50: latencies[latency_jobs / 2],
        latency_p99: latencies[latency_jobs * 99 / 100],
        latency_max: latencies[latency_jobs - 1],
        wait_p50: waits[latency_jobs / 2],
        wait_p99: waits[latency_jobs * 99 / 100],
    })
}

//! `taskhost bench workers`: the job system end to end on the embedded
//! store with no-op `hello` jobs, a fresh sandbox per job.

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

const SINGLE: usize = 5_000;
const BATCHES: usize = 200;
const BATCH: usize = 100;
const LATENCY_JOBS: usize = 1_000;

pub struct Report {
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
            "idle enqueue→start latency ({LATENCY_JOBS} jobs): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(self.latency_p50),
            ms(self.latency_p99),
            ms(self.latency_max)
        )?;
        writeln!(
            f,
            "idle enqueue→wait returns ({LATENCY_JOBS} jobs): p50 {:.3} ms, p99 {:.3} ms   (the API's /wait path)",
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

/// Measures with the plugins of `config` and a fresh store under `scratch`.
pub async fn run(config: &Config, scratch: &Path) -> anyhow::Result<Report> {
    let mut config = config.clone();
    config.host.data = scratch.join("bench-data");
    let concurrency = config.workers.queues.get("default").copied().unwrap_or(16);
    let config = Arc::new(config);
    let s = Services::open(config.clone()).await?;

    let started = Instant::now();
    for _ in 0..SINGLE {
        s.enqueuer.enqueue(hello()).await?;
    }
    let enqueue_single = SINGLE as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..BATCHES {
        s.enqueuer
            .enqueue_batch((0..BATCH).map(|_| hello()).collect())
            .await
            .map_err(|(_, e)| e)?;
    }
    let enqueue_batch = (BATCHES * BATCH) as f64 / started.elapsed().as_secs_f64();
    let jobs = SINGLE + BATCHES * BATCH;

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
    let mut latencies = Vec::with_capacity(LATENCY_JOBS);
    let mut changes = s.store.changes();
    for _ in 0..LATENCY_JOBS {
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
    let mut waits = Vec::with_capacity(LATENCY_JOBS);
    for _ in 0..LATENCY_JOBS {
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
        enqueue_single,
        enqueue_batch,
        jobs,
        concurrency,
        processed_per_second,
        latency_p50: latencies[LATENCY_JOBS / 2],
        latency_p99: latencies[LATENCY_JOBS * 99 / 100],
        latency_max: latencies[LATENCY_JOBS - 1],
        wait_p50: waits[LATENCY_JOBS / 2],
        wait_p99: waits[LATENCY_JOBS * 99 / 100],
    })
}

//! `taskhost bench runtime`: what one job costs in the sandbox, and how long
//! loading the plugin folder takes cold and from the compiled cache.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;
use crate::runtime::{JobIdentity, JobInput, Runtime};

/// Jobs per measured loop.
const JOBS: usize = 20_000;

/// The figures of one run.
pub struct Report {
    pub jobs: usize,
    pub cold_load: Duration,
    pub cached_load: Duration,
    pub plugins: usize,
    /// Whole `Runtime::run` of `hello`, one job at a time.
    pub per_job: Duration,
    /// Of which: creating the store (WASI context, limits, fuel, deadline).
    pub store_new: Duration,
    /// Of which: instantiating from the pre-linked template.
    pub instantiate: Duration,
    /// Of which: calling `run` (decode payload, greet, encode result).
    pub call: Duration,
    /// Of which: dropping the store (the instance's memory goes back to the pool).
    pub drop: Duration,
    /// Jobs per second with two jobs in flight (one per core).
    pub parallel_per_second: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        writeln!(f, "plugin folder load ({} plugins):", self.plugins)?;
        writeln!(
            f,
            "  cold (compile + cache write): {:>9.1} ms",
            self.cold_load.as_secs_f64() * 1e3
        )?;
        writeln!(
            f,
            "  cached (map compiled files):  {:>9.1} ms",
            self.cached_load.as_secs_f64() * 1e3
        )?;
        writeln!(
            f,
            "hello, fresh store and instance per job ({} jobs, sequential):",
            self.jobs
        )?;
        writeln!(
            f,
            "  per job (Runtime::run):       {:>9.2} µs",
            us(self.per_job)
        )?;
        writeln!(
            f,
            "    store + WASI context:       {:>9.2} µs",
            us(self.store_new)
        )?;
        writeln!(
            f,
            "    instantiate (pooling, pre): {:>9.2} µs",
            us(self.instantiate)
        )?;
        writeln!(
            f,
            "    call run:                   {:>9.2} µs",
            us(self.call)
        )?;
        writeln!(
            f,
            "    drop store (reset memory):  {:>9.2} µs",
            us(self.drop)
        )?;
        writeln!(
            f,
            "  two in flight:                {:>9.0} jobs/s",
            self.parallel_per_second
        )
    }
}

/// Measures with the plugins of `config`, using a fresh cache under `scratch`.
pub async fn run(config: &Config, scratch: &Path) -> anyhow::Result<Report> {
    let mut config = config.clone();
    config.host.cache = scratch.join("bench-cache");
    let _ = std::fs::remove_dir_all(&config.host.cache);
    let config = Arc::new(config);

    let started = Instant::now();
    let cold = Runtime::load(config.clone())
        .await
        .context("loading the plugins")?;
    let cold_load = started.elapsed();
    drop(cold);
    let started = Instant::now();
    let runtime = Arc::new(Runtime::load(config).await?);
    let cached_load = started.elapsed();
    anyhow::ensure!(
        runtime.registry().stats().from_cache == runtime.registry().stats().plugins,
        "the second load did not come from the cache"
    );

    let input = JobInput::adhoc("hello", r#"{"name":"bench"}"#);
    for _ in 0..1000 {
        runtime.run(input.clone()).await?; // warm up
    }
    let started = Instant::now();
    for _ in 0..JOBS {
        let report = runtime.run(input.clone()).await?;
        anyhow::ensure!(
            report.outcome.is_success(),
            "hello failed: {:?}",
            report.outcome
        );
    }
    let per_job = started.elapsed() / JOBS as u32;

    let [store_new, instantiate, call, drop] = phases(&runtime, &input, JOBS).await?;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (rt, input) = (runtime.clone(), input.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..JOBS / 2 {
                rt.run(input.clone()).await.expect("hello is loaded");
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let parallel_per_second = JOBS as f64 / started.elapsed().as_secs_f64();

    Ok(Report {
        jobs: JOBS,
        cold_load,
        cached_load,
        plugins: runtime.registry().stats().plugins,
        per_job,
        store_new,
        instantiate,
        call,
        drop,
        parallel_per_second,
    })
}

/// Times the phases of `jobs` jobs of `input`'s handler separately (mean
/// of each): store, instantiate, call, drop.
pub(crate) async fn phases(
    runtime: &Runtime,
    input: &JobInput,
    jobs: usize,
) -> anyhow::Result<[Duration; 4]> {
    let entry = runtime
        .registry()
        .handler(&input.handler)
        .cloned()
        .with_context(|| format!("{} is not loaded", input.handler))?;
    let limits = runtime.limits(&entry);
    let ctx = crate::capabilities::bindings::taskhost::plugin::types::JobContext {
        id: input.id.clone(),
        handler: input.handler.clone(),
        queue: input.queue.clone(),
        attempt: 1,
        max_attempts: 1,
        enqueued_at: 0,
        scheduled_for: 0,
    };
    let mut total = [Duration::ZERO; 4];
    for _ in 0..jobs {
        let t0 = Instant::now();
        let identity = JobIdentity {
            job_id: input.id.clone(),
            plugin: entry.plugin.name.clone(),
            handler: entry.name.clone(),
        };
        let mut store = runtime.new_store(identity, &limits, entry.plugin.grants.clone())?;
        let t1 = Instant::now();
        let instance = entry.plugin.pre.instantiate_async(&mut store).await?;
        let t2 = Instant::now();
        let out = instance.call_run(&mut store, &ctx, &input.payload).await?;
        let t3 = Instant::now();
        anyhow::ensure!(out.is_ok(), "{} failed", input.handler);
        drop(store);
        let t4 = Instant::now();
        for (sum, d) in total.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
            *sum += d;
        }
    }
    Ok(total.map(|d| d / jobs as u32))
}

//! `taskhost bench languages`: `hello` in Rust, Python and JavaScript in
//! the same run, a fresh instance per job: instantiate + run time, the
//! compiled cache entry's size, resident memory per live instance, and
//! jobs/s through the workers (`serve`'s path: store, lease, run, record).
//!
//! The handlers are `hello`, `py.hello` and `js.hello` (the example
//! plugins `hello`, `py_hello` and `js_hello`); a language whose handler
//! the config's plugin folder lacks is reported as missing, not measured.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::sync::watch;

use crate::config::Config;
use crate::enqueue::EnqueueRequest;
use crate::job::JobStatus;
use crate::runtime::{JobIdentity, JobInput, Runtime};
use crate::services::Services;
use crate::worker::Workers;

/// The languages and their `hello` handlers.
const LANGUAGES: [(&str, &str); 3] = [
    ("Rust", "hello"),
    ("Python", "py.hello"),
    ("JavaScript", "js.hello"),
];
/// Sequential jobs per language for the per-job percentiles.
const JOBS: usize = 2_000;
/// Live instances held at once to measure resident memory per instance.
const LIVE: usize = 32;
/// Jobs drained through the workers per language.
const DRAIN: usize = 2_000;

/// One language's figures.
pub struct Figures {
    pub language: &'static str,
    pub handler: &'static str,
    pub component_bytes: u64,
    pub cache_bytes: u64,
    pub p50: Duration,
    pub p99: Duration,
    /// Means of the phases: store, instantiate, call `run`, drop (memory reset).
    pub phases: [Duration; 4],
    pub resident_per_instance: Option<u64>,
    pub jobs_per_second: f64,
}

/// The figures of one run.
pub struct Report {
    pub measured: Vec<Figures>,
    pub missing: Vec<&'static str>,
    pub concurrency: u32,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        writeln!(
            f,
            "hello per language, fresh instance per job ({JOBS} sequential jobs; {LIVE} live instances; \
             {DRAIN} jobs through the workers at concurrency {}):",
            self.concurrency
        )?;
        writeln!(
            f,
            "  {:<11} {:>9} {:>9} {:>11} {:>11} {:>13} {:>10}",
            "language", ".wasm", "compiled", "p50/job", "p99/job", "resident/inst", "jobs/s"
        )?;
        for m in &self.measured {
            writeln!(
                f,
                "  {:<11} {:>7.1}MB {:>7.1}MB {:>8.0} µs {:>8.0} µs {:>11} {:>10.0}",
                m.language,
                mib(m.component_bytes),
                mib(m.cache_bytes),
                m.p50.as_secs_f64() * 1e6,
                m.p99.as_secs_f64() * 1e6,
                m.resident_per_instance
                    .map_or("n/a".to_string(), |b| format!("{:.2}MB", mib(b))),
                m.jobs_per_second
            )?;
        }
        writeln!(
            f,
            "  where a job's time goes (means): store, instantiate, call run, drop (memory reset)"
        )?;
        for m in &self.measured {
            let [store, instantiate, call, drop] = m.phases.map(|d| d.as_secs_f64() * 1e6);
            writeln!(
                f,
                "  {:<11} {store:>8.0} µs {instantiate:>8.0} µs {call:>8.0} µs {drop:>8.0} µs",
                m.language
            )?;
        }
        for language in &self.missing {
            writeln!(
                f,
                "  {language:<11} not measured: its hello plugin is not in the plugin folder \
                 (`cargo xtask plugins` builds it into target/example-plugins)"
            )?;
        }
        Ok(())
    }
}

/// Measures with the plugins of `config`, a fresh cache and store under `scratch`.
pub async fn run(config: &Config, scratch: &Path) -> anyhow::Result<Report> {
    let mut config = config.clone();
    config.host.cache = scratch.join("bench-cache");
    config.host.data = scratch.join("bench-data");
    let concurrency = config.workers.queues.get("default").copied().unwrap_or(16);
    let config = Arc::new(config);
    let s = Services::open(config.clone())
        .await
        .context("loading the plugins and the store")?;
    let runtime = s.runtime.clone();

    let mut measured = Vec::new();
    let mut missing = Vec::new();
    for (language, handler) in LANGUAGES {
        let Some(entry) = runtime.registry().handler(handler).cloned() else {
            missing.push(language);
            continue;
        };
        let component_bytes = std::fs::metadata(&entry.plugin.path)?.len();
        let cache_bytes = cache_entry_size(&config.host.cache, &entry.plugin.digest);
        let input = JobInput::adhoc(handler, r#"{"name":"bench"}"#);
        for _ in 0..JOBS / 10 {
            runtime.run(input.clone()).await?; // warm up
        }
        let mut times = Vec::with_capacity(JOBS);
        for _ in 0..JOBS {
            let started = Instant::now();
            let report = runtime.run(input.clone()).await?;
            times.push(started.elapsed());
            anyhow::ensure!(
                report.outcome.is_success(),
                "{handler} failed: {:?}",
                report.outcome
            );
        }
        times.sort();
        let phases = super::runtime::phases(&runtime, &input, JOBS).await?;
        let resident_per_instance = resident_per_instance(&runtime, handler, &input).await?;
        let jobs_per_second = drain(&s, handler, (measured.len() + 1) * DRAIN).await?;
        measured.push(Figures {
            language,
            handler,
            component_bytes,
            cache_bytes,
            p50: times[JOBS / 2],
            p99: times[JOBS * 99 / 100],
            phases,
            resident_per_instance,
            jobs_per_second,
        });
    }
    s.store.close().await?;
    Ok(Report {
        measured,
        missing,
        concurrency,
    })
}

/// The size of the compiled cache file of the component with `digest`.
fn cache_entry_size(cache: &Path, digest: &str) -> u64 {
    std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(digest))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Resident set growth per instance while [`LIVE`] instances that have
/// each run the job are alive at once; `None` where `/proc` is missing.
async fn resident_per_instance(
    runtime: &Runtime,
    handler: &str,
    input: &JobInput,
) -> anyhow::Result<Option<u64>> {
    let entry = runtime
        .registry()
        .handler(handler)
        .cloned()
        .context("handler")?;
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
    let Some(before) = resident_bytes() else {
        return Ok(None);
    };
    let mut live = Vec::with_capacity(LIVE);
    for _ in 0..LIVE {
        let identity = JobIdentity {
            job_id: input.id.clone(),
            plugin: entry.plugin.name.clone(),
            handler: entry.name.clone(),
        };
        let mut store = runtime.new_store(identity, &limits, entry.plugin.grants.clone())?;
        let instance = entry.plugin.pre.instantiate_async(&mut store).await?;
        let out = instance.call_run(&mut store, &ctx, &input.payload).await?;
        anyhow::ensure!(out.is_ok(), "{handler} failed");
        live.push(store);
    }
    let after = resident_bytes().unwrap_or(before);
    drop(live);
    Ok(Some(after.saturating_sub(before) / LIVE as u64))
}

/// This process's resident set, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Enqueues [`DRAIN`] jobs of `handler`, then times the workers draining
/// them; `succeeded` jobs must be in the store after (all languages' so far).
async fn drain(s: &Services, handler: &str, succeeded: usize) -> anyhow::Result<f64> {
    let request = || EnqueueRequest {
        handler: handler.into(),
        payload: json!({"name": "bench"}),
        ..Default::default()
    };
    s.enqueuer
        .enqueue_batch((0..DRAIN).map(|_| request()).collect())
        .await
        .map_err(|(_, e)| e)?;
    let (stop, stopped) = watch::channel(false);
    let workers = Workers::new(
        s.store.clone(),
        s.runtime.clone(),
        s.enqueuer.clone(),
        s.clock.clone(),
        s.config.workers.clone(),
        "bench".into(),
    );
    let pool = tokio::spawn(workers.clone().run(stopped));
    let started = Instant::now();
    while (workers.stats().processed as usize) < DRAIN {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let per_second = DRAIN as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    pool.await?;
    let done = s
        .store
        .counts()
        .await?
        .sum(None, None, Some(JobStatus::Succeeded));
    anyhow::ensure!(
        done as usize == succeeded,
        "{done} jobs succeeded, expected {succeeded} ({handler} failed some)"
    );
    Ok(per_second)
}

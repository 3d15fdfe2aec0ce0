//! `taskhost bench scheduler`: what 10,000 loaded cron schedules cost a host
//! that has nothing to do, and how late a one-second schedule fires.
//!
//! The schedules are daily crons spread over the day (about seven fire per
//! minute), plus one `* * * * * *` schedule. The scheduler runs on its own
//! thread, as `taskhost serve` runs it on a runtime thread, so its CPU time
//! can be told apart from the store's threads. CPU comes from
//! `/proc/self/task/*/stat` over the idle window; lateness of each tick is
//! its job's `created_at − run_at` (the store's clock when the claim
//! enqueued it, minus the due time).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::clock::SystemClock;
use crate::job::Job;
use crate::scheduler::{ScheduleDef, Scheduler, SchedulerSettings, SchedulerStats, percentile};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{ListQuery, Store};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Daily cron schedules loaded besides the one-second one.
    pub schedules: usize,
    /// The idle window the figures cover.
    pub window: Duration,
}

impl Default for Options {
    /// The figures: 10,000 schedules, 60 s.
    fn default() -> Self {
        Self {
            schedules: 10_000,
            window: Duration::from_secs(60),
        }
    }
}
/// Time before the window starts, for the first re-read and ticks to pass.
const WARM_UP: Duration = Duration::from_secs(2);
/// Handler of the daily schedules.
const CRON_HANDLER: &str = "bench.daily";
/// Handler of the one-second schedule.
const TICK_HANDLER: &str = "bench.tick";
/// Kernel clock ticks per second in `/proc/*/stat` (`USER_HZ`, fixed at 100
/// in the Linux ABI).
const USER_HZ: f64 = 100.0;
/// Name of the thread the scheduler runs on.
const SCHEDULER_THREAD: &str = "scheduler";

/// The figures of one run.
pub struct Report {
    /// Daily cron schedules loaded besides the one-second one.
    pub schedules: usize,
    /// Time to check, save and load them (`sync_config`).
    pub load: Duration,
    /// The idle window.
    pub window: Duration,
    /// CPU time of the whole process over the window.
    pub process_cpu: Duration,
    /// CPU time per thread group (`scheduler`, `store-writer`, …).
    pub threads: BTreeMap<String, Duration>,
    /// Lateness of each one-second tick in the window, ascending.
    pub lateness: Vec<Duration>,
    /// The scheduler's own counters at the end.
    pub stats: SchedulerStats,
}

impl Report {
    /// A CPU time as a percentage of one core over the window.
    fn share(&self, cpu: Duration) -> f64 {
        100.0 * cpu.as_secs_f64() / self.window.as_secs_f64()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_owned(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1e3)
            })
        };
        writeln!(
            f,
            "scheduler: {} daily cron schedules + one every second, embedded store",
            self.schedules
        )?;
        writeln!(
            f,
            "  load (check, save, read)     {:>8.2} s",
            self.load.as_secs_f64()
        )?;
        writeln!(
            f,
            "  idle CPU over {:>3.0} s, % of one core (target < 2% for the scheduler):",
            self.window.as_secs_f64()
        )?;
        writeln!(
            f,
            "    whole process              {:>8.2} %  ({:.2} s)",
            self.share(self.process_cpu),
            self.process_cpu.as_secs_f64()
        )?;
        for (name, cpu) in &self.threads {
            writeln!(
                f,
                "    {name:<26} {:>8.2} %  ({:.2} s)",
                self.share(*cpu),
                cpu.as_secs_f64()
            )?;
        }
        writeln!(
            f,
            "  lateness of the 1-second schedule ({} ticks; target p99 < 50 ms): p50 {}, p99 {}, max {}",
            self.lateness.len(),
            ms(percentile(&self.lateness, 50.0)),
            ms(percentile(&self.lateness, 99.0)),
            ms(self.lateness.last().copied())
        )?;
        let s = &self.stats;
        writeln!(
            f,
            "  scheduler counters: fired {}, claimed by another {}, skipped (overlap) {}, missed {}, errors {}; \
             claim-acknowledged lateness p50 {}, p99 {} (last {} fires, all schedules)",
            s.fired,
            s.claimed_by_other,
            s.skipped_overlap,
            s.missed,
            s.errors,
            ms(s.lateness_p50),
            ms(s.lateness_p99),
            s.lateness_samples
        )
    }
}

/// Runs the benchmark with the figures ([`Options::default`]).
pub async fn run(dir: &Path) -> anyhow::Result<Report> {
    run_with(dir, Options::default()).await
}

/// Runs the benchmark on a store file under `dir`.
pub async fn run_with(dir: &Path, options: Options) -> anyhow::Result<Report> {
    let path = dir.join("scheduler-bench.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default(), Arc::new(SystemClock))
            .await
            .with_context(|| format!("opening {}", path.display()))?,
    );
    let scheduler = Arc::new(Scheduler::new(
        Arc::clone(&store),
        Arc::new(SystemClock),
        SchedulerSettings {
            host_id: "bench".into(),
            ..SchedulerSettings::default()
        },
        vec![CRON_HANDLER.to_owned(), TICK_HANDLER.to_owned()],
    ));
    let defs = definitions(options.schedules);
    let started = Instant::now();
    scheduler.sync_config(&defs).await?;
    let load = started.elapsed();

    let (stop, shutdown) = watch::channel(false);
    let runner = Arc::clone(&scheduler);
    let thread = std::thread::Builder::new()
        .name(SCHEDULER_THREAD.into())
        .spawn(move || -> std::io::Result<()> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(runner.run(shutdown));
            Ok(())
        })?;
    tokio::time::sleep(WARM_UP).await;

    let window_start = chrono::Utc::now();
    let (process_before, threads_before) = (process_ticks()?, thread_ticks()?);
    let measured = Instant::now();
    tokio::time::sleep(options.window).await;
    let (process_after, threads_after) = (process_ticks()?, thread_ticks()?);
    let window = measured.elapsed();
    let window_end = chrono::Utc::now();

    stop.send(true).ok();
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the scheduler thread panicked"))??;
    let stats = scheduler.stats();
    let mut lateness: Vec<Duration> = jobs_of(&*store, TICK_HANDLER)
        .await?
        .iter()
        .filter(|j| j.run_at >= window_start && j.run_at <= window_end)
        .map(|j| (j.created_at - j.run_at).to_std().unwrap_or_default())
        .collect();
    lateness.sort_unstable();
    store.close().await?;

    let mut threads = BTreeMap::new();
    for (tid, (name, after)) in &threads_after {
        let before = threads_before.get(tid).map_or(0, |(_, t)| *t);
        *threads.entry(thread_group(name)).or_insert(Duration::ZERO) += ticks(after - before);
    }
    Ok(Report {
        schedules: options.schedules,
        load,
        window,
        process_cpu: ticks(process_after - process_before),
        threads,
        lateness,
        stats,
    })
}

/// `count` daily crons spread over the minutes of the day (a stride of 7,
/// coprime with 1440, visits every minute), and the one-second schedule.
fn definitions(count: usize) -> Vec<ScheduleDef> {
    let mut defs: Vec<ScheduleDef> = (0..count)
        .map(|i| {
            let minute_of_day = (i * 7) % 1440;
            let expr = format!("{} {} * * *", minute_of_day % 60, minute_of_day / 60);
            ScheduleDef::new(format!("daily-{i:05}"), expr, CRON_HANDLER)
        })
        .collect();
    defs.push(ScheduleDef::new(
        "every-second",
        "* * * * * *",
        TICK_HANDLER,
    ));
    defs
}

/// Every job of `handler`, page by page.
async fn jobs_of(store: &dyn Store, handler: &str) -> anyhow::Result<Vec<Job>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                handler: Some(handler.to_owned()),
                after,
                limit: ListQuery::MAX_LIMIT,
                ..ListQuery::default()
            })
            .await?;
        all.extend(page.jobs);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

/// Groups threads by name: numbered store readers and tokio workers count
/// as one.
fn thread_group(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
        .to_owned()
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / USER_HZ)
}

/// User plus system clock ticks from a `stat` line, with the thread name.
fn parse_stat(line: &str) -> anyhow::Result<(String, u64)> {
    let bad = || anyhow::anyhow!("unexpected /proc stat line: {line:?}");
    let open = line.find('(').ok_or_else(bad)?;
    let close = line.rfind(')').ok_or_else(bad)?;
    let fields: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) of proc(5); the text after the name
    // starts at field 3.
    let cpu = |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i - 3).ok_or_else(bad)?.parse()?) };
    Ok((line[open + 1..close].to_owned(), cpu(14)? + cpu(15)?))
}

/// The process's CPU ticks, finished threads included.
fn process_ticks() -> anyhow::Result<u64> {
    let line = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    Ok(parse_stat(&line)?.1)
}

/// Each live thread's name and CPU ticks, by thread id.
fn thread_ticks() -> anyhow::Result<BTreeMap<u64, (String, u64)>> {
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let entry = entry?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        // A thread may end between listing and reading.
        if let Ok(line) = std::fs::read_to_string(entry.path().join("stat")) {
            threads.insert(tid, parse_stat(&line)?);
        }
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_thread_names() {
        let line = "4242 (store-reader 1) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0";
        assert_eq!(
            parse_stat(line).unwrap(),
            ("store-reader 1".to_owned(), 280)
        );
        assert!(parse_stat("garbage").is_err());
        assert_eq!(thread_group("store-reader-1"), "store-reader");
        assert_eq!(thread_group("scheduler"), "scheduler");
    }

    #[test]
    fn definitions_are_valid_and_spread_over_the_day() {
        let defs = definitions(10_000);
        assert_eq!(defs.len(), 10_001);
        let known = |h: &str| h == CRON_HANDLER || h == TICK_HANDLER;
        assert!(defs.iter().all(|d| d.validate(&known).is_ok()));
        let distinct: std::collections::HashSet<_> = defs.iter().map(|d| d.expr.as_str()).collect();
        assert_eq!(distinct.len(), 1440 + 1, "every minute of the day is used");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_reports_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            schedules: 200,
            window: Duration::from_secs(2),
        };
        let report = run_with(dir.path(), options).await.unwrap();
        assert_eq!(report.schedules, 200);
        assert!(report.threads.contains_key(SCHEDULER_THREAD));
        assert!(!report.lateness.is_empty(), "the one-second schedule fired");
        let text = report.to_string();
        assert!(
            text.contains("p99") && text.contains("whole process"),
            "{text}"
        );
    }
}

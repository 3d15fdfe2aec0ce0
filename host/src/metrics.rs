//! Process-wide counters and histograms, rendered in the Prometheus text
//! format at `/metrics`. Kept dependency-free: a few labelled maps behind
//! mutexes are plenty at tens of thousands of jobs per second.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::job::{JobStatus, Priority};

/// Upper bounds of the job duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
];
/// Upper bounds of the fuel histogram.
const FUEL_BUCKETS: [f64; 8] = [1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11];

#[derive(Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if v <= *b {
                self.buckets[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    /// The bucket bound under which a `q` share of the observations fall;
    /// `None` with no observations or beyond the last bound.
    fn quantile(&self, bounds: &[f64], q: f64) -> Option<f64> {
        let target = (q * self.count as f64).ceil().max(1.0) as u64;
        (self.count > 0)
            .then(|| {
                self.buckets
                    .iter()
                    .position(|n| *n >= target)
                    .map(|i| bounds[i])
            })
            .flatten()
    }
}

/// One handler's runs in this process, as the dashboard shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandlerRuns {
    pub runs: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Bucket bounds (seconds) of the median and 99th percentile duration.
    pub p50_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub mean_fuel: Option<f64>,
}

/// Every metric the host exports.
#[derive(Default)]
pub struct Metrics {
    /// (metric, label) → count, for the per-handler job counters.
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    fuel: Mutex<BTreeMap<String, Histogram>>,
    lease_expired: AtomicU64,
    lease_lost: AtomicU64,
    denied: Mutex<BTreeMap<String, u64>>,
    /// (minute since the process started, succeeded, failed) for the last
    /// [`THROUGHPUT_MINUTES`] minutes that had runs, oldest first.
    throughput: Mutex<VecDeque<(u64, u64, u64)>>,
}

/// How many minutes of throughput [`Metrics::throughput`] keeps.
pub const THROUGHPUT_MINUTES: usize = 60;

/// Minutes since the process first asked, on the monotonic clock.
fn minute_now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs() / 60
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// What a run of a job came to, for the job counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    Enqueued,
    Started,
    Succeeded,
    Failed,
    Retried,
    Dead,
    /// A running job stopped by a request to terminate it.
    Cancelled,
}

impl JobEvent {
    fn metric(self) -> &'static str {
        match self {
            JobEvent::Enqueued => "taskhost_jobs_enqueued_total",
            JobEvent::Started => "taskhost_jobs_started_total",
            JobEvent::Succeeded => "taskhost_jobs_succeeded_total",
            JobEvent::Failed => "taskhost_jobs_failed_total",
            JobEvent::Retried => "taskhost_jobs_retried_total",
            JobEvent::Dead => "taskhost_jobs_dead_total",
            JobEvent::Cancelled => "taskhost_jobs_cancelled_total",
        }
    }
}

impl Metrics {
    pub fn job(&self, event: JobEvent, handler: &str, n: u64) {
        if matches!(event, JobEvent::Succeeded | JobEvent::Failed) {
            let minute = minute_now();
            let mut t = self.throughput.lock().expect("metrics lock");
            if t.back().is_none_or(|b| b.0 != minute) {
                t.push_back((minute, 0, 0));
                if t.len() > THROUGHPUT_MINUTES {
                    t.pop_front();
                }
            }
            let b = t.back_mut().expect("just pushed");
            if event == JobEvent::Succeeded {
                b.1 += n;
            } else {
                b.2 += n;
            }
        }
        *self
            .counters
            .lock()
            .expect("metrics lock")
            .entry((event.metric(), handler.to_string()))
            .or_default() += n;
    }

    pub fn run(&self, handler: &str, duration: Duration, fuel: u64) {
        self.durations
            .lock()
            .expect("metrics lock")
            .entry(handler.to_string())
            .or_default()
            .observe(&DURATION_BUCKETS, duration.as_secs_f64());
        self.fuel
            .lock()
            .expect("metrics lock")
            .entry(handler.to_string())
            .or_default()
            .observe(&FUEL_BUCKETS, fuel as f64);
    }

    /// Succeeded and failed runs in each of the last [`THROUGHPUT_MINUTES`]
    /// minutes, oldest first (the last entry is the current minute).
    pub fn throughput(&self) -> Vec<(u64, u64)> {
        let now = minute_now();
        let t = self.throughput.lock().expect("metrics lock");
        // Minutes before the process started count as empty.
        (0..THROUGHPUT_MINUTES as u64)
            .rev()
            .map(|ago| {
                now.checked_sub(ago)
                    .and_then(|m| t.iter().find(|b| b.0 == m))
                    .map_or((0, 0), |b| (b.1, b.2))
            })
            .collect()
    }

    /// What `handler` ran in this process so far.
    pub fn handler_runs(&self, handler: &str) -> HandlerRuns {
        let counters = self.counters.lock().expect("metrics lock");
        let count = |e: JobEvent| {
            counters
                .get(&(e.metric(), handler.to_string()))
                .copied()
                .unwrap_or(0)
        };
        let (succeeded, failed) = (count(JobEvent::Succeeded), count(JobEvent::Failed));
        drop(counters);
        let durations = self.durations.lock().expect("metrics lock");
        let d = durations.get(handler);
        let fuel = self.fuel.lock().expect("metrics lock");
        let f = fuel.get(handler).filter(|f| f.count > 0);
        HandlerRuns {
            runs: d.map_or(0, |d| d.count),
            succeeded,
            failed,
            p50_seconds: d.and_then(|d| d.quantile(&DURATION_BUCKETS, 0.5)),
            p99_seconds: d.and_then(|d| d.quantile(&DURATION_BUCKETS, 0.99)),
            mean_fuel: f.map(|f| f.sum / f.count as f64),
        }
    }

    pub fn lease_expired(&self, n: u64) {
        self.lease_expired.fetch_add(n, Ordering::Relaxed);
    }

    pub fn lease_lost(&self) {
        self.lease_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn denied(&self, plugin: &str) {
        *self
            .denied
            .lock()
            .expect("metrics lock")
            .entry(plugin.to_string())
            .or_default() += 1;
    }

    /// The text exposition, with the gauges the caller reads at scrape time.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().expect("metrics lock");
        for event in [
            JobEvent::Enqueued,
            JobEvent::Started,
            JobEvent::Succeeded,
            JobEvent::Failed,
            JobEvent::Retried,
            JobEvent::Dead,
            JobEvent::Cancelled,
        ] {
            let name = event.metric();
            let _ = writeln!(
                out,
                "# HELP {name} Jobs by handler, counted by this host (its API, scheduler, plugins and workers); taskhost_store_jobs counts the whole store.\n# TYPE {name} counter"
            );
            for ((metric, handler), n) in counters.iter() {
                if *metric == name {
                    let _ = writeln!(out, "{name}{{handler=\"{}\"}} {n}", escape(handler));
                }
            }
        }
        drop(counters);
        histograms(
            &mut out,
            "taskhost_job_duration_seconds",
            "Run time of jobs by handler.",
            &DURATION_BUCKETS,
            &self.durations.lock().expect("metrics lock"),
        );
        histograms(
            &mut out,
            "taskhost_job_fuel",
            "Fuel used by jobs by handler.",
            &FUEL_BUCKETS,
            &self.fuel.lock().expect("metrics lock"),
        );
        let waiting = |s: &JobStatus| !matches!(s, JobStatus::Succeeded | JobStatus::Cancelled);
        job_gauge(
            &mut out,
            "taskhost_queue_depth",
            "Jobs waiting, running or dead by queue, priority and status.",
            gauges.jobs.iter().filter(|j| waiting(&j.2)),
        );
        job_gauge(
            &mut out,
            "taskhost_store_jobs",
            "Jobs in the store by queue, priority and status, whoever enqueued or ran them (finished ones until retention removes them).",
            gauges.jobs.iter(),
        );
        process_metrics(&mut out);
        let simple = [
            (
                "taskhost_lease_expired_total",
                "counter",
                "Leases that expired unrenewed (their host died or hung).",
                self.lease_expired.load(Ordering::Relaxed),
            ),
            (
                "taskhost_lease_lost_total",
                "counter",
                "Results refused because the lease had passed to another worker.",
                self.lease_lost.load(Ordering::Relaxed),
            ),
            (
                "taskhost_schedule_fires_total",
                "counter",
                "Schedule ticks this host enqueued.",
                gauges.schedule_fires,
            ),
            (
                "taskhost_schedule_misses_total",
                "counter",
                "Schedule ticks no host fired within the grace window.",
                gauges.schedule_misses,
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        limit_gauges(&mut out, &gauges.limits);
        let _ = writeln!(
            out,
            "# HELP taskhost_capability_denied_total Host calls refused for want of a grant.\n# TYPE taskhost_capability_denied_total counter"
        );
        for (plugin, n) in self.denied.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "taskhost_capability_denied_total{{plugin=\"{}\"}} {n}",
                escape(plugin)
            );
        }
        out
    }
}

/// The flow limits: running jobs (all hosts) and whether the limit holds
/// the handler's jobs back now, per limited handler.
fn limit_gauges(out: &mut String, limits: &[crate::store::LimitState]) {
    type Read = fn(&crate::store::LimitState) -> u64;
    let gauges: [(&str, &str, Read); 2] = [
        (
            "taskhost_limited_running",
            "Jobs running on every host, per handler with a rate or concurrency limit.",
            |l| l.running,
        ),
        (
            "taskhost_limit_held",
            "1 while a handler's rate or concurrency limit holds its jobs back.",
            |l| u64::from(l.held),
        ),
    ];
    for (name, help, read) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for l in limits {
            let _ = writeln!(
                out,
                "{name}{{handler=\"{}\"}} {}",
                escape(&l.handler),
                read(l)
            );
        }
    }
}

/// Values read at scrape time rather than counted.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (queue, priority, status, count) of every job in the store.
    pub jobs: Vec<(String, Priority, JobStatus, u64)>,
    pub schedule_fires: u64,
    pub schedule_misses: u64,
    /// Where each handler with a rate or concurrency limit stands.
    pub limits: Vec<crate::store::LimitState>,
}

fn histograms(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[f64],
    by_handler: &BTreeMap<String, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (handler, h) in by_handler {
        let handler = escape(handler);
        for (i, b) in bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{handler=\"{handler}\",le=\"{b}\"}} {}",
                h.buckets.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{handler=\"{handler}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{handler=\"{handler}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{handler=\"{handler}\"}} {}", h.count);
    }
}

/// One gauge over (queue, priority, status) cells.
fn job_gauge<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    cells: impl Iterator<Item = &'a (String, Priority, JobStatus, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (queue, priority, status, n) in cells {
        let _ = writeln!(
            out,
            "{name}{{queue=\"{}\",priority=\"{priority}\",status=\"{status}\"}} {n}",
            escape(queue)
        );
    }
}

/// The standard process metrics (resident memory, CPU time, open files),
/// read from `/proc/self`; absent where there is no `/proc`.
fn process_metrics(out: &mut String) {
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let cpu = match (fields.get(11), fields.get(12)) {
        (Some(u), Some(s)) if ticks > 0 => {
            let (u, s) = (
                u.parse::<f64>().unwrap_or(0.0),
                s.parse::<f64>().unwrap_or(0.0),
            );
            Some((u + s) / ticks as f64)
        }
        _ => None,
    };
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page.max(0) as u64);
    let fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count());
    if let Some(cpu) = cpu {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time of this host process.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}"
        );
    }
    if let Some(rss) = rss {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory of this host process.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    if let Some(fds) = fds {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Open file descriptors of this host process.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}"
        );
    }
}

/// Escapes a label value: backslash, quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_runs_reads_counts_and_quantile_bounds() {
        let m = Metrics::default();
        assert_eq!(m.handler_runs("h"), HandlerRuns::default());
        for ms in [3, 3, 3, 40] {
            m.run("h", Duration::from_millis(ms), 1000);
        }
        m.job(JobEvent::Succeeded, "h", 3);
        m.job(JobEvent::Failed, "h", 1);
        let r = m.handler_runs("h");
        assert_eq!((r.runs, r.succeeded, r.failed), (4, 3, 1));
        assert_eq!((r.p50_seconds, r.p99_seconds), (Some(0.005), Some(0.05)));
        assert_eq!(r.mean_fuel, Some(1000.0));
        let t = m.throughput();
        assert_eq!(t.len(), THROUGHPUT_MINUTES);
        assert_eq!(t.last(), Some(&(3, 1)), "this minute's runs");
        m.run("slow", Duration::from_secs(700), 1);
        assert_eq!(
            m.handler_runs("slow").p99_seconds,
            None,
            "beyond the last bucket"
        );
    }

    #[test]
    fn counters_and_histograms_render_in_text_format() {
        let m = Metrics::default();
        m.job(JobEvent::Succeeded, "hello", 2);
        m.run("hello", Duration::from_millis(3), 5000);
        m.denied("pro\"be");
        let text = m.render(&Gauges {
            jobs: vec![
                ("default".into(), Priority::Normal, JobStatus::Pending, 7),
                ("default".into(), Priority::Normal, JobStatus::Succeeded, 3),
            ],
            ..Default::default()
        });
        assert!(
            text.contains("taskhost_jobs_succeeded_total{handler=\"hello\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("taskhost_job_duration_seconds_bucket{handler=\"hello\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("taskhost_job_duration_seconds_bucket{handler=\"hello\",le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("taskhost_job_fuel_count{handler=\"hello\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "taskhost_queue_depth{queue=\"default\",priority=\"normal\",status=\"pending\"} 7"
            ),
            "{text}"
        );
        assert!(
            !text.contains(
                "taskhost_queue_depth{queue=\"default\",priority=\"normal\",status=\"succeeded\"}"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "taskhost_store_jobs{queue=\"default\",priority=\"normal\",status=\"succeeded\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("taskhost_capability_denied_total{plugin=\"pro\\\"be\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let text = Metrics::default().render(&Gauges::default());
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from {text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
    }
}

//! What the scheduler did, kept in counters the firing tasks bump without
//! contention and read by the API without touching the store.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// How many recent fires the lateness percentiles cover.
pub const LATENESS_WINDOW: usize = 1024;

/// A snapshot of the scheduler's counters since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SchedulerStats {
    /// Schedules this host is firing (enabled and valid here).
    pub schedules: usize,
    /// Ticks this host claimed, so it enqueued their job.
    pub fired: u64,
    /// Ticks another host (or an earlier run of this one) had claimed.
    pub claimed_by_other: u64,
    /// Ticks skipped because the schedule's previous job had not finished.
    pub skipped_overlap: u64,
    /// Ticks no host fired within the grace window (counted up to
    /// [`MAX_MISSED_COUNTED`](super::MAX_MISSED_COUNTED) per gap).
    pub missed: u64,
    /// Catch-up jobs this host enqueued for such gaps.
    pub caught_up: u64,
    /// Store errors while firing (the tick is retried while within grace).
    pub errors: u64,
    /// Median lateness (claim acknowledged minus due time) of recent
    /// fires, in milliseconds (`lateness_p50_ms`).
    #[schema(value_type = Option<f64>)]
    #[serde(rename = "lateness_p50_ms", serialize_with = "millis")]
    pub lateness_p50: Option<Duration>,
    /// 99th percentile of the same, in milliseconds (`lateness_p99_ms`).
    #[schema(value_type = Option<f64>)]
    #[serde(rename = "lateness_p99_ms", serialize_with = "millis")]
    pub lateness_p99: Option<Duration>,
    /// How many fires the percentiles cover.
    pub lateness_samples: usize,
}

fn millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub fired: AtomicU64,
    pub claimed_by_other: AtomicU64,
    pub skipped_overlap: AtomicU64,
    pub missed: AtomicU64,
    pub caught_up: AtomicU64,
    pub errors: AtomicU64,
    lateness: Mutex<VecDeque<Duration>>,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Records one fire's lateness, dropping the oldest beyond the window.
    pub fn record_lateness(&self, late: Duration) {
        let mut window = self.lateness.lock().unwrap_or_else(|p| p.into_inner());
        if window.len() == LATENESS_WINDOW {
            window.pop_front();
        }
        window.push_back(late);
    }

    /// A snapshot; `schedules` comes from the caller, which owns the table.
    pub fn snapshot(&self, schedules: usize) -> SchedulerStats {
        let mut late: Vec<Duration> = self
            .lateness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        late.sort_unstable();
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SchedulerStats {
            schedules,
            fired: read(&self.fired),
            claimed_by_other: read(&self.claimed_by_other),
            skipped_overlap: read(&self.skipped_overlap),
            missed: read(&self.missed),
            caught_up: read(&self.caught_up),
            errors: read(&self.errors),
            lateness_p50: percentile(&late, 50.0),
            lateness_p99: percentile(&late, 99.0),
            lateness_samples: late.len(),
        }
    }
}

/// The nearest-rank percentile `p` (0–100] of ascending `sorted` values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&ms, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&ms[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn lateness_window_keeps_the_most_recent() {
        let c = Counters::default();
        for i in 0..LATENESS_WINDOW + 10 {
            c.record_lateness(Duration::from_millis(i as u64));
        }
        let s = c.snapshot(0);
        assert_eq!(s.lateness_samples, LATENESS_WINDOW);
        assert_eq!(s.lateness_p50, Some(Duration::from_millis(10 + 511)));
    }
}

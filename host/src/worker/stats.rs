//! Counters of what this host's workers did, for `/workers/stats` and the CLI.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Durations kept for percentiles.
const WINDOW: usize = 4096;

#[derive(Default)]
pub struct WorkerStats {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    cancelled: AtomicU64,
    lease_lost: AtomicU64,
    fuel_total: AtomicU64,
    recent: Mutex<VecDeque<Duration>>,
}

/// A snapshot, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatsSnapshot {
    pub processed: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
    /// Runs stopped by a request to terminate their job (not failures).
    pub cancelled: u64,
    pub lease_lost: u64,
    pub success_rate: f64,
    pub avg_duration_ms: f64,
    pub p95_duration_ms: f64,
    pub avg_fuel: f64,
}

/// What became of one run, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Succeeded,
    Retried,
    Dead,
    /// Stopped by a request to terminate the job.
    Cancelled,
    LeaseLost,
}

impl WorkerStats {
    pub fn record(&self, disposition: Disposition, duration: Duration, fuel: u64) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        self.fuel_total.fetch_add(fuel, Ordering::Relaxed);
        let counter = match disposition {
            Disposition::Succeeded => &self.succeeded,
            Disposition::Retried => &self.retried,
            Disposition::Dead => &self.dead,
            Disposition::Cancelled => &self.cancelled,
            Disposition::LeaseLost => &self.lease_lost,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !matches!(disposition, Disposition::Succeeded | Disposition::Cancelled) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = self.recent.lock().expect("stats lock poisoned");
        if recent.len() == WINDOW {
            recent.pop_front();
        }
        recent.push_back(duration);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let processed = self.processed.load(Ordering::Relaxed);
        let succeeded = self.succeeded.load(Ordering::Relaxed);
        let mut recent: Vec<Duration> = self
            .recent
            .lock()
            .expect("stats lock poisoned")
            .iter()
            .copied()
            .collect();
        recent.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let avg = if recent.is_empty() {
            0.0
        } else {
            recent.iter().map(|d| ms(*d)).sum::<f64>() / recent.len() as f64
        };
        let p95 = recent
            .get((recent.len() * 95 / 100).min(recent.len().saturating_sub(1)))
            .map_or(0.0, |d| ms(*d));
        StatsSnapshot {
            processed,
            succeeded,
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            lease_lost: self.lease_lost.load(Ordering::Relaxed),
            success_rate: if processed == 0 {
                0.0
            } else {
                succeeded as f64 / processed as f64
            },
            avg_duration_ms: avg,
            p95_duration_ms: p95,
            avg_fuel: if processed == 0 {
                0.0
            } else {
                self.fuel_total.load(Ordering::Relaxed) as f64 / processed as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_rates_and_percentiles() {
        let s = WorkerStats::default();
        for i in 1..=100 {
            s.record(Disposition::Succeeded, Duration::from_millis(i), 10);
        }
        s.record(Disposition::Dead, Duration::from_millis(1), 10);
        let snap = s.snapshot();
        assert_eq!(
            (snap.processed, snap.succeeded, snap.failed, snap.dead),
            (101, 100, 1, 1)
        );
        assert!((snap.success_rate - 100.0 / 101.0).abs() < 1e-9);
        assert_eq!(snap.p95_duration_ms, 95.0);
        assert_eq!(snap.avg_fuel, 10.0);
    }
}

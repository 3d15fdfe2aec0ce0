//! The retention sweep as a background task of `taskhost serve`.
//!
//! Every `every` (with jitter, so hosts started together drift apart) the
//! host asks the store for the period's sweep ([`Store::claim_sweep`]): of
//! several hosts sharing one store only the winner sweeps. The sweep itself
//! works in bounded steps (each its own short write transaction), so
//! enqueues and leases interleave with it.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use super::Store;

/// Runs sweeps until `stopped` turns true. Failures are logged and retried
/// next period: a sweep that cannot run costs space, not correctness.
pub async fn run(store: Arc<dyn Store>, every: Duration, mut stopped: watch::Receiver<bool>) {
    // The first sweep comes soon after start (within a tenth to one period),
    // so a host restarted after a long stop catches up without waiting a
    // whole period.
    let mut wait = jittered(every, 0.1, 1.0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = sweep_once(store.as_ref(), every) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        wait = jittered(every, 0.8, 1.2);
    }
}

/// One period: claim, then sweep if this host won the claim.
async fn sweep_once(store: &dyn Store, every: Duration) {
    match store.claim_sweep(every).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim the retention sweep; retrying next period");
            return;
        }
    }
    match store.sweep().await {
        Ok(report) if report.is_empty() => {}
        Ok(report) => tracing::info!(
            jobs = report.jobs,
            idempotency_keys = report.idempotency_keys,
            ticks = report.ticks,
            chains = report.chains,
            batches = report.batches,
            pages_freed = report.pages_freed,
            "retention sweep"
        ),
        Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying next period"),
    }
}

/// `every` times a random factor in `low..high`.
fn jittered(every: Duration, low: f64, high: f64) -> Duration {
    every.mul_f64(rand::rng().random_range(low..high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_its_band() {
        let every = Duration::from_secs(60);
        for _ in 0..1000 {
            let d = jittered(every, 0.8, 1.2);
            assert!(d >= Duration::from_secs(48) && d < Duration::from_secs(72));
        }
    }
}

//! Stopping jobs someone asked to terminate (`Store::terminate`), on
//! whichever host runs them: one watch per host wakes on the store's change
//! signal (which ticks for other processes' writes too), asks the store
//! which of its running jobs carry a request, and stops those runs.

use std::time::Duration;

use super::{Disposition, Workers, lifecycle};
use crate::job::{Job, OutcomeKind, RunReport};
use crate::metrics::JobEvent;
use crate::store::{FailAction, LeaseToken, StoreError};

/// The least time between two questions, so a burst of writes costs a few
/// reads a second, not one per write. Well under the second a request may
/// take to be noticed.
const ASK_GAP: Duration = Duration::from_millis(50);

/// What a terminated run's attempt says.
const TERMINATED: &str = "terminated on request";

impl Workers {
    /// Runs until aborted (at shutdown).
    pub(super) async fn watch_terminations(self: std::sync::Arc<Self>) {
        let mut changes = self.store.changes();
        loop {
            if changes.changed().await.is_err() {
                return;
            }
            let ids: Vec<_> = self
                .running
                .lock()
                .expect("running lock")
                .keys()
                .copied()
                .collect();
            if !ids.is_empty() {
                match self.store.termination_requested(&ids).await {
                    Ok(asked) => {
                        let running = self.running.lock().expect("running lock");
                        for id in asked {
                            if let Some(r) = running.get(&id) {
                                r.stop.notify_one();
                            }
                        }
                    }
                    Err(e) => tracing::warn!("cannot read termination requests: {e}"),
                }
            }
            tokio::time::sleep(ASK_GAP).await;
        }
    }

    /// Records a run stopped by a termination request: the job ends
    /// `cancelled`, never retried.
    pub(super) async fn terminated(
        &self,
        job: &Job,
        token: &LeaseToken,
        ran: Duration,
    ) -> Disposition {
        let report = RunReport::failed(OutcomeKind::Cancelled, TERMINATED, ran);
        match self.store.fail(token, FailAction::Cancel, report).await {
            Ok(_) => {
                lifecycle::cancelled(job, ran);
                crate::metrics::global().job(JobEvent::Cancelled, &job.handler, 1);
                Disposition::Cancelled
            }
            Err(StoreError::LeaseLost(_)) => {
                tracing::warn!(job = %job.id, "lease lost before the termination was recorded");
                crate::metrics::global().lease_lost();
                Disposition::LeaseLost
            }
            Err(e) => {
                tracing::error!(job = %job.id, "cannot record the termination: {e}");
                Disposition::LeaseLost
            }
        }
    }
}

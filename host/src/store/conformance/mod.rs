//! The store conformance suite: one set of tests written against the
//! [`Store`] trait only, so every backend is held to the same behaviour.
//!
//! Each test is a `pub async fn(&dyn Store, &ManualClock)` (or takes a
//! [`Backend`] when it must reopen the store). A backend runs them all with
//! [`conformance_suite!`](crate::store::conformance::conformance_suite):
//!
//! ```text
//! crate::store::conformance::conformance_suite!(MyBackend::new().await);
//! ```
//!
//! Time only moves through the [`ManualClock`]; no test sleeps.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::ManualClock;
use crate::job::{NewJob, RunReport};
use crate::store::{Lease, LeaseRequest, Store};

mod admin;
mod batches;
mod chains;
mod leasing;
mod limits;
mod listing;
mod plugins;
mod retry;
mod schedules;
mod terminate;
mod unique;

pub use admin::*;
pub use batches::*;
pub use chains::*;
pub use leasing::*;
pub use limits::*;
pub use listing::*;
pub use plugins::*;
pub use retry::*;
pub use schedules::*;
pub use terminate::*;
pub use unique::*;

/// Opens stores for the suite.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the store on this backend's data with `clock` (default
    /// [`StoreConfig`](crate::store::StoreConfig)). Every call on the same
    /// value must reach the same data, so reopening can be tested.
    async fn open(&self, clock: Arc<ManualClock>) -> Arc<dyn Store>;
}

/// Expands to one `#[tokio::test]` per conformance test, each on a fresh
/// backend made by evaluating the given expression.
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::store::conformance::conformance_suite!(@store $backend;
            strict_priority_order, queue_isolation, handler_filter, delayed_jobs_not_leased_early,
            lease_renew_keeps_job, expired_lease_counts_attempt_then_dlq,
            stale_token_gets_lease_lost, concurrent_leases_are_disjoint, complete_records_run,
            fail_retries_then_buries, release_does_not_count_attempt, invalid_requests_are_refused,
            idempotency_key_within_ttl_only, idempotency_key_outlives_job,
            idempotency_key_scoped_by_handler,
            dlq_retry_gives_fresh_budget, dlq_retry_all_and_purge, cancel_waiting_jobs,
            pause_and_resume, purge_queue_removes_waiting_only, retention_removes_only_expired,
            pagination_stable_under_inserts, list_filters, counts_by_queue_priority_status,
            batch_enqueue_is_atomic, changes_signal_ticks, job_ends_signal_wakes_waiters, hosts_are_seen_and_forgotten, schedule_tick_claimed_once,
            schedules_crud, active_schedule_job_follows_latest_tick,
            attempt_records_plugin_digest, plugin_releases_deploy_and_roll_back,
            terminate_cancels_a_waiting_job, terminate_requests_a_running_job_to_stop,
            terminated_jobs_are_never_retried, cancel_action_needs_cancelled_outcome,
            unique_key_refuses_while_active, unique_key_is_free_after_the_job_ends,
            chain_runs_steps_in_order_with_results, dead_step_fails_chain_and_dlq_retry_resumes,
            bad_chains_are_refused, finished_chains_are_swept_failed_ones_kept,
            reaped_and_cancelled_steps_end_the_chain,
            limits_keep_priority_and_touch_only_their_handler,
            batch_counts_jobs_and_fires_callbacks_once,
            dead_batch_job_fires_on_complete_only_until_retried,
            reaped_cancelled_and_purged_batch_jobs_count, bad_batches_are_refused,
            finished_batches_are_swept_ones_with_dead_jobs_kept,
            own_retry_policy_travels_with_the_job, batch_key_answers_the_first_start);
        $crate::store::conformance::conformance_suite!(@backend $backend; survives_reopen,
            concurrency_holds_across_hosts, rate_spaces_starts_across_hosts);
    };
    (@store $backend:expr; $($name:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let backend = $backend;
            let clock = ::std::sync::Arc::new($crate::clock::ManualClock::new(
                $crate::store::conformance::start(),
            ));
            let store = $crate::store::conformance::Backend::open(&backend, clock.clone()).await;
            $crate::store::conformance::$name(&*store, &clock).await;
            store.close().await.expect("close store");
        }
    )+};
    (@backend $backend:expr; $($name:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let backend = $backend;
            $crate::store::conformance::$name(&backend).await;
        }
    )+};
}
pub(crate) use conformance_suite;

/// Where every test's clock starts: a whole second, so stored times
/// round-trip exactly.
pub fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).expect("valid start time")
}

/// A span of whole seconds as a clock step.
pub(crate) fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// The lease every test worker asks for.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// A job for `handler` on the default queue.
pub(crate) fn job(handler: &str) -> NewJob {
    NewJob::new(handler, json!({ "for": handler }))
}

/// A lease request for `worker` on the given queues and handlers.
pub(crate) fn request(worker: &str, queues: &[&str], handlers: &[&str], max: u32) -> LeaseRequest {
    LeaseRequest {
        queues: queues.iter().map(|q| q.to_string()).collect(),
        handlers: handlers.iter().map(|h| h.to_string()).collect(),
        worker: worker.to_owned(),
        lease_for: LEASE,
        max,
        limits: Vec::new(),
    }
}

/// Leases up to `max` jobs of the default queue for the given handlers.
pub(crate) async fn lease(store: &dyn Store, handlers: &[&str], max: u32) -> Vec<Lease> {
    store
        .lease(&request("worker-1", &["default"], handlers, max))
        .await
        .expect("lease")
}

/// Leases exactly one job of `handler` on the default queue.
pub(crate) async fn lease_one(store: &dyn Store, handler: &str) -> Lease {
    let mut leases = lease(store, &[handler], 1).await;
    assert_eq!(leases.len(), 1, "expected one leasable {handler} job");
    leases.remove(0)
}

/// Completes a lease with a trivial result.
pub(crate) async fn finish(store: &dyn Store, lease: &Lease) {
    store
        .complete(
            &lease.token,
            json!("ok"),
            RunReport::succeeded(Duration::from_millis(5)),
        )
        .await
        .expect("complete");
}

//! Conformance: terminating jobs — a waiting job is cancelled at once, a
//! running one carries a request its host sees and ends `cancelled`, and a
//! terminated job is never run again.

use std::time::Duration;

use super::{job, lease, lease_one, secs};
use crate::clock::{Clock, ManualClock};
use crate::job::{JobStatus, OutcomeKind, RunReport};
use crate::store::{FailAction, Store, StoreError, Termination};

fn stopped() -> RunReport {
    RunReport::failed(
        OutcomeKind::Cancelled,
        "terminated on request",
        Duration::from_millis(3),
    )
}

/// A job that has not started is cancelled by a terminate, like `cancel`.
pub async fn terminate_cancels_a_waiting_job(store: &dyn Store, clock: &ManualClock) {
    let pending = store.enqueue(job("t")).await.unwrap().id;
    let later = store
        .enqueue(job("t").run_at(clock.now() + secs(60)))
        .await
        .unwrap()
        .id;
    for id in [pending, later] {
        assert_eq!(store.terminate(id).await.unwrap(), Termination::Cancelled);
        let job = store.get(id).await.unwrap();
        assert_eq!(
            (job.status, job.finished_at),
            (JobStatus::Cancelled, Some(clock.now()))
        );
    }
    clock.advance(secs(61));
    assert!(lease(store, &["t"], 10).await.is_empty(), "never runs");
}

/// A running job gets a request (ticking the change signal) that
/// `termination_requested` answers for it alone; the holder's cancel ends
/// it `cancelled` with a `cancelled` attempt; then it is final.
pub async fn terminate_requests_a_running_job_to_stop(store: &dyn Store, _clock: &ManualClock) {
    let id = store.enqueue(job("t")).await.unwrap().id;
    let other = store.enqueue(job("t")).await.unwrap().id;
    let held = lease(store, &["t"], 2).await;
    assert_eq!(held.len(), 2);
    let held = held.into_iter().find(|l| l.job.id == id).unwrap();
    assert!(
        store
            .termination_requested(&[id, other])
            .await
            .unwrap()
            .is_empty(),
        "nothing asked yet"
    );
    let mut changes = store.changes();
    changes.borrow_and_update();
    assert_eq!(store.terminate(id).await.unwrap(), Termination::Requested);
    assert!(changes.has_changed().unwrap(), "a request ticks changes");
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Running);
    assert_eq!(
        store.termination_requested(&[id, other]).await.unwrap(),
        vec![id]
    );
    let ended = store
        .fail(&held.token, FailAction::Cancel, stopped())
        .await
        .unwrap();
    assert_eq!(ended, JobStatus::Cancelled);
    let job = store.get(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(job.finished_at.is_some() && job.lease.is_none());
    assert_eq!(job.attempts.len(), 1);
    assert_eq!(job.attempts[0].outcome, OutcomeKind::Cancelled);
    assert!(
        store.termination_requested(&[id]).await.unwrap().is_empty(),
        "only running jobs are answered"
    );
    let again = store.terminate(id).await.unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::WrongState {
                status: JobStatus::Cancelled,
                ..
            }
        ),
        "{again}"
    );
    let missing = store.terminate(crate::job::JobId::generate()).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

/// A job with a request is not run again: a retry its holder asks for
/// ends it `cancelled`, and so does its lease expiring (its host died).
pub async fn terminated_jobs_are_never_retried(store: &dyn Store, clock: &ManualClock) {
    let retried = store.enqueue(job("t").max_attempts(5)).await.unwrap().id;
    let held = lease_one(store, "t").await;
    store.terminate(retried).await.unwrap();
    let failed = RunReport::failed(OutcomeKind::Retryable, "flaky", Duration::from_millis(1));
    let at = clock.now();
    let ended = store
        .fail(&held.token, FailAction::Retry { at }, failed)
        .await
        .unwrap();
    assert_eq!(ended, JobStatus::Cancelled);
    assert_eq!(
        store.get(retried).await.unwrap().status,
        JobStatus::Cancelled
    );

    let orphan = store.enqueue(job("t").max_attempts(5)).await.unwrap().id;
    lease_one(store, "t").await;
    store.terminate(orphan).await.unwrap();
    clock.advance(secs(31));
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    let job = store.get(orphan).await.unwrap();
    assert_eq!(
        (job.status, job.finished_at),
        (JobStatus::Cancelled, Some(clock.now()))
    );
    assert!(
        lease(store, &["t"], 10).await.is_empty(),
        "never runs again"
    );
}

/// The `cancelled` outcome and the cancel action go together: either
/// alone is refused and records nothing.
pub async fn cancel_action_needs_cancelled_outcome(store: &dyn Store, _clock: &ManualClock) {
    let id = store.enqueue(job("t")).await.unwrap().id;
    let held = lease_one(store, "t").await;
    let wrong = RunReport::failed(OutcomeKind::Retryable, "x", Duration::ZERO);
    let err = store
        .fail(&held.token, FailAction::Cancel, wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = store
        .fail(&held.token, FailAction::Dead, stopped())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let job = store.get(id).await.unwrap();
    assert_eq!((job.status, job.attempts.len()), (JobStatus::Running, 0));
}

//! Conformance: leasing order and filters, lease life (renew, expiry,
//! fencing), and how runs end (complete, fail, release).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::{LEASE, finish, job, lease, lease_one, request, secs};
use crate::clock::{Clock, ManualClock};
use crate::job::{JobStatus, OutcomeKind, Priority, RunReport};
use crate::store::{FailAction, LeaseToken, Store, StoreError};

/// Strict priority first, then oldest run-at, both one at a time and in one batch.
pub async fn strict_priority_order(store: &dyn Store, clock: &ManualClock) {
    let now = clock.now();
    let plan = [
        ("low", Priority::Low, 50),
        ("normal-new", Priority::Normal, 10),
        ("critical", Priority::Critical, 1),
        ("normal-old", Priority::Normal, 20),
        ("high", Priority::High, 5),
    ];
    let expected = ["critical", "high", "normal-old", "normal-new", "low"];
    for batch in [false, true] {
        for (handler, priority, age) in plan {
            let new = job(handler).priority(priority).run_at(now - secs(age));
            store.enqueue(new).await.unwrap();
        }
        let handlers: Vec<&str> = plan.iter().map(|p| p.0).collect();
        let leased = if batch {
            lease(store, &handlers, 10).await
        } else {
            let mut one_by_one = Vec::new();
            for _ in 0..plan.len() {
                one_by_one.extend(lease(store, &handlers, 1).await);
            }
            one_by_one
        };
        let order: Vec<&str> = leased.iter().map(|l| l.job.handler.as_str()).collect();
        assert_eq!(order, expected, "leasing order (batch: {batch})");
        for l in &leased {
            finish(store, l).await;
        }
    }
}

/// A worker only gets jobs of the queues it asked for.
pub async fn queue_isolation(store: &dyn Store, _clock: &ManualClock) {
    let emails = store.enqueue(job("send").queue("emails")).await.unwrap().id;
    let payments = store
        .enqueue(job("send").queue("payments"))
        .await
        .unwrap()
        .id;
    let got = store
        .lease(&request("w", &["emails"], &["send"], 10))
        .await
        .unwrap();
    assert_eq!(got.iter().map(|l| l.job.id).collect::<Vec<_>>(), [emails]);
    let none = store
        .lease(&request("w", &["other"], &["send"], 10))
        .await
        .unwrap();
    assert!(none.is_empty(), "a queue with no jobs leases nothing");
    let got = store
        .lease(&request("w", &["emails", "payments"], &["send"], 10))
        .await
        .unwrap();
    assert_eq!(got.iter().map(|l| l.job.id).collect::<Vec<_>>(), [payments]);
}

/// A worker only gets jobs of handlers it has loaded.
pub async fn handler_filter(store: &dyn Store, _clock: &ManualClock) {
    let unknown = store
        .enqueue(job("not-loaded").priority(Priority::Critical))
        .await
        .unwrap()
        .id;
    let known = store.enqueue(job("loaded")).await.unwrap().id;
    let got = lease(store, &["loaded"], 10).await;
    assert_eq!(got.iter().map(|l| l.job.id).collect::<Vec<_>>(), [known]);
    assert_eq!(store.get(unknown).await.unwrap().status, JobStatus::Pending);
}

/// A job with a future run-at is `scheduled`, not leased before its time,
/// announced by `next_due_at`, and `pending` once due.
pub async fn delayed_jobs_not_leased_early(store: &dyn Store, clock: &ManualClock) {
    let run_at = clock.now() + secs(60);
    let id = store.enqueue(job("later").run_at(run_at)).await.unwrap().id;
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Scheduled);
    assert!(lease(store, &["later"], 10).await.is_empty());
    let (queues, handlers) = (vec!["default".to_owned()], vec!["later".to_owned()]);
    assert_eq!(
        store.next_due_at(&queues, &handlers).await.unwrap(),
        Some(run_at)
    );
    clock.advance(secs(59));
    assert!(lease(store, &["later"], 10).await.is_empty());
    clock.advance(secs(1));
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Pending);
    assert_eq!(lease_one(store, "later").await.job.id, id);
}

/// Renewing moves the expiry, so a renewed job is neither reaped nor re-leased.
pub async fn lease_renew_keeps_job(store: &dyn Store, clock: &ManualClock) {
    store.enqueue(job("long")).await.unwrap();
    let held = lease_one(store, "long").await;
    assert_eq!(held.expires_at, clock.now() + secs(30));
    clock.advance(secs(20));
    let expires = store.renew(&held.token, LEASE).await.unwrap();
    assert_eq!(expires, clock.now() + secs(30));
    clock.advance(secs(20));
    assert_eq!(store.reap_expired().await.unwrap(), 0);
    assert!(lease(store, &["long"], 10).await.is_empty());
    let job = store.get(held.job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.lease.map(|l| l.expires_at), Some(expires));
    finish(store, &held).await;
}

/// An expired lease returns the job with the run counted, records a
/// `lease-expired` attempt, and after the last attempt buries the job.
pub async fn expired_lease_counts_attempt_then_dlq(store: &dyn Store, clock: &ManualClock) {
    let id = store
        .enqueue(job("crashy").max_attempts(2))
        .await
        .unwrap()
        .id;
    let first = lease_one(store, "crashy").await;
    assert_eq!(first.job.attempt, 1);
    clock.advance(secs(31));
    let second = store
        .lease(&request("worker-2", &["default"], &["crashy"], 1))
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "expired job is leasable again");
    assert_eq!(second[0].job.attempt, 2);
    let history = &second[0].job.attempts;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, OutcomeKind::LeaseExpired);
    assert_eq!(
        (history[0].attempt, history[0].host.as_str()),
        (1, "worker-1")
    );
    clock.advance(secs(31));
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    let dead = store.get(id).await.unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!((dead.attempt, dead.attempts.len()), (2, 2));
    assert_eq!(dead.finished_at, Some(clock.now()));
    assert!(dead.lease.is_none());
    assert!(lease(store, &["crashy"], 10).await.is_empty());
    let dlq = store.dlq_list(None, None, 10).await.unwrap();
    assert_eq!(dlq.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [id]);
}

/// A holder whose lease expired and was re-leased is refused everything with
/// `LeaseLost`, and nothing it sends is recorded.
pub async fn stale_token_gets_lease_lost(store: &dyn Store, clock: &ManualClock) {
    let id = store.enqueue(job("slow")).await.unwrap().id;
    let stale = lease_one(store, "slow").await.token;
    clock.advance(secs(31));
    let current = lease_one(store, "slow").await.token;
    assert_ne!(stale, current);
    let report = || RunReport::succeeded(Duration::from_secs(1));
    let failed = || RunReport::failed(OutcomeKind::Retryable, "late", Duration::from_secs(1));
    let lost = |r: Result<(), StoreError>| {
        assert!(
            matches!(r, Err(StoreError::LeaseLost(j)) if j == id),
            "{r:?}"
        )
    };
    lost(store.complete(&stale, json!("late"), report()).await);
    lost(
        store
            .fail(&stale, FailAction::Dead, failed())
            .await
            .map(drop),
    );
    lost(store.renew(&stale, LEASE).await.map(drop));
    lost(store.release(&stale).await);
    let forged = LeaseToken {
        job: id,
        fence: current.fence.wrapping_add(1),
    };
    lost(store.complete(&forged, json!("forged"), report()).await);
    let job = store.get(id).await.unwrap();
    assert_eq!(
        (job.status, job.result.clone(), job.attempts.len()),
        (JobStatus::Running, None, 1)
    );
    store
        .complete(&current, json!("real"), report())
        .await
        .unwrap();
    lost(store.complete(&current, json!("twice"), report()).await);
    assert_eq!(store.get(id).await.unwrap().result, Some(json!("real")));
    let missing = LeaseToken::generate(crate::job::JobId::generate());
    let err = store
        .complete(&missing, json!(1), report())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(j) if j == missing.job),
        "{err:?}"
    );
}

/// Workers leasing at the same time never get the same job.
pub async fn concurrent_leases_are_disjoint(store: &dyn Store, _clock: &ManualClock) {
    let jobs = (0..200).map(|_| job("race")).collect();
    store.enqueue_batch(jobs).await.unwrap();
    let drain = |worker: &'static str| async move {
        let mut ids = Vec::new();
        loop {
            let got = store
                .lease(&request(worker, &["default"], &["race"], 7))
                .await
                .unwrap();
            if got.is_empty() {
                return ids;
            }
            ids.extend(got.into_iter().map(|l| l.job.id));
        }
    };
    let (a, b, c, d) = tokio::join!(drain("a"), drain("b"), drain("c"), drain("d"));
    let all: Vec<_> = [a, b, c, d].concat();
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (200, 200));
}

/// Completing records result, log, finish time and the attempt.
pub async fn complete_records_run(store: &dyn Store, clock: &ManualClock) {
    let started = clock.now();
    store.enqueue(job("work")).await.unwrap();
    let held = lease_one(store, "work").await;
    assert_eq!(
        (held.job.status, held.job.started_at),
        (JobStatus::Running, Some(started))
    );
    clock.advance(secs(2));
    let report = RunReport::succeeded(Duration::from_millis(1500))
        .with_fuel(42)
        .with_log("hello\n");
    store
        .complete(&held.token, json!({"sum": 3}), report)
        .await
        .unwrap();
    let done = store.get(held.job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"sum": 3})));
    assert_eq!(done.log.as_deref(), Some("hello\n"));
    assert_eq!(done.finished_at, Some(clock.now()));
    assert!(done.lease.is_none());
    let a = &done.attempts[..];
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].attempt, a[0].at, a[0].host.as_str()),
        (1, started, "worker-1")
    );
    assert_eq!(
        (a[0].outcome, a[0].duration_ms, a[0].fuel),
        (OutcomeKind::Succeeded, 1500, Some(42))
    );
}

/// A retried job waits for its time; a job out of attempts goes dead even
/// when a retry was asked; `Dead` buries at once.
pub async fn fail_retries_then_buries(store: &dyn Store, clock: &ManualClock) {
    let boom = || RunReport::failed(OutcomeKind::Retryable, "boom", Duration::from_millis(3));
    let id = store
        .enqueue(job("flaky").max_attempts(2))
        .await
        .unwrap()
        .id;
    let held = lease_one(store, "flaky").await;
    let retry = FailAction::Retry {
        at: clock.now() + secs(10),
    };
    assert_eq!(
        store.fail(&held.token, retry, boom()).await.unwrap(),
        JobStatus::Retrying
    );
    let waiting = store.get(id).await.unwrap();
    assert_eq!(
        (waiting.status, waiting.run_at),
        (JobStatus::Retrying, clock.now() + secs(10))
    );
    assert_eq!(waiting.attempts[0].message.as_deref(), Some("boom"));
    assert!(lease(store, &["flaky"], 1).await.is_empty());
    clock.advance(secs(10));
    let held = lease_one(store, "flaky").await;
    assert_eq!(held.job.attempt, 2);
    let retry = FailAction::Retry { at: clock.now() };
    assert_eq!(
        store.fail(&held.token, retry, boom()).await.unwrap(),
        JobStatus::Dead
    );
    assert_eq!(store.get(id).await.unwrap().attempts.len(), 2);

    let id = store.enqueue(job("fatal")).await.unwrap().id;
    let held = lease_one(store, "fatal").await;
    let err = store
        .fail(
            &held.token,
            FailAction::Dead,
            RunReport::succeeded(Duration::ZERO),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    let trap = RunReport::failed(OutcomeKind::Trap, "unreachable", Duration::ZERO);
    assert_eq!(
        store
            .fail(&held.token, FailAction::Dead, trap)
            .await
            .unwrap(),
        JobStatus::Dead
    );
    let dead = store.get(id).await.unwrap();
    assert_eq!(
        (dead.attempt, dead.attempts[0].outcome),
        (1, OutcomeKind::Trap)
    );
}

/// Releasing (graceful shutdown) gives the job back without counting the run.
pub async fn release_does_not_count_attempt(store: &dyn Store, _clock: &ManualClock) {
    let id = store.enqueue(job("interrupted")).await.unwrap().id;
    let held = lease_one(store, "interrupted").await;
    store.release(&held.token).await.unwrap();
    let back = store.get(id).await.unwrap();
    assert_eq!(
        (back.status, back.attempt, back.attempts.len()),
        (JobStatus::Pending, 0, 0)
    );
    assert_eq!(lease_one(store, "interrupted").await.job.attempt, 1);
}

/// Malformed requests are refused with `Invalid` naming the input, and change nothing.
pub async fn invalid_requests_are_refused(store: &dyn Store, _clock: &ManualClock) {
    let err = store
        .enqueue(job("h").queue("no spaces"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("no spaces")),
        "{err}"
    );
    let err = store.enqueue(job("h").max_attempts(0)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = store
        .lease(&request("w", &["default"], &["h"], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("max")),
        "{err}"
    );
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 0);
    let missing = crate::job::JobId::generate();
    let err = store.get(missing).await.unwrap_err();
    assert!(err.to_string().contains(&missing.to_string()), "{err}");
}

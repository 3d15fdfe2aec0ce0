//! Conformance: idempotency keys, the DLQ, cancel, queue controls,
//! retention, the change signal and durability across reopen.

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as TimeDelta;
use serde_json::json;

use super::{Backend, finish, job, lease, lease_one, request, secs, start};
use crate::clock::{Clock, ManualClock};
use crate::job::{JobStatus, OutcomeKind, RunReport};
use crate::store::{FailAction, QueueInfo, Schedule, Store, StoreConfig, StoreError};

pub(crate) fn ttl() -> TimeDelta {
    TimeDelta::from_std(StoreConfig::default().idempotency_ttl).unwrap()
}

fn fatal() -> RunReport {
    RunReport::failed(OutcomeKind::Retryable, "fatal", Duration::ZERO)
}

/// A key seen within its TTL answers the original id; after it, a new job is made.
pub async fn idempotency_key_within_ttl_only(store: &dyn Store, clock: &ManualClock) {
    let first = store
        .enqueue(job("pay").idempotency_key("order-7"))
        .await
        .unwrap();
    assert!(first.created);
    let other_payload = job("pay").idempotency_key("order-7");
    let again = store.enqueue(other_payload.clone()).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    finish(store, &lease_one(store, "pay").await).await;
    let found = |handler: &'static str| store.find_by_idempotency_key(handler, "order-7");
    assert_eq!(found("pay").await.unwrap(), Some(first.id));
    assert_eq!(found("other").await.unwrap(), None, "keys are per handler");
    clock.advance(ttl() - secs(1));
    let late = store.enqueue(other_payload.clone()).await.unwrap();
    assert_eq!(
        (late.id, late.created),
        (first.id, false),
        "job finished, key still live"
    );
    clock.advance(secs(1));
    let fresh = store.enqueue(other_payload).await.unwrap();
    assert!(
        fresh.created && fresh.id != first.id,
        "key expired after its TTL"
    );
    assert_eq!(found("pay").await.unwrap(), Some(fresh.id), "bound anew");
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 2);
}

/// The key keeps answering even after its job was removed.
pub async fn idempotency_key_outlives_job(store: &dyn Store, _clock: &ManualClock) {
    let first = store
        .enqueue(job("once").idempotency_key("k"))
        .await
        .unwrap();
    let held = lease_one(store, "once").await;
    store
        .fail(&held.token, FailAction::Dead, fatal())
        .await
        .unwrap();
    assert_eq!(store.dlq_purge(None).await.unwrap(), 1);
    assert!(matches!(
        store.get(first.id).await,
        Err(StoreError::NotFound(_))
    ));
    let again = store
        .enqueue(job("once").idempotency_key("k"))
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
}

/// A key belongs to its handler: the same key on another handler makes a
/// job of its own, and each handler's repeat answers its own job.
pub async fn idempotency_key_scoped_by_handler(store: &dyn Store, _clock: &ManualClock) {
    let hello = store
        .enqueue(job("hello").idempotency_key("payment-42"))
        .await
        .unwrap();
    let pay = store
        .enqueue(job("pay").idempotency_key("payment-42"))
        .await
        .unwrap();
    assert!(
        hello.created && pay.created,
        "another handler's key did not block"
    );
    assert_ne!(hello.id, pay.id);
    assert_eq!(store.get(pay.id).await.unwrap().handler, "pay");
    let again = store
        .enqueue(job("pay").idempotency_key("payment-42"))
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (pay.id, false));
    // A handler name ending where another begins cannot alias a key.
    let a = store
        .enqueue(job("a:b").idempotency_key("c"))
        .await
        .unwrap();
    let b = store
        .enqueue(job("a").idempotency_key("b:c"))
        .await
        .unwrap();
    assert!(a.created && b.created && a.id != b.id);
}

/// A job retried from the DLQ gets its whole attempt budget again, its
/// attempts numbered on from the runs it had.
pub async fn dlq_retry_gives_fresh_budget(store: &dyn Store, clock: &ManualClock) {
    let id = store
        .enqueue(job("poison").max_attempts(2))
        .await
        .unwrap()
        .id;
    for _ in 0..2 {
        let held = lease_one(store, "poison").await;
        let retry = FailAction::Retry { at: clock.now() };
        store.fail(&held.token, retry, fatal()).await.unwrap();
    }
    assert_eq!(store.get(id).await.unwrap().status, JobStatus::Dead);
    store.dlq_retry(id).await.unwrap();
    let back = store.get(id).await.unwrap();
    assert_eq!(
        (
            back.status,
            back.attempt,
            back.max_attempts,
            back.finished_at
        ),
        (JobStatus::Pending, 2, 4, None),
        "two more runs, numbered 3 and 4"
    );
    assert_eq!(back.attempts.len(), 2, "history is kept");
    let held = lease_one(store, "poison").await;
    assert_eq!(held.job.attempt, 3);
    let retry = FailAction::Retry { at: clock.now() };
    assert_eq!(
        store.fail(&held.token, retry, fatal()).await.unwrap(),
        JobStatus::Retrying
    );
    let held = lease_one(store, "poison").await;
    assert_eq!(held.job.attempt, 4);
    assert_eq!(
        store
            .fail(&held.token, FailAction::Retry { at: clock.now() }, fatal())
            .await
            .unwrap(),
        JobStatus::Dead,
        "the fresh budget is the job's own two runs"
    );
    let numbers: Vec<u32> = store
        .get(id)
        .await
        .unwrap()
        .attempts
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    // A second retry gives two runs again, not four.
    store.dlq_retry(id).await.unwrap();
    let again = store.get(id).await.unwrap();
    assert_eq!((again.attempt, again.max_attempts), (4, 6));
    let held = lease_one(store, "poison").await;
    store
        .fail(&held.token, FailAction::Retry { at: clock.now() }, fatal())
        .await
        .unwrap();
    let err = store.dlq_retry(id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                status: JobStatus::Retrying,
                ..
            }
        ),
        "{err}"
    );
}

/// Retry-all and purge act on dead jobs only, optionally of one queue.
pub async fn dlq_retry_all_and_purge(store: &dyn Store, _clock: &ManualClock) {
    for queue in ["a", "a", "b"] {
        store.enqueue(job("bad").queue(queue)).await.unwrap();
        let held = store
            .lease(&request("w", &[queue], &["bad"], 1))
            .await
            .unwrap();
        store
            .fail(&held[0].token, FailAction::Dead, fatal())
            .await
            .unwrap();
    }
    let alive = store.enqueue(job("bad").queue("a")).await.unwrap().id;
    assert_eq!(store.dlq_retry_all(Some("a")).await.unwrap(), 2);
    assert_eq!(store.dlq_list(None, None, 10).await.unwrap().jobs.len(), 1);
    assert_eq!(store.dlq_retry_all(None).await.unwrap(), 1);
    assert_eq!(store.dlq_retry_all(None).await.unwrap(), 0);
    for held in store
        .lease(&request("w", &["a", "b"], &["bad"], 10))
        .await
        .unwrap()
    {
        store
            .fail(&held.token, FailAction::Dead, fatal())
            .await
            .unwrap();
    }
    assert_eq!(store.dlq_purge(Some("b")).await.unwrap(), 1);
    assert_eq!(store.dlq_purge(None).await.unwrap(), 3);
    assert!(
        store
            .dlq_list(None, None, 10)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    assert!(
        matches!(store.get(alive).await, Err(StoreError::NotFound(_))),
        "alive job was leased and buried too"
    );
}

/// Pending and scheduled jobs can be cancelled; running and finished ones cannot.
pub async fn cancel_waiting_jobs(store: &dyn Store, clock: &ManualClock) {
    let pending = store.enqueue(job("c")).await.unwrap().id;
    let scheduled = store
        .enqueue(job("c").run_at(clock.now() + secs(60)))
        .await
        .unwrap()
        .id;
    store.cancel(pending).await.unwrap();
    store.cancel(scheduled).await.unwrap();
    for id in [pending, scheduled] {
        let job = store.get(id).await.unwrap();
        assert_eq!(
            (job.status, job.finished_at),
            (JobStatus::Cancelled, Some(clock.now()))
        );
    }
    clock.advance(secs(61));
    assert!(
        lease(store, &["c"], 10).await.is_empty(),
        "cancelled jobs never run"
    );
    let running = store.enqueue(job("c")).await.unwrap().id;
    lease_one(store, "c").await;
    let err = store.cancel(running).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                status: JobStatus::Running,
                ..
            }
        ),
        "{err}"
    );
    let err = store.cancel(pending).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                status: JobStatus::Cancelled,
                ..
            }
        ),
        "{err}"
    );
    let missing = crate::job::JobId::generate();
    assert!(matches!(store.cancel(missing).await, Err(StoreError::NotFound(id)) if id == missing));
}

/// A paused queue accepts jobs but leases none until resumed.
pub async fn pause_and_resume(store: &dyn Store, _clock: &ManualClock) {
    let first = store.enqueue(job("p").queue("q")).await.unwrap().id;
    store.pause_queue("q").await.unwrap();
    let paused = QueueInfo {
        name: "q".into(),
        paused: true,
    };
    assert!(store.queues().await.unwrap().contains(&paused));
    let second = store.enqueue(job("p").queue("q")).await.unwrap().id;
    let req = request("w", &["q"], &["p"], 10);
    assert!(store.lease(&req).await.unwrap().is_empty());
    let (queues, handlers) = (vec!["q".to_owned()], vec!["p".to_owned()]);
    assert_eq!(store.next_due_at(&queues, &handlers).await.unwrap(), None);
    store.resume_queue("q").await.unwrap();
    let ids: Vec<_> = store
        .lease(&req)
        .await
        .unwrap()
        .iter()
        .map(|l| l.job.id)
        .collect();
    assert_eq!(ids, [first, second]);
    let err = store.pause_queue("bad name").await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

/// Purging a queue removes its waiting jobs and nothing else.
pub async fn purge_queue_removes_waiting_only(store: &dyn Store, clock: &ManualClock) {
    let running = store.enqueue(job("x").queue("q")).await.unwrap().id;
    store.lease(&request("w", &["q"], &["x"], 1)).await.unwrap();
    store.enqueue(job("x").queue("q")).await.unwrap();
    store
        .enqueue(job("x").queue("q").run_at(clock.now() + secs(60)))
        .await
        .unwrap();
    let other = store.enqueue(job("x").queue("other")).await.unwrap().id;
    assert_eq!(store.purge_queue("q").await.unwrap(), 2);
    assert_eq!(store.get(running).await.unwrap().status, JobStatus::Running);
    assert_eq!(store.get(other).await.unwrap().status, JobStatus::Pending);
    assert_eq!(store.purge_queue("q").await.unwrap(), 0);
}

/// The sweep removes succeeded and cancelled jobs past retention, expired
/// keys and old ticks, and keeps dead, waiting and running jobs.
pub async fn retention_removes_only_expired(store: &dyn Store, clock: &ManualClock) {
    let config = StoreConfig::default();
    let done = store
        .enqueue(job("r").idempotency_key("key"))
        .await
        .unwrap()
        .id;
    finish(store, &lease_one(store, "r").await).await;
    let cancelled = store.enqueue(job("r")).await.unwrap().id;
    store.cancel(cancelled).await.unwrap();
    let dead = store.enqueue(job("r")).await.unwrap().id;
    let held = lease_one(store, "r").await;
    store
        .fail(&held.token, FailAction::Dead, fatal())
        .await
        .unwrap();
    store
        .claim_tick("nightly", clock.now(), job("r").queue("ticks"))
        .await
        .unwrap();
    let running = store.enqueue(job("r")).await.unwrap().id;
    lease_one(store, "r").await;

    clock.advance(TimeDelta::from_std(config.finished_retention).unwrap() - secs(1));
    let report = store.sweep().await.unwrap();
    assert_eq!(
        (report.jobs, report.idempotency_keys, report.ticks),
        (0, 1, 0)
    );
    clock.advance(secs(1));
    assert_eq!(store.sweep().await.unwrap().jobs, 2);
    for gone in [done, cancelled] {
        assert!(matches!(
            store.get(gone).await,
            Err(StoreError::NotFound(_))
        ));
    }
    assert_eq!(store.get(dead).await.unwrap().status, JobStatus::Dead);
    assert_eq!(store.get(running).await.unwrap().status, JobStatus::Running);
    let pending_tick_job = store.list(&Default::default()).await.unwrap();
    assert!(
        pending_tick_job.jobs.iter().any(|j| j.queue == "ticks"),
        "waiting jobs are kept"
    );

    clock.set(start() + TimeDelta::from_std(config.tick_retention).unwrap());
    assert_eq!(store.sweep().await.unwrap().ticks, 1);
    assert_eq!(
        store.sweep().await.unwrap(),
        Default::default(),
        "a second sweep finds nothing"
    );
}

/// The change signal ticks on enqueues, retries, releases and resumes, so
/// workers can wait on it instead of polling.
pub async fn changes_signal_ticks(store: &dyn Store, clock: &ManualClock) {
    let mut changes = store.changes();
    changes.borrow_and_update();
    store.enqueue(job("s")).await.unwrap();
    assert!(changes.has_changed().unwrap(), "enqueue ticks");
    changes.borrow_and_update();
    let held = lease_one(store, "s").await;
    let retry = FailAction::Retry { at: clock.now() };
    store.fail(&held.token, retry, fatal()).await.unwrap();
    assert!(changes.has_changed().unwrap(), "retry ticks");
    changes.borrow_and_update();
    let held = lease_one(store, "s").await;
    store.release(&held.token).await.unwrap();
    assert!(changes.has_changed().unwrap(), "release ticks");
    changes.borrow_and_update();
    store.resume_queue("default").await.unwrap();
    assert!(changes.has_changed().unwrap(), "resume ticks");
}

/// The end signal ticks on every way a job ends (completion, a failure,
/// cancel), and a waiter sleeping on it wakes for the end without a timer.
pub async fn job_ends_signal_wakes_waiters(store: &dyn Store, clock: &ManualClock) {
    let mut ends = store.job_ends();
    ends.borrow_and_update();
    let id = store.enqueue(job("e")).await.unwrap().id;
    let held = lease_one(store, "e").await;
    // The waiter's own deadline is an hour away: within the test's ceiling
    // only the end signal can wake it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    let (ended, ()) = tokio::join!(
        async {
            tokio::time::timeout(
                Duration::from_secs(30),
                crate::store::wait_for_end(store, id, deadline),
            )
            .await
            .expect("woken by the end")
            .unwrap()
        },
        finish(store, &held),
    );
    assert_eq!(ended.status, JobStatus::Succeeded);
    assert!(ends.has_changed().unwrap(), "completion ticks");
    ends.borrow_and_update();
    let dead = store.enqueue(job("f")).await.unwrap().id;
    let held = lease_one(store, "f").await;
    store
        .fail(&held.token, FailAction::Dead, fatal())
        .await
        .unwrap();
    assert!(ends.has_changed().unwrap(), "a failure ticks");
    ends.borrow_and_update();
    let later = store
        .enqueue(job("g").run_at(clock.now() + secs(60)))
        .await
        .unwrap()
        .id;
    store.cancel(later).await.unwrap();
    assert!(ends.has_changed().unwrap(), "cancel ticks");
    assert_eq!(store.get(dead).await.unwrap().status, JobStatus::Dead);
}

/// Hosts are recorded by heartbeat, listed by recency and forgotten on stop.
pub async fn hosts_are_seen_and_forgotten(store: &dyn Store, clock: &ManualClock) {
    let record = |id: &str, queues: &[&str]| crate::store::HostRecord {
        id: id.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        started_at: start(),
        seen_at: clock.now(),
    };
    store.host_seen(&record("a:1", &["default"])).await.unwrap();
    clock.advance(secs(10));
    store
        .host_seen(&record("b:2", &["mail", "default"]))
        .await
        .unwrap();
    let all = store.hosts(start()).await.unwrap();
    assert_eq!(
        all.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["b:2", "a:1"]
    );
    assert_eq!(all[0].queues, ["mail", "default"]);
    let recent = store.hosts(start() + secs(5)).await.unwrap();
    assert_eq!(recent.len(), 1, "a host not seen since is left out");
    store.host_seen(&record("a:1", &["default"])).await.unwrap();
    assert_eq!(
        store.hosts(start() + secs(5)).await.unwrap().len(),
        2,
        "a heartbeat renews"
    );
    store.host_gone("b:2").await.unwrap();
    let left = store.hosts(start()).await.unwrap();
    assert_eq!(
        left.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["a:1"]
    );
}

/// Everything acknowledged is still there after the store is closed and reopened.
pub async fn survives_reopen(backend: &dyn Backend) {
    let clock = Arc::new(ManualClock::new(start()));
    let store = backend.open(clock.clone()).await;
    let keyed = store
        .enqueue(job("d").idempotency_key("stay"))
        .await
        .unwrap()
        .id;
    let done = store.enqueue(job("d")).await.unwrap().id;
    let held = store
        .lease(&request("w", &["default"], &["d"], 10))
        .await
        .unwrap();
    let held = held.into_iter().find(|l| l.job.id == done).unwrap();
    store
        .complete(
            &held.token,
            json!({"kept": true}),
            RunReport::succeeded(Duration::ZERO),
        )
        .await
        .unwrap();
    store.pause_queue("frozen").await.unwrap();
    store
        .upsert_schedule(&Schedule::new("hourly", "0 * * * *", "d"))
        .await
        .unwrap();
    let before = store.get(keyed).await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.enqueue(job("d")).await,
        Err(StoreError::Closed)
    ));
    drop(store);

    let store = backend.open(clock.clone()).await;
    assert_eq!(store.get(keyed).await.unwrap(), before);
    assert_eq!(
        store.get(done).await.unwrap().result,
        Some(json!({"kept": true}))
    );
    let again = store
        .enqueue(job("d").idempotency_key("stay"))
        .await
        .unwrap();
    assert_eq!((again.id, again.created), (keyed, false));
    assert!(store.queues().await.unwrap().contains(&QueueInfo {
        name: "frozen".into(),
        paused: true
    }));
    assert_eq!(
        store.get_schedule("hourly").await.unwrap().spec,
        "0 * * * *"
    );
    store.close().await.unwrap();
}

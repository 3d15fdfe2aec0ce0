//! Conformance: batches — counts that follow the jobs, `on_complete` once
//! every job finished and `on_success` once all succeeded, each exactly
//! once; a dead job's DLQ retry; cancel; retention.

use std::time::Duration;

use serde_json::{Value, json};

use super::{lease, lease_one};
use crate::clock::ManualClock;
use crate::job::{JobId, JobStatus, NewJob, OutcomeKind, RunReport};
use crate::store::batch::{Batch, NewBatch};
use crate::store::{FailAction, Store, StoreError};

/// A batch of `n` items for `handler`, `chunk` jobs a chunk, with both
/// callbacks.
fn batch(handler: &str, n: usize, chunk: usize) -> NewBatch {
    let mut b = NewBatch::new(handler, (0..n).map(|i| json!({ "i": i })).collect());
    b.chunk = chunk;
    b.on_complete = Some(NewJob::new("batch_done", json!({"to": "ops"})));
    b.on_success = Some(NewJob::new("batch_ok", json!({})));
    b
}

fn counts(b: &Batch) -> [u64; 5] {
    [b.pending, b.running, b.succeeded, b.dead, b.cancelled]
}

async fn ok(store: &dyn Store, held: &crate::store::Lease) {
    store
        .complete(&held.token, json!(1), RunReport::succeeded(Duration::ZERO))
        .await
        .unwrap();
}

async fn dead(store: &dyn Store, held: &crate::store::Lease) {
    let report = RunReport::failed(OutcomeKind::Permanent, "no", Duration::ZERO);
    let ended = store
        .fail(&held.token, FailAction::Dead, report)
        .await
        .unwrap();
    assert_eq!(ended, JobStatus::Dead);
}

/// Leases every waiting callback job of `handler`: how many there were.
async fn callbacks(store: &dyn Store, handler: &str) -> Vec<Value> {
    let held = lease(store, &[handler], 10).await;
    for h in &held {
        ok(store, h).await;
    }
    held.into_iter().map(|h| h.job.payload).collect()
}

/// Counts follow the jobs through chunks, leases and ends; each callback
/// is enqueued once, with the batch id in its payload.
pub async fn batch_counts_jobs_and_fires_callbacks_once(store: &dyn Store, _clock: &ManualClock) {
    let started = store.start_batch(batch("item", 5, 2)).await.unwrap();
    let b = started.batch;
    assert_eq!((b.total, b.enqueued), (5, 5));
    assert_eq!(counts(&b), [5, 0, 0, 0, 0]);
    assert_eq!(started.jobs.len(), 5);
    let first = store.get(started.jobs[0]).await.unwrap();
    assert_eq!(first.payload, json!({"i": 0}));
    let on_complete = b.on_complete.clone().unwrap();
    assert!(!on_complete.fired);

    let held = lease(store, &["item"], 3).await;
    assert_eq!(held.len(), 3);
    let b = store.get_batch(b.id).await.unwrap();
    assert_eq!(counts(&b), [2, 3, 0, 0, 0]);
    for h in &held {
        ok(store, h).await;
    }
    let b = store.get_batch(b.id).await.unwrap();
    assert_eq!(counts(&b), [2, 0, 3, 0, 0]);
    assert_eq!(b.percent, 60.0);
    assert!(!b.finished && b.finished_at.is_none());
    assert!(callbacks(store, "batch_done").await.is_empty(), "not yet");

    for h in lease(store, &["item"], 10).await {
        ok(store, &h).await;
    }
    let b = store.get_batch(b.id).await.unwrap();
    assert_eq!(counts(&b), [0, 0, 5, 0, 0]);
    assert!(b.finished && b.finished_at.is_some());
    assert_eq!(b.percent, 100.0);
    assert!(b.on_complete.as_ref().unwrap().fired);
    assert!(b.on_success.as_ref().unwrap().fired);
    let id = b.id.to_string();
    assert_eq!(
        callbacks(store, "batch_done").await,
        [json!({"batch": id, "to": "ops"})]
    );
    assert_eq!(callbacks(store, "batch_ok").await, [json!({"batch": id})]);
    assert_eq!(
        store.get(on_complete.job).await.unwrap().status,
        JobStatus::Succeeded
    );
    // Callback jobs are no members: their ends change nothing.
    assert_eq!(
        counts(&store.get_batch(b.id).await.unwrap()),
        [0, 0, 5, 0, 0]
    );
}

/// A dead job fires `on_complete` but not `on_success`; its DLQ retry
/// makes the batch unfinished again, and its success then fires
/// `on_success` (once) while `on_complete` stays fired and is not repeated.
pub async fn dead_batch_job_fires_on_complete_only_until_retried(
    store: &dyn Store,
    _clock: &ManualClock,
) {
    let mut new = batch("item", 3, 10);
    new.max_attempts = 1;
    let b = store.start_batch(new).await.unwrap().batch;
    let held = lease(store, &["item"], 3).await;
    dead(store, &held[0]).await;
    ok(store, &held[1]).await;
    ok(store, &held[2]).await;
    let done = store.get_batch(b.id).await.unwrap();
    assert_eq!(counts(&done), [0, 0, 2, 1, 0]);
    assert!(done.finished);
    assert!(done.on_complete.as_ref().unwrap().fired);
    assert!(!done.on_success.as_ref().unwrap().fired);
    assert_eq!(callbacks(store, "batch_done").await.len(), 1);
    assert!(callbacks(store, "batch_ok").await.is_empty());

    store.dlq_retry(held[0].job.id).await.unwrap();
    let again = store.get_batch(b.id).await.unwrap();
    assert_eq!(counts(&again), [1, 0, 2, 0, 0]);
    assert!(!again.finished && again.finished_at.is_none());
    ok(store, &lease_one(store, "item").await).await;
    let all = store.get_batch(b.id).await.unwrap();
    assert_eq!(counts(&all), [0, 0, 3, 0, 0]);
    assert!(all.on_success.as_ref().unwrap().fired);
    assert_eq!(callbacks(store, "batch_ok").await.len(), 1);
    assert!(
        callbacks(store, "batch_done").await.is_empty(),
        "on_complete fired once already"
    );
}

/// Reaped last attempts count dead, cancelled and purged jobs count
/// cancelled; cancelling a batch cancels its waiting jobs and asks for its
/// running ones to stop.
pub async fn reaped_cancelled_and_purged_batch_jobs_count(store: &dyn Store, clock: &ManualClock) {
    let mut new = batch("item", 4, 3);
    new.max_attempts = 1;
    new.on_success = None;
    let started = store.start_batch(new).await.unwrap();
    let id = started.batch.id;
    let crashed = lease_one(store, "item").await;
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    assert_eq!(
        store.get(crashed.job.id).await.unwrap().status,
        JobStatus::Dead
    );
    let waiting: Vec<_> = started
        .jobs
        .iter()
        .copied()
        .filter(|j| *j != crashed.job.id)
        .collect();
    store.cancel(waiting[0]).await.unwrap();
    let running = lease_one(store, "item").await;
    let b = store.get_batch(id).await.unwrap();
    assert_eq!(counts(&b), [1, 1, 0, 1, 1]);

    let b = store.cancel_batch(id).await.unwrap();
    assert_eq!(counts(&b), [0, 1, 0, 1, 2], "the running job runs on");
    assert_eq!(
        store
            .termination_requested(&[running.job.id])
            .await
            .unwrap(),
        vec![running.job.id]
    );
    assert!(callbacks(store, "batch_done").await.is_empty());
    let stopped = RunReport::failed(OutcomeKind::Cancelled, "stopped", Duration::ZERO);
    store
        .fail(&running.token, FailAction::Cancel, stopped)
        .await
        .unwrap();
    let b = store.get_batch(id).await.unwrap();
    assert_eq!(counts(&b), [0, 0, 0, 1, 3]);
    assert!(b.finished);
    assert_eq!(callbacks(store, "batch_done").await.len(), 1);

    let purged = store.start_batch(batch("item", 2, 2)).await.unwrap();
    assert_eq!(store.purge_queue("default").await.unwrap(), 2);
    let b = store.get_batch(purged.batch.id).await.unwrap();
    assert_eq!(counts(&b), [0, 0, 0, 0, 2]);
    assert!(b.finished);
    // The callback was enqueued by the purge's own commit, after it.
    assert_eq!(callbacks(store, "batch_done").await.len(), 1);
}

/// Bad batches are refused and write nothing; an unknown batch is not
/// found.
pub async fn bad_batches_are_refused(store: &dyn Store, _clock: &ManualClock) {
    let mut cases = vec![
        NewBatch::new("item", vec![]),
        NewBatch::new("", vec![json!(1)]),
        NewBatch::new("item", vec![json!(1); crate::store::batch::MAX_JOBS + 1]),
    ];
    let mut zero_chunk = NewBatch::new("item", vec![json!(1)]);
    zero_chunk.chunk = 0;
    cases.push(zero_chunk);
    let mut bad_callback = NewBatch::new("item", vec![json!(1)]);
    bad_callback.on_success = Some(NewJob::new("cb", json!({"batch": 1})));
    cases.push(bad_callback);
    let mut keyed_callback = NewBatch::new("item", vec![json!(1)]);
    keyed_callback.on_complete = Some(NewJob::new("cb", json!({})).idempotency_key("k"));
    cases.push(keyed_callback);
    for new in cases {
        let err = store.start_batch(new).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 0);
    let missing = crate::job::JobId::generate();
    assert!(matches!(
        store.get_batch(missing).await,
        Err(StoreError::BatchNotFound(_))
    ));
    assert!(matches!(
        store.cancel_batch(missing).await,
        Err(StoreError::BatchNotFound(_))
    ));
}

/// Finished batches go with the jobs' retention; one with a dead job stays
/// while that job is in the DLQ (a retry may still finish it), and goes
/// once it was purged.
pub async fn finished_batches_are_swept_ones_with_dead_jobs_kept(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let done = store.start_batch(batch("one", 1, 1)).await.unwrap().batch;
    ok(store, &lease_one(store, "one").await).await;
    let mut new = batch("two", 1, 1);
    new.max_attempts = 1;
    let failed = store.start_batch(new).await.unwrap().batch;
    dead(store, &lease_one(store, "two").await).await;
    assert_eq!(store.sweep().await.unwrap().batches, 0, "within retention");
    clock.advance(chrono::Duration::days(8));
    assert_eq!(store.sweep().await.unwrap().batches, 1);
    assert!(matches!(
        store.get_batch(done.id).await,
        Err(StoreError::BatchNotFound(_))
    ));
    assert_eq!(store.get_batch(failed.id).await.unwrap().dead, 1);
    assert_eq!(store.dlq_purge(None).await.unwrap(), 1);
    assert_eq!(store.sweep().await.unwrap().batches, 1);
    assert!(matches!(
        store.get_batch(failed.id).await,
        Err(StoreError::BatchNotFound(_))
    ));
}

/// Five items of `keyed`, two a chunk, under idempotency key `k-1`.
pub(crate) fn keyed_batch() -> NewBatch {
    let mut b = NewBatch::new("keyed", (0..5).map(|i| json!({ "i": i })).collect());
    b.chunk = 2;
    b.idempotency_key = Some("k-1".into());
    b.on_complete = Some(NewJob::new("batch_done", json!({})));
    b
}

/// Within its TTL a key answers the batch its first start made, writing
/// nothing; with other items it is refused; keys are per handler; after
/// the TTL the key starts a new batch.
pub async fn batch_key_answers_the_first_start(store: &dyn Store, clock: &ManualClock) {
    let first = store.start_batch(keyed_batch()).await.unwrap();
    assert!(first.created);
    let again = store.start_batch(keyed_batch()).await.unwrap();
    assert!(!again.created);
    assert_eq!((again.batch.id, &again.jobs), (first.batch.id, &first.jobs));
    assert_eq!((again.batch.total, again.batch.enqueued), (5, 5));
    assert_eq!(again.batch.on_complete, first.batch.on_complete);
    let held = lease(store, &["keyed"], 20).await;
    assert_eq!(held.len(), 5, "the repeat wrote no job");
    for h in &held {
        ok(store, h).await;
    }

    let mut other = keyed_batch();
    other.items.push(json!({"i": 5}));
    let err = store.start_batch(other).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("k-1") && m.contains(&first.batch.id.to_string())),
        "{err}"
    );
    let mut elsewhere = keyed_batch();
    elsewhere.handler = "keyed_too".into();
    assert!(
        store.start_batch(elsewhere).await.unwrap().created,
        "keys are per handler"
    );

    clock.advance(super::admin::ttl());
    let later = store.start_batch(keyed_batch()).await.unwrap();
    assert!(
        later.created && later.batch.id != first.batch.id,
        "the key expired"
    );
}

/// Given the first chunk of [`keyed_batch`] written under `id` by a start
/// that died before the next: a repeat of the start under its key writes
/// the other three, and the five run once each, in item order.
pub(crate) async fn resumed_batch_writes_only_what_is_missing(store: &dyn Store, id: JobId) {
    let partial = store.get_batch(id).await.unwrap();
    assert_eq!(
        (partial.total, partial.enqueued, partial.finished),
        (5, 2, false)
    );
    let resumed = store.start_batch(keyed_batch()).await.unwrap();
    assert!(!resumed.created);
    assert_eq!(resumed.batch.id, id);
    assert_eq!((resumed.batch.enqueued, resumed.batch.pending), (5, 5));
    let ids: Vec<JobId> = (0..5).map(|i| JobId::nth_of(id, i)).collect();
    assert_eq!(resumed.jobs, ids);
    let held = lease(store, &["keyed"], 20).await;
    let items: Vec<Value> = held.iter().map(|h| h.job.payload["i"].clone()).collect();
    assert_eq!(items, (0..5).map(|i| json!(i)).collect::<Vec<_>>());
    for h in &held {
        ok(store, h).await;
    }
    let done = store.get_batch(id).await.unwrap();
    let fired = done.on_complete.as_ref().is_some_and(|c| c.fired);
    assert!(done.finished && fired, "{done:?}");
    assert_eq!(
        store
            .start_batch(keyed_batch())
            .await
            .unwrap()
            .batch
            .enqueued,
        5
    );
}

/// Given the first chunk of [`keyed_batch`] written under `id` by a start
/// that died before the next: cancelling it closes it at those two jobs,
/// so it finishes (its `on_complete` fires) and a repeat of the start
/// under its key writes nothing more.
pub(crate) async fn cancelled_partial_batch_is_closed(store: &dyn Store, id: JobId) {
    let cancelled = store.cancel_batch(id).await.unwrap();
    assert_eq!(
        (cancelled.total, cancelled.enqueued, cancelled.cancelled),
        (2, 2, 2)
    );
    let fired = cancelled.on_complete.as_ref().is_some_and(|c| c.fired);
    assert!(cancelled.finished && fired, "{cancelled:?}");
    let again = store.start_batch(keyed_batch()).await.unwrap();
    assert!(!again.created);
    assert_eq!((again.batch.id, again.batch.enqueued), (id, 2));
    assert!(
        lease(store, &["keyed"], 20).await.is_empty(),
        "nothing of the cancelled batch runs"
    );
}

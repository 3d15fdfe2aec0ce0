//! Conformance: chains — each step enqueued when its predecessor succeeds,
//! with the result under `previous`; a dead step fails the chain (later
//! steps never enqueued) and its DLQ retry resumes it.

use std::time::Duration;

use serde_json::json;

use super::lease_one;
use crate::clock::ManualClock;
use crate::job::{JobStatus, NewJob, OutcomeKind, RunReport};
use crate::store::chain::ChainStatus;
use crate::store::{FailAction, Store, StoreError};

fn steps() -> Vec<NewJob> {
    vec![
        NewJob::new("validate_order", json!({"order": "o-1"})),
        NewJob::new("process_payment", json!({})).max_attempts(1),
        NewJob::new("send_confirmation", json!({"channel": "email"})),
    ]
}

async fn succeed(store: &dyn Store, handler: &str, result: serde_json::Value) -> NewJob {
    let held = lease_one(store, handler).await;
    let payload = held.job.payload.clone();
    store
        .complete(&held.token, result, RunReport::succeeded(Duration::ZERO))
        .await
        .unwrap();
    NewJob::new(handler, payload)
}

/// Results flow in order; the chain ends `succeeded`.
pub async fn chain_runs_steps_in_order_with_results(store: &dyn Store, _clock: &ManualClock) {
    let chain = store.enqueue_chain(steps()).await.unwrap();
    assert_eq!(chain.status, ChainStatus::Running);
    let statuses: Vec<_> = chain.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["pending", "waiting", "waiting"]);
    assert!(
        super::lease(store, &["process_payment", "send_confirmation"], 10)
            .await
            .is_empty(),
        "later steps wait for their turn"
    );
    let first = succeed(store, "validate_order", json!({"valid": true})).await;
    assert_eq!(first.payload, json!({"order": "o-1"}));
    let second = succeed(store, "process_payment", json!({"paid": 42})).await;
    assert_eq!(second.payload, json!({"previous": {"valid": true}}));
    let third = succeed(store, "send_confirmation", json!("sent")).await;
    assert_eq!(
        third.payload,
        json!({"previous": {"paid": 42}, "channel": "email"})
    );
    let done = store.get_chain(chain.id).await.unwrap();
    assert_eq!(done.status, ChainStatus::Succeeded);
    assert!(done.finished_at.is_some());
    assert!(done.steps.iter().all(|s| s.status == "succeeded"));
    let job = store.get(done.steps[2].job).await.unwrap();
    assert_eq!(job.result, Some(json!("sent")));
}

/// A dead step fails the chain and later steps never run; retrying it
/// from the DLQ resumes the chain to its end.
pub async fn dead_step_fails_chain_and_dlq_retry_resumes(store: &dyn Store, _clock: &ManualClock) {
    let chain = store.enqueue_chain(steps()).await.unwrap();
    succeed(store, "validate_order", json!(1)).await;
    let held = lease_one(store, "process_payment").await;
    let declined = RunReport::failed(OutcomeKind::Permanent, "card declined", Duration::ZERO);
    let ended = store
        .fail(&held.token, FailAction::Dead, declined)
        .await
        .unwrap();
    assert_eq!(ended, JobStatus::Dead);
    let failed = store.get_chain(chain.id).await.unwrap();
    assert_eq!(failed.status, ChainStatus::Failed);
    let statuses: Vec<_> = failed.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["succeeded", "dead", "cancelled"]);
    assert!(
        super::lease(store, &["send_confirmation"], 10)
            .await
            .is_empty()
    );

    store.dlq_retry(failed.steps[1].job).await.unwrap();
    assert_eq!(
        store.get_chain(chain.id).await.unwrap().status,
        ChainStatus::Running
    );
    let retried = succeed(store, "process_payment", json!(2)).await;
    assert_eq!(retried.payload, json!({"previous": 1}));
    let last = succeed(store, "send_confirmation", json!(3)).await;
    assert_eq!(last.payload, json!({"previous": 2, "channel": "email"}));
    assert_eq!(
        store.get_chain(chain.id).await.unwrap().status,
        ChainStatus::Succeeded
    );
}

/// Succeeded chains go with the jobs' retention; failed ones stay (a DLQ
/// retry may resume them).
pub async fn finished_chains_are_swept_failed_ones_kept(store: &dyn Store, clock: &ManualClock) {
    let done = store
        .enqueue_chain(vec![NewJob::new("one", json!({}))])
        .await
        .unwrap();
    succeed(store, "one", json!(1)).await;
    let failed = store
        .enqueue_chain(vec![NewJob::new("two", json!({})).max_attempts(1)])
        .await
        .unwrap();
    let held = lease_one(store, "two").await;
    let fatal = RunReport::failed(OutcomeKind::Permanent, "no", Duration::ZERO);
    store
        .fail(&held.token, FailAction::Dead, fatal)
        .await
        .unwrap();
    let young = store.sweep().await.unwrap();
    assert_eq!(young.chains, 0, "within retention");
    clock.advance(chrono::Duration::days(8));
    let report = store.sweep().await.unwrap();
    assert_eq!(report.chains, 1);
    assert!(matches!(
        store.get_chain(done.id).await,
        Err(StoreError::ChainNotFound(_))
    ));
    assert_eq!(
        store.get_chain(failed.id).await.unwrap().status,
        ChainStatus::Failed
    );
}

/// A step whose host died for good (its lease expired on its last
/// attempt) fails the chain; a cancelled waiting step cancels it.
pub async fn reaped_and_cancelled_steps_end_the_chain(store: &dyn Store, clock: &ManualClock) {
    let crashed = store
        .enqueue_chain(vec![
            NewJob::new("crashy", json!({})).max_attempts(1),
            NewJob::new("after", json!({})),
        ])
        .await
        .unwrap();
    lease_one(store, "crashy").await;
    clock.advance(chrono::Duration::seconds(31));
    assert_eq!(store.reap_expired().await.unwrap(), 1);
    let failed = store.get_chain(crashed.id).await.unwrap();
    assert_eq!(failed.status, ChainStatus::Failed);
    assert_eq!(failed.steps[1].status, "cancelled");

    let cancelled = store
        .enqueue_chain(vec![NewJob::new("idle", json!({}))])
        .await
        .unwrap();
    store.cancel(cancelled.steps[0].job).await.unwrap();
    assert_eq!(
        store.get_chain(cancelled.id).await.unwrap().status,
        ChainStatus::Cancelled
    );
}

/// Bad chains are refused and make nothing; an unknown chain is not found.
pub async fn bad_chains_are_refused(store: &dyn Store, _clock: &ManualClock) {
    let cases = [
        vec![],
        vec![NewJob::new("a", json!([1]))],
        vec![NewJob::new("a", json!({"previous": 1}))],
        vec![NewJob::new("a", json!({})).idempotency_key("k")],
        vec![NewJob::new("a", json!({})), NewJob::new("", json!({}))],
    ];
    for steps in cases {
        let err = store.enqueue_chain(steps.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{steps:?}: {err}");
    }
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 0);
    let missing = store.get_chain(crate::job::JobId::generate()).await;
    assert!(matches!(missing, Err(StoreError::ChainNotFound(_))));
}

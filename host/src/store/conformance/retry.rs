//! Conformance: a job's own retry policy — given at enqueue, to a chain
//! step or to a batch and its callbacks — is kept with the job, so that
//! whichever host leases it retries it the same way; a job without one
//! reads back without one (its handler's policy applies).

use std::time::Duration;

use serde_json::json;

use super::{finish, lease_one};
use crate::clock::ManualClock;
use crate::job::{NewJob, OutcomeKind, RunReport};
use crate::store::batch::NewBatch;
use crate::store::{FailAction, Store};
use crate::worker::retry::RetryPolicy;

fn delays(max_attempts: u32, secs: &[u64]) -> RetryPolicy {
    RetryPolicy::Delays {
        max_attempts,
        delays: secs.iter().map(|&s| Duration::from_secs(s)).collect(),
    }
}

fn exponential(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::Exponential {
        max_attempts,
        base: Duration::from_millis(1500),
        factor: 3.0,
        max_delay: Duration::from_secs(90),
        jitter: 0.25,
    }
}

/// The policy the leased job of `handler` carries, with its budget.
async fn leased_policy(store: &dyn Store, handler: &str) -> (Option<RetryPolicy>, u32) {
    let held = lease_one(store, handler).await;
    let got = (held.job.retry.clone(), held.job.max_attempts);
    finish(store, &held).await;
    got
}

pub async fn own_retry_policy_travels_with_the_job(store: &dyn Store, _clock: &ManualClock) {
    // A single enqueue, read back and leased; its own max_attempts wins
    // over the policy's.
    let one = NewJob::new("pay", json!({}))
        .retry(delays(3, &[2, 7]))
        .max_attempts(5);
    let id = store.enqueue(one).await.unwrap().id;
    let read = store.get(id).await.unwrap();
    assert_eq!(read.retry, Some(delays(5, &[2, 7])));
    assert_eq!(read.max_attempts, 5);
    assert_eq!(
        leased_policy(store, "pay").await,
        (Some(delays(5, &[2, 7])), 5)
    );

    // The plain path keeps no policy.
    store
        .enqueue(NewJob::new("plain", json!({})))
        .await
        .unwrap();
    assert_eq!(leased_policy(store, "plain").await.0, None);

    // Several at once.
    let many = vec![
        NewJob::new("many", json!({"n": 1})).retry(exponential(4)),
        NewJob::new("many", json!({"n": 2})),
    ];
    store.enqueue_batch(many).await.unwrap();
    let mut seen = [
        leased_policy(store, "many").await,
        leased_policy(store, "many").await,
    ];
    seen.sort_by_key(|(p, _)| p.is_none());
    assert_eq!(seen[0], (Some(exponential(4)), 4));
    assert_eq!(seen[1].0, None);

    // A chain's later step gets its own policy when its turn comes.
    let chain = store
        .enqueue_chain(vec![
            NewJob::new("first", json!({})),
            NewJob::new("second", json!({})).retry(delays(2, &[30])),
        ])
        .await
        .unwrap();
    assert_eq!(leased_policy(store, "first").await.0, None);
    assert_eq!(
        leased_policy(store, "second").await,
        (Some(delays(2, &[30])), 2)
    );
    let chain = store.get_chain(chain.id).await.unwrap();
    assert_eq!(chain.steps[1].status, "succeeded");

    // A DLQ retry gives a fresh budget; the policy shows the one in force.
    let dying = NewJob::new("dying", json!({})).retry(delays(2, &[5]));
    let id = store.enqueue(dying).await.unwrap().id;
    let held = lease_one(store, "dying").await;
    let report = RunReport::failed(OutcomeKind::Permanent, "no", Duration::ZERO);
    store
        .fail(&held.token, FailAction::Dead, report)
        .await
        .unwrap();
    store.dlq_retry(id).await.unwrap();
    let revived = store.get(id).await.unwrap();
    assert_eq!(
        revived.max_attempts, 3,
        "attempt 1 of 2 died; 2 more, numbered on"
    );
    assert_eq!(revived.retry, Some(delays(3, &[5])));

    // A batch's jobs and its callback.
    let mut batch = NewBatch::new("item", vec![json!(1)]);
    batch.retry = Some(exponential(6));
    batch.max_attempts = 6;
    batch.on_complete = Some(NewJob::new("after", json!({})).retry(delays(9, &[1])));
    store.start_batch(batch).await.unwrap();
    assert_eq!(
        leased_policy(store, "item").await,
        (Some(exponential(6)), 6)
    );
    assert_eq!(
        leased_policy(store, "after").await,
        (Some(delays(9, &[1])), 9)
    );
}

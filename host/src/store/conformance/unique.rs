//! Conformance: unique keys — while a job of the handler with the key is
//! scheduled, pending, running or retrying, an enqueue adds nothing and
//! answers its id; once it finished, the key is free again.

use std::time::Duration;

use super::{finish, job, lease_one, secs};
use crate::clock::{Clock, ManualClock};
use crate::job::{NewJob, OutcomeKind, RunReport};
use crate::store::{FailAction, Store};

fn unique(handler: &str, key: &str) -> NewJob {
    job(handler).unique_key(key)
}

/// Refused while waiting and running (also inside one batch), scoped by
/// handler and key; accepted again after success, death and cancel.
pub async fn unique_key_refuses_while_active(store: &dyn Store, clock: &ManualClock) {
    let first = store.enqueue(unique("u", "user-1")).await.unwrap();
    assert!(first.created);
    let again = store.enqueue(unique("u", "user-1")).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false), "pending");
    for other in [unique("u", "user-2"), unique("v", "user-1"), job("u")] {
        assert!(store.enqueue(other).await.unwrap().created);
    }
    let held = lease_one(store, "u").await;
    assert_eq!(held.job.id, first.id, "the oldest u job leases first");
    let again = store.enqueue(unique("u", "user-1")).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false), "running");
    let retry = FailAction::Retry {
        at: clock.now() + secs(60),
    };
    let flaky = RunReport::failed(OutcomeKind::Retryable, "flaky", Duration::ZERO);
    store.fail(&held.token, retry, flaky).await.unwrap();
    let again = store.enqueue(unique("u", "user-1")).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false), "retrying");
    store.cancel(first.id).await.unwrap();
    let after_cancel = store.enqueue(unique("u", "user-1")).await.unwrap();
    assert!(after_cancel.created, "a cancelled job frees the key");

    let delayed = store
        .enqueue(unique("w", "k").run_at(clock.now() + secs(3600)))
        .await
        .unwrap();
    let again = store.enqueue(unique("w", "k")).await.unwrap();
    assert_eq!((again.id, again.created), (delayed.id, false), "scheduled");

    let batch = store
        .enqueue_batch(vec![unique("b", "k"), unique("b", "k"), unique("b", "j")])
        .await
        .unwrap();
    assert!(batch[0].created && batch[2].created);
    assert_eq!((batch[1].id, batch[1].created), (batch[0].id, false));
}

/// Success and the DLQ free the key too.
pub async fn unique_key_is_free_after_the_job_ends(store: &dyn Store, _clock: &ManualClock) {
    let first = store.enqueue(unique("u", "k")).await.unwrap();
    let held = lease_one(store, "u").await;
    finish(store, &held).await;
    let second = store.enqueue(unique("u", "k")).await.unwrap();
    assert!(second.created && second.id != first.id, "after success");
    let held = lease_one(store, "u").await;
    let fatal = RunReport::failed(OutcomeKind::Permanent, "no", Duration::ZERO);
    store
        .fail(&held.token, FailAction::Dead, fatal)
        .await
        .unwrap();
    let third = store.enqueue(unique("u", "k")).await.unwrap();
    assert!(third.created && third.id != second.id, "after the DLQ");
}

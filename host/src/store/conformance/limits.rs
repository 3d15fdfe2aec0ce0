//! Conformance: flow limits — the lease takes no more of a handler than
//! its concurrency leaves and one start per rate slot, counted across every
//! handle on the store (two hosts); held-back jobs stay pending and cost
//! no attempt; `limit_states` says where each handler stands.

use std::num::NonZeroU32;
use std::sync::Arc;

use super::{Backend, finish, job, request, start};
use crate::clock::{Clock, ManualClock};
use crate::job::{JobStatus, Priority};
use crate::store::{HandlerLimit, LeaseRequest, Store};

fn limit(handler: &str, rate: Option<&str>, concurrency: Option<u32>) -> HandlerLimit {
    HandlerLimit {
        handler: handler.into(),
        interval: rate.map(|r| {
            r.parse::<crate::worker::rate::Rate>()
                .expect("rate")
                .interval()
        }),
        concurrency: concurrency.and_then(NonZeroU32::new),
    }
}

fn limited(worker: &str, handlers: &[&str], max: u32, limits: &[HandlerLimit]) -> LeaseRequest {
    LeaseRequest {
        limits: limits.to_vec(),
        ..request(worker, &["default"], handlers, max)
    }
}

async fn enqueue(store: &dyn Store, handler: &str, n: usize) {
    let jobs = (0..n).map(|_| job(handler)).collect();
    store.enqueue_batch(jobs).await.expect("enqueue");
}

/// Concurrency 3 over two handles on one store: never more than 3 leased
/// at once, the rest pending with no attempt; each end frees one place.
/// Unlimited handlers are not held back by it.
pub async fn concurrency_holds_across_hosts(backend: &dyn Backend) {
    let clock = Arc::new(ManualClock::new(start()));
    let (a, b) = (
        backend.open(clock.clone()).await,
        backend.open(clock.clone()).await,
    );
    let limits = [limit("send", None, Some(3))];
    enqueue(&*a, "send", 10).await;
    enqueue(&*a, "free", 4).await;
    let first = a.lease(&limited("a", &["send"], 2, &limits)).await.unwrap();
    assert_eq!(first.len(), 2);
    let second = b
        .lease(&limited("b", &["send", "free"], 10, &limits))
        .await
        .unwrap();
    let sends = second.iter().filter(|l| l.job.handler == "send").count();
    assert_eq!(sends, 1, "3 running across both hosts");
    assert_eq!(second.len(), 5, "the free handler's 4 are not held");
    let none = a
        .lease(&limited("a", &["send"], 10, &limits))
        .await
        .unwrap();
    assert!(none.is_empty(), "concurrency taken");
    let states = b.limit_states(&limits).await.unwrap();
    assert_eq!((states[0].running, states[0].held), (3, true));
    let page = a
        .list(&crate::store::ListQuery {
            status: Some(JobStatus::Pending),
            handler: Some("send".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 7, "held-back jobs stay pending");
    assert!(
        page.jobs.iter().all(|j| j.attempt == 0),
        "and cost no attempt"
    );

    finish(&*a, &first[0]).await;
    let states = a.limit_states(&limits).await.unwrap();
    assert_eq!((states[0].running, states[0].held), (2, false));
    let next = b
        .lease(&limited("b", &["send"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "one place freed, one taken");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// "2/s" over two handles: one start per half second whoever asks, none
/// caught up after a pause (the rate is a ceiling), and the booked slot is
/// what `limit_states` reports.
pub async fn rate_spaces_starts_across_hosts(backend: &dyn Backend) {
    let clock = Arc::new(ManualClock::new(start()));
    let (a, b) = (
        backend.open(clock.clone()).await,
        backend.open(clock.clone()).await,
    );
    let limits = [limit("send", Some("2/s"), None)];
    enqueue(&*a, "send", 10).await;
    let got = a
        .lease(&limited("a", &["send"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "one start per slot, not a burst");
    let got = b
        .lease(&limited("b", &["send"], 10, &limits))
        .await
        .unwrap();
    assert!(got.is_empty(), "the other host waits for the slot");
    let states = b.limit_states(&limits).await.unwrap();
    assert!(states[0].held);
    let slot = clock.now() + chrono::Duration::milliseconds(500);
    assert_eq!(states[0].next_start, Some(slot));
    clock.advance(chrono::Duration::milliseconds(499));
    assert!(
        b.lease(&limited("b", &["send"], 10, &limits))
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance(chrono::Duration::milliseconds(1));
    let got = b
        .lease(&limited("b", &["send"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "its slot came");
    // Ten seconds pass with nobody leasing: still one start, then a wait.
    clock.advance(chrono::Duration::seconds(10));
    let got = a
        .lease(&limited("a", &["send"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "no catching up on missed slots");
    let states = a.limit_states(&limits).await.unwrap();
    assert_eq!(
        states[0].next_start,
        Some(clock.now() + chrono::Duration::milliseconds(500))
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A limited handler still takes its place by priority, and a lease that
/// does not serve it neither books its slot nor counts it.
pub async fn limits_keep_priority_and_touch_only_their_handler(
    store: &dyn Store,
    clock: &ManualClock,
) {
    let limits = [limit("send", Some("1/s"), Some(1))];
    store.enqueue(job("free")).await.unwrap();
    store
        .enqueue(job("send").priority(Priority::Critical))
        .await
        .unwrap();
    store.enqueue(job("send")).await.unwrap();
    let other = store
        .lease(&limited("w", &["free"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    let states = store.limit_states(&limits).await.unwrap();
    assert_eq!(states[0].next_start, None, "no send started");
    let got = store
        .lease(&limited("w", &["send"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.priority, Priority::Critical);
    clock.advance(chrono::Duration::seconds(5));
    assert!(
        store
            .lease(&limited("w", &["send"], 10, &limits))
            .await
            .unwrap()
            .is_empty(),
        "its slot came but its one place is taken"
    );
    finish(store, &got[0]).await;
    let got = store
        .lease(&limited("w", &["send"], 10, &limits))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    // Without limits in the request nothing is held back.
    store.enqueue(job("send")).await.unwrap();
    let unlimited = store
        .lease(&limited("w", &["send"], 10, &[]))
        .await
        .unwrap();
    assert_eq!(unlimited.len(), 1);
}

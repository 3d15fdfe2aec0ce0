//! Conformance: listing, pagination, counts and batch enqueue.

use std::collections::HashSet;

use super::{finish, job, lease_one, secs};
use crate::clock::{Clock, ManualClock};
use crate::job::{JobId, JobStatus, Priority};
use crate::store::{ListQuery, Store, StoreError};

/// Walks all pages of `query`, enqueuing `between` jobs after the first page.
async fn walk(store: &dyn Store, mut query: ListQuery, between: usize) -> Vec<JobId> {
    let mut seen = Vec::new();
    loop {
        let page = store.list(&query).await.unwrap();
        assert!(page.jobs.len() <= query.effective_limit() as usize);
        if query.after.is_none() {
            for _ in 0..between {
                store.enqueue(job("page")).await.unwrap();
            }
        }
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return seen,
        }
    }
}

/// Paging newest-first with a cursor neither skips nor repeats jobs while
/// new jobs arrive.
pub async fn pagination_stable_under_inserts(store: &dyn Store, _clock: &ManualClock) {
    let batch = (0..25).map(|_| job("page")).collect();
    let mut ids: Vec<JobId> = store
        .enqueue_batch(batch)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    ids.reverse();
    let query = ListQuery {
        limit: 10,
        ..ListQuery::default()
    };
    let seen = walk(store, query.clone(), 5).await;
    assert_eq!(
        seen, ids,
        "exactly the jobs present at the start, newest first"
    );
    let all = walk(store, query, 0).await;
    assert_eq!(all.len(), 30);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 30);
}

/// Filters by status (as seen now), queue and handler combine.
pub async fn list_filters(store: &dyn Store, clock: &ManualClock) {
    let later = store
        .enqueue(job("a").run_at(clock.now() + secs(10)))
        .await
        .unwrap()
        .id;
    let now = store.enqueue(job("a")).await.unwrap().id;
    let other_queue = store.enqueue(job("a").queue("q2")).await.unwrap().id;
    let other_handler = store.enqueue(job("b")).await.unwrap().id;
    let ids = |status, queue: Option<&str>, handler: Option<&str>| {
        let query = ListQuery {
            status,
            queue: queue.map(str::to_owned),
            handler: handler.map(str::to_owned),
            ..ListQuery::default()
        };
        async move {
            let page = store.list(&query).await.unwrap();
            page.jobs.iter().map(|j| j.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(Some(JobStatus::Scheduled), None, None).await, [later]);
    assert_eq!(
        ids(Some(JobStatus::Pending), Some("default"), Some("a")).await,
        [now]
    );
    assert_eq!(ids(None, Some("q2"), None).await, [other_queue]);
    assert_eq!(ids(None, None, Some("b")).await, [other_handler]);
    clock.advance(secs(10));
    let pending = ids(Some(JobStatus::Pending), Some("default"), Some("a")).await;
    assert_eq!(
        pending,
        [now, later],
        "a due scheduled job lists as pending"
    );
    assert!(ids(Some(JobStatus::Scheduled), None, None).await.is_empty());
}

/// Counts come per queue × priority × status in one call.
pub async fn counts_by_queue_priority_status(store: &dyn Store, clock: &ManualClock) {
    store
        .enqueue(job("c").priority(Priority::High))
        .await
        .unwrap();
    store
        .enqueue(job("c").priority(Priority::High))
        .await
        .unwrap();
    store
        .enqueue(job("c").priority(Priority::Low).queue("bulk"))
        .await
        .unwrap();
    store
        .enqueue(job("c").run_at(clock.now() + secs(5)))
        .await
        .unwrap();
    store
        .enqueue(job("c").priority(Priority::Critical))
        .await
        .unwrap();
    finish(store, &lease_one(store, "c").await).await;
    lease_one(store, "c").await;
    let counts = store.counts().await.unwrap();
    let (high, low) = (Some(Priority::High), Some(Priority::Low));
    assert_eq!(
        counts.sum(Some("default"), high, Some(JobStatus::Running)),
        1
    );
    assert_eq!(
        counts.sum(Some("default"), high, Some(JobStatus::Pending)),
        1
    );
    assert_eq!(
        counts.sum(Some("default"), None, Some(JobStatus::Scheduled)),
        1
    );
    assert_eq!(
        counts.sum(None, Some(Priority::Critical), Some(JobStatus::Succeeded)),
        1
    );
    assert_eq!(counts.sum(Some("bulk"), low, Some(JobStatus::Pending)), 1);
    assert_eq!(counts.sum(Some("default"), None, None), 4);
    assert_eq!(counts.sum(None, None, None), 5);
    clock.advance(secs(5));
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.sum(None, None, Some(JobStatus::Scheduled)), 0);
    assert_eq!(
        counts.sum(
            Some("default"),
            Some(Priority::Normal),
            Some(JobStatus::Pending)
        ),
        1
    );
}

/// A batch lands whole or not at all.
pub async fn batch_enqueue_is_atomic(store: &dyn Store, _clock: &ManualClock) {
    let batch: Vec<_> = (0..100).map(|_| job("b")).collect();
    let done = store.enqueue_batch(batch).await.unwrap();
    assert_eq!(done.iter().filter(|e| e.created).count(), 100);
    assert_eq!(done.iter().map(|e| e.id).collect::<HashSet<_>>().len(), 100);
    let mut bad: Vec<_> = (0..10).map(|_| job("b")).collect();
    bad.push(job("b").queue("bad queue"));
    let err = store.enqueue_batch(bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let keyed = vec![
        job("b").idempotency_key("same"),
        job("b").idempotency_key("same"),
    ];
    let twice = store.enqueue_batch(keyed).await.unwrap();
    assert_eq!(
        twice[0].id, twice[1].id,
        "a key repeated inside one batch dedupes too"
    );
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 101);
}

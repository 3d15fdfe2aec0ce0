//! Conformance: schedule ticks fire once; stored schedules.

use serde_json::json;

use super::{finish, job, lease_one, secs};
use crate::clock::{Clock, ManualClock};
use crate::job::Priority;
use crate::store::{MissedPolicy, OverlapPolicy, Schedule, Store, StoreError};

/// Of several claims of one (schedule, tick), exactly one wins and enqueues.
pub async fn schedule_tick_claimed_once(store: &dyn Store, clock: &ManualClock) {
    let tick = clock.now();
    let claim = || store.claim_tick("every-minute", tick, job("cron"));
    let (a, b, c, d) = tokio::join!(claim(), claim(), claim(), claim());
    let winners: Vec<_> = [a, b, c, d]
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(winners.len(), 1, "one claim wins");
    assert_eq!(store.get(winners[0]).await.unwrap().handler, "cron");
    assert_eq!(
        store
            .claim_tick("every-minute", tick, job("cron"))
            .await
            .unwrap(),
        None
    );
    let next = store
        .claim_tick("every-minute", tick + secs(60), job("cron"))
        .await
        .unwrap();
    assert!(next.is_some(), "the next tick is its own claim");
    let other = store.claim_tick("other", tick, job("cron")).await.unwrap();
    assert!(other.is_some(), "ticks are per schedule");
    assert_eq!(store.counts().await.unwrap().sum(None, None, None), 3);
    let bad = store.claim_tick(
        "every-minute",
        tick + secs(120),
        job("cron").queue("bad queue"),
    );
    assert!(matches!(bad.await, Err(StoreError::Invalid(_))));
    let retried = store
        .claim_tick("every-minute", tick + secs(120), job("cron"))
        .await
        .unwrap();
    assert!(retried.is_some(), "a refused claim records nothing");
}

/// Schedules are stored, listed, updated (keeping the last tick), toggled and deleted.
pub async fn schedules_crud(store: &dyn Store, clock: &ManualClock) {
    let mut nightly = Schedule::new("nightly", "0 3 * * *", "cleanup");
    nightly.timezone = "Europe/Berlin".into();
    nightly.payload = json!({"days": 30});
    nightly.priority = Priority::Low;
    nightly.missed = MissedPolicy::RunOnce;
    nightly.overlap = OverlapPolicy::Skip;
    store.upsert_schedule(&nightly).await.unwrap();
    store
        .upsert_schedule(&Schedule::new("a-first", "@every 1m", "ping"))
        .await
        .unwrap();
    assert_eq!(store.get_schedule("nightly").await.unwrap(), nightly);
    let names: Vec<_> = store
        .list_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a-first", "nightly"]);

    let tick = clock.now();
    store
        .claim_tick("nightly", tick, job("cleanup"))
        .await
        .unwrap();
    store
        .claim_tick("nightly", tick - secs(86_400), job("cleanup"))
        .await
        .unwrap();
    assert_eq!(
        store.get_schedule("nightly").await.unwrap().last_tick,
        Some(tick),
        "latest tick wins"
    );
    nightly.spec = "0 4 * * *".into();
    store.upsert_schedule(&nightly).await.unwrap();
    let updated = store.get_schedule("nightly").await.unwrap();
    assert_eq!(
        (updated.spec.as_str(), updated.last_tick),
        ("0 4 * * *", Some(tick))
    );

    store.set_schedule_enabled("nightly", false).await.unwrap();
    assert!(!store.get_schedule("nightly").await.unwrap().enabled);
    store.delete_schedule("nightly").await.unwrap();
    let missing = |r: Result<(), StoreError>| matches!(r, Err(StoreError::ScheduleNotFound(n)) if n == "nightly");
    assert!(missing(store.get_schedule("nightly").await.map(drop)));
    assert!(missing(store.delete_schedule("nightly").await));
    assert!(missing(store.set_schedule_enabled("nightly", true).await));
    let err = store
        .upsert_schedule(&Schedule::new("empty", " ", "h"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("\"empty\"")),
        "{err}"
    );
}

/// The overlap check sees the latest tick's job until it finishes, whichever
/// host claimed it.
pub async fn active_schedule_job_follows_latest_tick(store: &dyn Store, clock: &ManualClock) {
    let tick = clock.now();
    assert_eq!(store.active_schedule_job("sync").await.unwrap(), None);
    let first = store
        .claim_tick("sync", tick, job("sync"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.active_schedule_job("sync").await.unwrap(),
        Some(first)
    );
    assert_eq!(store.active_schedule_job("other").await.unwrap(), None);
    let lease = lease_one(store, "sync").await;
    assert_eq!(
        store.active_schedule_job("sync").await.unwrap(),
        Some(first),
        "a running job is active"
    );
    finish(store, &lease).await;
    assert_eq!(store.active_schedule_job("sync").await.unwrap(), None);
    let older = tick - secs(60);
    store
        .claim_tick("sync", older, job("sync"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.active_schedule_job("sync").await.unwrap(),
        None,
        "only the latest tick counts"
    );
    let second = store
        .claim_tick("sync", tick + secs(60), job("sync"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.active_schedule_job("sync").await.unwrap(),
        Some(second)
    );
}

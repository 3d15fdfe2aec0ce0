//! Plugin versions: the digest each attempt ran on, and the releases
//! deployed through the store (put, read, roll back, generation).

use std::time::Duration;

use serde_json::json;

use super::{job, lease_one};
use crate::clock::{Clock, ManualClock};
use crate::job::{OutcomeKind, RunReport};
use crate::store::{FailAction, Store, StoreError};

/// Each attempt keeps the plugin digest its report carried; a run without
/// one (an expired lease) records none.
pub async fn attempt_records_plugin_digest(store: &dyn Store, clock: &ManualClock) {
    let id = store.enqueue(job("work").max_attempts(3)).await.unwrap().id;
    let held = lease_one(store, "work").await;
    let failed = RunReport::failed(OutcomeKind::Retryable, "later", Duration::from_millis(3))
        .with_plugin_digest("aa11");
    let at = clock.now();
    store
        .fail(&held.token, FailAction::Retry { at }, failed)
        .await
        .unwrap();
    let held = lease_one(store, "work").await;
    let ok = RunReport::succeeded(Duration::from_millis(2)).with_plugin_digest("bb22");
    store.complete(&held.token, json!(1), ok).await.unwrap();
    let done = store.get(id).await.unwrap();
    let digests: Vec<Option<&str>> = done
        .attempts
        .iter()
        .map(|a| a.plugin_digest.as_deref())
        .collect();
    assert_eq!(digests, vec![Some("aa11"), Some("bb22")]);
}

/// Deploys push a release per plugin name, the same digest twice changes
/// nothing, a rollback returns to the release before, and every change
/// bumps the generation; a rollback with nothing before is refused.
pub async fn plugin_releases_deploy_and_roll_back(store: &dyn Store, _clock: &ManualClock) {
    assert_eq!(store.plugin_generation().await.unwrap(), 0);
    assert!(store.plugin_releases().await.unwrap().releases.is_empty());
    let first = store
        .put_plugin("hello", "d1", b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(
        (first.name.as_str(), first.digest.as_str()),
        ("hello", "d1")
    );
    assert_eq!(store.plugin_generation().await.unwrap(), 1);
    store
        .put_plugin("hello", "d1", b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.plugin_generation().await.unwrap(),
        1,
        "same digest: no change"
    );
    store
        .put_plugin("hello", "d2", b"two".to_vec())
        .await
        .unwrap();
    store
        .put_plugin("other", "d3", b"three".to_vec())
        .await
        .unwrap();
    let now = store.plugin_releases().await.unwrap();
    assert_eq!(now.generation, 3);
    let active: Vec<(&str, &str)> = now
        .releases
        .iter()
        .map(|r| (r.name.as_str(), r.digest.as_str()))
        .collect();
    assert_eq!(active, vec![("hello", "d2"), ("other", "d3")]);
    assert_eq!(
        store.plugin_blob("d2").await.unwrap(),
        Some(b"two".to_vec())
    );
    assert_eq!(store.plugin_blob("nope").await.unwrap(), None);

    let back = store.rollback_plugin("hello").await.unwrap();
    assert_eq!(back.digest, "d1");
    assert_eq!(store.plugin_generation().await.unwrap(), 4);
    let releases = store.plugin_releases().await.unwrap().releases;
    assert_eq!(releases[0].digest, "d1");
    let refused = store.rollback_plugin("hello").await.unwrap_err();
    assert!(matches!(refused, StoreError::Invalid(_)), "{refused}");
    let unknown = store.rollback_plugin("never").await.unwrap_err();
    assert!(matches!(unknown, StoreError::Invalid(_)), "{unknown}");
    assert_eq!(
        store.plugin_generation().await.unwrap(),
        4,
        "refusals change nothing"
    );
    // Deploying the rolled-back version again makes it current again.
    store
        .put_plugin("hello", "d2", b"two".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.plugin_releases().await.unwrap().releases[0].digest,
        "d2"
    );
}

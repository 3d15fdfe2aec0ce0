//! Which hosts serve the store, and which queues they run. Each serving host
//! writes a heartbeat row; readers count hosts seen within [`STALE_AFTER`]
//! as running. This is what lets an enqueue into a queue nobody serves say
//! so, instead of being accepted to wait forever in silence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::{HostRecord, Store, StoreResult};

/// How often a serving host renews its row.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// A host not seen for this long is not counted as running.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// How long a read of the hosts is reused for enqueue warnings: enqueues
/// come by the thousand per second, hosts change rarely.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// Keeps this host's row fresh until `stopped`, then removes it.
pub async fn announce(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    id: String,
    queues: Vec<String>,
    mut stopped: watch::Receiver<bool>,
) {
    let started_at = clock.now();
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        let record = HostRecord {
            id: id.clone(),
            queues: queues.clone(),
            started_at,
            seen_at: clock.now(),
        };
        if let Err(e) = store.host_seen(&record).await {
            tracing::warn!(host = %id, "cannot record this host's heartbeat: {e}");
        }
    }
    if let Err(e) = store.host_gone(&id).await {
        tracing::warn!(host = %id, "cannot remove this host's row at stop: {e}");
    }
}

/// The running hosts, read from the store at most once a second.
pub struct Presence {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cache: Mutex<Option<(Instant, Vec<HostRecord>)>>,
}

impl Presence {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Presence {
        Presence {
            store,
            clock,
            cache: Mutex::new(None),
        }
    }

    /// Hosts seen within [`STALE_AFTER`], newest first.
    pub async fn running(&self) -> StoreResult<Vec<HostRecord>> {
        if let Some((at, hosts)) = &*self.cache.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < CACHE_FOR
        {
            return Ok(hosts.clone());
        }
        let hosts = running_hosts(&*self.store, self.clock.now()).await?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), hosts.clone()));
        Ok(hosts)
    }

    /// Why a job enqueued into `queue` would wait for a host, if it would.
    pub async fn unserved(&self, queue: &str) -> Option<String> {
        let hosts = self.running().await.ok()?;
        unserved_warning(&hosts, queue)
    }
}

/// Hosts seen within [`STALE_AFTER`] of `now`.
pub async fn running_hosts(store: &dyn Store, now: DateTime<Utc>) -> StoreResult<Vec<HostRecord>> {
    let since = now - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
    store.hosts(since).await
}

/// The warning for a job enqueued into `queue` when none of `hosts` serves it.
pub fn unserved_warning(hosts: &[HostRecord], queue: &str) -> Option<String> {
    if hosts.iter().any(|h| h.queues.iter().any(|q| q == queue)) {
        return None;
    }
    if hosts.is_empty() {
        return Some(format!(
            "no host is running on this store: the job waits in queue {queue:?} until one serves it"
        ));
    }
    let mut served: Vec<&str> = hosts
        .iter()
        .flat_map(|h| h.queues.iter().map(String::as_str))
        .collect();
    served.sort();
    served.dedup();
    Some(format!(
        "no running host serves queue {queue:?} (they serve: {}): the job waits until one does; \
         add it to [workers] queues",
        served.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(queues: &[&str]) -> HostRecord {
        HostRecord {
            id: "h:1".into(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            started_at: Utc::now(),
            seen_at: Utc::now(),
        }
    }

    #[test]
    fn a_queue_nobody_serves_gets_a_warning_naming_what_is_served() {
        assert_eq!(unserved_warning(&[host(&["default"])], "default"), None);
        let w = unserved_warning(&[host(&["default", "mail"])], "mial").unwrap();
        assert!(w.contains("\"mial\"") && w.contains("default, mail"), "{w}");
        let w = unserved_warning(&[], "default").unwrap();
        assert!(w.contains("no host is running"), "{w}");
    }
}

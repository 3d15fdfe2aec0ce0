//! Statistics in the shapes users know: per queue, pending per priority,
//! scheduled, running, dead and total.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::job::{JobStatus, Priority};
use crate::store::{Store, StoreError};

/// One queue's numbers.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct QueueStats {
    pub name: String,
    pub paused: bool,
    /// Pending (due, waiting for a worker) jobs by priority name.
    pub pending: BTreeMap<String, u64>,
    pub scheduled: u64,
    pub retrying: u64,
    pub running: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub total: u64,
    /// Running hosts whose workers serve this queue; 0 means its jobs wait
    /// until one does.
    pub hosts: u64,
}

/// Why pausing `queue` would only create it: no job was ever enqueued to it
/// and no running host serves it (a typo, most likely). `None` when the
/// queue is known.
pub async fn unknown_queue(
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
    queue: &str,
) -> Result<Option<String>, StoreError> {
    let mut known: Vec<String> = store.queues().await?.into_iter().map(|q| q.name).collect();
    if known.iter().any(|q| q == queue) {
        return Ok(None);
    }
    let hosts = crate::presence::running_hosts(store, now).await?;
    if hosts.iter().any(|h| h.queues.iter().any(|q| q == queue)) {
        return Ok(None);
    }
    known.extend(hosts.into_iter().flat_map(|h| h.queues));
    known.sort();
    known.dedup();
    Ok(Some(format!(
        "no queue {queue:?}: no job was ever enqueued to it and no running host serves it \
         (known queues: {})",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
}

/// Every queue that has jobs, was paused or is served by a running host.
pub async fn queue_stats(
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<QueueStats>, StoreError> {
    let counts = store.counts().await?;
    let hosts = crate::presence::running_hosts(store, now).await?;
    let serving = |queue: &str| {
        hosts
            .iter()
            .filter(|h| h.queues.iter().any(|q| q == queue))
            .count() as u64
    };
    let paused: BTreeMap<String, bool> = store
        .queues()
        .await?
        .into_iter()
        .map(|q| (q.name, q.paused))
        .collect();
    let mut names: Vec<String> = counts
        .rows
        .iter()
        .map(|r| r.queue.clone())
        .chain(paused.keys().cloned())
        .chain(hosts.iter().flat_map(|h| h.queues.iter().cloned()))
        .collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|name| {
            let n = |s: JobStatus| counts.sum(Some(&name), None, Some(s));
            QueueStats {
                paused: paused.get(&name).copied().unwrap_or(false),
                pending: Priority::ALL
                    .iter()
                    .map(|p| {
                        (
                            p.as_str().to_string(),
                            counts.sum(Some(&name), Some(*p), Some(JobStatus::Pending)),
                        )
                    })
                    .collect(),
                scheduled: n(JobStatus::Scheduled),
                retrying: n(JobStatus::Retrying),
                running: n(JobStatus::Running),
                succeeded: n(JobStatus::Succeeded),
                dead: n(JobStatus::Dead),
                cancelled: n(JobStatus::Cancelled),
                total: counts.sum(Some(&name), None, None),
                hosts: serving(&name),
                name,
            }
        })
        .collect())
}

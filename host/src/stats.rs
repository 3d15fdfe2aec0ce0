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
}

/// Every queue that has jobs or was paused.
pub async fn queue_stats(store: &dyn Store) -> Result<Vec<QueueStats>, StoreError> {
    let counts = store.counts().await?;
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
                name,
            }
        })
        .collect())
}

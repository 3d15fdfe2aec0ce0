//! Judging a lease stale by missed renewals on this host's monotonic clock.
//!
//! A lease's expiry is a wall-clock time written by its holder. Compared on
//! another host (or after a clock step on the same one) it can look expired
//! while its holder is renewing it on time: a forward step used to reap and
//! re-run every running job. So an expiry that looks past is only a reason
//! to watch the lease: it is reaped once this writer has seen no renewal of
//! it (its expiry unchanged) for a whole lease length, measured on the
//! monotonic clock, which never steps. Leases this writer granted or renewed
//! itself are watched from that moment, so a host's own leases are reaped
//! on time and never while it renews them; another host's are watched from
//! the first look, so a killed host's jobs return between one and two lease
//! lengths after its last renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::job::JobId;

/// A lease as the reaper sees it.
pub(super) struct Seen {
    pub job: JobId,
    pub fence: i64,
    /// The lease's expiry: it changes with every renewal.
    pub marker: i64,
    /// The lease's length.
    pub lease: Duration,
}

/// When, on the monotonic clock, a watched lease can next be judged: shared
/// with [`super::SqliteStore::next_due_at`], so idle workers wake then
/// instead of spinning on an expiry that looks past.
pub(super) type NextJudgement = Arc<Mutex<Option<Duration>>>;

/// What this writer knows of leases' renewals.
#[derive(Default)]
pub(super) struct LeaseWatch {
    /// (job, fence) → (expiry last seen, monotonic reading when first seen).
    seen: HashMap<(JobId, i64), (i64, Duration)>,
    next: NextJudgement,
}

impl LeaseWatch {
    /// A watch publishing its next judgement time to `next`.
    pub fn new(next: NextJudgement) -> Self {
        Self {
            seen: HashMap::new(),
            next,
        }
    }

    /// This writer granted or renewed the lease at `now` (monotonic).
    pub fn wrote(&mut self, job: JobId, fence: i64, marker: i64, now: Duration) {
        self.seen.insert((job, fence), (marker, now));
    }

    /// The lease ended (completed, failed, released or reaped).
    pub fn forget(&mut self, job: JobId, fence: i64) {
        self.seen.remove(&(job, fence));
    }

    /// Of leases whose expiry looks past, those not renewed for a whole
    /// lease length: answers their indexes in `expired`. Leases seen for the
    /// first time, or renewed since last seen, start being watched now.
    pub fn stale(&mut self, expired: &[Seen], now: Duration) -> Vec<usize> {
        let mut stale = Vec::new();
        let mut next: Option<Duration> = None;
        for (i, lease) in expired.iter().enumerate() {
            let key = (lease.job, lease.fence);
            let since = match self.seen.get(&key) {
                Some((marker, since)) if *marker == lease.marker => *since,
                _ => {
                    self.seen.insert(key, (lease.marker, now));
                    now
                }
            };
            let due = since + lease.lease;
            if now >= due {
                stale.push(i);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        if let Ok(mut shared) = self.next.lock() {
            *shared = next;
        }
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(job: JobId, marker: i64) -> Seen {
        Seen {
            job,
            fence: 7,
            marker,
            lease: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_lease_is_stale_only_after_a_lease_length_without_renewal() {
        let mut watch = LeaseWatch::default();
        let job = JobId::generate();
        let t = Duration::from_secs(100);
        assert!(watch.stale(&[seen(job, 1)], t).is_empty(), "first look");
        assert_eq!(
            *watch.next.lock().unwrap(),
            Some(t + Duration::from_secs(30))
        );
        // Renewed (new expiry) in between: watched afresh.
        let t2 = t + Duration::from_secs(29);
        assert!(watch.stale(&[seen(job, 2)], t2).is_empty());
        assert!(
            watch
                .stale(&[seen(job, 2)], t2 + Duration::from_secs(29))
                .is_empty()
        );
        assert_eq!(
            watch.stale(&[seen(job, 2)], t2 + Duration::from_secs(30)),
            vec![0]
        );
    }

    #[test]
    fn own_leases_are_judged_from_their_last_renewal() {
        let mut watch = LeaseWatch::default();
        let job = JobId::generate();
        watch.wrote(job, 7, 5, Duration::from_secs(10));
        assert_eq!(
            watch.stale(&[seen(job, 5)], Duration::from_secs(40)),
            vec![0]
        );
        watch.wrote(job, 7, 6, Duration::from_secs(40));
        assert!(
            watch
                .stale(&[seen(job, 6)], Duration::from_secs(41))
                .is_empty()
        );
    }
}

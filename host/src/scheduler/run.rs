//! The scheduler loop and its step: fire what is due, sleep until the
//! earliest next tick, a wake-up from a local change, the next re-read of
//! the schedules table, or shutdown.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tokio::sync::watch;

use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use super::Scheduler;
use super::fire::Fired;

/// How many schedules fire at once. Claims of different schedules are
/// independent, and running them together lets the store commit them in one
/// group, so 10,000 schedules due in the same second are not fired one
/// commit at a time.
const FIRE_PARALLELISM: usize = 32;

impl Scheduler {
    /// Runs until `shutdown` turns true (or its sender is dropped): loads the
    /// stored schedules, then fires ticks as they come due.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(host = %self.settings.host_id, "scheduler started");
        let mut next_refresh = Instant::now();
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            if Instant::now() >= next_refresh {
                if let Err(e) = self.refresh().await {
                    tracing::warn!("cannot read the schedules, trying again later: {e}");
                }
                next_refresh = Instant::now() + self.settings.refresh;
            }
            self.fire_due(self.clock().now()).await;
            self.passes.send_modify(|n| *n += 1);
            let mut wait = next_refresh.saturating_duration_since(Instant::now());
            if let Some(at) = self.next_wake() {
                let until = (at - self.clock().now()).to_std().unwrap_or_default();
                wait = wait.min(until);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        tracing::info!(host = %self.settings.host_id, "scheduler stopped");
    }

    /// The loop's step: fires every tick due at `now` and puts each fired
    /// schedule back at its next tick. Answers how many schedules were due.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> usize {
        let due = self.table().pop_due(now);
        let count = due.len();
        let mut tasks = JoinSet::new();
        let mut taken = HashMap::with_capacity(count.min(FIRE_PARALLELISM));
        for firing in due {
            while tasks.len() >= FIRE_PARALLELISM {
                self.join_one(&mut tasks, &mut taken).await;
            }
            let retry = firing.retry(firing.cursor, now);
            let firer = Arc::clone(&self.firer);
            let handle = tasks.spawn(async move { firer.fire(firing, now).await });
            taken.insert(handle.id(), retry);
        }
        while !tasks.is_empty() {
            self.join_one(&mut tasks, &mut taken).await;
        }
        count
    }

    /// Re-reads the schedules table: applies other processes' additions,
    /// changes and removals to this host's timetable.
    pub async fn refresh(&self) -> Result<(), super::SchedulerError> {
        let records = self.read_records().await?;
        self.sync(records);
        Ok(())
    }

    /// When the earliest schedule is next due.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.table().next_wake()
    }

    /// Makes the loop look at the timetable again now (e.g. after a test
    /// moved its clock).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Counts the loop's passes; tests wait on it to know a pass happened.
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    /// Puts one finished firing back. A firing task that panicked (a bug)
    /// puts its schedule back to be retried rather than losing it.
    async fn join_one(&self, tasks: &mut JoinSet<Fired>, taken: &mut HashMap<Id, Fired>) {
        let fired = match tasks.join_next_with_id().await {
            Some(Ok((id, fired))) => {
                taken.remove(&id);
                fired
            }
            Some(Err(e)) => {
                tracing::error!("a schedule firing task failed: {e}");
                match taken.remove(&e.id()) {
                    Some(retry) => retry,
                    None => return,
                }
            }
            None => return,
        };
        self.table().finish(fired);
    }
}

//! Scheduler tests on a real SQLite store in a temporary directory. Time
//! moves only through a `ManualClock`; the loop test waits on the loop's
//! pass counter, never on a timer.

mod definitions;
mod firing;
mod management;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tempfile::TempDir;

use super::{Scheduler, SchedulerSettings};
use crate::clock::{Clock, ManualClock};
use crate::job::Job;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{ListQuery, Store};

/// Handlers the test plugins "provide".
const HANDLERS: [&str; 2] = ["ping", "report"];

/// An instant from RFC 3339 text.
fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .to_utc()
}

/// Where every test starts: a whole hour.
fn t0() -> DateTime<Utc> {
    at("2030-01-01T00:00:00Z")
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

/// A store file in a temporary directory, openable again (a restart).
struct Env {
    dir: TempDir,
    clock: Arc<ManualClock>,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            clock: Arc::new(ManualClock::new(t0())),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("taskhost.db")
    }

    /// Opens (another handle on) the store file, as another process would.
    async fn store(&self) -> Arc<dyn Store> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        Arc::new(
            SqliteStore::open(self.path(), SqliteOptions::default(), clock)
                .await
                .expect("open store"),
        )
    }

    /// A scheduler on `store` with the default one-minute grace.
    fn scheduler(&self, store: &Arc<dyn Store>) -> Arc<Scheduler> {
        Arc::new(Scheduler::new(
            Arc::clone(store),
            self.clock.clone(),
            SchedulerSettings {
                host_id: "test-host".into(),
                ..SchedulerSettings::default()
            },
            HANDLERS.iter().map(|h| h.to_string()).collect(),
        ))
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn set(&self, to: DateTime<Utc>) {
        self.clock.set(to);
    }
}

/// Every job in the store, oldest tick first.
async fn jobs(store: &dyn Store) -> Vec<Job> {
    let mut jobs = store
        .list(&ListQuery {
            limit: ListQuery::MAX_LIMIT,
            ..ListQuery::default()
        })
        .await
        .expect("list jobs")
        .jobs;
    jobs.sort_by_key(|j| (j.run_at, j.id));
    jobs
}

/// The run-at times of every job.
async fn ticks(store: &dyn Store) -> Vec<DateTime<Utc>> {
    jobs(store).await.into_iter().map(|j| j.run_at).collect()
}

/// Waits until the running loop has made a full pass that started after
/// this call, so whatever the test changed before has been acted on.
async fn settle(scheduler: &Scheduler, passes: &mut tokio::sync::watch::Receiver<u64>) {
    passes.borrow_and_update();
    for _ in 0..2 {
        scheduler.wake();
        tokio::time::timeout(Duration::from_secs(20), passes.changed())
            .await
            .expect("the scheduler loop made no pass")
            .expect("the scheduler loop ended");
    }
}

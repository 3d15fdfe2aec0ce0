//! The scheduler: turns cron, interval and one-off schedules into jobs,
//! one job per tick however many hosts run.
//!
//! **Once per tick, no leader.** Every host fires every tick of every
//! schedule it can fire, through [`Store::claim_tick`], which records the
//! (schedule, tick) pair and enqueues the job atomically: one host wins, the
//! others count the tick as claimed by another. A dead host therefore stops
//! nothing; the others keep firing.
//!
//! **Timing.** Each host keeps a timetable (a min-heap of next fire times,
//! see [`table`]) and sleeps until the earliest, never scanning all
//! schedules. A tick fired after its due time is *late*; a tick still
//! unfired when it is older than the grace window (default one minute) is
//! *missed*: no host was up to fire it. Missed ticks follow the schedule's
//! policy: `skip` enqueues nothing for them, `catch-up-once` enqueues one
//! job for the whole gap (keyed by its latest tick, so the gap is caught up
//! once however often hosts restart). Whether a tick was fired is read from the
//! schedule's last claimed tick in the store, so a host that starts after
//! downtime sees the gap that every host missed.
//!
//! **Overlap.** A schedule with `overlap = "skip"` skips a tick while the
//! job of its latest tick is not finished (scheduled, pending, running or
//! retrying), asked of the store ([`Store::active_schedule_job`]) so it
//! holds across hosts.
//!
//! **Changes.** Changes made through this [`Scheduler`] (add, remove,
//! enable, disable) apply to its timetable at once. Changes made by another
//! process (another host, a CLI) are noticed by re-reading the schedules
//! table every [`SchedulerSettings::refresh`] (default 5 s) and on every
//! [`Scheduler::list`]. The store's `changes()` signal is not used for
//! this: it ticks on every job write, each tick's own enqueue included, so
//! it would make the scheduler re-read every schedule many times a second.
//! A re-read is diffed against the timetable: an unchanged schedule costs a
//! comparison.
//!
//! **Time.** Due ticks are computed from the injected [`Clock`]; waiting is
//! a real tokio sleep. [`Scheduler::fire_due`] is the loop's step, so tests
//! drive the scheduler with a `ManualClock` and never sleep.
//!
//! Schedules declared in `taskhost.toml` are upserted by
//! [`Scheduler::sync_config`] at start; schedules added at runtime live in
//! the store alone and survive restarts. A schedule removed from the config
//! stays in the store until removed at runtime (the store does not record
//! where a schedule came from).

mod def;
mod error;
mod fire;
mod run;
mod stats;
mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Notify, watch};

pub use def::{MAX_SCHEDULE_NAME_LEN, ScheduleDef, missed_text};
pub use error::SchedulerError;
pub use fire::MAX_MISSED_COUNTED;
pub use stats::{LATENESS_WINDOW, SchedulerStats, percentile};

use crate::clock::Clock;
use crate::job::JobId;
use crate::schedule::ScheduleSpec;
use crate::store::{Schedule, Store, StoreError};
use def::{check_floor, tick_job, validate_record};
use fire::Firer;
use table::Table;

/// How the scheduler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// How long after its due time a tick still fires (late); older unfired
    /// ticks are missed and follow the schedule's missed-tick policy.
    pub grace: Duration,
    /// This host's id, for logs.
    pub host_id: String,
    /// How often the schedules table is re-read to notice other processes'
    /// changes.
    pub refresh: Duration,
    /// The shortest span between two fires a schedule may have.
    pub min_interval: Duration,
    /// The schedules the config file declares. The file owns them: a
    /// runtime remove, enable or disable would be undone at the next start,
    /// so those are refused (run-now is not).
    pub declared: BTreeSet<String>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(60),
            host_id: "taskhost".to_owned(),
            refresh: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
            declared: BTreeSet::new(),
        }
    }
}

/// A schedule with what this host knows about its firing.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScheduleInfo {
    /// The stored record.
    pub schedule: Schedule,
    /// Its next tick; `None` when disabled, finished, or not fired here.
    pub next_fire: Option<DateTime<Utc>>,
    /// Why this host does not fire it (bad expression, handler not loaded
    /// here), if so; hosts that can fire it still do.
    pub problem: Option<String>,
}

/// Tries of [`Scheduler::run_now`] to find a free tick key (a run-now is
/// keyed by the current microsecond, which a regular tick may hold).
const RUN_NOW_TRIES: i64 = 3;

/// The scheduler of one host. Share it as `Arc<Scheduler>`: one task runs
/// [`Scheduler::run`], the API calls the management methods.
pub struct Scheduler {
    firer: Arc<Firer>,
    settings: SchedulerSettings,
    /// Replaced when the plugins change ([`Scheduler::set_known_handlers`]).
    known_handlers: std::sync::RwLock<HashSet<String>>,
    table: Mutex<Table>,
    wake: Notify,
    passes: watch::Sender<u64>,
}

impl Scheduler {
    /// A scheduler on `store` that fires schedules whose handler is one of
    /// `known_handlers` (the handlers the loaded plugins provide).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: SchedulerSettings,
        known_handlers: Vec<String>,
    ) -> Self {
        let grace = chrono::Duration::from_std(settings.grace).unwrap_or(chrono::Duration::MAX);
        Self {
            firer: Arc::new(Firer {
                store,
                clock,
                stats: Default::default(),
                grace,
            }),
            settings,
            known_handlers: std::sync::RwLock::new(known_handlers.into_iter().collect()),
            table: Mutex::new(Table::default()),
            wake: Notify::new(),
            passes: watch::Sender::new(0),
        }
    }

    /// Upserts the schedules declared in the config, then loads every stored
    /// schedule. All are checked first: if any is bad (or two share a name)
    /// nothing is saved and the first problem is answered.
    pub async fn sync_config(&self, defs: &[ScheduleDef]) -> Result<(), SchedulerError> {
        let mut names = HashSet::with_capacity(defs.len());
        for def in defs {
            if !names.insert(def.name.as_str()) {
                return Err(SchedulerError::Duplicate(def.name.clone()));
            }
            self.check(&def.to_record())?;
        }
        for def in defs {
            self.store().upsert_schedule(&def.to_record()).await?;
        }
        self.refresh().await
    }

    /// Saves a new schedule and starts firing it from its next tick after
    /// now. Refuses a bad definition or a taken name, saving nothing.
    pub async fn add(&self, def: ScheduleDef) -> Result<ScheduleInfo, SchedulerError> {
        self.check(&def.to_record())?;
        match self.store().get_schedule(&def.name).await {
            Ok(_) => return Err(SchedulerError::AlreadyExists(def.name)),
            Err(StoreError::ScheduleNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let record = def.to_record();
        self.store().upsert_schedule(&record).await?;
        Ok(self.apply(record))
    }

    /// Deletes a schedule; it fires no further tick.
    pub async fn remove(&self, name: &str) -> Result<(), SchedulerError> {
        self.refuse_declared(name)?;
        self.store().delete_schedule(name).await?;
        self.table().remove(name);
        Ok(())
    }

    /// Enables a schedule; it fires from its next tick after now (ticks
    /// passed while it was disabled are not caught up).
    pub async fn enable(&self, name: &str) -> Result<ScheduleInfo, SchedulerError> {
        self.set_enabled(name, true).await
    }

    /// Disables a schedule; it fires nothing until enabled.
    pub async fn disable(&self, name: &str) -> Result<ScheduleInfo, SchedulerError> {
        self.set_enabled(name, false).await
    }

    /// Enqueues the schedule's job now, outside its timetable, enabled or
    /// not. The job counts as the schedule's latest, so the overlap policy
    /// of later ticks sees it.
    pub async fn run_now(&self, name: &str) -> Result<JobId, SchedulerError> {
        let record = self.store().get_schedule(name).await?;
        self.check(&record)?;
        let now = self.clock().now();
        for offset in 0..RUN_NOW_TRIES {
            let key = now + chrono::Duration::microseconds(offset);
            if let Some(id) = self
                .store()
                .claim_tick(name, key, tick_job(&record, key))
                .await?
            {
                tracing::info!(schedule = %name, job = %id, "schedule run now");
                return Ok(id);
            }
        }
        Err(SchedulerError::Store(StoreError::backend(format!(
            "schedule {name:?}: no free tick key at {now} for a run-now"
        ))))
    }

    /// Every stored schedule with its next fire time, by name. Reading the
    /// table also applies other processes' changes to this host.
    pub async fn list(&self) -> Result<Vec<ScheduleInfo>, SchedulerError> {
        let records = self.read_records().await?;
        self.sync(records.clone());
        let table = self.table();
        Ok(records
            .into_iter()
            .map(|schedule| {
                let (next_fire, problem) = table.info(&schedule.name).unwrap_or_default();
                ScheduleInfo {
                    schedule,
                    next_fire,
                    problem,
                }
            })
            .collect())
    }

    /// The counters; cheap, no store access.
    pub fn stats(&self) -> SchedulerStats {
        let active = self.table().active();
        self.firer.stats.snapshot(active)
    }

    /// Whether a loaded plugin provides `handler`.
    pub fn is_known(&self, handler: &str) -> bool {
        self.known_handlers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(handler)
    }

    /// Takes the handler set of a changed handler table: schedules whose
    /// handler arrived start firing (continuing after their last claimed
    /// tick, as at a start), those whose handler left stop firing here.
    pub async fn set_known_handlers(&self, handlers: Vec<String>) -> Result<(), SchedulerError> {
        *self
            .known_handlers
            .write()
            .unwrap_or_else(|p| p.into_inner()) = handlers.into_iter().collect();
        // Entries whose fireability changed are read again from the store,
        // as new ones, so they pick up from their last claimed tick.
        let changed = self.table().fireability_changed(&|s| self.compile(s));
        if !changed.is_empty() {
            let mut table = self.table();
            for name in &changed {
                table.remove(name);
            }
        }
        self.refresh().await
    }

    /// The settings.
    pub fn settings(&self) -> &SchedulerSettings {
        &self.settings
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<ScheduleInfo, SchedulerError> {
        self.refuse_declared(name)?;
        self.store().set_schedule_enabled(name, enabled).await?;
        let record = self.store().get_schedule(name).await?;
        Ok(self.apply(record))
    }

    /// Puts one stored record into the timetable and wakes the loop.
    fn apply(&self, record: Schedule) -> ScheduleInfo {
        let now = self.clock().now();
        let mut table = self.table();
        table.upsert(record.clone(), now, &|s| self.compile(s));
        let (next_fire, problem) = table.info(&record.name).unwrap_or_default();
        drop(table);
        self.wake.notify_one();
        ScheduleInfo {
            schedule: record,
            next_fire,
            problem,
        }
    }

    /// Every stored schedule.
    async fn read_records(&self) -> Result<Vec<Schedule>, SchedulerError> {
        Ok(self.store().list_schedules().await?)
    }

    /// Brings the timetable in line with the stored records.
    fn sync(&self, records: Vec<Schedule>) {
        let now = self.clock().now();
        let report = self.table().sync(records, now, &|s| self.compile(s));
        if report != Default::default() {
            tracing::debug!(?report, "schedules reloaded");
            self.wake.notify_one();
        }
    }

    fn compile(&self, s: &Schedule) -> Result<ScheduleSpec, SchedulerError> {
        self.check(s)
    }

    fn refuse_declared(&self, name: &str) -> Result<(), SchedulerError> {
        match self.settings.declared.contains(name) {
            true => Err(SchedulerError::ConfigManaged(name.to_owned())),
            false => Ok(()),
        }
    }

    /// Everything a schedule must pass on this host: a valid record, a
    /// handler loaded here, and no two fires closer than `min_interval`.
    fn check(&self, s: &Schedule) -> Result<ScheduleSpec, SchedulerError> {
        let spec = validate_record(s, &|h| self.is_known(h))?;
        check_floor(
            &s.name,
            &spec,
            self.settings.min_interval,
            self.clock().now(),
        )?;
        Ok(spec)
    }

    fn store(&self) -> &dyn Store {
        &*self.firer.store
    }

    fn clock(&self) -> &dyn Clock {
        &*self.firer.clock
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

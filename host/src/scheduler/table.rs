//! The in-memory timetable: every schedule this host knows, the next tick
//! of each, and a min-heap of when to look at them. The loop sleeps until
//! the heap's earliest time and then touches only the schedules that are
//! due, so 10,000 schedules cost nothing between their ticks.
//!
//! Heap items are never removed in place. Each carries the entry's version
//! and wake time; an item that no longer matches its entry (the schedule
//! changed, was removed or is being fired) is dropped when it surfaces.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::SchedulerError;
use super::fire::{Fired, Firing};
use crate::schedule::ScheduleSpec;
use crate::store::Schedule;

/// Checks a record and parses its expression; what this host cannot fire.
pub(super) type Compile<'a> = &'a dyn Fn(&Schedule) -> Result<ScheduleSpec, SchedulerError>;

/// One schedule as this host sees it.
struct Entry {
    /// The stored record, without its last tick (which changes every fire).
    record: Schedule,
    /// The parsed expression, or why this host cannot fire the schedule.
    spec: Result<ScheduleSpec, String>,
    /// The earliest tick not yet handled; `None` when none is left to fire
    /// (disabled, invalid here, or a one-off that has passed).
    cursor: Option<DateTime<Utc>>,
    /// When the heap should next surface the entry; `None` while it is not
    /// in the heap (being fired, or nothing to fire).
    wake: Option<DateTime<Utc>>,
    /// Bumped whenever the timing changes, so stale heap items and
    /// in-flight results are recognised.
    version: u64,
    /// Being fired by a `fire_due` pass.
    in_flight: bool,
}

/// A heap item: when, which version, which schedule.
type Item = Reverse<(DateTime<Utc>, u64, String)>;

/// What [`Table::sync`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SyncReport {
    /// Schedules seen for the first time.
    pub added: usize,
    /// Schedules whose record changed.
    pub changed: usize,
    /// Schedules no longer stored.
    pub removed: usize,
}

/// The timetable.
#[derive(Default)]
pub(super) struct Table {
    entries: HashMap<String, Entry>,
    heap: BinaryHeap<Item>,
    versions: u64,
}

impl Table {
    /// Brings the table in line with every stored record: new schedules
    /// continue after their last claimed tick, changed ones as
    /// [`Table::upsert`] says, and schedules no longer stored are dropped.
    pub fn sync(
        &mut self,
        records: Vec<Schedule>,
        now: DateTime<Utc>,
        compile: Compile<'_>,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        let mut seen = HashSet::with_capacity(records.len());
        for record in records {
            seen.insert(record.name.clone());
            match self.upsert(record, now, compile) {
                Upserted::Added => report.added += 1,
                Upserted::Changed => report.changed += 1,
                Upserted::Unchanged => {}
            }
        }
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|name| !seen.contains(*name))
            .cloned()
            .collect();
        report.removed = gone.len();
        for name in gone {
            self.remove(&name);
        }
        self.compact();
        report
    }

    /// The schedules whose record passes `compile` now but did not when
    /// it was put in the table, or the other way round (a handler loaded
    /// or unloaded since).
    pub fn fireability_changed(&self, compile: Compile<'_>) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| compile(&e.record).is_ok() != e.spec.is_ok())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Adds or updates one schedule from its stored record.
    ///
    /// A schedule new to this host continues after the record's last claimed
    /// tick, so ticks that passed while no host ran come up as late or
    /// missed; one that never fired starts after `now` (its earlier ticks
    /// may predate it), except a one-off, whose single tick is never dropped
    /// unseen: if it has passed, it is late or missed. A schedule whose
    /// expression, zone or enabled flag changed starts after `now` (changes
    /// apply from when they are made); one whose other fields changed keeps
    /// its place and fires the new job fields from its next tick.
    pub fn upsert(
        &mut self,
        mut record: Schedule,
        now: DateTime<Utc>,
        compile: Compile<'_>,
    ) -> Upserted {
        let last_tick = record.last_tick.take();
        let (is_new, same_timing) = match self.entries.get(&record.name) {
            Some(e) if e.record == record => return Upserted::Unchanged,
            Some(e) => (
                false,
                e.spec.is_ok()
                    && e.record.spec == record.spec
                    && e.record.timezone == record.timezone
                    && e.record.enabled == record.enabled,
            ),
            None => (true, false),
        };
        let spec = compile(&record).map_err(|err| err.to_string());
        if let Err(problem) = &spec {
            tracing::warn!(schedule = %record.name, "this host will not fire the schedule: {problem}");
        }
        if same_timing && spec.is_ok() {
            if let Some(e) = self.entries.get_mut(&record.name) {
                e.record = record;
                e.spec = spec;
            }
            return Upserted::Changed;
        }
        let cursor = match (&spec, last_tick) {
            (Ok(parsed), Some(last)) if is_new && record.enabled => parsed.next_after(last),
            (Ok(ScheduleSpec::Once(at)), None) if is_new && record.enabled => Some(*at),
            _ => start(&spec, record.enabled, now),
        };
        self.insert(record, spec, cursor);
        if is_new {
            Upserted::Added
        } else {
            Upserted::Changed
        }
    }

    /// Forgets a schedule; its heap item goes stale.
    pub fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    /// Takes every schedule due at `now` out of the heap, for firing.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<Firing> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, version, name))) = self.heap.pop() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&name) else {
                continue;
            };
            if e.version != version || e.wake != Some(at) {
                continue;
            }
            e.wake = None;
            if let (Ok(spec), Some(cursor)) = (&e.spec, e.cursor) {
                e.in_flight = true;
                due.push(Firing {
                    version,
                    record: e.record.clone(),
                    spec: spec.clone(),
                    cursor,
                });
            }
        }
        due
    }

    /// Takes back a fired schedule with its new cursor, unless it changed
    /// while it was being fired (then its new version is already queued).
    pub fn finish(&mut self, fired: Fired) {
        let Some(e) = self.entries.get_mut(&fired.name) else {
            return;
        };
        if e.version != fired.version || !e.in_flight {
            return;
        }
        e.in_flight = false;
        e.cursor = fired.cursor;
        if let Some(at) = fired.wake {
            e.wake = Some(at);
            self.heap.push(Reverse((at, e.version, fired.name)));
        }
    }

    /// The earliest time anything is due, dropping stale heap items on top.
    pub fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((at, version, name))) = self.heap.peek() {
            let live = self
                .entries
                .get(name)
                .is_some_and(|e| e.version == *version && e.wake == Some(*at));
            if live {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// The next tick and the problem (if this host cannot fire it) of a
    /// known schedule.
    pub fn info(&self, name: &str) -> Option<(Option<DateTime<Utc>>, Option<String>)> {
        self.entries
            .get(name)
            .map(|e| (e.cursor, e.spec.as_ref().err().cloned()))
    }

    /// How many schedules this host is firing.
    pub fn active(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.wake.is_some() || e.in_flight)
            .count()
    }

    /// Replaces an entry under a new version and queues it at its cursor.
    fn insert(
        &mut self,
        record: Schedule,
        spec: Result<ScheduleSpec, String>,
        cursor: Option<DateTime<Utc>>,
    ) {
        self.versions += 1;
        let version = self.versions;
        let name = record.name.clone();
        if let Some(at) = cursor {
            self.heap.push(Reverse((at, version, name.clone())));
        }
        self.entries.insert(
            name,
            Entry {
                record,
                spec,
                cursor,
                wake: cursor,
                version,
                in_flight: false,
            },
        );
    }

    /// Rebuilds the heap from the entries once stale items outnumber live ones.
    fn compact(&mut self) {
        if self.heap.len() <= 2 * self.entries.len() + 1024 {
            return;
        }
        self.heap = self
            .entries
            .iter()
            .filter_map(|(name, e)| e.wake.map(|at| Reverse((at, e.version, name.clone()))))
            .collect();
    }
}

/// What [`Table::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upserted {
    /// The schedule is new here.
    Added,
    /// The record changed.
    Changed,
    /// Nothing changed.
    Unchanged,
}

/// The first tick after `now`, for a schedule that fires at all.
fn start(
    spec: &Result<ScheduleSpec, String>,
    enabled: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match spec {
        Ok(spec) if enabled => spec.next_after(now),
        _ => None,
    }
}

//! Firing one schedule's due ticks: which ones passed beyond the grace
//! window with no host to fire them (missed), which are only late, the
//! overlap check, and the atomic claim that makes every tick enqueue one job
//! however many hosts fire it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::def::{missed_text, tick_job};
use super::stats::Counters;
use crate::clock::Clock;
use crate::schedule::ScheduleSpec;
use crate::store::{MissedPolicy, OverlapPolicy, Schedule, Store, StoreResult};

/// Missed ticks of one gap are counted one by one up to this many; past it
/// the count stops and the scheduler jumps to the first tick inside the
/// grace window, so a year-long gap of a one-second schedule costs no more
/// than this.
pub const MAX_MISSED_COUNTED: u64 = 10_000;

/// How soon a tick whose store call failed is tried again. It keeps being
/// retried until it falls out of the grace window and counts as missed.
const RETRY_AFTER: chrono::Duration = chrono::Duration::seconds(1);

/// A schedule taken out of the timetable to fire its due ticks.
pub(super) struct Firing {
    /// The timetable entry's version when it was taken.
    pub version: u64,
    /// The schedule.
    pub record: Schedule,
    /// Its parsed expression.
    pub spec: ScheduleSpec,
    /// Its earliest unhandled tick (due).
    pub cursor: DateTime<Utc>,
}

/// A fired schedule, going back into the timetable.
pub(super) struct Fired {
    /// The schedule.
    pub name: String,
    /// The version it was taken at.
    pub version: u64,
    /// Its earliest unhandled tick; `None` when no tick is left.
    pub cursor: Option<DateTime<Utc>>,
    /// When to look at it again.
    pub wake: Option<DateTime<Utc>>,
}

impl Firing {
    /// The answer that puts the schedule back to try `tick` again soon.
    pub fn retry(&self, tick: DateTime<Utc>, now: DateTime<Utc>) -> Fired {
        Fired {
            name: self.record.name.clone(),
            version: self.version,
            cursor: Some(tick),
            wake: Some(now + RETRY_AFTER),
        }
    }
}

/// Whether a claimed tick is a regular one or stands in for a missed gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OnTime,
    CatchUp,
}

/// What firing needs; shared by the concurrent firing tasks.
pub(super) struct Firer {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub stats: Counters,
    /// Ticks older than this at firing time count as missed.
    pub grace: chrono::Duration,
}

impl Firer {
    /// Handles every tick of `f` due at `now`, oldest first: a gap of ticks
    /// older than the grace window is missed (counted; one catch-up job
    /// under `catch-up-once`), later ones are claimed one by one. Ticks of
    /// one schedule stay in order so the overlap check sees each claim.
    pub async fn fire(&self, f: Firing, now: DateTime<Utc>) -> Fired {
        let cutoff = now - self.grace;
        let mut next = Some(f.cursor);
        if f.cursor < cutoff {
            let gap = Gap::find(&f.spec, f.cursor, cutoff);
            Counters::bump(&self.stats.missed, gap.count);
            tracing::info!(
                schedule = %f.record.name,
                first = %f.cursor,
                last = %gap.last,
                count = gap.count,
                policy = missed_text::name(f.record.missed),
                "ticks passed while no host was up to fire them"
            );
            if f.record.missed == MissedPolicy::RunOnce
                && let Err(e) = self.tick(&f.record, gap.last, Kind::CatchUp).await
            {
                return self.failed(&f, f.cursor, now, &e.to_string());
            }
            next = gap.next;
        }
        while let Some(tick) = next.filter(|t| *t <= now) {
            if let Err(e) = self.tick(&f.record, tick, Kind::OnTime).await {
                return self.failed(&f, tick, now, &e.to_string());
            }
            next = f.spec.next_after(tick);
        }
        Fired {
            name: f.record.name,
            version: f.version,
            cursor: next,
            wake: next,
        }
    }

    /// One tick: the overlap check, then the claim.
    async fn tick(&self, s: &Schedule, tick: DateTime<Utc>, kind: Kind) -> StoreResult<()> {
        if s.overlap == OverlapPolicy::Skip
            && let Some(job) = self.store.active_schedule_job(&s.name).await?
        {
            Counters::bump(&self.stats.skipped_overlap, 1);
            tracing::debug!(schedule = %s.name, %tick, %job, "previous job not finished; tick skipped");
            return Ok(());
        }
        match self
            .store
            .claim_tick(&s.name, tick, tick_job(s, tick))
            .await?
        {
            Some(job) => {
                Counters::bump(&self.stats.fired, 1);
                match kind {
                    Kind::OnTime => self
                        .stats
                        .record_lateness((self.clock.now() - tick).to_std().unwrap_or_default()),
                    Kind::CatchUp => Counters::bump(&self.stats.caught_up, 1),
                }
                tracing::debug!(schedule = %s.name, %tick, %job, "tick fired");
            }
            None => Counters::bump(&self.stats.claimed_by_other, 1),
        }
        Ok(())
    }

    /// Counts and logs a store failure and schedules a retry of `tick`.
    fn failed(&self, f: &Firing, tick: DateTime<Utc>, now: DateTime<Utc>, error: &str) -> Fired {
        Counters::bump(&self.stats.errors, 1);
        tracing::warn!(schedule = %f.record.name, %tick, "cannot fire tick, retrying: {error}");
        f.retry(tick, now)
    }
}

/// A run of missed ticks.
#[derive(Debug, PartialEq, Eq)]
struct Gap {
    /// How many (up to [`MAX_MISSED_COUNTED`]).
    count: u64,
    /// The latest. A catch-up job is keyed by it: the store then remembers
    /// it as the schedule's last tick, so a later start does not catch up
    /// the same gap again, and hosts starting at nearly the same time pick
    /// the same key or one that another host fires as late.
    last: DateTime<Utc>,
    /// The first tick at or after the cutoff.
    next: Option<DateTime<Utc>>,
}

impl Gap {
    /// The ticks from `first` (which is before `cutoff`) up to `cutoff`.
    fn find(spec: &ScheduleSpec, first: DateTime<Utc>, cutoff: DateTime<Utc>) -> Self {
        let mut gap = Self {
            count: 1,
            last: first,
            next: spec.next_after(first),
        };
        while let Some(tick) = gap.next.filter(|t| *t < cutoff) {
            if gap.count == MAX_MISSED_COUNTED {
                gap.last = last_before(spec, tick, cutoff);
                gap.next = spec.next_after(cutoff - chrono::Duration::nanoseconds(1));
                break;
            }
            gap.count += 1;
            gap.last = tick;
            gap.next = spec.next_after(tick);
        }
        gap
    }
}

/// The latest tick before `cutoff`, given a tick `known` before it: looks
/// back from the cutoff in doubling steps, then walks forward, so a long
/// gap costs a few dozen steps rather than one per tick.
fn last_before(spec: &ScheduleSpec, known: DateTime<Utc>, cutoff: DateTime<Utc>) -> DateTime<Utc> {
    let mut back = chrono::Duration::seconds(1);
    let mut last = loop {
        let from = cutoff - back;
        if from <= known {
            break known;
        }
        if let Some(tick) = spec.next_after(from).filter(|t| *t < cutoff) {
            break tick;
        }
        back = back * 2;
    };
    while let Some(tick) = spec.next_after(last).filter(|t| *t < cutoff) {
        last = tick;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn missed_ticks_are_counted_up_to_the_cutoff() {
        let spec = ScheduleSpec::parse("every 1m", Tz::UTC).unwrap();
        let gap = Gap::find(
            &spec,
            at("2030-01-01T00:00:00Z"),
            at("2030-01-01T00:10:00Z"),
        );
        assert_eq!(
            gap,
            Gap {
                count: 10,
                last: at("2030-01-01T00:09:00Z"),
                next: Some(at("2030-01-01T00:10:00Z")),
            },
            "a tick at the cutoff is late, not missed"
        );
    }

    #[test]
    fn long_gaps_stop_counting_and_jump() {
        let spec = ScheduleSpec::parse("every 1s", Tz::UTC).unwrap();
        let gap = Gap::find(
            &spec,
            at("2030-01-01T00:00:00Z"),
            at("2031-01-01T00:00:00.5Z"),
        );
        assert_eq!(gap.count, MAX_MISSED_COUNTED);
        assert_eq!(gap.last, at("2031-01-01T00:00:00Z"));
        assert_eq!(gap.next, Some(at("2031-01-01T00:00:01Z")));
        let weekdays = ScheduleSpec::parse("*/10 9 * * 1-5", Tz::UTC).unwrap();
        let gap = Gap::find(
            &weekdays,
            at("2020-01-01T09:00:00Z"),
            at("2031-01-05T12:00:00Z"),
        );
        assert_eq!(gap.count, MAX_MISSED_COUNTED);
        assert_eq!(gap.last, at("2031-01-03T09:50:00Z"), "Friday's last tick");
        assert_eq!(gap.next, Some(at("2031-01-06T09:00:00Z")));
    }
}

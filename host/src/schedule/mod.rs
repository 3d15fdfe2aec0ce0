//! Schedule expressions: when a recurring or delayed job fires.
//!
//! A schedule is written as one string, in one of three forms:
//!
//! | form | example | fires |
//! | --- | --- | --- |
//! | cron, 5 fields | `30 4 * * 1-5` | at 04:30 on weekdays |
//! | cron, 6 fields (seconds first) | `*/20 * * * * *` | every 20 seconds |
//! | cron shorthand | `@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly` | as in crontab |
//! | interval | `every 30s`, `every 5m`, `every 6h`, `every 1h30m` | every span, counted from the Unix epoch |
//! | interval with start | `every 1d from 2025-01-01T09:00:00+01:00` | at the start, then every span after it |
//! | once | `at 2025-01-31T09:00:00Z` | once, at that instant |
//!
//! The cron form means what it means in crontab and on crontab.guru; the
//! exact rules (day-of-month *or* day-of-week, DST gaps and repeats) are in
//! `README-cron.md` and on [`CronSchedule`]. Spans use [`parse_duration`].
//!
//! A schedule has an IANA time zone (default UTC). Cron fields are read on
//! that zone's wall clock; intervals and one-off times are absolute instants
//! and the zone only changes how their fire times are shown. An interval
//! counts from the Unix epoch unless given a start, so that every host
//! computes the same ticks: `every 5m` fires at :00, :05, ... UTC.

mod cron;
mod duration;
mod error;

#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use cron::{CronField, CronSchedule};
pub use duration::parse_duration;
pub use error::ScheduleError;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A parsed schedule in any of the three forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleSpec {
    /// A cron expression read in its time zone.
    Cron(CronSchedule),
    /// Fires every `every`, at `start + k * every` (`start` defaults to the
    /// Unix epoch).
    Interval {
        /// The span between fires; never zero.
        every: Duration,
        /// The first fire time; `None` anchors at 1970-01-01T00:00:00Z.
        start: Option<DateTime<Utc>>,
    },
    /// Fires once.
    Once(DateTime<Utc>),
}

impl ScheduleSpec {
    /// Parses the user-facing string form (see the module documentation);
    /// `tz` is the zone cron fields are read in.
    pub fn parse(expr: &str, tz: Tz) -> Result<Self, ScheduleError> {
        let trimmed = expr.trim();
        let (keyword, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        if keyword.eq_ignore_ascii_case("every") {
            parse_interval(rest.trim())
        } else if keyword.eq_ignore_ascii_case("at") {
            Ok(Self::Once(parse_timestamp(rest.trim())?))
        } else {
            CronSchedule::parse(trimmed, tz).map(Self::Cron)
        }
    }

    /// The first fire time strictly after `after`; `None` once a one-off
    /// time has passed (or past the end of the representable calendar).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron(cron) => cron.next_after(after),
            Self::Interval { every, start } => next_interval_tick(*every, *start, after),
            Self::Once(at) => (*at > after).then_some(*at),
        }
    }

    /// All fire times strictly after `after`, in order.
    pub fn upcoming(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(after), |t| self.next_after(*t))
    }
}

/// Looks a zone up by its IANA name (`Europe/Berlin`, `UTC`); exact case.
pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownZone(name.to_string()))
}

/// The next `count` fire times of `expr` strictly after `from`, in the
/// schedule's zone `tz` (default UTC). Backs `taskhost schedule next`.
pub fn next_fires(
    expr: &str,
    tz: Option<&str>,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Vec<DateTime<Tz>>, ScheduleError> {
    let tz = tz.map_or(Ok(Tz::UTC), parse_time_zone)?;
    let spec = ScheduleSpec::parse(expr, tz)?;
    Ok(spec
        .upcoming(from)
        .take(count)
        .map(|t| t.with_timezone(&tz))
        .collect())
}

/// `<duration>` or `<duration> from <rfc3339>`.
fn parse_interval(text: &str) -> Result<ScheduleSpec, ScheduleError> {
    let (span, start) = match text.split_once(char::is_whitespace) {
        Some((span, rest)) => {
            let rest = rest.trim_start();
            let (keyword, timestamp) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if !keyword.eq_ignore_ascii_case("from") {
                return Err(ScheduleError::InvalidSchedule {
                    input: format!("every {text}"),
                    reason: "expected \"every <duration>\" or \"every <duration> from <rfc3339>\""
                        .into(),
                });
            }
            (span, Some(parse_timestamp(timestamp.trim())?))
        }
        None => (text, None),
    };
    let every = parse_duration(span)?;
    if every.is_zero() {
        return Err(ScheduleError::ZeroInterval);
    }
    Ok(ScheduleSpec::Interval { every, start })
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, ScheduleError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| ScheduleError::InvalidTimestamp {
            input: text.to_string(),
            reason: e.to_string(),
        })
}

/// `start + k * every` for the smallest `k >= 0` that lands after `after`.
/// Nanosecond arithmetic in `i128` covers chrono's whole calendar.
fn next_interval_tick(
    every: Duration,
    start: Option<DateTime<Utc>>,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let anchor = start.unwrap_or(DateTime::UNIX_EPOCH);
    if after < anchor {
        return Some(anchor);
    }
    let nanos = |t: DateTime<Utc>| {
        i128::from(t.timestamp()) * NANOS_PER_SECOND + i128::from(t.timestamp_subsec_nanos())
    };
    let every = i128::try_from(every.as_nanos()).ok()?;
    let elapsed_ticks = (nanos(after) - nanos(anchor)) / every;
    let next = nanos(anchor) + (elapsed_ticks + 1) * every;
    let seconds = i64::try_from(next.div_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(seconds, next.rem_euclid(NANOS_PER_SECOND) as u32)
}

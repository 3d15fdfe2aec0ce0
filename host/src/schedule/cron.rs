//! Cron expressions: parsing into per-field bitsets and next-fire search.
//!
//! The matcher is our own rather than a crate's so that the rules users rely
//! on when they copy an expression from crontab or crontab.guru hold exactly
//! (see `README-cron.md`): Vixie's day-of-month / day-of-week rule, `7` as
//! Sunday, and explicit handling of the hours a DST change skips or repeats.
//!
//! The search works in the schedule's local wall-clock time: it walks
//! matching local times in order (skipping whole months and days that cannot
//! match, so it never scans minute by minute) and maps each to an instant.
//! That mapping is monotone, which is what makes "first candidate whose
//! instant is strictly after `after`" the correct answer.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use super::error::ScheduleError;

/// One field of a cron expression; named in every parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    /// Seconds, only present in the 6-field form.
    Second,
    /// Minute of the hour.
    Minute,
    /// Hour of the day (24-hour clock).
    Hour,
    /// Day of the month.
    DayOfMonth,
    /// Month of the year, `1-12` or `JAN`..`DEC`.
    Month,
    /// Day of the week, `0-7` (both `0` and `7` are Sunday) or `SUN`..`SAT`.
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The Gregorian calendar (weekdays included) repeats every 400 years, so a
/// day-of-month / month / day-of-week combination that matches no date in
/// that span never matches at all.
const CALENDAR_CYCLE_YEARS: i32 = 400;

impl CronField {
    fn min(self) -> u32 {
        match self {
            Self::DayOfMonth | Self::Month => 1,
            _ => 0,
        }
    }

    /// Largest value accepted in the text (`7` for day-of-week).
    fn max(self) -> u32 {
        match self {
            Self::Second | Self::Minute => 59,
            Self::Hour => 23,
            Self::DayOfMonth => 31,
            Self::Month => 12,
            Self::DayOfWeek => 7,
        }
    }

    /// End of `*` and of an open `N/S`: day-of-week stops at Saturday so that
    /// `1/3` means Mon, Thu and not also Sunday-as-7.
    fn open_end(self) -> u32 {
        match self {
            Self::DayOfWeek => 6,
            other => other.max(),
        }
    }

    fn names(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            Self::Month => Some((&MONTH_NAMES, "month")),
            Self::DayOfWeek => Some((&DAY_NAMES, "day")),
            _ => None,
        }
    }

    /// Value stored in the bitset: day-of-week `7` is Sunday, stored as `0`.
    fn normalize(self, value: u32) -> u32 {
        if self == Self::DayOfWeek && value == 7 {
            0
        } else {
            value
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        })
    }
}

/// The set of values one field allows; every field fits in 0..=59.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bits(u64);

impl Bits {
    fn contains(self, value: u32) -> bool {
        value < 64 && self.0 & (1 << value) != 0
    }

    /// Smallest allowed value `>= from`.
    fn next_from(self, from: u32) -> Option<u32> {
        if from >= 64 {
            return None;
        }
        let rest = self.0 & (u64::MAX << from);
        (rest != 0).then(|| rest.trailing_zeros())
    }
}

/// A parsed field: its values, and whether its text began with `*`.
struct ParsedField {
    bits: Bits,
    /// Vixie cron decides between the AND and the OR day rule on this.
    starts_with_star: bool,
}

fn parse_number(field: CronField, text: &str) -> Result<u32, ScheduleError> {
    let syntax = |reason: String| ScheduleError::Syntax { field, reason };
    if text.is_empty() {
        return Err(syntax("missing value".into()));
    }
    if let Some((names, _)) = field.names()
        && let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(text))
    {
        // Month names start at 1, day names at 0 (Sunday).
        return Ok(index as u32 + field.min());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(match field.names() {
            Some((_, kind)) => format!("\"{text}\" is not a number or a {kind} name"),
            None => format!("\"{text}\" is not a number"),
        }));
    }
    let value: u64 = text
        .parse()
        .map_err(|_| syntax(format!("\"{text}\" is too large")))?;
    if value < u64::from(field.min()) || value > u64::from(field.max()) {
        return Err(ScheduleError::OutOfRange {
            field,
            value,
            min: field.min(),
            max: field.max(),
        });
    }
    Ok(value as u32)
}

fn parse_step(field: CronField, text: &str) -> Result<u32, ScheduleError> {
    let syntax = |reason: String| ScheduleError::Syntax { field, reason };
    if text.is_empty() {
        return Err(syntax("missing step after \"/\"".into()));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(format!("step \"{text}\" is not a number")));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(ScheduleError::ZeroStep { field }),
        Ok(step) => Ok(step),
        // Any step this large selects only the start, like one of 100.
        Err(_) => Ok(u32::MAX),
    }
}

/// Parses one list element: `*`, `N`, `N-M`, each optionally `/S`.
fn parse_element(field: CronField, text: &str, bits: &mut Bits) -> Result<(), ScheduleError> {
    let (range, step) = match text.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(field, step)?)),
        None => (text, None),
    };
    let (start, end) = if range == "*" {
        (field.min(), field.open_end())
    } else if let Some((a, b)) = range.split_once('-') {
        let (start, end) = (parse_number(field, a)?, parse_number(field, b)?);
        if start > end {
            return Err(ScheduleError::ReversedRange { field, start, end });
        }
        (start, end)
    } else {
        let start = parse_number(field, range)?;
        // `N/S` runs from N to the end of the field, as crontab.guru reads it.
        (
            start,
            if step.is_some() {
                field.open_end()
            } else {
                start
            },
        )
    };
    let step = step.unwrap_or(1) as usize;
    for value in (start..=end).step_by(step) {
        bits.0 |= 1 << field.normalize(value);
    }
    Ok(())
}

fn parse_field(field: CronField, text: &str) -> Result<ParsedField, ScheduleError> {
    let mut bits = Bits(0);
    for element in text.split(',') {
        if element.is_empty() {
            return Err(ScheduleError::Syntax {
                field,
                reason: "empty list element".into(),
            });
        }
        parse_element(field, element, &mut bits)?;
    }
    Ok(ParsedField {
        bits,
        starts_with_star: text.starts_with('*'),
    })
}

/// The crontab `@` shorthands that denote a time schedule.
fn expand_macro(expr: &str) -> Result<&'static str, ScheduleError> {
    Ok(match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return Err(ScheduleError::UnknownMacro(expr.to_string())),
    })
}

/// A parsed cron expression bound to the time zone its wall-clock fields are
/// read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expression: String,
    tz: Tz,
    seconds: Bits,
    minutes: Bits,
    hours: Bits,
    days_of_month: Bits,
    months: Bits,
    days_of_week: Bits,
    /// Vixie rule: if either day field starts with `*`, a day must match
    /// both (the `*` one then usually matches everything); otherwise either.
    days_need_both: bool,
}

impl CronSchedule {
    /// Parses a 5-field (`min hour dom month dow`) or 6-field (seconds first)
    /// expression, or an `@daily`-style shorthand, read in zone `tz`.
    ///
    /// Rejects expressions that could never fire (`0 0 30 2 *`) so that a
    /// schedule that is accepted always has a next fire time.
    pub fn parse(expression: &str, tz: Tz) -> Result<Self, ScheduleError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let text = if trimmed.starts_with('@') {
            expand_macro(trimmed)?
        } else {
            trimmed
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => (None, &fields[..]),
            6 => (Some(fields[0]), &fields[1..]),
            got => return Err(ScheduleError::FieldCount { got }),
        };
        let seconds = match second {
            Some(text) => parse_field(CronField::Second, text)?.bits,
            None => Bits(1),
        };
        // Parsed left to right so that the first bad field is the one reported.
        let minutes = parse_field(CronField::Minute, rest[0])?.bits;
        let hours = parse_field(CronField::Hour, rest[1])?.bits;
        let dom = parse_field(CronField::DayOfMonth, rest[2])?;
        let months = parse_field(CronField::Month, rest[3])?.bits;
        let dow = parse_field(CronField::DayOfWeek, rest[4])?;
        let schedule = Self {
            expression: trimmed.to_string(),
            tz,
            seconds,
            minutes,
            hours,
            days_of_month: dom.bits,
            months,
            days_of_week: dow.bits,
            days_need_both: dom.starts_with_star || dow.starts_with_star,
        };
        // Any 400 consecutive years form one full cycle; start at 1970-01-01.
        if schedule
            .next_date(NaiveDate::default(), CALENDAR_CYCLE_YEARS)
            .is_none()
        {
            return Err(ScheduleError::NeverFires {
                day_of_month: rest[2].to_string(),
                month: rest[3].to_string(),
                day_of_week: rest[4].to_string(),
            });
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone whose wall clock the fields describe.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`, or `None` past the end of
    /// the representable calendar.
    ///
    /// A local time skipped by a DST jump fires at the first instant after
    /// the gap (several skipped times collapse into that one fire); a local
    /// time that occurs twice fires only at its first occurrence.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = after
            .with_timezone(&self.tz)
            .naive_local()
            .with_nanosecond(0)?;
        loop {
            let local = self.next_local(from)?;
            let instant = self.to_instant(local)?;
            // Candidates before `after` come from the repeated hour (or the
            // sub-second part of `after`): at most an hour of them.
            if instant > after {
                return Some(instant);
            }
            from = local.checked_add_signed(chrono::TimeDelta::seconds(1))?;
        }
    }

    /// Smallest matching local time `>= from` (whole seconds), searching at
    /// most one calendar cycle ahead.
    fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let mut floor = from.time();
        loop {
            let day = self.next_date(date, CALENDAR_CYCLE_YEARS + 1)?;
            if day != date {
                floor = NaiveTime::MIN;
            }
            if let Some(time) = self.next_time(floor) {
                return Some(day.and_time(time));
            }
            date = day.succ_opt()?;
            floor = NaiveTime::MIN;
        }
    }

    /// First matching date `>= from` within `years` years of it.
    fn next_date(&self, from: NaiveDate, years: i32) -> Option<NaiveDate> {
        let last = NaiveDate::from_ymd_opt(from.year().checked_add(years)?, 1, 1)
            .unwrap_or(NaiveDate::MAX);
        let mut date = from;
        while date < last {
            if !self.months.contains(date.month()) {
                date = match self.months.next_from(date.month() + 1) {
                    Some(month) => NaiveDate::from_ymd_opt(date.year(), month, 1)?,
                    None => {
                        let first = self.months.next_from(1)?;
                        NaiveDate::from_ymd_opt(date.year() + 1, first, 1)?
                    }
                };
                continue;
            }
            if self.day_matches(date) {
                return Some(date);
            }
            date = date.checked_add_days(Days::new(1))?;
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days_of_month.contains(date.day());
        let dow = self
            .days_of_week
            .contains(date.weekday().num_days_from_sunday());
        if self.days_need_both {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Smallest matching time of day `>= floor`, if any remains that day.
    fn next_time(&self, floor: NaiveTime) -> Option<NaiveTime> {
        let mut hour = self.hours.next_from(floor.hour())?;
        loop {
            let minute_floor = if hour == floor.hour() {
                floor.minute()
            } else {
                0
            };
            let mut minute = self.minutes.next_from(minute_floor);
            while let Some(m) = minute {
                let second_floor = if hour == floor.hour() && m == floor.minute() {
                    floor.second()
                } else {
                    0
                };
                if let Some(s) = self.seconds.next_from(second_floor) {
                    return NaiveTime::from_hms_opt(hour, m, s);
                }
                minute = self.minutes.next_from(m + 1);
            }
            hour = self.hours.next_from(hour + 1)?;
        }
    }

    /// Maps a local wall-clock time to the instant it fires at.
    fn to_instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.to_utc()),
            LocalResult::Ambiguous(first, second) => Some(first.min(second).to_utc()),
            LocalResult::None => gap_end(self.tz, local),
        }
    }
}

/// The first valid instant after the DST gap that swallows `local`: the
/// instant of the transition itself.
///
/// With `before`/`after` the UTC offsets either side of the gap, `local`
/// read with `after` is an instant before the transition and `local` read
/// with `before` one at or after it; bisect between them on whole seconds
/// (tz database transitions fall on whole seconds).
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let offset_at = |ts: i64| {
        DateTime::from_timestamp(ts, 0).map(|t| {
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
        })
    };
    let probe = local.and_utc().timestamp();
    let before = offset_at(probe - 86_400)?;
    let after = offset_at(probe + 86_400)?;
    let mut lo = probe - i64::from(after);
    let mut hi = probe - i64::from(before);
    if lo >= hi {
        // No offset increase around `local`: not a real gap, nothing to bisect.
        return DateTime::from_timestamp(hi, 0);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(mid)? == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

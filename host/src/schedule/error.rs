//! Errors raised while parsing schedules and durations.
//!
//! Every message names what was wrong and where (the cron field, the zone,
//! the duration text), because these errors travel unchanged to the user: in
//! a CLI error, an HTTP 4xx body, or a config-file diagnostic.

use super::cron::CronField;

/// Why a schedule expression, time zone or duration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression was empty or only whitespace.
    #[error("schedule expression is empty")]
    Empty,

    /// A cron expression had the wrong number of whitespace-separated fields.
    #[error("expected 5 or 6 fields, got {got}")]
    FieldCount {
        /// How many fields the expression had.
        got: usize,
    },

    /// A number outside the range the field allows (`61` as a minute).
    #[error("{field}: {value} is out of range {min}-{max}")]
    OutOfRange {
        /// The field holding the value.
        field: CronField,
        /// The value as written.
        value: u64,
        /// Smallest allowed value.
        min: u32,
        /// Largest allowed value.
        max: u32,
    },

    /// A `/0` step, which would never advance.
    #[error("{field}: step must be positive")]
    ZeroStep {
        /// The field holding the step.
        field: CronField,
    },

    /// A range whose start is after its end (`5-1`); cron ranges do not wrap.
    #[error("{field}: range {start}-{end} is reversed (the start must not exceed the end)")]
    ReversedRange {
        /// The field holding the range.
        field: CronField,
        /// Range start as a number.
        start: u32,
        /// Range end as a number.
        end: u32,
    },

    /// Any other malformed field text (empty list element, unknown name, ...).
    #[error("{field}: {reason}")]
    Syntax {
        /// The field that could not be read.
        field: CronField,
        /// What was wrong, quoting the offending text.
        reason: String,
    },

    /// Every field is valid, but no calendar date satisfies day-of-month,
    /// month and day-of-week together (`0 0 30 2 *`).
    #[error(
        "day-of-month: no date matches day-of-month \"{day_of_month}\" in month \"{month}\" \
         with day-of-week \"{day_of_week}\", so the schedule would never fire"
    )]
    NeverFires {
        /// The day-of-month field as written.
        day_of_month: String,
        /// The month field as written.
        month: String,
        /// The day-of-week field as written.
        day_of_week: String,
    },

    /// An `@name` shorthand that is not a time schedule.
    #[error(
        "unknown macro \"{0}\" (expected @yearly, @annually, @monthly, @weekly, @daily, \
         @midnight or @hourly)"
    )]
    UnknownMacro(String),

    /// A zone name missing from the IANA time zone database.
    #[error("unknown time zone \"{0}\"")]
    UnknownZone(String),

    /// A duration that could not be read (`5x`, `30`, `1.5h`).
    #[error("invalid duration \"{input}\": {reason}")]
    InvalidDuration {
        /// The text as given.
        input: String,
        /// What was wrong.
        reason: String,
    },

    /// An `every ...` schedule not of the form `every <duration> [from <rfc3339>]`.
    #[error("invalid schedule \"{input}\": {reason}")]
    InvalidSchedule {
        /// The expression as given.
        input: String,
        /// What form was expected.
        reason: String,
    },

    /// `every 0s`: an interval schedule must advance.
    #[error("interval must be positive")]
    ZeroInterval,

    /// The timestamp of an `at` schedule or an interval start was not RFC 3339.
    #[error(
        "invalid timestamp \"{input}\": {reason} (expected RFC 3339, e.g. 2025-01-31T09:00:00Z)"
    )]
    InvalidTimestamp {
        /// The text as given.
        input: String,
        /// The parser's complaint.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use crate::schedule::next_fires;

    /// Parses `expr` through the public entry point and checks the message
    /// a user would see.
    fn assert_error(expr: &str, tz: Option<&str>, message: &str) {
        match next_fires(expr, tz, DateTime::UNIX_EPOCH, 1) {
            Ok(fires) => panic!("{expr:?} should be rejected, got {fires:?}"),
            Err(e) => assert_eq!(e.to_string(), message, "{expr:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_and_the_reason() {
        let cases = [
            ("61 * * * *", "minute: 61 is out of range 0-59"),
            // Several bad fields: the leftmost one is reported.
            ("61 * * * 8", "minute: 61 is out of range 0-59"),
            ("60 61 * * * *", "second: 60 is out of range 0-59"),
            ("* * *", "expected 5 or 6 fields, got 3"),
            ("* * * * * * *", "expected 5 or 6 fields, got 7"),
            ("*/0 * * * *", "minute: step must be positive"),
            ("60 * * * * *", "second: 60 is out of range 0-59"),
            ("0 24 * * *", "hour: 24 is out of range 0-23"),
            ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
            ("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
            ("0 0 * 0 *", "month: 0 is out of range 1-12"),
            ("0 0 * 13 *", "month: 13 is out of range 1-12"),
            ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
            (
                "5-1 * * * *",
                "minute: range 5-1 is reversed (the start must not exceed the end)",
            ),
            (
                "0 0 * * FRI-MON",
                "day-of-week: range 5-1 is reversed (the start must not exceed the end)",
            ),
            ("1,,2 * * * *", "minute: empty list element"),
            ("0 0 1, * *", "day-of-month: empty list element"),
            ("-5 * * * *", "minute: missing value"),
            ("*/ * * * *", "minute: missing step after \"/\""),
            ("0 */x * * *", "hour: step \"x\" is not a number"),
            ("MON * * * *", "minute: \"MON\" is not a number"),
            (
                "0 0 * FOO *",
                "month: \"FOO\" is not a number or a month name",
            ),
            (
                "0 0 * * FUNDAY",
                "day-of-week: \"FUNDAY\" is not a number or a day name",
            ),
            (
                "99999999999999999999 * * * *",
                "minute: \"99999999999999999999\" is too large",
            ),
            (
                "0 0 30 2 *",
                "day-of-month: no date matches day-of-month \"30\" in month \"2\" with day-of-week \"*\", so the schedule would never fire",
            ),
            (
                "0 0 31 4,6,9,11 *",
                "day-of-month: no date matches day-of-month \"31\" in month \"4,6,9,11\" with day-of-week \"*\", so the schedule would never fire",
            ),
            (
                "@reboot",
                "unknown macro \"@reboot\" (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
            ),
            ("  ", "schedule expression is empty"),
            ("every 0s", "interval must be positive"),
            (
                "every 5x",
                "invalid duration \"5x\": unknown unit \"x\" (use ms, s, m, h or d)",
            ),
            (
                "every 5m since 2025-01-01T00:00:00Z",
                "invalid schedule \"every 5m since 2025-01-01T00:00:00Z\": expected \"every <duration>\" or \"every <duration> from <rfc3339>\"",
            ),
            (
                "at 2025-01-31 09:00",
                "invalid timestamp \"2025-01-31 09:00\": premature end of input (expected RFC 3339, e.g. 2025-01-31T09:00:00Z)",
            ),
        ];
        for (expr, message) in cases {
            assert_error(expr, None, message);
        }
        assert_error(
            "0 9 * * *",
            Some("Mars/Base"),
            "unknown time zone \"Mars/Base\"",
        );
        assert_error(
            "0 9 * * *",
            Some("europe/berlin"),
            "unknown time zone \"europe/berlin\"",
        );
    }
}

//! Human-written durations: `500ms`, `30s`, `5m`, `2h`, `1d`, `1h30m`.
//!
//! One parser for every place a user writes a span of time (interval
//! schedules, delays, retry back-off), so they all accept the same text and
//! reject it with the same message.

use std::time::Duration;

use super::error::ScheduleError;

/// Units from largest to smallest; a combination must use them in this
/// order, each at most once, so `1h30m` is accepted and `30m1h` is not.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

const UNIT_HINT: &str = "use ms, s, m, h or d";

/// Parses a duration made of `<whole number><unit>` parts, largest unit
/// first: `500ms`, `30s`, `5m`, `2h`, `1d`, `1h30m`, `1d12h`, `1m30s500ms`.
/// No spaces, no fractions, no sign. `0s` is a valid (zero) duration.
pub fn parse_duration(s: &str) -> Result<Duration, ScheduleError> {
    let invalid = |reason: String| ScheduleError::InvalidDuration {
        input: s.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(invalid(format!("empty ({UNIT_HINT})")));
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the smallest unit used so far.
    let mut next_allowed = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(format!("expected a number at \"{rest}\"")));
        }
        let (number, after) = rest.split_at(digits);
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = after.split_at(letters);
        if unit.is_empty() {
            return Err(invalid(format!(
                "missing unit after {number} ({UNIT_HINT})"
            )));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(format!("unknown unit \"{unit}\" ({UNIT_HINT})")));
        };
        if index < next_allowed {
            return Err(invalid(
                "units must go from largest to smallest, each at most once".into(),
            ));
        }
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[index].1));
        total_ms = part
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| invalid("too large".into()))?;
        next_allowed = index + 1;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn combinations() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("", "invalid duration \"\": empty (use ms, s, m, h or d)"),
            (
                "30",
                "invalid duration \"30\": missing unit after 30 (use ms, s, m, h or d)",
            ),
            (
                "5x",
                "invalid duration \"5x\": unknown unit \"x\" (use ms, s, m, h or d)",
            ),
            (
                "1.5h",
                "invalid duration \"1.5h\": missing unit after 1 (use ms, s, m, h or d)",
            ),
            ("h", "invalid duration \"h\": expected a number at \"h\""),
            (
                "-5s",
                "invalid duration \"-5s\": expected a number at \"-5s\"",
            ),
            (
                "1h 30m",
                "invalid duration \"1h 30m\": expected a number at \" 30m\"",
            ),
            (
                "30m1h",
                "invalid duration \"30m1h\": units must go from largest to smallest, each at most once",
            ),
            (
                "1m1m",
                "invalid duration \"1m1m\": units must go from largest to smallest, each at most once",
            ),
            (
                "99999999999999999999d",
                "invalid duration \"99999999999999999999d\": too large",
            ),
        ];
        for (input, message) in cases {
            let err = parse_duration(input).expect_err(input);
            assert_eq!(err.to_string(), message, "input {input:?}");
        }
    }
}

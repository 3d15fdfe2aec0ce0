//! Acceptance tests for schedule expressions.
//!
//! Every expected time is a literal RFC 3339 string worked out by hand from
//! the calendar (2025-01-15 is a Wednesday) and from the 2025 DST rules:
//! Berlin springs forward 2025-03-30 01:00Z (02:00 CET -> 03:00 CEST) and
//! falls back 2025-10-26 01:00Z (03:00 CEST -> 02:00 CET); New York springs
//! forward 2025-03-09 07:00Z (02:00 EST -> 03:00 EDT) and falls back
//! 2025-11-02 06:00Z (02:00 EDT -> 01:00 EST).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{ScheduleSpec, next_fires};

/// Wednesday, mid-morning UTC: the starting instant of most tests.
const WED: &str = "2025-01-15T10:30:00Z";

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test timestamp")
        .to_utc()
}

/// Asserts the next fires of `expr` after `from`, rendered as the CLI does.
fn assert_fires(expr: &str, tz: Option<&str>, from: &str, expected: &[&str]) {
    let fires = next_fires(expr, tz, instant(from), expected.len())
        .unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"));
    let rendered: Vec<String> = fires.iter().map(|t| t.to_rfc3339()).collect();
    assert_eq!(rendered, expected, "{expr:?} in {tz:?} after {from}");
}

#[test]
fn acceptance_list_in_utc() {
    let cases: [(&str, [&str; 3]); 13] = [
        (
            "0 9 * * *",
            [
                "2025-01-16T09:00:00+00:00",
                "2025-01-17T09:00:00+00:00",
                "2025-01-18T09:00:00+00:00",
            ],
        ),
        (
            "0 0 * * 0",
            [
                "2025-01-19T00:00:00+00:00",
                "2025-01-26T00:00:00+00:00",
                "2025-02-02T00:00:00+00:00",
            ],
        ),
        (
            "*/15 * * * *",
            [
                "2025-01-15T10:45:00+00:00",
                "2025-01-15T11:00:00+00:00",
                "2025-01-15T11:15:00+00:00",
            ],
        ),
        (
            "0 9 1 * *",
            [
                "2025-02-01T09:00:00+00:00",
                "2025-03-01T09:00:00+00:00",
                "2025-04-01T09:00:00+00:00",
            ],
        ),
        (
            "0 */2 * * *",
            [
                "2025-01-15T12:00:00+00:00",
                "2025-01-15T14:00:00+00:00",
                "2025-01-15T16:00:00+00:00",
            ],
        ),
        (
            "30 4 * * 1-5",
            [
                "2025-01-16T04:30:00+00:00",
                "2025-01-17T04:30:00+00:00",
                "2025-01-20T04:30:00+00:00",
            ],
        ),
        (
            "5 * * * *",
            [
                "2025-01-15T11:05:00+00:00",
                "2025-01-15T12:05:00+00:00",
                "2025-01-15T13:05:00+00:00",
            ],
        ),
        (
            "15 0 * * *",
            [
                "2025-01-16T00:15:00+00:00",
                "2025-01-17T00:15:00+00:00",
                "2025-01-18T00:15:00+00:00",
            ],
        ),
        (
            "0 1 * * 0",
            [
                "2025-01-19T01:00:00+00:00",
                "2025-01-26T01:00:00+00:00",
                "2025-02-02T01:00:00+00:00",
            ],
        ),
        (
            "0 2 1 * *",
            [
                "2025-02-01T02:00:00+00:00",
                "2025-03-01T02:00:00+00:00",
                "2025-04-01T02:00:00+00:00",
            ],
        ),
        (
            "0 3 * * *",
            [
                "2025-01-16T03:00:00+00:00",
                "2025-01-17T03:00:00+00:00",
                "2025-01-18T03:00:00+00:00",
            ],
        ),
        (
            "0 4 * * 0",
            [
                "2025-01-19T04:00:00+00:00",
                "2025-01-26T04:00:00+00:00",
                "2025-02-02T04:00:00+00:00",
            ],
        ),
        (
            "0 8 * * *",
            [
                "2025-01-16T08:00:00+00:00",
                "2025-01-17T08:00:00+00:00",
                "2025-01-18T08:00:00+00:00",
            ],
        ),
    ];
    for (expr, expected) in cases {
        assert_fires(expr, None, WED, &expected);
    }
}

#[test]
fn next_fire_is_strictly_after_the_given_instant() {
    assert_fires(
        "0 9 * * *",
        None,
        "2025-01-16T09:00:00Z",
        &["2025-01-17T09:00:00+00:00"],
    );
    assert_fires(
        "0 9 * * *",
        None,
        "2025-01-16T08:59:59.500Z",
        &["2025-01-16T09:00:00+00:00"],
    );
    assert_fires(
        "0 9 * * *",
        None,
        "2025-01-16T09:00:00.001Z",
        &["2025-01-17T09:00:00+00:00"],
    );
}

#[test]
fn steps_in_ranges_and_open_steps() {
    assert_fires(
        "0 9-17/4 * * *",
        None,
        WED,
        &[
            "2025-01-15T13:00:00+00:00",
            "2025-01-15T17:00:00+00:00",
            "2025-01-16T09:00:00+00:00",
        ],
    );
    assert_fires(
        "10-40/15 * * * *",
        None,
        WED,
        &[
            "2025-01-15T10:40:00+00:00",
            "2025-01-15T11:10:00+00:00",
            "2025-01-15T11:25:00+00:00",
        ],
    );
    // `N/S` runs from N to the end of the field: minutes 5, 25, 45.
    assert_fires(
        "5/20 * * * *",
        None,
        WED,
        &[
            "2025-01-15T10:45:00+00:00",
            "2025-01-15T11:05:00+00:00",
            "2025-01-15T11:25:00+00:00",
        ],
    );
    // Day-of-week `1/3` is Monday and Thursday only; it stops at Saturday (6).
    assert_fires(
        "0 0 * * 1/3",
        None,
        WED,
        &[
            "2025-01-16T00:00:00+00:00",
            "2025-01-20T00:00:00+00:00",
            "2025-01-23T00:00:00+00:00",
            "2025-01-27T00:00:00+00:00",
        ],
    );
}

#[test]
fn lists_mix_values_ranges_and_steps() {
    assert_fires(
        "0,30 8,20 * * *",
        None,
        WED,
        &[
            "2025-01-15T20:00:00+00:00",
            "2025-01-15T20:30:00+00:00",
            "2025-01-16T08:00:00+00:00",
            "2025-01-16T08:30:00+00:00",
        ],
    );
    assert_fires(
        "1-3,10-20/5,58 * * * *",
        None,
        WED,
        &[
            "2025-01-15T10:58:00+00:00",
            "2025-01-15T11:01:00+00:00",
            "2025-01-15T11:02:00+00:00",
            "2025-01-15T11:03:00+00:00",
            "2025-01-15T11:10:00+00:00",
        ],
    );
}

#[test]
fn month_and_day_names_are_case_insensitive() {
    // Monday to Wednesday in January-March and December; 2025-01-15 is a Wednesday.
    assert_fires(
        "0 12 * jan-MAR,Dec Mon-wed",
        None,
        WED,
        &[
            "2025-01-15T12:00:00+00:00",
            "2025-01-20T12:00:00+00:00",
            "2025-01-21T12:00:00+00:00",
        ],
    );
    assert_fires(
        "0 0 1 JAN/3 *",
        None,
        WED,
        &[
            "2025-04-01T00:00:00+00:00",
            "2025-07-01T00:00:00+00:00",
            "2025-10-01T00:00:00+00:00",
            "2026-01-01T00:00:00+00:00",
        ],
    );
    assert_fires(
        "0 0 1 jun,Sep *",
        None,
        WED,
        &[
            "2025-06-01T00:00:00+00:00",
            "2025-09-01T00:00:00+00:00",
            "2026-06-01T00:00:00+00:00",
        ],
    );
}

#[test]
fn sunday_is_both_0_and_7() {
    let sundays = [
        "2025-01-19T06:00:00+00:00",
        "2025-01-26T06:00:00+00:00",
        "2025-02-02T06:00:00+00:00",
    ];
    for expr in [
        "0 6 * * 0",
        "0 6 * * 7",
        "0 6 * * SUN",
        "0 6 * * sun",
        "0 6 * * 0,7",
    ] {
        assert_fires(expr, None, WED, &sundays);
    }
    assert_fires(
        "0 6 * * 5-7",
        None,
        WED,
        &[
            "2025-01-17T06:00:00+00:00",
            "2025-01-18T06:00:00+00:00",
            "2025-01-19T06:00:00+00:00",
            "2025-01-24T06:00:00+00:00",
        ],
    );
}

#[test]
fn restricted_day_of_month_and_day_of_week_match_either() {
    // The 1st of each month and every Monday; 2025-02-01 is a Saturday.
    assert_fires(
        "0 12 1 * 1",
        None,
        WED,
        &[
            "2025-01-20T12:00:00+00:00",
            "2025-01-27T12:00:00+00:00",
            "2025-02-01T12:00:00+00:00",
            "2025-02-03T12:00:00+00:00",
        ],
    );
    // The 31st never occurs in February, but the Mondays still fire.
    assert_fires(
        "0 0 31 2 1",
        None,
        WED,
        &[
            "2025-02-03T00:00:00+00:00",
            "2025-02-10T00:00:00+00:00",
            "2025-02-17T00:00:00+00:00",
            "2025-02-24T00:00:00+00:00",
            "2026-02-02T00:00:00+00:00",
        ],
    );
}

#[test]
fn a_day_field_starting_with_star_makes_both_required() {
    // Vixie cron, and crontab.guru: odd days of the month *that are* Mondays.
    assert_fires(
        "0 12 */2 * 1",
        None,
        WED,
        &[
            "2025-01-27T12:00:00+00:00",
            "2025-02-03T12:00:00+00:00",
            "2025-02-17T12:00:00+00:00",
        ],
    );
    // 29 February falling on a Sunday: 2032, 2060, 2088, then 2128 (2100 is no leap year).
    assert_fires(
        "0 0 29 2 */7",
        None,
        "2089-01-01T00:00:00Z",
        &["2128-02-29T00:00:00+00:00"],
    );
}

#[test]
fn the_29th_of_february_fires_in_leap_years_only() {
    assert_fires(
        "0 0 29 2 *",
        None,
        WED,
        &[
            "2028-02-29T00:00:00+00:00",
            "2032-02-29T00:00:00+00:00",
            "2036-02-29T00:00:00+00:00",
        ],
    );
    assert_fires(
        "0 0 29 2 *",
        None,
        "2097-01-01T00:00:00Z",
        &["2104-02-29T00:00:00+00:00"],
    );
}

#[test]
fn the_31st_skips_shorter_months() {
    assert_fires(
        "0 0 31 * *",
        None,
        WED,
        &[
            "2025-01-31T00:00:00+00:00",
            "2025-03-31T00:00:00+00:00",
            "2025-05-31T00:00:00+00:00",
            "2025-07-31T00:00:00+00:00",
            "2025-08-31T00:00:00+00:00",
        ],
    );
}

#[test]
fn six_fields_put_seconds_first() {
    assert_fires(
        "*/20 * * * * *",
        None,
        WED,
        &[
            "2025-01-15T10:30:20+00:00",
            "2025-01-15T10:30:40+00:00",
            "2025-01-15T10:31:00+00:00",
        ],
    );
    assert_fires("30 0 9 * * *", None, WED, &["2025-01-16T09:00:30+00:00"]);
}

#[test]
fn crontab_shorthands() {
    assert_fires("@hourly", None, WED, &["2025-01-15T11:00:00+00:00"]);
    assert_fires("@daily", None, WED, &["2025-01-16T00:00:00+00:00"]);
    assert_fires("@midnight", None, WED, &["2025-01-16T00:00:00+00:00"]);
    assert_fires("@weekly", None, WED, &["2025-01-19T00:00:00+00:00"]);
    assert_fires("@monthly", None, WED, &["2025-02-01T00:00:00+00:00"]);
    assert_fires("@YEARLY", None, WED, &["2026-01-01T00:00:00+00:00"]);
    assert_fires("@annually", None, WED, &["2026-01-01T00:00:00+00:00"]);
}

#[test]
fn fields_are_read_on_the_zone_wall_clock() {
    // 10:30Z is 19:30 in Tokyo and 16:00 in Kolkata: today's 09:00 has passed.
    assert_fires(
        "0 9 * * *",
        Some("Asia/Tokyo"),
        WED,
        &["2025-01-16T09:00:00+09:00", "2025-01-17T09:00:00+09:00"],
    );
    assert_fires(
        "0 9 * * *",
        Some("Asia/Kolkata"),
        WED,
        &["2025-01-16T09:00:00+05:30"],
    );
    assert_fires(
        "0 9 * * *",
        Some("UTC"),
        WED,
        &["2025-01-16T09:00:00+00:00"],
    );
}

#[test]
fn berlin_spring_forward_fires_skipped_times_once_after_the_gap() {
    assert_fires(
        "30 2 * * *",
        Some("Europe/Berlin"),
        "2025-03-28T12:00:00Z",
        &[
            "2025-03-29T02:30:00+01:00",
            "2025-03-30T03:00:00+02:00",
            "2025-03-31T02:30:00+02:00",
        ],
    );
    // 02:00 and 02:30 do not exist; both collapse with 03:00 into one fire.
    assert_fires(
        "*/30 * * * *",
        Some("Europe/Berlin"),
        "2025-03-30T00:00:00Z",
        &[
            "2025-03-30T01:30:00+01:00",
            "2025-03-30T03:00:00+02:00",
            "2025-03-30T03:30:00+02:00",
        ],
    );
}

#[test]
fn berlin_fall_back_fires_repeated_times_at_the_first_occurrence() {
    assert_fires(
        "30 2 * * *",
        Some("Europe/Berlin"),
        "2025-10-25T12:00:00Z",
        &[
            "2025-10-26T02:30:00+02:00",
            "2025-10-27T02:30:00+01:00",
            "2025-10-28T02:30:00+01:00",
        ],
    );
    assert_fires(
        "*/30 * * * *",
        Some("Europe/Berlin"),
        "2025-10-25T23:30:00Z",
        &[
            "2025-10-26T02:00:00+02:00",
            "2025-10-26T02:30:00+02:00",
            "2025-10-26T03:00:00+01:00",
        ],
    );
    // From inside the second 02:xx hour: its 02:30 already fired the first time round.
    assert_fires(
        "*/30 * * * *",
        Some("Europe/Berlin"),
        "2025-10-26T01:15:00Z",
        &["2025-10-26T03:00:00+01:00"],
    );
}

#[test]
fn new_york_spring_forward_fires_skipped_times_once_after_the_gap() {
    assert_fires(
        "30 2 * * *",
        Some("America/New_York"),
        "2025-03-08T12:00:00Z",
        &[
            "2025-03-09T03:00:00-04:00",
            "2025-03-10T02:30:00-04:00",
            "2025-03-11T02:30:00-04:00",
        ],
    );
    assert_fires(
        "0 * * * *",
        Some("America/New_York"),
        "2025-03-09T06:30:00Z",
        &["2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"],
    );
}

#[test]
fn new_york_fall_back_fires_repeated_times_at_the_first_occurrence() {
    assert_fires(
        "30 1 * * *",
        Some("America/New_York"),
        "2025-11-01T12:00:00Z",
        &["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"],
    );
    // The repeated 01:00 (EST) does not fire again, so hourly skips an hour.
    assert_fires(
        "0 * * * *",
        Some("America/New_York"),
        "2025-11-02T04:30:00Z",
        &[
            "2025-11-02T01:00:00-04:00",
            "2025-11-02T02:00:00-05:00",
            "2025-11-02T03:00:00-05:00",
        ],
    );
    assert_fires(
        "15 1 * * *",
        Some("America/New_York"),
        "2025-11-02T06:05:00Z",
        &["2025-11-03T01:15:00-05:00"],
    );
}

#[test]
fn a_half_hour_dst_gap_ends_at_the_transition_instant() {
    // Lord Howe Island jumps 02:00 +10:30 -> 02:30 +11:00 on 2025-10-05.
    assert_fires(
        "0 2 * * *",
        Some("Australia/Lord_Howe"),
        "2025-10-04T00:00:00Z",
        &["2025-10-05T02:30:00+11:00", "2025-10-06T02:00:00+11:00"],
    );
}

#[test]
fn a_skipped_calendar_day_fires_once_when_the_clock_resumes() {
    // Samoa skipped 2011-12-30: 23:59:59 -10:00 on the 29th, then 00:00 +14:00 on the 31st.
    assert_fires(
        "0 9 * * *",
        Some("Pacific/Apia"),
        "2011-12-29T20:00:00Z",
        &["2011-12-31T00:00:00+14:00", "2011-12-31T09:00:00+14:00"],
    );
}

#[test]
fn intervals_count_from_the_epoch_or_their_start() {
    assert_fires(
        "every 5m",
        None,
        "2025-01-15T10:31:10Z",
        &["2025-01-15T10:35:00+00:00", "2025-01-15T10:40:00+00:00"],
    );
    assert_fires(
        "every 500ms",
        None,
        "2025-01-15T10:30:00.200Z",
        &["2025-01-15T10:30:00.500+00:00", "2025-01-15T10:30:01+00:00"],
    );
    // Start 08:00Z; 10:30Z is 1.67 periods later.
    assert_fires(
        "every 1h30m from 2025-01-15T09:00:00+01:00",
        None,
        WED,
        &["2025-01-15T11:00:00+00:00", "2025-01-15T12:30:00+00:00"],
    );
    assert_fires(
        "EVERY 1d FROM 2025-02-01T00:00:00Z",
        None,
        WED,
        &["2025-02-01T00:00:00+00:00", "2025-02-02T00:00:00+00:00"],
    );
    // The zone only changes how the instants are shown.
    assert_fires(
        "every 6h",
        Some("Europe/Berlin"),
        WED,
        &[
            "2025-01-15T13:00:00+01:00",
            "2025-01-15T19:00:00+01:00",
            "2025-01-16T01:00:00+01:00",
        ],
    );
}

#[test]
fn once_fires_a_single_time_and_never_after() {
    assert_eq!(
        next_fires("at 2025-01-31T09:00:00+01:00", None, instant(WED), 3)
            .expect("parses")
            .iter()
            .map(|t| t.to_rfc3339())
            .collect::<Vec<_>>(),
        ["2025-01-31T08:00:00+00:00"]
    );
    let spec = ScheduleSpec::parse("at 2025-01-31T09:00:00+01:00", Tz::UTC).expect("parses");
    assert_eq!(spec.next_after(instant("2025-01-31T08:00:00Z")), None);
}

#[test]
fn search_stops_at_the_end_of_the_calendar() {
    let spec = ScheduleSpec::parse("* * * * *", Tz::UTC).expect("parses");
    assert_eq!(spec.next_after(DateTime::<Utc>::MAX_UTC), None);
    let interval = ScheduleSpec::parse("every 1d", Tz::UTC).expect("parses");
    assert_eq!(interval.next_after(DateTime::<Utc>::MAX_UTC), None);
}

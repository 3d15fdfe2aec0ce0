//! Schedules in words for the dashboard: the common cron shapes ("at 00:15
//! every day, UTC"); anything else is shown as written.

/// `spec` (read in `tz`) in words, when it has a shape worth saying.
pub fn describe(spec: &str, tz: &str) -> Option<String> {
    let spec = spec.trim();
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("every ") || lower.starts_with("at ") {
        return Some(spec.to_string());
    }
    let f: Vec<&str> = spec.split_whitespace().collect();
    let [m, h, dom, mon, dow] = f[..] else {
        return None;
    };
    let num = |s: &str, max: u32| s.parse::<u32>().ok().filter(|n| *n <= max);
    if mon != "*" {
        return None;
    }
    match (num(m, 59), num(h, 23), dom, dow) {
        (Some(m), Some(h), "*", "*") => Some(format!("at {h:02}:{m:02} every day, {tz}")),
        (Some(m), Some(h), "*", d) => {
            const DAYS: [&str; 8] = [
                "Sunday",
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
                "Sunday",
            ];
            let day = DAYS.get(num(d, 7)? as usize)?;
            Some(format!("at {h:02}:{m:02} every {day}, {tz}"))
        }
        (Some(m), Some(h), d, "*") => Some(format!(
            "at {h:02}:{m:02} on day {} of every month, {tz}",
            num(d, 31)?
        )),
        (Some(m), None, "*", "*") if h == "*" => Some(format!("at minute {m} of every hour")),
        (None, None, "*", "*") if h == "*" => match m {
            "*" => Some("every minute".into()),
            _ => {
                let n = num(m.strip_prefix("*/")?, 59)?;
                Some(format!("every {n} minutes"))
            }
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_shapes_read_as_words_and_others_do_not() {
        let cases = [
            ("15 0 * * *", Some("at 00:15 every day, UTC")),
            ("30 9 * * 1", Some("at 09:30 every Monday, UTC")),
            ("0 6 1 * *", Some("at 06:00 on day 1 of every month, UTC")),
            ("5 * * * *", Some("at minute 5 of every hour")),
            ("*/10 * * * *", Some("every 10 minutes")),
            ("* * * * *", Some("every minute")),
            ("every 5m", Some("every 5m")),
            ("0 9-17 * * 1-5", None),
            ("0 0 0 * * *", None),
            ("0 0 * 1 *", None),
        ];
        for (spec, want) in cases {
            assert_eq!(describe(spec, "UTC").as_deref(), want, "{spec}");
        }
    }
}

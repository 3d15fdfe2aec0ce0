//! The rate of `[handlers.NAME] rate = "30/s"`: a remote such as Telegram
//! allows about 30 messages a second per bot, and a backlog of thousands
//! must not turn into a storm of 429s. The store enforces it across hosts
//! ([`crate::store::limits`]); this module reads and prints it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// A rate: `count` jobs per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// A rate that does not parse; the message repeats the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad rate {input:?}: {reason}; write a positive number of jobs per span, e.g. \"30/s\", \"100/m\", \"5/10s\""
)]
pub struct RateError {
    pub input: String,
    pub reason: String,
}

impl Rate {
    /// The gap between two starts.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Rate, RateError> {
        let bad = |reason: &str| RateError {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (count, per) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        let per = match per.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            span => crate::schedule::parse_duration(span).map_err(|e| bad(&e.to_string()))?,
        };
        if per.is_zero() || per / count < Duration::from_micros(1) {
            return Err(bad("the span is too short for the count"));
        }
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => "s".to_string(),
            60 if self.per.subsec_nanos() == 0 => "m".to_string(),
            3600 if self.per.subsec_nanos() == 0 => "h".to_string(),
            86_400 if self.per.subsec_nanos() == 0 => "d".to_string(),
            _ => crate::units::format_duration(self.per),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_spans_and_bad_ones_name_the_input() {
        let r: Rate = "30/s".parse().unwrap();
        assert_eq!((r.count, r.per), (30, Duration::from_secs(1)));
        assert_eq!(r.interval(), Duration::from_nanos(33_333_333));
        assert_eq!(
            "100/m".parse::<Rate>().unwrap().per,
            Duration::from_secs(60)
        );
        assert_eq!(
            "5/10s".parse::<Rate>().unwrap().per,
            Duration::from_secs(10)
        );
        assert_eq!("5/10s".parse::<Rate>().unwrap().to_string(), "5/10s");
        assert_eq!("30/s".parse::<Rate>().unwrap().to_string(), "30/s");
        for bad in ["30", "0/s", "x/s", "30/parsec", "-1/s"] {
            let e = bad.parse::<Rate>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}

//! Per-handler rate limits (`[handlers.NAME] rate = "30/s"`): a remote
//! such as Telegram allows about 30 messages a second per bot, and a
//! backlog of thousands must not turn into a storm of 429s.
//!
//! One limiter per handler is shared by every worker of the host (all
//! queues). A leased job of a limited handler waits for its slot before it
//! starts; it is never failed for the rate. Slots are spaced evenly
//! (`1/rate` apart, no burst), so over any span `t` at most `t·rate + 1`
//! jobs of the handler start on this host.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use tokio::time::Instant;

use crate::config::Config;

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

/// The rate limiters of one host, by handler.
#[derive(Debug, Default)]
pub struct RateLimits {
    limiters: HashMap<String, Limiter>,
}

#[derive(Debug)]
struct Limiter {
    interval: Duration,
    /// The earliest start of the next job. Held (a fair, FIFO lock) by the
    /// caller waiting for it, so callers start in the order they asked.
    next: tokio::sync::Mutex<Option<Instant>>,
}

impl RateLimits {
    /// A limiter for every `[handlers.NAME]` with a `rate`.
    pub fn from_config(config: &Config) -> RateLimits {
        let limiters = config
            .handlers
            .iter()
            .filter_map(|(name, h)| {
                h.rate.map(|rate| {
                    (
                        name.clone(),
                        Limiter {
                            interval: rate.interval(),
                            next: tokio::sync::Mutex::new(None),
                        },
                    )
                })
            })
            .collect();
        RateLimits { limiters }
    }

    /// Waits until a job of `handler` may start (at once for a handler
    /// without a rate); callers start in the order they asked.
    ///
    /// The next start is one interval after this one actually woke, not
    /// after the slot it was due: slots booked ahead would all fire at once
    /// when a busy machine wakes their waiters late, a burst above the rate
    /// that the remote service then refuses. A late wake loses its slot
    /// instead; the rate is a ceiling, never a quota to catch up on.
    pub async fn acquire(&self, handler: &str) {
        let Some(limiter) = self.limiters.get(handler) else {
            return;
        };
        let mut next = limiter.next.lock().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(Instant::now() + limiter.interval);
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

    #[tokio::test]
    async fn starts_are_spaced_by_the_rate_across_callers() {
        let mut config = Config::default();
        config.handlers.insert(
            "send".into(),
            crate::config::HandlerSettings {
                rate: Some("10/s".parse().unwrap()),
                ..Default::default()
            },
        );
        let limits = std::sync::Arc::new(RateLimits::from_config(&config));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move {
                    limits.acquire("send").await;
                    Instant::now() - t0
                })
            })
            .collect();
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap());
        }
        starts.sort();
        // The i-th start comes no sooner than i intervals after the first
        // (the upper bound is only a ceiling for a loaded machine).
        for (i, start) in starts.iter().enumerate() {
            let want = Duration::from_millis(100 * i as u64);
            assert!(
                *start >= want && *start < want + Duration::from_secs(2),
                "start {i} at {start:?}, wanted {want:?} (all: {starts:?})"
            );
        }
        // A handler without a rate starts at once, however busy the other.
        let before = Instant::now();
        limits.acquire("other").await;
        assert!(Instant::now() - before < Duration::from_millis(50));
    }

    /// A stalled runtime (a busy machine) wakes its waiters late: they
    /// still start one interval apart, not in a burst that catches up the
    /// slots they missed.
    #[tokio::test]
    async fn waiters_woken_late_do_not_start_in_a_burst() {
        let mut config = Config::default();
        config.handlers.insert(
            "send".into(),
            crate::config::HandlerSettings {
                rate: Some("10/s".parse().unwrap()),
                ..Default::default()
            },
        );
        let limits = std::sync::Arc::new(RateLimits::from_config(&config));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move {
                    limits.acquire("send").await;
                    Instant::now()
                })
            })
            .collect();
        // Let every waiter ask, then stall this (only) runtime thread past
        // the slots of the next four.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(Duration::from_millis(450));
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.unwrap());
        }
        starts.sort();
        for pair in starts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(99),
                "two starts {gap:?} apart at 10/s (all: {starts:?})"
            );
        }
    }
}

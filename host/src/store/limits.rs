//! Flow limits per handler (`[handlers.NAME] rate = "30/s"`,
//! `concurrency = 3`), enforced by the store inside the lease.
//!
//! A limit kept in each host's memory multiplies by the number of hosts:
//! two hosts at "30/s" send 60 messages a second to a remote that allows
//! 30. So the lease itself, atomic in every backend, counts the handler's
//! running jobs and books its next start, for all hosts sharing the store.
//! A job held back by a limit is simply not leased: it stays pending, costs
//! no attempt, and the worker sleeps until the store says it may start
//! (the next rate slot, or a job of the handler ending).
//!
//! Starts are spaced evenly, one interval apart, with no burst: over any
//! span `t` at most `t·rate + 1` jobs of the handler start across all
//! hosts. A start books the next one an interval after the time it was
//! leased, not after the slot it was due, so a busy machine that leases
//! late never catches up in a burst; the rate is a ceiling, not a quota.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The limits of one handler, as the hosts sharing the store configure it
/// (they must agree; each lease applies its own host's settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerLimit {
    pub handler: String,
    /// The gap between two starts (`rate`), if rate-limited.
    pub interval: Option<Duration>,
    /// The most jobs of the handler running at once.
    pub concurrency: Option<NonZeroU32>,
}

impl HandlerLimit {
    /// The limits of every `[handlers.NAME]` that sets `rate` or
    /// `concurrency`, sorted by handler.
    pub fn from_config(config: &crate::config::Config) -> Vec<HandlerLimit> {
        let mut limits: Vec<HandlerLimit> = config
            .handlers
            .iter()
            .filter(|(_, h)| h.rate.is_some() || h.concurrency.is_some())
            .map(|(name, h)| HandlerLimit {
                handler: name.clone(),
                interval: h.rate.map(|r| r.interval()),
                concurrency: h.concurrency,
            })
            .collect();
        limits.sort_by(|a, b| a.handler.cmp(&b.handler));
        limits
    }

    /// How many jobs of the handler one lease may start now, given how many
    /// run and when its next start is booked (store microseconds): at most
    /// one while rate-limited, so starts stay an interval apart.
    pub fn budget(&self, running: u64, next_start: Option<i64>, now: i64) -> u32 {
        let mut left = match self.concurrency {
            Some(n) => u64::from(n.get()).saturating_sub(running) as u32,
            None => u32::MAX,
        };
        if self.interval.is_some() {
            left = match next_start {
                Some(at) if at > now => 0,
                _ => left.min(1),
            };
        }
        left
    }

    /// The interval in store microseconds (0 without a rate).
    pub fn interval_micros(&self) -> i64 {
        self.interval
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1))
            .unwrap_or(0)
    }

    /// The next start booked by a lease at `now` that started `taken` jobs
    /// of the handler after the one booked at `next_start`.
    pub fn book(&self, next_start: Option<i64>, now: i64, taken: u32) -> i64 {
        now.max(next_start.unwrap_or(now))
            .saturating_add(self.interval_micros().saturating_mul(i64::from(taken)))
    }
}

/// Where one limited handler stands (stats, and the workers' idle wait).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LimitState {
    pub handler: String,
    /// Its jobs running now, on every host.
    pub running: u64,
    /// The earliest time its next job may start by its rate.
    pub next_start: Option<DateTime<Utc>>,
    /// No job of it may start now: its concurrency is taken or its next
    /// rate slot is still ahead.
    pub held: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: Option<&str>, concurrency: Option<u32>) -> HandlerLimit {
        HandlerLimit {
            handler: "send".into(),
            interval: rate.map(|r| r.parse::<crate::worker::rate::Rate>().unwrap().interval()),
            concurrency: concurrency.and_then(NonZeroU32::new),
        }
    }

    #[test]
    fn the_budget_is_what_concurrency_leaves_and_at_most_one_under_a_rate() {
        let c = limit(None, Some(3));
        assert_eq!(c.budget(0, None, 0), 3);
        assert_eq!(c.budget(2, None, 0), 1);
        assert_eq!(c.budget(3, None, 0), 0);
        assert_eq!(
            c.budget(5, None, 0),
            0,
            "more running than allowed (config shrank)"
        );
        let r = limit(Some("50/s"), None);
        assert_eq!(r.budget(100, None, 1_000), 1, "never started");
        assert_eq!(r.budget(0, Some(1_000), 1_000), 1, "its slot is now");
        assert_eq!(r.budget(0, Some(1_001), 1_000), 0, "its slot is ahead");
        let both = limit(Some("50/s"), Some(2));
        assert_eq!(both.budget(2, None, 0), 0);
        assert_eq!(both.budget(1, None, 0), 1);
        assert_eq!(limit(None, None).budget(1_000, None, 0), u32::MAX);
    }

    #[test]
    fn a_late_lease_books_from_its_own_time_not_the_missed_slot() {
        let r = limit(Some("50/s"), None);
        assert_eq!(r.interval_micros(), 20_000);
        assert_eq!(r.book(None, 5_000_000, 1), 5_020_000);
        // Due at 1 s, leased at 5 s: the next start is 5.02 s, not 1.02 s.
        assert_eq!(r.book(Some(1_000_000), 5_000_000, 1), 5_020_000);
        assert_eq!(r.book(Some(6_000_000), 5_000_000, 1), 6_020_000);
        assert_eq!(limit(None, Some(1)).book(None, 7, 3), 7);
    }
}

//! Where the host reads the time.
//!
//! Everything that decides by time (due jobs, lease expiry, retention,
//! idempotency TTLs, schedule ticks) asks a [`Clock`] instead of calling
//! `Utc::now()`, so tests can move time with a [`ManualClock`] instead of
//! sleeping.
//!
//! Two readings: [`Clock::now`], the wall-clock time stored in jobs and
//! compared between hosts, and [`Clock::elapsed`], a monotonic reading that
//! never steps, by which a host judges how long it has waited (a lease's
//! missed renewals). [`HostClock`] is the wall clock of `serve`, made
//! robust to steps: it never goes back, and it never runs behind the
//! latest time any host sharing the store has committed.

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

/// `at + span`, saturating at the last representable instant instead of
/// panicking: spans come from clients and plugins (a delay, a retry-after),
/// and no span may take a host task down.
pub fn after(at: DateTime<Utc>, span: std::time::Duration) -> DateTime<Utc> {
    Duration::from_std(span)
        .ok()
        .and_then(|span| at.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// A monotonic reading: time since an arbitrary origin, never stepping.
    /// By default the process's monotonic clock; test clocks move their own.
    fn elapsed(&self) -> std::time::Duration {
        ORIGIN.elapsed()
    }

    /// Told the latest time another host committed to the shared store; a
    /// clock may move up to it so that this host never holds a job another
    /// host made due. Ignored by default.
    fn observe(&self, _committed: DateTime<Utc>) {}
}

/// The origin of [`SystemClock::elapsed`] and [`HostClock::elapsed`].
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

/// The real wall clock, as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How far ahead of this host's wall clock a time committed by another host
/// may be and still be adopted. Beyond it the other host's clock is taken
/// to be wrong (logged), rather than moving every host's time with it.
pub const MAX_ADOPTED_LEAD: Duration = Duration::days(1);

/// A step of the wall clock larger than this is logged.
const STEP_LOGGED: Duration = Duration::seconds(1);

/// The wall clock of a host, robust to steps: `now` is the larger of the
/// system's wall clock and a floor that advances with the monotonic clock
/// from the latest time seen (this host's own readings, and times other
/// hosts committed, see [`Clock::observe`]). A backward step of the system
/// clock therefore does not move this host's time back (jobs it or another
/// host made due stay due), and a host whose clock is behind the others'
/// runs on theirs. A forward step moves time forward (it cannot be told from
/// a correction); leases survive it because they are judged by missed
/// renewals on the monotonic clock.
#[derive(Debug)]
pub struct HostClock {
    floor: Mutex<Floor>,
}

#[derive(Debug)]
struct Floor {
    /// Wall time at `at`.
    base: DateTime<Utc>,
    at: Instant,
    /// The last reading of the system clock, to notice steps.
    last_wall: DateTime<Utc>,
}

impl Default for HostClock {
    fn default() -> Self {
        let now = Utc::now();
        HostClock {
            floor: Mutex::new(Floor {
                base: now,
                at: Instant::now(),
                last_wall: now,
            }),
        }
    }
}

impl HostClock {
    /// A clock starting at the system's time.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self, wall: DateTime<Utc>, mono: Instant) -> DateTime<Utc> {
        let mut f = self.floor.lock().unwrap_or_else(|p| p.into_inner());
        let floor =
            f.base + Duration::from_std(mono.saturating_duration_since(f.at)).unwrap_or_default();
        let since = Duration::from_std(mono.saturating_duration_since(f.at)).unwrap_or_default();
        let expected = f.last_wall + since;
        if wall - expected > STEP_LOGGED && wall > floor {
            tracing::warn!(
                step = %(wall - expected),
                "the system clock stepped forward; this host's time follows it"
            );
        }
        if expected - wall > STEP_LOGGED {
            tracing::warn!(
                step = %(expected - wall),
                "the system clock stepped back; this host's time keeps running from where it was"
            );
        }
        f.last_wall = wall;
        if wall >= floor {
            f.base = wall;
            f.at = mono;
            wall
        } else {
            f.base = floor;
            f.at = mono;
            floor
        }
    }
}

impl Clock for HostClock {
    fn now(&self) -> DateTime<Utc> {
        self.read(Utc::now(), Instant::now())
    }

    fn observe(&self, committed: DateTime<Utc>) {
        let now = self.now();
        if committed <= now {
            return;
        }
        if committed - now > MAX_ADOPTED_LEAD {
            tracing::error!(
                lead = %(committed - now),
                "another host committed a time far ahead of this host's clock; not following it (check the clocks of the hosts sharing the store)"
            );
            return;
        }
        let mut f = self.floor.lock().unwrap_or_else(|p| p.into_inner());
        f.base = committed;
        f.at = Instant::now();
    }
}

/// A clock that only moves when told to; for tests. Its monotonic reading
/// moves with forward moves of the wall time, except for [`ManualClock::step`],
/// which moves only the wall time, as a system clock step does.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<(DateTime<Utc>, std::time::Duration)>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new((start, std::time::Duration::ZERO)),
        }
    }

    /// Moves the clock forward (or backward, for a negative `by`); time
    /// passes on the monotonic reading only when moving forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        now.0 += by;
        now.1 += by.to_std().unwrap_or_default();
    }

    /// Sets the clock to `to` (monotonic time passes if `to` is later).
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let passed = (to - now.0).to_std().unwrap_or_default();
        now.1 += passed;
        now.0 = to;
    }

    /// Steps the wall clock by `by` without any time passing: what an NTP
    /// step or an operator's `date -s` does to a host.
    pub fn step(&self, by: Duration) {
        self.now.lock().unwrap_or_else(|p| p.into_inner()).0 += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn elapsed(&self) -> std::time::Duration {
        self.now.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), start + Duration::seconds(90));
        clock.set(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.elapsed(), std::time::Duration::from_secs(90));
        clock.step(Duration::hours(1));
        assert_eq!(clock.elapsed(), std::time::Duration::from_secs(90));
    }

    #[test]
    fn host_clock_does_not_go_back_on_a_backward_step() {
        let clock = HostClock::new();
        let t0 = Utc::now();
        let mono = Instant::now();
        assert!(clock.read(t0, mono) >= t0);
        // The system clock steps back an hour while 2 s pass.
        let later = mono + std::time::Duration::from_secs(2);
        let read = clock.read(t0 - Duration::hours(1), later);
        assert!(read >= t0 + Duration::seconds(2), "{read} after {t0}");
        // Forward steps are followed.
        let read = clock.read(t0 + Duration::hours(2), later);
        assert_eq!(read, t0 + Duration::hours(2));
    }

    #[test]
    fn host_clock_follows_a_committed_time_ahead_but_not_far_ahead() {
        let clock = HostClock::new();
        let ahead = Utc::now() + Duration::minutes(30);
        clock.observe(ahead);
        assert!(clock.now() >= ahead);
        let far = Utc::now() + Duration::days(30);
        clock.observe(far);
        assert!(clock.now() < far);
    }
}

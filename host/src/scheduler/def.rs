//! The user-facing schedule definition: a `[[schedules]]` table in
//! `taskhost.toml` or the body of an `add`, its validation, and its mapping
//! to the store's [`Schedule`] record.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SchedulerError;
use crate::job::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, NewJob, Priority, check_queue_name};
use crate::schedule::{ScheduleSpec, parse_time_zone};
use crate::store::{MissedPolicy, OverlapPolicy, Schedule};

/// The longest schedule name. Short enough that the idempotency key of a
/// tick's job (`schedule:<name>:<tick>`) stays within the job model's limit.
pub const MAX_SCHEDULE_NAME_LEN: usize = 128;

/// The zone a schedule without one is read in.
const DEFAULT_TIME_ZONE: &str = "UTC";

/// A schedule as written by its user:
///
/// ```toml
/// [[schedules]]
/// name = "nightly-cleanup"
/// schedule = "30 3 * * *"        # cron, "every 5m [from <rfc3339>]" or "at <rfc3339>"
/// timezone = "Europe/Berlin"     # default UTC
/// handler = "cleanup"
/// payload = { days = 30 }        # default null
/// queue = "maintenance"          # default "default"
/// priority = "low"               # critical | high | normal (default) | low
/// enabled = true                 # default true
/// missed = "catch-up-once"       # skip (default) | catch-up-once
/// overlap = "skip"               # allow (default) | skip
/// max_attempts = 3               # default 5
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    /// Unique name: 1–128 letters, digits, `_`, `-`, `.`, `:`.
    pub name: String,
    /// The expression (see [`crate::schedule`]).
    #[serde(rename = "schedule")]
    pub expr: String,
    /// IANA zone cron fields are read in; `None` is UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The handler each tick's job runs.
    pub handler: String,
    /// The payload each tick's job gets.
    #[serde(default)]
    pub payload: Value,
    /// The queue each tick's job goes to.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// The priority of each tick's job.
    #[serde(default = "default_priority")]
    pub priority: Priority,
    /// Disabled schedules fire nothing until enabled.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// What happens to ticks no host was up to fire.
    #[serde(default = "default_missed", with = "missed_text")]
    #[schema(value_type = String, example = "skip")]
    pub missed: MissedPolicy,
    /// What happens to a tick while the previous job still waits or runs.
    #[serde(default = "default_overlap")]
    pub overlap: OverlapPolicy,
    /// Attempt budget of each tick's job; `None` is the job default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

fn default_queue() -> String {
    DEFAULT_QUEUE.to_owned()
}

fn default_priority() -> Priority {
    Priority::Normal
}

fn enabled_by_default() -> bool {
    true
}

fn default_missed() -> MissedPolicy {
    MissedPolicy::Skip
}

fn default_overlap() -> OverlapPolicy {
    OverlapPolicy::Allow
}

impl ScheduleDef {
    /// A definition with every optional field at its default.
    pub fn new(
        name: impl Into<String>,
        expr: impl Into<String>,
        handler: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            expr: expr.into(),
            timezone: None,
            handler: handler.into(),
            payload: Value::Null,
            queue: default_queue(),
            priority: default_priority(),
            enabled: enabled_by_default(),
            missed: default_missed(),
            overlap: default_overlap(),
            max_attempts: None,
        }
    }

    /// Checks everything that can be checked before saving: the name, the
    /// expression in its zone, that a loaded plugin provides the handler, the
    /// queue name and the attempt budget. Answers the parsed expression.
    pub fn validate(
        &self,
        known_handler: &dyn Fn(&str) -> bool,
    ) -> Result<ScheduleSpec, SchedulerError> {
        validate_record(&self.to_record(), known_handler)
    }

    /// The store record of this definition (with no last tick).
    pub fn to_record(&self) -> Schedule {
        Schedule {
            name: self.name.clone(),
            spec: self.expr.clone(),
            timezone: self
                .timezone
                .clone()
                .unwrap_or_else(|| DEFAULT_TIME_ZONE.to_owned()),
            handler: self.handler.clone(),
            payload: self.payload.clone(),
            queue: self.queue.clone(),
            priority: self.priority,
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            enabled: self.enabled,
            missed: self.missed,
            overlap: self.overlap,
            last_tick: None,
        }
    }
}

impl From<&ScheduleDef> for Schedule {
    fn from(def: &ScheduleDef) -> Self {
        def.to_record()
    }
}

impl From<Schedule> for ScheduleDef {
    fn from(s: Schedule) -> Self {
        Self {
            name: s.name,
            expr: s.spec,
            timezone: Some(s.timezone),
            handler: s.handler,
            payload: s.payload,
            queue: s.queue,
            priority: s.priority,
            enabled: s.enabled,
            missed: s.missed,
            overlap: s.overlap,
            max_attempts: Some(s.max_attempts),
        }
    }
}

/// [`ScheduleDef::validate`] on a store record; also how a host checks
/// records other processes wrote.
pub(super) fn validate_record(
    s: &Schedule,
    known_handler: &dyn Fn(&str) -> bool,
) -> Result<ScheduleSpec, SchedulerError> {
    let invalid = |reason: String| SchedulerError::Invalid {
        name: s.name.clone(),
        reason,
    };
    check_schedule_name(&s.name)?;
    let tz = parse_time_zone(&s.timezone).map_err(|source| SchedulerError::TimeZone {
        name: s.name.clone(),
        source,
    })?;
    let spec = ScheduleSpec::parse(&s.spec, tz).map_err(|source| SchedulerError::Expression {
        name: s.name.clone(),
        expr: s.spec.clone(),
        source,
    })?;
    if s.handler.trim().is_empty() {
        return Err(invalid("handler must not be empty".into()));
    }
    if !known_handler(&s.handler) {
        return Err(SchedulerError::UnknownHandler {
            name: s.name.clone(),
            handler: s.handler.clone(),
        });
    }
    check_queue_name(&s.queue).map_err(invalid)?;
    if s.max_attempts == 0 {
        return Err(invalid("max_attempts must be at least 1".into()));
    }
    Ok(spec)
}

/// How many upcoming fires [`check_floor`] looks at to find a cron
/// expression's shortest gap (a day of `* * * * * *` is 86,400; any gap
/// shorter than the floor shows within the first few).
const FLOOR_SAMPLE: usize = 64;

/// Refuses a schedule whose fires come closer together than `floor`: an
/// admin's `every 1ms` would turn the scheduler into a job cannon.
pub(super) fn check_floor(
    name: &str,
    spec: &ScheduleSpec,
    floor: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(), SchedulerError> {
    let shortest = match spec {
        ScheduleSpec::Interval { every, .. } => Some(*every),
        ScheduleSpec::Cron(_) => {
            let fires: Vec<DateTime<Utc>> = spec.upcoming(now).take(FLOOR_SAMPLE).collect();
            fires
                .windows(2)
                .filter_map(|w| (w[1] - w[0]).to_std().ok())
                .min()
        }
        ScheduleSpec::Once(_) => None,
    };
    match shortest {
        Some(gap) if gap < floor => Err(SchedulerError::Invalid {
            name: name.to_owned(),
            reason: format!(
                "it fires {} apart; the shortest span allowed is {} (scheduler.min_interval)",
                crate::units::format_duration(gap),
                crate::units::format_duration(floor)
            ),
        }),
        _ => Ok(()),
    }
}

/// Names are keys in the store, parts of idempotency keys and of API paths,
/// so they keep to a small alphabet.
fn check_schedule_name(name: &str) -> Result<(), SchedulerError> {
    let invalid = |reason: String| SchedulerError::Invalid {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("name must not be empty".into()));
    }
    if name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(invalid(format!(
            "name is {} bytes long; the limit is {MAX_SCHEDULE_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(invalid(format!(
            "name contains {c:?}; use letters, digits, '_', '-', '.', ':'"
        )));
    }
    Ok(())
}

/// The job a tick of `s` enqueues. Its idempotency key names the schedule
/// and tick, so the job shows where it came from.
pub(super) fn tick_job(s: &Schedule, tick: DateTime<Utc>) -> NewJob {
    NewJob::new(s.handler.clone(), s.payload.clone())
        .queue(s.queue.clone())
        .priority(s.priority)
        .max_attempts(s.max_attempts)
        .run_at(tick)
        .schedule(s.name.clone())
        .idempotency_key(format!(
            "schedule:{}:{}",
            s.name,
            tick.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ))
}

/// The missed-tick policy as users write it: `skip` or `catch-up-once` (the
/// store calls the latter `run-once`).
pub mod missed_text {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::store::MissedPolicy;

    /// The user-facing name of a policy.
    pub fn name(policy: MissedPolicy) -> &'static str {
        match policy {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "catch-up-once",
        }
    }

    /// Reads a user-facing name.
    pub fn parse(text: &str) -> Result<MissedPolicy, String> {
        match text {
            "skip" => Ok(MissedPolicy::Skip),
            "catch-up-once" => Ok(MissedPolicy::RunOnce),
            _ => Err(format!(
                "unknown missed-tick policy {text:?} (expected one of: skip, catch-up-once)"
            )),
        }
    }

    /// Serde: writes [`name`].
    pub fn serialize<S: Serializer>(policy: &MissedPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*policy))
    }

    /// Serde: reads with [`parse`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MissedPolicy, D::Error> {
        parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

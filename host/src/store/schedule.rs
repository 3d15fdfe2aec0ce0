//! Stored schedules: the records the scheduler fires ticks from. They live in
//! the store (not only in the config) so every host sees the same enabled
//! flag and last tick.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreError;
use crate::job::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, Priority, check_queue_name, named_enum};

named_enum!(
    /// What to do with ticks that passed while no host was running.
    MissedPolicy, "missed-tick policy" {
        /// Drop them.
        Skip = "skip",
        /// Fire once to catch up, however many were missed.
        RunOnce = "run-once",
    }
);

named_enum!(
    /// What to do when a tick comes while the previous tick's job still runs.
    OverlapPolicy, "overlap policy" {
        /// Enqueue anyway.
        Allow = "allow",
        /// Skip this tick.
        Skip = "skip",
    }
);

/// A cron or interval schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Schedule {
    /// Unique name; also the key of its claimed ticks.
    pub name: String,
    /// The cron or interval text, parsed by the scheduler, not the store.
    pub spec: String,
    /// IANA time zone the spec is read in.
    pub timezone: String,
    /// Handler of the jobs it enqueues.
    pub handler: String,
    /// Payload of the jobs it enqueues.
    pub payload: Value,
    /// Queue of the jobs it enqueues.
    pub queue: String,
    /// Priority of the jobs it enqueues.
    pub priority: Priority,
    /// Attempt budget of the jobs it enqueues.
    pub max_attempts: u32,
    /// Disabled schedules fire nothing.
    pub enabled: bool,
    /// Missed-tick policy.
    pub missed: MissedPolicy,
    /// Overlap policy.
    pub overlap: OverlapPolicy,
    /// The latest claimed tick; maintained by the store, ignored on upsert.
    pub last_tick: Option<DateTime<Utc>>,
}

impl Schedule {
    /// An enabled UTC schedule with default queue, priority and policies.
    pub fn new(
        name: impl Into<String>,
        spec: impl Into<String>,
        handler: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            spec: spec.into(),
            timezone: "UTC".to_owned(),
            handler: handler.into(),
            payload: Value::Null,
            queue: DEFAULT_QUEUE.to_owned(),
            priority: Priority::Normal,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            enabled: true,
            missed: MissedPolicy::Skip,
            overlap: OverlapPolicy::Allow,
            last_tick: None,
        }
    }

    /// Checks what every backend refuses to store; the message names the
    /// schedule and the bad field.
    pub fn validate(&self) -> Result<(), StoreError> {
        let invalid = |what: &str| StoreError::Invalid(format!("schedule {:?}: {what}", self.name));
        if self.name.trim().is_empty() {
            return Err(StoreError::Invalid(
                "schedule name must not be empty".into(),
            ));
        }
        if self.spec.trim().is_empty() {
            return Err(invalid("spec must not be empty"));
        }
        if self.handler.trim().is_empty() {
            return Err(invalid("handler must not be empty"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts must be at least 1"));
        }
        check_queue_name(&self.queue).map_err(|e| invalid(&e))
    }
}

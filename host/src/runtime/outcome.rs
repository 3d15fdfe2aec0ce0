//! How a job run ended. Every way a sandboxed handler can stop has its own
//! kind, so retries, the DLQ and the dashboard can tell them apart.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The end of one run of a handler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// The handler returned a result (JSON).
    Success { result: serde_json::Value },
    /// The handler asked for another attempt, optionally not before a delay.
    Retryable {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", with = "opt_ms", default)]
        retry_after: Option<Duration>,
    },
    /// The handler says no retry can help.
    Permanent { message: String },
    /// The fuel budget ran out.
    OutOfFuel { fuel_used: u64 },
    /// The wall-clock deadline passed, computing or waiting in a host call.
    DeadlineExceeded {
        #[serde(with = "ms")]
        timeout: Duration,
    },
    /// Linear memory tried to grow past the cap.
    MemoryLimit { limit_bytes: u64 },
    /// More host calls than the budget allows.
    HostCallLimit { limit: u64 },
    /// The handler returned a result larger than `[limits] max_result`.
    /// Not retried: the same input would most likely give the same result.
    ResultTooLarge { size: u64, limit: u64 },
    /// The guest trapped (panic, stack overflow, bad memory access, ...).
    Trap {
        message: String,
        plugin: String,
        handler: String,
    },
}

impl Outcome {
    /// The kebab-case name of this kind, as stored in attempt histories.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Success { .. } => "success",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Permanent { .. } => "permanent",
            Outcome::OutOfFuel { .. } => "out-of-fuel",
            Outcome::DeadlineExceeded { .. } => "deadline-exceeded",
            Outcome::MemoryLimit { .. } => "memory-limit",
            Outcome::HostCallLimit { .. } => "host-call-limit",
            Outcome::ResultTooLarge { .. } => "result-too-large",
            Outcome::Trap { .. } => "trap",
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success { .. })
    }

    /// Whether another attempt might end differently. A permanent error
    /// and an oversized result say no; a trap or a spent budget may come
    /// from the input of the moment (a huge page of results), so they are
    /// retried within the attempt budget like any failure.
    pub fn may_retry(&self) -> bool {
        !matches!(
            self,
            Outcome::Success { .. } | Outcome::Permanent { .. } | Outcome::ResultTooLarge { .. }
        )
    }

    /// Cuts the plugin's own text (error, panic and trap messages) to
    /// `max` bytes, marked as truncated: a job record stays bounded.
    pub fn clip_messages(&mut self, max: usize) {
        match self {
            Outcome::Retryable { message, .. }
            | Outcome::Permanent { message }
            | Outcome::Trap { message, .. } => super::text::clip_in_place(message, max),
            _ => {}
        }
    }

    /// A one-line description for attempt histories and the CLI.
    pub fn message(&self) -> String {
        match self {
            Outcome::Success { .. } => "succeeded".into(),
            Outcome::Retryable { message, .. } | Outcome::Permanent { message } => message.clone(),
            Outcome::OutOfFuel { fuel_used } => format!("out of fuel after {fuel_used} units"),
            Outcome::DeadlineExceeded { timeout } => format!("deadline of {timeout:?} exceeded"),
            Outcome::MemoryLimit { limit_bytes } => {
                format!("linear memory limit of {limit_bytes} bytes reached")
            }
            Outcome::HostCallLimit { limit } => format!("host call limit of {limit} reached"),
            Outcome::ResultTooLarge { size, limit } => {
                format!("result of {size} bytes is over the cap of {limit} bytes (max_result)")
            }
            Outcome::Trap {
                message,
                plugin,
                handler,
            } => format!("trap in {plugin}/{handler}: {message}"),
        }
    }
}

/// One run's outcome with what it cost and what it printed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobReport {
    pub outcome: Outcome,
    pub fuel_used: u64,
    #[serde(with = "ms")]
    pub duration: Duration,
    /// stdout, stderr and `log` lines, in order, capped.
    pub log: String,
    pub log_truncated: bool,
    /// sha256 of the plugin version the job ran on (hex); `None` when no
    /// plugin ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<String>,
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(
            f64::deserialize(d)?.max(0.0) / 1000.0,
        ))
    }
}

mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

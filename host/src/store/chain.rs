//! Chains: an ordered list of steps, run one after another. Step N+1 is
//! enqueued (by the store, in the same atomic step that records step N's
//! success) with N's result under `previous` in its payload. A step that
//! ends dead (or cancelled) stops the chain: it is `failed` (`cancelled`)
//! and the later steps are never enqueued; a DLQ retry of that step
//! resumes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobId, JobStatus, NewJob};

/// The payload member a step's predecessor's result goes under.
pub const PREVIOUS: &str = "previous";

/// The most steps one chain may have.
pub const MAX_STEPS: usize = 100;

/// Where a chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChainStatus {
    /// A step is waiting or running.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step ended in the DLQ; a DLQ retry of it resumes the chain.
    Failed,
    /// A step was cancelled.
    Cancelled,
}

impl ChainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        self != Self::Running
    }
}

/// One step of a chain as the store reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainStep {
    pub handler: String,
    /// The step's job id (fixed when the chain is made; the job exists once
    /// the step was enqueued).
    #[schema(value_type = String, format = Uuid)]
    pub job: JobId,
    /// The job's status once enqueued; `waiting` before (its predecessor
    /// has not succeeded yet), `cancelled` for a step after one that failed.
    pub status: String,
}

/// A chain as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chain {
    #[schema(value_type = String, format = Uuid)]
    pub id: JobId,
    pub status: ChainStatus,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub steps: Vec<ChainStep>,
}

/// A step as both backends keep it: the payload as JSON text, so the Redis
/// scripts can splice `previous` in without re-encoding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredStep {
    pub handler: String,
    pub payload: String,
    pub queue: String,
    pub priority: u8,
    pub max_attempts: u32,
    pub job: String,
    /// The job's own retry policy as JSON text (absent in steps stored
    /// before steps had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

impl StoredStep {
    /// A job to enqueue later, with a fresh id.
    pub(crate) fn of(job: &NewJob) -> Result<StoredStep, String> {
        Ok(StoredStep {
            handler: job.handler.clone(),
            payload: serde_json::to_string(&job.payload).map_err(|e| e.to_string())?,
            queue: job.queue.clone(),
            priority: job.priority.rank(),
            max_attempts: job.max_attempts,
            job: JobId::generate().to_string(),
            retry: job.retry_json(),
        })
    }
}

/// Checks a chain's steps and gives each its job id. Steps are plain jobs
/// with an object payload that does not use [`PREVIOUS`]; they take no
/// run-at, idempotency or unique key (the chain decides when they run).
pub(crate) fn stored_steps(steps: &[NewJob]) -> Result<Vec<StoredStep>, String> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(format!(
            "a chain has 1 to {MAX_STEPS} steps, not {}",
            steps.len()
        ));
    }
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.validate().map_err(|e| format!("steps[{i}]: {e}"))?;
            let Value::Object(map) = &s.payload else {
                return Err(format!("steps[{i}]: the payload must be a JSON object"));
            };
            if map.contains_key(PREVIOUS) {
                return Err(format!(
                    "steps[{i}]: the payload member {PREVIOUS:?} is reserved for the previous step's result"
                ));
            }
            if s.run_at.is_some() || s.idempotency_key.is_some() || s.unique_key.is_some() {
                return Err(format!(
                    "steps[{i}]: a chain step takes no run_at, idempotency or unique key"
                ));
            }
            StoredStep::of(s)
        })
        .collect()
}

/// The payload of a step given its predecessor's result (JSON texts):
/// `previous` first, then the step's own members.
pub(crate) fn next_payload(payload: &str, previous: &str) -> String {
    with_first(&format!("\"{PREVIOUS}\":{previous}"), payload)
}

/// A JSON object's text with the member `first` (raw JSON text,
/// `"name":value`) spliced in front of its own members; also how a batch
/// callback gets its batch id.
pub(crate) fn with_first(first: &str, payload: &str) -> String {
    let rest = payload.trim().strip_prefix('{').unwrap_or("}").trim_start();
    if rest.starts_with('}') {
        format!("{{{first}}}")
    } else {
        format!("{{{first},{rest}")
    }
}

/// The per-step view, from the stored steps and the statuses of the jobs
/// that exist (`None` for a step not enqueued yet).
pub(crate) fn step_views(
    steps: &[StoredStep],
    statuses: &[Option<JobStatus>],
    chain: ChainStatus,
) -> Result<Vec<ChainStep>, String> {
    steps
        .iter()
        .zip(statuses)
        .map(|(s, st)| {
            Ok(ChainStep {
                handler: s.handler.clone(),
                job: s
                    .job
                    .parse()
                    .map_err(|_| format!("chain step job id {:?}", s.job))?,
                status: match (st, chain) {
                    (Some(st), _) => st.as_str().to_owned(),
                    (None, ChainStatus::Running) => "waiting".to_owned(),
                    (None, _) => "cancelled".to_owned(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_result_leads_the_next_payload() {
        assert_eq!(next_payload("{}", "42"), r#"{"previous":42}"#);
        let spliced = next_payload(r#"{"order":"o-1","n":[1,2]}"#, r#"{"ok":true}"#);
        let v: Value = serde_json::from_str(&spliced).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"previous": {"ok": true}, "order": "o-1", "n": [1, 2]})
        );
    }
}

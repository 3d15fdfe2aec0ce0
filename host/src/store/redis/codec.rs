//! How jobs and times are written to Redis and read back: a job is one hash
//! of text fields, times are microseconds since the epoch (exact in a Lua
//! number), and script replies are arrays of text.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::Value;
use serde::{Deserialize, Serialize};

use crate::job::{Attempt, Job, JobId, JobStatus, LeaseInfo, NewJob, OutcomeKind, Priority};
use crate::store::{StoreError, StoreResult};
use crate::worker::retry::RetryPolicy;

/// The largest time a Lua number holds exactly (2^53 µs, about year 2255).
const MAX_MICROS: i64 = 1 << 53;

/// A time as stored.
pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros().clamp(-MAX_MICROS, MAX_MICROS)
}

/// A span as stored.
pub(super) fn span(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros())
        .unwrap_or(MAX_MICROS)
        .min(MAX_MICROS)
}

/// A stored time.
pub(super) fn time(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::backend(format!("stored time {us} is out of range")))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("unexpected data in Redis: {what}"))
}

/// A reply element as text.
pub(super) fn text(v: &Value) -> StoreResult<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(corrupt),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Okay => Ok("OK".into()),
        Value::Int(n) => Ok(n.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(corrupt(format!("expected text, got {other:?}"))),
    }
}

/// A reply element as an integer (Lua numbers arrive as integers, times as text).
pub(super) fn int(v: &Value) -> StoreResult<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse()
            .map_err(|_| corrupt(format!("expected a number, got {other:?}"))),
    }
}

/// A reply as an array.
pub(super) fn array(v: &Value) -> StoreResult<&[Value]> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// A time field that may be empty.
pub(super) fn opt_time(s: &str) -> StoreResult<Option<DateTime<Utc>>> {
    if s.is_empty() {
        return Ok(None);
    }
    let us = s.parse().map_err(|_| corrupt(format!("time {s:?}")))?;
    time(us).map(Some)
}

/// The fields of a job after its id, as `enqueue_one` in `common.lua` takes them.
pub(super) fn job_args(id: JobId, job: &NewJob) -> StoreResult<Vec<String>> {
    let scoped = job
        .idempotency_key
        .as_deref()
        .map(|k| crate::store::scoped_idempotency_key(&job.handler, k));
    Ok(vec![
        id.to_string(),
        job.queue.clone(),
        job.handler.clone(),
        serde_json::to_string(&job.payload)?,
        job.priority.rank().to_string(),
        job.run_at
            .map(|t| micros(t).to_string())
            .unwrap_or_default(),
        job.max_attempts.to_string(),
        job.idempotency_key.clone().unwrap_or_default(),
        scoped.unwrap_or_default(),
        job.schedule.clone().unwrap_or_default(),
        job.unique_key
            .as_deref()
            .map(|k| crate::store::scoped_idempotency_key(&job.handler, k))
            .unwrap_or_default(),
        job.retry_json().unwrap_or_default(),
    ])
}

/// An attempt as the scripts store it: times in µs; a lease-expired entry
/// carries its expiry instead of a message.
#[derive(Deserialize)]
struct RawAttempt {
    attempt: u32,
    at: i64,
    host: String,
    outcome: OutcomeKind,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    expired_at: Option<i64>,
    duration_ms: u64,
    #[serde(default)]
    fuel: Option<u64>,
    #[serde(default)]
    plugin_digest: Option<String>,
}

impl RawAttempt {
    fn into_attempt(self) -> StoreResult<Attempt> {
        let message = match (self.message, self.expired_at) {
            (Some(m), _) => Some(m),
            (None, Some(at)) => Some(format!(
                "lease of worker {:?} expired at {} without renewal",
                self.host,
                time(at)?
            )),
            (None, None) => None,
        };
        Ok(Attempt {
            attempt: self.attempt,
            at: time(self.at)?,
            host: self.host,
            outcome: self.outcome,
            message,
            duration_ms: self.duration_ms,
            fuel: self.fuel,
            plugin_digest: self.plugin_digest,
        })
    }
}

/// What the host adds to an attempt the holder script writes (the script
/// knows the number, start and host).
#[derive(Serialize)]
struct AttemptTail<'a> {
    outcome: OutcomeKind,
    message: Option<&'a str>,
    duration_ms: u64,
    fuel: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin_digest: Option<&'a str>,
}

/// The JSON members after `"host"` of a finished run's attempt.
pub(super) fn attempt_tail(report: &crate::job::RunReport) -> StoreResult<String> {
    let tail = serde_json::to_string(&AttemptTail {
        outcome: report.outcome,
        message: report.message.as_deref(),
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        fuel: report.fuel,
        plugin_digest: report.plugin_digest.as_deref(),
    })?;
    Ok(tail[1..tail.len() - 1].to_owned())
}

/// A `HGETALL` reply as a map; empty when the key is missing.
pub(super) fn fields(v: &Value) -> StoreResult<HashMap<String, String>> {
    let items = array(v)?;
    let mut map = HashMap::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        if let [k, v] = pair {
            map.insert(text(k)?, text(v)?);
        }
    }
    Ok(map)
}

/// A job from its hash, with its status as seen at `now`.
pub(super) fn job(f: &HashMap<String, String>, now: i64) -> StoreResult<Job> {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let num = |k: &str| -> StoreResult<i64> {
        get(k)
            .parse()
            .map_err(|_| corrupt(format!("job field {k} = {:?}", get(k))))
    };
    let id: JobId = get("id").parse().map_err(corrupt)?;
    let run_at = num("run_at")?;
    let mut status: JobStatus = get("status").parse().map_err(corrupt)?;
    if status == JobStatus::Scheduled && run_at <= now {
        status = JobStatus::Pending;
    }
    let rank = u8::try_from(num("prio")?).map_err(corrupt)?;
    let json = |k: &str| -> StoreResult<Option<serde_json::Value>> {
        match get(k) {
            "" => Ok(None),
            s => Ok(Some(serde_json::from_str(s)?)),
        }
    };
    let raw: Vec<RawAttempt> = serde_json::from_str(get("hist"))?;
    let worker = get("worker");
    let lease = match (status, worker) {
        (JobStatus::Running, w) if !w.is_empty() => Some(LeaseInfo {
            worker: w.to_owned(),
            expires_at: time(num("expires")?)?,
        }),
        _ => None,
    };
    let text_opt = |k: &str| Some(get(k).to_owned()).filter(|s| !s.is_empty());
    let max_attempts = u32::try_from(num("max")?).map_err(corrupt)?;
    Ok(Job {
        id,
        queue: get("queue").to_owned(),
        handler: get("handler").to_owned(),
        payload: json("payload")?.unwrap_or_default(),
        priority: Priority::from_rank(rank).ok_or_else(|| corrupt(format!("priority {rank}")))?,
        status,
        attempt: u32::try_from(num("attempt")?).map_err(corrupt)?,
        max_attempts,
        run_at: time(run_at)?,
        created_at: time(num("created")?)?,
        started_at: opt_time(get("started"))?,
        finished_at: opt_time(get("finished"))?,
        attempts: raw
            .into_iter()
            .map(RawAttempt::into_attempt)
            .collect::<StoreResult<_>>()?,
        result: json("result")?,
        log: f.get("log").cloned(),
        idempotency_key: text_opt("ikey"),
        lease,
        schedule: text_opt("sched"),
        // Shown with the budget in force (a DLQ retry raises it).
        retry: match get("retry") {
            "" => None,
            s => Some(serde_json::from_str::<RetryPolicy>(s)?.with_max_attempts(max_attempts)),
        },
    })
}

/// A count cell's field, `<len>:<queue><priority>:<status>`.
pub(super) fn count_cell(field: &str) -> StoreResult<(String, Priority, JobStatus)> {
    let bad = || corrupt(format!("count cell {field:?}"));
    let (len, rest) = field.split_once(':').ok_or_else(bad)?;
    let len: usize = len.parse().map_err(|_| bad())?;
    let queue = rest.get(..len).ok_or_else(bad)?;
    let (rank, status) = rest[len..].split_once(':').ok_or_else(bad)?;
    let rank: u8 = rank.parse().map_err(|_| bad())?;
    Ok((
        queue.to_owned(),
        Priority::from_rank(rank).ok_or_else(bad)?,
        status.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_cells_split_names_with_colons() {
        assert_eq!(
            count_cell("5:a:b:c2:pending").unwrap(),
            ("a:b:c".to_owned(), Priority::Normal, JobStatus::Pending)
        );
        assert!(count_cell("9:short1:pending").is_err());
    }

    #[test]
    fn attempt_tail_is_json_members() {
        let report = crate::job::RunReport::failed(
            OutcomeKind::Retryable,
            "boom \"x\"",
            std::time::Duration::from_millis(7),
        );
        let tail = attempt_tail(&report).unwrap();
        let whole: serde_json::Value = serde_json::from_str(&format!("{{{tail}}}")).unwrap();
        assert_eq!(whole["message"], "boom \"x\"");
        assert_eq!(whole["duration_ms"], 7);
    }
}

//! The state of a payment or notification row: reading it, changing it
//! together with its audit row, and the sweep's claim of a retry round.

use serde::Serialize;
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::jobs::{self, EnqueueRequest};
use taskhost_sdk::{Job, JobError, log};

use crate::DB;

/// One kind of row the jobs retry: its table, the name its audit rows
/// carry, and the handler that retries one row.
pub struct Kind {
    pub table: &'static str,
    pub entity: &'static str,
    pub handler: &'static str,
}

/// The row as a retry job finds it.
pub struct Row {
    pub status: String,
    pub round: i64,
    pub fields: Vec<Value>,
}

/// Reads row `id` with its status, retry round and `columns`; a row that
/// does not exist is permanent (no retry makes it appear).
pub fn load(kind: &Kind, id: &str, columns: &[&str]) -> Result<Row, JobError> {
    let mut select = vec!["status", "retry_round"];
    select.extend_from_slice(columns);
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1",
        select.join(", "),
        kind.table
    );
    let rows = db::query(DB, &sql, &[Value::Text(id.into())])?;
    let mut row = rows
        .rows
        .into_iter()
        .next()
        .ok_or_else(|| JobError::permanent(format!("no {} with id {id:?}", kind.entity)))?;
    let fields = row.split_off(2);
    let round = match row[1] {
        Value::Integer(n) => n,
        _ => 0,
    };
    let status = text(&row[0]).unwrap_or_default();
    Ok(Row {
        status,
        round,
        fields,
    })
}

/// A value as text (integers too), `None` for anything else.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One change of a row's state: the new status, extra `column = value`
/// sets, and the note of its audit row.
pub struct Change<'a> {
    pub to: &'a str,
    pub sets: Vec<(&'a str, Value)>,
    pub note: String,
}

/// Applies `change` to row `id` and writes its audit row, in one
/// transaction: either both are recorded or neither.
pub fn transition(
    kind: &Kind,
    job: &Job,
    id: &str,
    row: &Row,
    change: Change<'_>,
) -> Result<(), JobError> {
    let now = job_now(job);
    let mut params = vec![
        Value::Text(change.to.into()),
        Value::Text(change.note.clone()),
        Value::Integer(now),
    ];
    let mut sets = String::new();
    for (column, value) in change.sets {
        params.push(value);
        sets.push_str(&format!(", {column} = ${}", params.len()));
    }
    params.push(Value::Text(id.into()));
    let update = format!(
        "UPDATE {} SET status = $1, last_error = $2, updated_at = $3{sets} WHERE id = ${}",
        kind.table,
        params.len()
    );
    let audit = Statement {
        sql: "INSERT INTO audit (entity, entity_id, retry_round, attempt, job_id, from_status, to_status, note, at) \
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            .into(),
        params: vec![
            Value::Text(kind.entity.into()),
            Value::Text(id.into()),
            Value::Integer(row.round),
            Value::Integer(job.attempt.into()),
            Value::Text(job.id.clone()),
            Value::Text(row.status.clone()),
            Value::Text(change.to.into()),
            Value::Text(change.note),
            Value::Integer(now),
        ],
    };
    db::transaction(
        DB,
        &[
            Statement {
                sql: update,
                params,
            },
            audit,
        ],
    )?;
    Ok(())
}

/// The time the host says this run is for, in Unix milliseconds (its due
/// time: a schedule's tick, a retry's run-at), so a run reads one clock.
pub fn job_now(job: &Job) -> i64 {
    job.scheduled_for as i64
}

/// What one sweep did.
#[derive(Serialize, Default)]
pub struct SweepReport {
    /// Rows found due for retry.
    pub due: usize,
    /// Rows this sweep moved from `failed` to `retrying`.
    pub claimed: usize,
    /// Retry jobs enqueued (or found already enqueued for the round).
    pub enqueued: usize,
    /// Rows skipped because enqueueing or claiming them failed; the next
    /// sweep tries them again.
    pub errors: Vec<String>,
}

/// How long a claimed row may go without a change before a sweep enqueues
/// its round again: a sweep that died between claiming a row and
/// enqueueing its job leaves it so. Enqueueing again is harmless (the
/// round's idempotency key returns the job that exists).
const STALE_CLAIM_MS: i64 = 10 * 60 * 1000;

/// Finds the `failed` rows whose retry is due, claims each (`failed` ->
/// `retrying`, next round, with its audit row, one transaction) and
/// enqueues one retry job per claimed row, keyed by row and round. Of two
/// sweeps, one claims a row and the other skips it; a row claimed but not
/// enqueued (the sweep died) is enqueued again once its claim is stale.
/// One row that fails is reported and skipped, never fails the sweep.
pub fn sweep(job: &Job, kind: &Kind, limit: u32) -> Result<SweepReport, JobError> {
    let now = job_now(job);
    let sql = format!(
        "SELECT id, retry_round, status FROM {} \
         WHERE (status = 'failed' AND next_retry_at <= $1) OR (status = 'retrying' AND updated_at <= $2) \
         ORDER BY next_retry_at, id LIMIT $3",
        kind.table
    );
    let params = [
        Value::Integer(now),
        Value::Integer(now - STALE_CLAIM_MS),
        Value::Integer(limit.into()),
    ];
    let due = db::query(DB, &sql, &params)?;
    let mut report = SweepReport {
        due: due.rows.len(),
        ..Default::default()
    };
    for row in &due.rows {
        let (Some(id), Some(Value::Integer(round)), Some(status)) = (
            row.first().and_then(text),
            row.get(1),
            row.get(2).and_then(text),
        ) else {
            report.errors.push(format!("unreadable row {row:?}"));
            continue;
        };
        let outcome = if status == "failed" {
            claim(job, kind, &id, round + 1).and_then(|claimed| {
                if claimed {
                    report.claimed += 1;
                    enqueue(kind, &id, round + 1).map(|()| true)
                } else {
                    Ok(false)
                }
            })
        } else {
            enqueue(kind, &id, *round).map(|()| true)
        };
        match outcome {
            Ok(enqueued) => report.enqueued += usize::from(enqueued),
            Err(e) => {
                log::warn(&format!("{} {id}: {e}", kind.entity));
                report.errors.push(format!("{id}: {e}"));
            }
        }
    }
    Ok(report)
}

/// The retry job of row `id`'s round `round`: one per round, whoever asks.
fn enqueue(kind: &Kind, id: &str, round: i64) -> Result<(), String> {
    let key = format!("{}:{id}:round:{round}", kind.entity);
    jobs::enqueue(&EnqueueRequest {
        handler: kind.handler.into(),
        payload: serde_json::json!({ "id": id }).to_string(),
        queue: None,
        priority: None,
        delay_ms: None,
        idempotency_key: Some(key),
        max_attempts: None,
    })
    .map(drop)
    .map_err(|e| format!("enqueue failed: {}", host_error(&e)))
}

/// Moves row `id` from `failed` to `retrying` in round `round`, with its
/// audit row, in one transaction. Of two sweeps, the update of the second
/// matches nothing and its audit insert finds the first one's row (and the
/// schema's unique index backs that up), so a round is claimed once.
fn claim(job: &Job, kind: &Kind, id: &str, round: i64) -> Result<bool, String> {
    let at = Value::Integer(job_now(job));
    let claim = Statement {
        sql: format!(
            "UPDATE {} SET status = 'retrying', retry_round = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'failed' AND retry_round = $4",
            kind.table
        ),
        params: vec![
            Value::Integer(round),
            at.clone(),
            Value::Text(id.into()),
            Value::Integer(round - 1),
        ],
    };
    let audit = Statement {
        sql: format!(
            "INSERT INTO audit (entity, entity_id, retry_round, attempt, job_id, from_status, to_status, note, at) \
             SELECT $1, id, retry_round, 0, $2, 'failed', 'retrying', 'claimed by the sweep', CAST($3 AS BIGINT) FROM {} \
             WHERE id = $4 AND status = 'retrying' AND retry_round = $5 AND NOT EXISTS \
             (SELECT 1 FROM audit WHERE entity = $1 AND entity_id = $4 AND retry_round = $5 AND attempt = 0)",
            kind.table
        ),
        params: vec![
            Value::Text(kind.entity.into()),
            Value::Text(job.id.clone()),
            at,
            Value::Text(id.into()),
            Value::Integer(round),
        ],
    };
    let affected = db::transaction(DB, &[claim, audit])
        .map_err(|e| format!("claim failed: {}", host_error(&e)))?;
    Ok(affected.first().copied() == Some(1))
}

/// Records a failed attempt: the row stays `retrying`, or, on the last
/// attempt the host allows, goes to `manual_review` (the job then goes to
/// the dead-letter queue with its whole history).
pub fn failed_attempt(
    kind: &Kind,
    job: &Job,
    id: &str,
    row: &Row,
    note: &str,
) -> Result<(), JobError> {
    let to = if job.attempt >= job.max_attempts {
        "manual_review"
    } else {
        "retrying"
    };
    let note = format!("attempt {}/{}: {note}", job.attempt, job.max_attempts);
    transition(
        kind,
        job,
        id,
        row,
        Change {
            to,
            sets: vec![],
            note,
        },
    )
}

/// A host error's text, for a row's `last_error` and the job's message.
pub fn host_error(e: &taskhost_sdk::HostError) -> String {
    use taskhost_sdk::HostError::*;
    match e {
        Denied(m) => format!("denied: {m}"),
        Invalid(m) => format!("invalid: {m}"),
        Failed(m) => format!("failed: {m}"),
        Timeout(m) => format!("timed out: {m}"),
        Remote(r) => format!("remote error {}: {}", r.code, r.message),
    }
}

//! Daily cleanup of the bot's tables: rows past their configured age are
//! deleted in batches of `cleanup_batch` (each its own statement, so no
//! lock is held long), at most `cleanup_max_batches` per table per run; a
//! table with more left says so and the next run goes on. Confirmed
//! payments, subscriptions and pending rewards are money records and are
//! never deleted.

use serde::Serialize;
use taskhost_sdk::db::{self, Value};
use taskhost_sdk::{Job, JobError};

use crate::{DB, now_ms, settings};

const DAY_MS: i64 = 86_400_000;

/// What goes: a table, its key, the rows that may go and the time column
/// their age is measured by, and the setting (days) with its default.
struct Rule {
    table: &'static str,
    key: &'static str,
    which: &'static str,
    at: &'static str,
    setting: &'static str,
    default_days: i64,
}

const RULES: [Rule; 3] = [
    Rule {
        table: "payments",
        key: "id",
        which: "status = 'expired'",
        at: "expires_at",
        setting: "keep_expired_payments_days",
        default_days: 30,
    },
    Rule {
        table: "rewards",
        key: "id",
        which: "status = 'credited'",
        at: "credited_at",
        setting: "keep_credited_rewards_days",
        default_days: 90,
    },
    Rule {
        table: "health_checks",
        key: "job_id",
        which: "1 = 1",
        at: "checked_at",
        setting: "keep_health_checks_days",
        default_days: 7,
    },
];

#[derive(Serialize)]
pub struct Cleaned {
    pub table: &'static str,
    pub deleted: u64,
    pub batches: u32,
    /// Rows of this age are left for the next run (the batch cap was hit).
    pub more: bool,
}

pub fn run(job: &Job, _: serde_json::Value) -> Result<Vec<Cleaned>, JobError> {
    let batch = settings::integer("cleanup_batch", 500)?.max(1);
    let max_batches = settings::integer("cleanup_max_batches", 100)?.max(1);
    let now = now_ms(job);
    let mut report = Vec::new();
    for rule in &RULES {
        let days = settings::integer(rule.setting, rule.default_days)?;
        let cutoff = now - days * DAY_MS;
        let sql = format!(
            "DELETE FROM {t} WHERE {k} IN (SELECT {k} FROM {t} WHERE {w} AND {at} < $1 ORDER BY {at} LIMIT $2)",
            t = rule.table,
            k = rule.key,
            w = rule.which,
            at = rule.at,
        );
        let mut cleaned = Cleaned {
            table: rule.table,
            deleted: 0,
            batches: 0,
            more: false,
        };
        loop {
            let n = db::execute(DB, &sql, &[Value::Integer(cutoff), Value::Integer(batch)])?;
            cleaned.deleted += n;
            cleaned.batches += 1;
            if n < batch as u64 {
                break;
            }
            if i64::from(cleaned.batches) >= max_batches {
                cleaned.more = true;
                break;
            }
        }
        report.push(cleaned);
    }
    Ok(report)
}

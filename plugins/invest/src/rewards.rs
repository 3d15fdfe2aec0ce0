//! Daily rewards: at the day's tick every active deposit earns its level's
//! daily rate, until its level's cap (level 1: 500% of the amount by
//! default); the day that would pass the cap pays the remainder and closes
//! the deposit.
//!
//! A day is the UTC date of the tick the job was scheduled for, never the
//! wall clock, so a catch-up run after an outage pays the day it stands
//! for, and a second run of the same day finds every deposit paid through
//! it (`paid_through`) and pays nothing. `rewards.daily` only pages through
//! the deposits due and fans out one `rewards.batch` job per page; each
//! batch pays its deposits in one transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::jobs::{self, EnqueueRequest};
use taskhost_sdk::{Job, JobError, log};

use crate::money::{self, Percent};
use crate::rows::{job_now, text};
use crate::{DB, setting};

/// A level's daily rate and its cap on the total earned, as percentages
/// of the deposit's amount.
#[derive(Debug, Clone, Copy)]
struct Level {
    rate: Percent,
    cap: Option<Percent>,
}

impl Level {
    /// From `reward_rate_level_<n>` (required) and `reward_cap_level_<n>`
    /// (`"none"` for no cap; when left out, 500% for level 1 and no cap
    /// for the others). A bad or missing setting is permanent: no retry
    /// fixes the config.
    fn load(level: i64) -> Result<Level, JobError> {
        let rate_key = format!("reward_rate_level_{level}");
        let rate = setting(&rate_key)?.ok_or_else(|| {
            JobError::permanent(format!(
                "deposits of level {level} are active, but setting {rate_key:?} \
                 is missing from [plugins.invest] settings"
            ))
        })?;
        let rate = Percent::parse(&rate)
            .map_err(|e| JobError::permanent(format!("setting {rate_key:?}: {e}")))?;
        let cap_key = format!("reward_cap_level_{level}");
        let cap = match setting(&cap_key)? {
            Some(c) if c.trim() == "none" => None,
            Some(c) => Some(
                Percent::parse(&c)
                    .map_err(|e| JobError::permanent(format!("setting {cap_key:?}: {e}")))?,
            ),
            None if level == 1 => Some(Percent::parse("500%").expect("a percentage")),
            None => None,
        };
        Ok(Level { rate, cap })
    }
}

/// What `rewards.daily` may be told: deposits per batch job.
#[derive(Deserialize)]
pub struct Daily {
    #[serde(default = "default_batch")]
    pub batch_size: u32,
}

fn default_batch() -> u32 {
    1_000
}

#[derive(Serialize)]
pub struct DailyReport {
    pub day: String,
    pub deposits: usize,
    pub batches: usize,
}

/// Checks every active level's settings, then enqueues one
/// `rewards.batch` per page of deposits not yet paid for the tick's day.
/// The batch's key names day and page, so a second sweep of the same day
/// finds the batches it already made.
pub fn daily(job: &Job, p: Daily) -> Result<DailyReport, JobError> {
    let tick = job_now(job);
    let day = utc_date(tick);
    let levels = db::query(
        DB,
        "SELECT DISTINCT level FROM deposits WHERE status = 'active'",
        &[],
    )?;
    for row in &levels.rows {
        if let Some(Value::Integer(level)) = row.first() {
            Level::load(*level)?;
        }
    }
    let size = p.batch_size.max(1);
    let mut report = DailyReport {
        day: day.clone(),
        deposits: 0,
        batches: 0,
    };
    let mut after: Option<String> = None;
    loop {
        // `$N` in the order they appear (the SQLite binding numbers them so).
        let (sql, params) = match &after {
            None => (
                "SELECT id FROM deposits WHERE status = 'active' AND paid_through < $1 \
                 AND created_at < $2 ORDER BY id LIMIT $3",
                vec![
                    Value::Text(day.clone()),
                    Value::Integer(tick),
                    Value::Integer(size.into()),
                ],
            ),
            Some(last) => (
                "SELECT id FROM deposits WHERE status = 'active' AND paid_through < $1 \
                 AND created_at < $2 AND id > $3 ORDER BY id LIMIT $4",
                vec![
                    Value::Text(day.clone()),
                    Value::Integer(tick),
                    Value::Text(last.clone()),
                    Value::Integer(size.into()),
                ],
            ),
        };
        let page = db::query(DB, sql, &params)?;
        let ids: Vec<String> = page
            .rows
            .iter()
            .filter_map(|r| r.first().and_then(text))
            .collect();
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            break;
        };
        let payload = serde_json::json!({ "day": day, "tick": tick, "first": first, "last": last });
        jobs::enqueue(&EnqueueRequest {
            handler: "rewards.batch".into(),
            payload: payload.to_string(),
            queue: None,
            priority: None,
            delay_ms: None,
            idempotency_key: Some(format!("rewards:{day}:{first}:{last}")),
            max_attempts: None,
        })?;
        report.deposits += ids.len();
        report.batches += 1;
        if ids.len() < size as usize {
            break;
        }
        after = Some(last.clone());
    }
    log::info(&format!(
        "rewards for {day}: {} deposit(s) in {} batch(es)",
        report.deposits, report.batches
    ));
    Ok(report)
}

/// One page of deposits to pay for `day`: ids `first..=last`.
#[derive(Deserialize)]
pub struct Batch {
    pub day: String,
    /// The tick's time (Unix ms): deposits made after it wait for the next day.
    pub tick: i64,
    pub first: String,
    pub last: String,
}

#[derive(Serialize, Default)]
pub struct BatchReport {
    pub paid: usize,
    /// Deposits that reached their cap today.
    pub closed: usize,
}

/// Pays the day's reward of every deposit of the page not yet paid
/// through `day`, in one transaction. A deposit another run changed
/// between the read and the write is left alone and the batch retried.
pub fn batch(job: &Job, b: Batch) -> Result<BatchReport, JobError> {
    if !is_date(&b.day) {
        return Err(JobError::permanent(format!(
            "day {:?} is not a YYYY-MM-DD date",
            b.day
        )));
    }
    let rows = db::query(
        DB,
        "SELECT id, level, amount, earned FROM deposits WHERE id >= $1 AND id <= $2 \
         AND status = 'active' AND paid_through < $3 AND created_at < $4 ORDER BY id",
        &[
            Value::Text(b.first.clone()),
            Value::Text(b.last.clone()),
            Value::Text(b.day.clone()),
            Value::Integer(b.tick),
        ],
    )?;
    let mut levels: BTreeMap<i64, Level> = BTreeMap::new();
    let mut statements = Vec::with_capacity(rows.rows.len() * 2);
    let mut closing = Vec::new();
    for row in &rows.rows {
        let (Some(id), Some(Value::Integer(level)), Some(amount), Some(earned)) = (
            row.first().and_then(text),
            row.get(1),
            row.get(2).and_then(text),
            row.get(3).and_then(text),
        ) else {
            return Err(JobError::permanent(format!(
                "unreadable deposits row {row:?}"
            )));
        };
        let level = match levels.get(level) {
            Some(l) => *l,
            None => {
                let loaded = Level::load(*level)?;
                levels.insert(*level, loaded);
                loaded
            }
        };
        let bad = |e: money::BadNumber| JobError::permanent(format!("deposit {id}: {e}"));
        let amount_units = money::amount(&amount).map_err(bad)?;
        let earned_units = money::amount(&earned).map_err(bad)?;
        let overflow = || JobError::permanent(format!("deposit {id}: amount {amount} overflows"));
        let mut reward = level.rate.of(amount_units).ok_or_else(overflow)?;
        let mut close = false;
        if let Some(cap) = level.cap {
            let left = cap
                .of(amount_units)
                .ok_or_else(overflow)?
                .saturating_sub(earned_units);
            if reward >= left {
                reward = left;
                close = true;
            }
        }
        let total = earned_units.checked_add(reward).ok_or_else(overflow)?;
        closing.push(close);
        statements.extend(pay(job, &b, &id, &earned, total, reward, close));
    }
    let affected = db::transaction(DB, &statements)?;
    let mut report = BatchReport::default();
    let mut lost = 0;
    for (i, close) in closing.iter().enumerate() {
        if affected.get(2 * i) == Some(&1) {
            report.paid += 1;
            report.closed += usize::from(*close);
        } else {
            lost += 1;
        }
    }
    if lost > 0 {
        return Err(JobError::retry(format!(
            "{lost} deposit(s) of {}..={} changed while paying {}; the retry pays what is left",
            b.first, b.last, b.day
        )));
    }
    Ok(report)
}

/// The two statements that pay one deposit for the day: the deposit's
/// total, `paid_through` and status, if its total is still what was read
/// and the day not yet paid; then the ledger row, if the deposit is now
/// paid through the day and the row is not there yet.
fn pay(
    job: &Job,
    b: &Batch,
    id: &str,
    earned: &str,
    total: u128,
    reward: u128,
    close: bool,
) -> [Statement; 2] {
    let now = job_now(job);
    let id = Value::Text(id.into());
    let day = Value::Text(b.day.clone());
    [
        Statement {
            sql: "UPDATE deposits SET earned = $1, paid_through = $2, status = $3, closed_at = $4 \
                  WHERE id = $5 AND status = 'active' AND earned = $6 AND paid_through < $7"
                .into(),
            params: vec![
                Value::Text(total.to_string()),
                day.clone(),
                Value::Text(if close { "closed" } else { "active" }.into()),
                if close {
                    Value::Integer(now)
                } else {
                    Value::Null
                },
                id.clone(),
                Value::Text(earned.into()),
                day.clone(),
            ],
        },
        Statement {
            sql: "INSERT INTO rewards (deposit_id, day, amount, job_id, at) \
                  SELECT id, $1, $2, $3, CAST($4 AS BIGINT) FROM deposits \
                  WHERE id = $5 AND paid_through = $6 AND NOT EXISTS \
                  (SELECT 1 FROM rewards WHERE deposit_id = $7 AND day = $8)"
                .into(),
            params: vec![
                day.clone(),
                Value::Text(reward.to_string()),
                Value::Text(job.id.clone()),
                Value::Integer(now),
                id.clone(),
                day.clone(),
                id,
                day,
            ],
        },
    ]
}

/// The UTC date (`YYYY-MM-DD`) of a Unix time in milliseconds.
pub fn utc_date(ms: i64) -> String {
    // Days to civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_399_999), "1970-01-01");
        assert_eq!(utc_date(1_767_225_600_000), "2026-01-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert!(is_date("2026-12-05"));
        assert!(!is_date("2026-1-05"));
    }
}

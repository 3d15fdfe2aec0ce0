//! Balance snapshots (seed 003): each period's tick copies every wallet's
//! balances into `balance_snapshots`, one row per wallet and asset, keyed
//! by the period and the period's start (`slot`) and stamped with the
//! tick's scheduled-for time (`taken_at`), not the time it ran. A second
//! run for the same tick (a retry, `taskhost schedule run`, a duplicate
//! delivery) finds the rows and writes nothing.
//!
//! The seed's switches are settings: `snapshots_enabled`
//! (`BALANCE_SNAPSHOT_ENABLED`, all four periods), `hourly_snapshots` and
//! `daily_snapshots` (`BALANCE_HOURLY_SNAPSHOTS`, `BALANCE_DAILY_SNAPSHOTS`).

use serde::Serialize;
use taskhost_sdk::db::{self, Value};
use taskhost_sdk::{Job, JobError};

use crate::batch::{self, Cleaned};
use crate::time::{DAY_MS, Period, period_start};
use crate::{DB, now_ms, settings};

#[derive(Serialize)]
pub struct Snapshot {
    pub period: &'static str,
    /// The tick's time (ms) the rows are stamped with, and its period's start.
    pub taken_at: i64,
    pub slot: i64,
    /// Rows written by this run (0 when the tick was already taken).
    pub written: u64,
    /// Why nothing was taken, when a switch is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

pub fn hourly(job: &Job, _: serde_json::Value) -> Result<Snapshot, JobError> {
    take(job, Period::Hourly, Some("hourly_snapshots"))
}

pub fn daily(job: &Job, _: serde_json::Value) -> Result<Snapshot, JobError> {
    take(job, Period::Daily, Some("daily_snapshots"))
}

pub fn weekly(job: &Job, _: serde_json::Value) -> Result<Snapshot, JobError> {
    take(job, Period::Weekly, None)
}

pub fn monthly(job: &Job, _: serde_json::Value) -> Result<Snapshot, JobError> {
    take(job, Period::Monthly, None)
}

fn take(job: &Job, period: Period, switch: Option<&str>) -> Result<Snapshot, JobError> {
    let taken_at = now_ms(job);
    let slot = period_start(period, taken_at);
    let mut snapshot = Snapshot {
        period: period.name(),
        taken_at,
        slot,
        written: 0,
        skipped: None,
    };
    for key in std::iter::once("snapshots_enabled").chain(switch) {
        if !settings::switch(key, true)? {
            snapshot.skipped = Some(format!("{key} is false"));
            return Ok(snapshot);
        }
    }
    snapshot.written = db::execute(
        DB,
        &insert_sql("wallet_balances"),
        &params(period, slot, taken_at),
    )?;
    Ok(snapshot)
}

/// Copies balances into snapshots for one tick; the first run of a
/// (wallet, asset, period, slot) wins. `$1` period, `$2` slot, `$3` taken_at.
/// (`WHERE 1 = 1` keeps SQLite from reading `ON CONFLICT` as a join's `ON`.)
fn insert_sql(from: &str) -> String {
    format!(
        "INSERT INTO balance_snapshots (wallet_id, asset, period, slot, taken_at, amount) \
         SELECT wallet_id, asset, CAST($1 AS TEXT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), amount \
         FROM {from} WHERE 1 = 1 ON CONFLICT (wallet_id, asset, period, slot) DO NOTHING"
    )
}

fn params(period: Period, slot: i64, taken_at: i64) -> Vec<Value> {
    vec![
        Value::Text(period.name().into()),
        Value::Integer(slot),
        Value::Integer(taken_at),
    ]
}

/// Retention: hourly snapshots older than `hourly_retention_days` (7), the
/// others older than `history_retention_days` (90), by `taken_at`.
pub fn cleanup(job: &Job, _: serde_json::Value) -> Result<Vec<Cleaned>, JobError> {
    let now = now_ms(job);
    let hourly_days = settings::integer("hourly_retention_days", 7)?;
    let history_days = settings::integer("history_retention_days", 90)?;
    let mut report = Vec::new();
    for (period, days) in [
        (Period::Hourly, hourly_days),
        (Period::Daily, history_days),
        (Period::Weekly, history_days),
        (Period::Monthly, history_days),
    ] {
        report.push(batch::delete(
            &format!("{} snapshots older than {days} days", period.name()),
            "DELETE FROM balance_snapshots WHERE (wallet_id, asset, period, slot) IN \
             (SELECT wallet_id, asset, period, slot FROM balance_snapshots \
              WHERE period = $1 AND taken_at < $2 ORDER BY taken_at LIMIT $3)",
            &[Value::Text(period.name().into())],
            now - days * DAY_MS,
        )?);
    }
    Ok(report)
}

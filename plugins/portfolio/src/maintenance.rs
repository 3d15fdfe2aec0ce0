//! The trading platform's database upkeep (seed 001): `cleanup_data`
//! deletes old trades, logs and expired cache rows in bounded batches;
//! `vacuum_database` runs `VACUUM` and `ANALYZE`, which the host allows
//! only under the plugin's `maintenance` grant of the database.

use serde::Serialize;
use taskhost_sdk::db;
use taskhost_sdk::{Job, JobError};

use crate::batch::{self, Cleaned};
use crate::time::{DAY_MS, HOUR_MS};
use crate::{DB, now_ms, settings};

/// Trades older than `keep_trades_days` (365), logs older than
/// `keep_logs_days` (30), cache rows that expired more than
/// `keep_expired_cache_hours` (1) ago.
pub fn cleanup(job: &Job, _: serde_json::Value) -> Result<Vec<Cleaned>, JobError> {
    let now = now_ms(job);
    let rules = [
        (
            "trades",
            "id",
            "executed_at",
            settings::integer("keep_trades_days", 365)? * DAY_MS,
        ),
        (
            "logs",
            "id",
            "created_at",
            settings::integer("keep_logs_days", 30)? * DAY_MS,
        ),
        (
            "cache",
            "cache_key",
            "expires_at",
            settings::integer("keep_expired_cache_hours", 1)? * HOUR_MS,
        ),
    ];
    let mut report = Vec::new();
    for (table, key, at, age) in rules {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {at} < $1 ORDER BY {at} LIMIT $2)"
        );
        report.push(batch::delete(table, &sql, &[], now - age)?);
    }
    Ok(report)
}

#[derive(Serialize)]
pub struct Vacuumed {
    pub statements: Vec<&'static str>,
}

pub fn vacuum(_job: &Job, _: serde_json::Value) -> Result<Vacuumed, JobError> {
    let mut statements = Vec::new();
    for sql in ["VACUUM", "ANALYZE"] {
        db::execute(DB, sql, &[])?;
        statements.push(sql);
    }
    Ok(Vacuumed { statements })
}

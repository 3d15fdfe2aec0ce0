//! Deleting old rows in bounded batches: each batch is its own statement,
//! so no lock is held long and the app's writes interleave with a large
//! cleanup; at most `max_batches` per table and run, the rest is left for
//! the next run (and said so).

use serde::Serialize;
use taskhost_sdk::JobError;
use taskhost_sdk::db::{self, Value};

use crate::{DB, settings};

#[derive(Serialize, Debug)]
pub struct Cleaned {
    pub what: String,
    pub deleted: u64,
    pub batches: u32,
    /// Rows of this age are left for the next run (the batch cap was hit).
    pub more: bool,
}

/// The batch size and cap from the settings `cleanup_batch` (1,000) and
/// `cleanup_max_batches` (100).
pub fn limits() -> Result<(i64, i64), JobError> {
    Ok((
        settings::integer("cleanup_batch", 1000)?.max(1),
        settings::integer("cleanup_max_batches", 100)?.max(1),
    ))
}

/// Runs `sql` (a `DELETE` whose last two parameters are the cutoff and the
/// batch size, after `params`) until a batch deletes fewer than a batch.
pub fn delete(what: &str, sql: &str, params: &[Value], cutoff: i64) -> Result<Cleaned, JobError> {
    let (batch, max_batches) = limits()?;
    let mut params = params.to_vec();
    params.push(Value::Integer(cutoff));
    params.push(Value::Integer(batch));
    let mut cleaned = Cleaned {
        what: what.to_string(),
        deleted: 0,
        batches: 0,
        more: false,
    };
    loop {
        let n = db::execute(DB, sql, &params)?;
        cleaned.deleted += n;
        cleaned.batches += 1;
        if n < batch as u64 {
            return Ok(cleaned);
        }
        if i64::from(cleaned.batches) >= max_batches {
            cleaned.more = true;
            return Ok(cleaned);
        }
    }
}

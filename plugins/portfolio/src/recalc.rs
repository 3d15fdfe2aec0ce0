//! Wallet recalculation (seed 003): a wallet's balances rebuilt from its
//! transaction history in one transaction, and the system-wide version as
//! one job per wallet rather than one giant job.
//!
//! `recalculate_all_wallets` pages through the wallets (`fanout_page`
//! per run, default 500, so a run stays under the host's enqueue cap),
//! enqueues one `recalculate_wallet_balances` per wallet and one run of
//! itself for the next page. Its first run records the run in
//! `recalculation_runs` (keyed by its job id, with the number of wallets);
//! each wallet's job marks its wallet done in `wallet_recalculations` in
//! the same transaction as its balances, so the caller follows the batch
//! with one query: done = `count(*)` of the run's rows, all done when it
//! equals `recalculation_runs.wallets`. Every enqueue carries an
//! idempotency key, so a page that runs twice enqueues nothing twice.

use serde::{Deserialize, Serialize};
use serde_json::json;
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::jobs::{self, EnqueueRequest};
use taskhost_sdk::{Job, JobError};

use crate::{DB, now_ms, settings};

#[derive(Deserialize)]
pub struct Wallet {
    pub wallet_id: i64,
    #[serde(default)]
    pub create_snapshots: bool,
    /// The `recalculate_all_wallets` run this job belongs to.
    #[serde(default)]
    pub run: Option<String>,
}

#[derive(Serialize)]
pub struct Recalculated {
    pub wallet_id: i64,
    /// Assets with a balance after the recalculation.
    pub assets: u64,
    pub snapshots: u64,
}

pub fn wallet(job: &Job, w: Wallet) -> Result<Recalculated, JobError> {
    let now = now_ms(job);
    let id = Value::Integer(w.wallet_id);
    let exists = db::query(
        DB,
        "SELECT 1 FROM wallets WHERE id = $1",
        std::slice::from_ref(&id),
    )?;
    if exists.rows.is_empty() {
        return Err(JobError::permanent(format!(
            "wallet {} does not exist",
            w.wallet_id
        )));
    }
    let mut statements = vec![
        Statement {
            sql: "DELETE FROM wallet_balances WHERE wallet_id = $1".into(),
            params: vec![id.clone()],
        },
        Statement {
            sql: "INSERT INTO wallet_balances (wallet_id, asset, amount, updated_at) \
                  SELECT wallet_id, asset, SUM(amount), CAST($1 AS BIGINT) FROM wallet_transactions \
                  WHERE wallet_id = $2 GROUP BY wallet_id, asset"
                .into(),
            params: vec![Value::Integer(now), id.clone()],
        },
    ];
    if w.create_snapshots {
        statements.push(Statement {
            sql: "INSERT INTO balance_snapshots (wallet_id, asset, period, slot, taken_at, amount) \
                  SELECT wallet_id, asset, 'recalculated', CAST($1 AS BIGINT), CAST($2 AS BIGINT), amount \
                  FROM wallet_balances WHERE wallet_id = $3 \
                  ON CONFLICT (wallet_id, asset, period, slot) DO NOTHING"
                .into(),
            params: vec![Value::Integer(now), Value::Integer(now), id.clone()],
        });
    }
    if let Some(run) = &w.run {
        statements.push(Statement {
            sql: "INSERT INTO wallet_recalculations (run_id, wallet_id, done_at) VALUES ($1, $2, $3) \
                  ON CONFLICT (run_id, wallet_id) DO NOTHING"
                .into(),
            params: vec![Value::Text(run.clone()), id, Value::Integer(now)],
        });
    }
    let counts = db::transaction(DB, &statements)?;
    Ok(Recalculated {
        wallet_id: w.wallet_id,
        assets: counts[1],
        snapshots: if w.create_snapshots { counts[2] } else { 0 },
    })
}

#[derive(Deserialize, Default)]
pub struct All {
    #[serde(default)]
    pub create_snapshots: bool,
    /// Set by the run itself for its next page.
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub after: Option<i64>,
}

#[derive(Serialize)]
pub struct Page {
    /// Follow it: `SELECT wallets FROM recalculation_runs WHERE id = run`
    /// against `SELECT count(*) FROM wallet_recalculations WHERE run_id = run`.
    pub run: String,
    pub enqueued: usize,
    /// The job of the next page, when there is one.
    pub next_page: Option<String>,
}

pub fn all(job: &Job, a: All) -> Result<Page, JobError> {
    let page = settings::integer("fanout_page", 500)?.clamp(1, 900);
    let run = match a.run {
        Some(run) => run,
        None => {
            db::execute(
                DB,
                "INSERT INTO recalculation_runs (id, wallets, started_at) \
                 SELECT CAST($1 AS TEXT), count(*), CAST($2 AS BIGINT) FROM wallets \
                 WHERE 1 = 1 ON CONFLICT (id) DO NOTHING",
                &[Value::Text(job.id.clone()), Value::Integer(now_ms(job))],
            )?;
            job.id.clone()
        }
    };
    let after = a.after.unwrap_or(i64::MIN);
    let rows = db::query(
        DB,
        "SELECT id FROM wallets WHERE id > $1 ORDER BY id LIMIT $2",
        &[Value::Integer(after), Value::Integer(page)],
    )?;
    let mut last = None;
    for row in &rows.rows {
        let Some(Value::Integer(wallet)) = row.first() else {
            return Err(JobError::permanent("wallets.id is not an integer"));
        };
        enqueue(
            "recalculate_wallet_balances",
            json!({ "wallet_id": wallet, "create_snapshots": a.create_snapshots, "run": run }),
            format!("recalc:{run}:{wallet}"),
        )?;
        last = Some(*wallet);
    }
    let next_page = match last {
        Some(last) if rows.rows.len() as i64 == page => Some(enqueue(
            "recalculate_all_wallets",
            json!({ "create_snapshots": a.create_snapshots, "run": run, "after": last }),
            format!("recalc-page:{run}:{last}"),
        )?),
        _ => None,
    };
    Ok(Page {
        run,
        enqueued: rows.rows.len(),
        next_page,
    })
}

fn enqueue(handler: &str, payload: serde_json::Value, key: String) -> Result<String, JobError> {
    Ok(jobs::enqueue(&EnqueueRequest {
        handler: handler.into(),
        payload: payload.to_string(),
        queue: None,
        priority: None,
        delay_ms: None,
        idempotency_key: Some(key),
        max_attempts: None,
    })?)
}

//! Rewards (referral, channel addition, …) credited to users' TON balances
//! exactly once: the 5-minute processor over the app's pending rows, and
//! the seed's on-demand `reward_distribution`, whose row is keyed by its
//! job id so a second run of the job finds it credited.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::{Job, JobError, log};

use crate::{DB, now_ms, ton};

/// The statements that credit reward `id` once, in one transaction: the
/// user's row is made if missing, the reward passes from `pending` through
/// `crediting` (which only this transaction can see) to `credited`, and the
/// balance grows by the amount of a reward in `crediting` only. A reward
/// already credited, by another run or an earlier run of this job, matches
/// nothing, so nothing is added twice; on PostgreSQL a concurrent run waits
/// for the row and then finds it credited.
fn credit(job: &Job, id: &str) -> Vec<Statement> {
    let id = Value::Text(id.into());
    vec![
        Statement {
            sql: "INSERT INTO users (id, ton_balance_nano) SELECT user_id, 0 FROM rewards \
                  WHERE id = $1 AND status = 'pending' ON CONFLICT (id) DO NOTHING"
                .into(),
            params: vec![id.clone()],
        },
        Statement {
            sql: "UPDATE rewards SET status = 'crediting', credited_at = $1, credited_by = $2 \
                  WHERE id = $3 AND status = 'pending'"
                .into(),
            params: vec![
                Value::Integer(now_ms(job)),
                Value::Text(job.id.clone()),
                id.clone(),
            ],
        },
        Statement {
            sql: "UPDATE users SET ton_balance_nano = ton_balance_nano + \
                  (SELECT amount_nano FROM rewards WHERE id = $1 AND status = 'crediting') \
                  WHERE id = (SELECT user_id FROM rewards WHERE id = $1 AND status = 'crediting')"
                .into(),
            params: vec![id.clone()],
        },
        Statement {
            sql: "UPDATE rewards SET status = 'credited' WHERE id = $1 AND status = 'crediting'"
                .into(),
            params: vec![id],
        },
    ]
}

/// How many rewards one processor run credits at most.
#[derive(Deserialize, Default)]
pub struct Processor {
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    1000
}

#[derive(Serialize, Default)]
pub struct Credited {
    pub credited: Vec<String>,
    /// Rewards another run credited first.
    pub already: Vec<String>,
}

/// Credits every pending reward, oldest first, each in its own transaction.
pub fn processor(job: &Job, p: Processor) -> Result<Credited, JobError> {
    let rows = db::query(
        DB,
        "SELECT id FROM rewards WHERE status = 'pending' ORDER BY created_at, id LIMIT $1",
        &[Value::Integer(p.limit.into())],
    )?;
    let mut out = Credited::default();
    for row in &rows.rows {
        let Some(Value::Text(id)) = row.first() else {
            continue;
        };
        let affected = db::transaction(DB, &credit(job, id))?;
        if affected.get(1).copied() == Some(1) {
            out.credited.push(id.clone());
        } else {
            out.already.push(id.clone());
        }
    }
    if !out.credited.is_empty() {
        log::info(&format!("credited {} reward(s)", out.credited.len()));
    }
    Ok(out)
}

/// The seed's payload: `{"user_id": 12345, "reward_type": "referral", "amount": 2.0}` (TON).
#[derive(Deserialize)]
pub struct Distribution {
    pub user_id: i64,
    pub reward_type: String,
    pub amount: Json,
}

/// Records the reward as row `job:<job id>` and credits it, in one
/// transaction; a second run of the same job inserts nothing and finds
/// the row credited.
pub fn distribution(job: &Job, d: Distribution) -> Result<Credited, JobError> {
    let amount = ton::from_json(&d.amount).map_err(|e| JobError::permanent(e.to_string()))?;
    if amount <= 0 {
        return Err(JobError::permanent(format!(
            "amount {}: a reward must be more than 0 TON",
            d.amount
        )));
    }
    if d.user_id <= 0 {
        return Err(JobError::permanent(format!(
            "user_id {}: not a Telegram user id",
            d.user_id
        )));
    }
    if d.reward_type.trim().is_empty() {
        return Err(JobError::permanent("reward_type must not be empty"));
    }
    let id = format!("job:{}", job.id);
    let mut statements = vec![Statement {
        sql: "INSERT INTO rewards (id, user_id, reward_type, amount_nano, status, created_at) \
              VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (id) DO NOTHING"
            .into(),
        params: vec![
            Value::Text(id.clone()),
            Value::Integer(d.user_id),
            Value::Text(d.reward_type),
            Value::Integer(amount),
            Value::Integer(job.enqueued_at as i64),
        ],
    }];
    statements.extend(credit(job, &id));
    let affected = db::transaction(DB, &statements)?;
    let mut out = Credited::default();
    if affected.get(2).copied() == Some(1) {
        out.credited.push(id);
    } else {
        log::info(&format!("reward {id} was credited before"));
        out.already.push(id);
    }
    Ok(out)
}

//! Deposit monitoring: every minute, the token's `Transfer` logs to the
//! users' deposit addresses are read from the chain and recorded as
//! pending deposits; a pending deposit is credited to its user's balance
//! once its block has the chain's required confirmations, or marked
//! orphaned when its transaction left the chain in a reorganisation.
//!
//! Every write is idempotent, so overlapping runs, two hosts, or a run
//! killed half-way never credit twice or skip a transfer:
//! - the deposits found and the cursor move in one transaction; a deposit
//!   is unique by transaction hash and log index;
//! - the cursor only stops at blocks that already had the required
//!   confirmations, so blocks that a reorganisation can still replace are
//!   read again by the next run;
//! - a credit is one transaction that moves the deposit `pending` ->
//!   `credited`, adds its amount to the balance (compare-and-set on the
//!   balance text) and writes the audit row; a run that finds the deposit
//!   no longer pending changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::{Job, JobError, chain, log};

use crate::rows::{job_now, text};
use crate::{DB, money, setting};

/// What a run may be told: how many blocks it reads per transaction and
/// how many confirmed deposits it settles at most.
#[derive(Deserialize)]
pub struct Monitor {
    #[serde(default = "default_blocks")]
    pub blocks_per_step: u64,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_blocks() -> u64 {
    5_000
}

fn default_limit() -> u32 {
    1_000
}

/// What one run did.
#[derive(Serialize, Default)]
pub struct MonitorReport {
    pub head: u64,
    pub required_confirmations: u64,
    /// The blocks read, inclusive (none when the cursor is ahead of the head).
    pub read: Option<(u64, u64)>,
    /// The cursor after the run.
    pub cursor: i64,
    /// Transfers to deposit addresses seen in the blocks read.
    pub transfers: usize,
    pub credited: Vec<String>,
    pub orphaned: Vec<String>,
    /// Pending deposits not yet confirmed.
    pub waiting: usize,
}

/// The chain, token and start block from the settings.
struct Source {
    chain: String,
    token: String,
    start: i64,
}

impl Source {
    fn load() -> Result<Source, JobError> {
        let chain = setting("deposit_chain")?.unwrap_or_else(|| "bsc".into());
        let token = setting("usdt_contract")?
            .ok_or_else(|| {
                JobError::permanent(
                    "setting \"usdt_contract\" is missing from [plugins.invest] settings",
                )
            })?
            .trim()
            .to_ascii_lowercase();
        let start = match setting("deposit_start_block")? {
            None => 0,
            Some(s) => s.trim().parse::<u64>().map_err(|_| {
                JobError::permanent(format!(
                    "setting \"deposit_start_block\" must be a block number, got {s:?}"
                ))
            })? as i64,
        };
        Ok(Source {
            chain,
            token,
            start,
        })
    }

    fn cursor_name(&self) -> String {
        format!("deposits:{}:{}", self.chain, self.token)
    }
}

/// Reads the new transfers, then settles the deposits that have enough
/// confirmations.
pub fn monitor(job: &Job, p: Monitor) -> Result<MonitorReport, JobError> {
    let source = Source::load()?;
    let required = chain::required_confirmations(&source.chain)?;
    let head = chain::block_number(&source.chain)?;
    let mut report = MonitorReport {
        head,
        required_confirmations: required,
        ..Default::default()
    };
    scan(
        job,
        &source,
        head,
        required,
        p.blocks_per_step.max(1),
        &mut report,
    )?;
    settle(job, &source, head, required, p.limit, &mut report)?;
    if !report.credited.is_empty() || !report.orphaned.is_empty() {
        log::info(&format!(
            "credited {} deposit(s), orphaned {}",
            report.credited.len(),
            report.orphaned.len()
        ));
    }
    Ok(report)
}

/// Reads the logs from the block after the cursor up to the head, a step
/// of blocks per transaction, recording each transfer to a deposit address
/// as a pending deposit and moving the cursor with it.
fn scan(
    job: &Job,
    source: &Source,
    head: u64,
    required: u64,
    step: u64,
    report: &mut MonitorReport,
) -> Result<(), JobError> {
    let name = source.cursor_name();
    let stored = db::query(
        DB,
        "SELECT block FROM chain_cursors WHERE name = $1",
        &[Value::Text(name.clone())],
    )?;
    let mut cursor = match stored.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(b)) => *b,
        _ => source.start - 1,
    };
    report.cursor = cursor;
    let addresses = db::query(DB, "SELECT address, user_id FROM deposit_addresses", &[])?;
    let owners: Vec<(String, i64)> = addresses
        .rows
        .iter()
        .filter_map(|r| match (r.first().and_then(text), r.get(1)) {
            (Some(a), Some(Value::Integer(u))) => Some((a.to_ascii_lowercase(), *u)),
            _ => None,
        })
        .collect();
    // Blocks up to `last_final` have the required confirmations: no
    // reorganisation the chain's setting allows for can replace them.
    let last_final = head as i64 + 1 - required as i64;
    let mut from = (cursor + 1).max(0) as u64;
    let first = from;
    while from <= head {
        let to = head.min(from.saturating_add(step - 1));
        let mut statements = Vec::new();
        for (address, user) in &owners {
            let logs = chain::erc20_transfers(&source.chain, &source.token, address, from, to)?;
            for t in logs {
                report.transfers += 1;
                statements.push(record(job, &t, *user));
            }
        }
        // Never behind where it was; never past the last final block read.
        let next = (to as i64).min(last_final).max(cursor);
        statements.push(Statement {
            sql: "INSERT INTO chain_cursors (name, block, updated_at) VALUES ($1, $2, $3) \
                  ON CONFLICT (name) DO UPDATE SET block = excluded.block, updated_at = excluded.updated_at \
                  WHERE chain_cursors.block < excluded.block"
                .into(),
            params: vec![
                Value::Text(name.clone()),
                Value::Integer(next),
                Value::Integer(job_now(job)),
            ],
        });
        db::transaction(DB, &statements)?;
        cursor = next;
        report.read = Some((first, to));
        report.cursor = cursor;
        from = to + 1;
    }
    Ok(())
}

/// The statement that records transfer `t` as a pending deposit of `user`:
/// nothing for one already recorded, except that a deposit still pending
/// or orphaned takes the block the chain now has it in (a reorganisation
/// can move a transaction, or bring an orphaned one back).
fn record(job: &Job, t: &chain::TransferLog, user: i64) -> Statement {
    let now = job_now(job);
    // An amount past what the balance arithmetic holds waits for a person.
    let status = if money::amount(&t.value).is_ok() {
        "pending"
    } else {
        "manual_review"
    };
    Statement {
        sql: "INSERT INTO chain_deposits (id, tx_hash, log_index, block_number, token, from_address, \
              address, user_id, amount, status, detected_at, updated_at) \
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
              ON CONFLICT (id) DO UPDATE SET block_number = excluded.block_number, status = 'pending', \
              updated_at = excluded.updated_at \
              WHERE chain_deposits.status IN ('pending', 'orphaned') AND excluded.status = 'pending'"
            .into(),
        params: vec![
            Value::Text(format!("{}:{}", t.transaction_hash, t.log_index)),
            Value::Text(t.transaction_hash.clone()),
            Value::Integer(t.log_index as i64),
            Value::Integer(t.block_number as i64),
            Value::Text(t.token.clone()),
            Value::Text(t.from.clone()),
            Value::Text(t.to.to_ascii_lowercase()),
            Value::Integer(user),
            Value::Text(t.value.clone()),
            Value::Text(status.into()),
            Value::Integer(now),
            Value::Integer(now),
        ],
    }
}

/// A pending deposit as read for settling.
struct Pending {
    id: String,
    tx_hash: String,
    log_index: u64,
    address: String,
    user: i64,
    amount: String,
}

/// Settles the pending deposits whose recorded block has the required
/// confirmations: each is looked up on the chain by its receipt; gone (or
/// its log no longer there) -> orphaned; in a block with the required
/// confirmations -> credited; moved to a later block -> waits.
fn settle(
    job: &Job,
    source: &Source,
    head: u64,
    required: u64,
    limit: u32,
    report: &mut MonitorReport,
) -> Result<(), JobError> {
    let last_final = head as i64 + 1 - required as i64;
    report.waiting = db::query(
        DB,
        "SELECT id FROM chain_deposits WHERE status = 'pending' AND block_number > $1",
        &[Value::Integer(last_final)],
    )?
    .rows
    .len();
    let due = db::query(
        DB,
        "SELECT id, tx_hash, log_index, address, user_id, amount FROM chain_deposits \
         WHERE status = 'pending' AND block_number <= $1 ORDER BY block_number, id LIMIT $2",
        &[Value::Integer(last_final), Value::Integer(limit.into())],
    )?;
    for row in &due.rows {
        let (
            Some(id),
            Some(tx_hash),
            Some(Value::Integer(log_index)),
            Some(address),
            Some(Value::Integer(user)),
            Some(amount),
        ) = (
            row.first().and_then(text),
            row.get(1).and_then(text),
            row.get(2),
            row.get(3).and_then(text),
            row.get(4),
            row.get(5).and_then(text),
        )
        else {
            return Err(JobError::permanent(format!(
                "unreadable chain_deposits row {row:?}"
            )));
        };
        let d = Pending {
            id,
            tx_hash,
            log_index: *log_index as u64,
            address,
            user: *user,
            amount,
        };
        match on_chain(source, &d)? {
            None => {
                if orphan(job, &d)? {
                    report.orphaned.push(d.id);
                }
            }
            Some(block) if head + 1 >= block + required => {
                if credit(job, &d, head + 1 - block)? {
                    report.credited.push(d.id);
                }
            }
            Some(block) => {
                // The transaction was mined again in a later block.
                db::execute(
                    DB,
                    "UPDATE chain_deposits SET block_number = $1 WHERE id = $2 AND status = 'pending'",
                    &[Value::Integer(block as i64), Value::Text(d.id.clone())],
                )?;
                report.waiting += 1;
            }
        }
    }
    Ok(())
}

/// The block the deposit's log is in now, from its transaction's receipt;
/// `None` when the transaction is not on the chain, failed, or no longer
/// has this log (same index, token and recipient).
fn on_chain(source: &Source, d: &Pending) -> Result<Option<u64>, JobError> {
    let params = serde_json::json!([d.tx_hash]).to_string();
    let answer = chain::rpc(&source.chain, "eth_getTransactionReceipt", &params)?;
    let receipt: Json = serde_json::from_str(&answer)
        .map_err(|e| JobError::retry(format!("unreadable receipt of {}: {e}", d.tx_hash)))?;
    if receipt.is_null() || receipt.get("status").and_then(Json::as_str) == Some("0x0") {
        return Ok(None);
    }
    let quantity = |v: Option<&Json>| {
        v.and_then(Json::as_str)
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
    };
    let topic_address = |t: &Json| {
        t.as_str()
            .map(|s| format!("0x{}", &s[s.len().saturating_sub(40)..]).to_ascii_lowercase())
    };
    let logs = receipt.get("logs").and_then(Json::as_array);
    let found = logs.into_iter().flatten().any(|l| {
        let topics = l.get("topics").and_then(Json::as_array);
        quantity(l.get("logIndex")) == Some(d.log_index)
            && l.get("address")
                .and_then(Json::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
                == Some(source.token.as_str())
            && topics
                .and_then(|t| t.get(2))
                .and_then(topic_address)
                .as_deref()
                == Some(d.address.as_str())
    });
    Ok(if found {
        quantity(receipt.get("blockNumber"))
    } else {
        None
    })
}

/// This run's mark on the rows it changes: job, attempt and deposit.
fn change_ref(job: &Job, id: &str) -> String {
    format!("{}:{}:{id}", job.id, job.attempt)
}

fn audit(job: &Job, id: &str, reference: &str, to: &str, note: String) -> Statement {
    // A row whose deposit this transaction did not move selects nothing.
    Statement {
        sql: "INSERT INTO audit (entity, entity_id, retry_round, attempt, job_id, from_status, to_status, note, at) \
              SELECT 'deposit', id, 0, CAST($1 AS BIGINT), $2, 'pending', status, $3, CAST($4 AS BIGINT) \
              FROM chain_deposits WHERE id = $5 AND change_ref = $6 AND status = $7"
            .into(),
        params: vec![
            Value::Integer(job.attempt.into()),
            Value::Text(job.id.clone()),
            Value::Text(note),
            Value::Integer(job_now(job)),
            Value::Text(id.into()),
            Value::Text(reference.into()),
            Value::Text(to.into()),
        ],
    }
}

/// Marks a pending deposit orphaned, with its audit row; false when
/// another run changed it first.
fn orphan(job: &Job, d: &Pending) -> Result<bool, JobError> {
    let reference = change_ref(job, &d.id);
    let affected = db::transaction(
        DB,
        &[
            Statement {
                sql: "UPDATE chain_deposits SET status = 'orphaned', change_ref = $1, updated_at = $2 \
                      WHERE id = $3 AND status = 'pending'"
                    .into(),
                params: vec![
                    Value::Text(reference.clone()),
                    Value::Integer(job_now(job)),
                    Value::Text(d.id.clone()),
                ],
            },
            audit(
                job,
                &d.id,
                &reference,
                "orphaned",
                format!("transaction {} is no longer on the chain", d.tx_hash),
            ),
        ],
    )?;
    Ok(affected.first() == Some(&1))
}

/// How often a credit that lost the balance's compare-and-set to another
/// credit of the same user re-reads the balance and tries again.
const CREDIT_TRIES: usize = 5;

/// Credits a confirmed deposit once; false when another run did.
fn credit(job: &Job, d: &Pending, confirmations: u64) -> Result<bool, JobError> {
    let amount = money::amount(&d.amount).map_err(|e| JobError::permanent(e.to_string()))?;
    let user = Value::Integer(d.user);
    let now = Value::Integer(job_now(job));
    db::execute(
        DB,
        "INSERT INTO balances (user_id, amount, updated_at) VALUES ($1, '0', $2) \
         ON CONFLICT (user_id) DO NOTHING",
        &[user.clone(), now.clone()],
    )?;
    let reference = change_ref(job, &d.id);
    let id = Value::Text(d.id.clone());
    let mark = Value::Text(reference.clone());
    for _ in 0..CREDIT_TRIES {
        let current = db::query(
            DB,
            "SELECT amount FROM balances WHERE user_id = $1",
            std::slice::from_ref(&user),
        )?;
        let old = current
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(text)
            .unwrap_or_else(|| "0".into());
        let new = money::amount(&old)
            .ok()
            .and_then(|b| b.checked_add(amount))
            .ok_or_else(|| {
                JobError::permanent(format!(
                    "balance {old:?} of user {} cannot take deposit {}",
                    d.user, d.id
                ))
            })?;
        let statements = [
            // 0: claim the deposit (on PostgreSQL this locks its row).
            Statement {
                sql: "UPDATE chain_deposits SET status = 'crediting', change_ref = $1 \
                      WHERE id = $2 AND status = 'pending'"
                    .into(),
                params: vec![mark.clone(), id.clone()],
            },
            // 1: the balance, if it is still what was read and the claim held.
            Statement {
                sql: "UPDATE balances SET amount = $1, change_ref = $2, updated_at = $3 \
                      WHERE user_id = $4 AND amount = $5 AND EXISTS \
                      (SELECT 1 FROM chain_deposits WHERE id = $6 AND change_ref = $7 AND status = 'crediting')"
                    .into(),
                params: vec![
                    Value::Text(new.to_string()),
                    mark.clone(),
                    now.clone(),
                    user.clone(),
                    Value::Text(old.clone()),
                    id.clone(),
                    mark.clone(),
                ],
            },
            // 2: credited only if this transaction changed the balance.
            Statement {
                sql: "UPDATE chain_deposits SET status = 'credited', confirmations = $1, updated_at = $2 \
                      WHERE id = $3 AND change_ref = $4 AND status = 'crediting' AND EXISTS \
                      (SELECT 1 FROM balances WHERE user_id = $5 AND change_ref = $6)"
                    .into(),
                params: vec![
                    Value::Integer(confirmations as i64),
                    now.clone(),
                    id.clone(),
                    mark.clone(),
                    user.clone(),
                    mark.clone(),
                ],
            },
            audit(
                job,
                &d.id,
                &reference,
                "credited",
                format!(
                    "credited {} to user {} at {confirmations} confirmations",
                    d.amount, d.user
                ),
            ),
            // 4: a lost compare-and-set leaves the deposit pending again.
            Statement {
                sql: "UPDATE chain_deposits SET status = 'pending' \
                      WHERE id = $1 AND change_ref = $2 AND status = 'crediting'"
                    .into(),
                params: vec![id.clone(), mark.clone()],
            },
        ];
        let affected = db::transaction(DB, &statements)?;
        match (affected.first(), affected.get(2)) {
            (Some(0), _) => return Ok(false),
            (_, Some(1)) => return Ok(true),
            _ => log::debug(&format!(
                "deposit {}: the balance of user {} changed meanwhile; reading it again",
                d.id, d.user
            )),
        }
    }
    Ok(false)
}

//! TON payments: the 30-second monitor over every pending payment, and the
//! on-demand check of one. A payment is confirmed when an incoming
//! transfer to its wallet carries its memo (`i3lani_<id>`) and at least its
//! amount; the confirmation and the subscription it buys are one
//! transaction, and a payment activates one subscription however many runs
//! see its transfer. A payment still pending past `expires_at` (after its
//! wallet was checked) is marked expired.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::{Job, JobError, log};

use crate::tonapi::{self, Failure, Transfer};
use crate::{DB, now_ms, ton};

const DAY_MS: i64 = 86_400_000;

/// A pending payment as the jobs read it.
struct Payment {
    id: i64,
    wallet: String,
    amount_nano: i64,
    memo: String,
    plan_days: i64,
    status: String,
    expires_at: i64,
}

const COLUMNS: &str = "id, wallet_address, amount_nano, memo, plan_days, status, expires_at";

fn read(row: &[Value]) -> Option<Payment> {
    let int = |i: usize| match row.get(i) {
        Some(Value::Integer(n)) => Some(*n),
        Some(Value::Text(t)) => t.parse().ok(),
        _ => None,
    };
    let text = |i: usize| match row.get(i) {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    Some(Payment {
        id: int(0)?,
        wallet: text(1)?,
        amount_nano: int(2)?,
        memo: text(3)?,
        plan_days: int(4)?,
        status: text(5)?,
        expires_at: int(6)?,
    })
}

/// What a run did with the payments it looked at.
#[derive(Serialize, Default)]
pub struct Checked {
    pub pending: usize,
    pub confirmed: Vec<i64>,
    pub expired: Vec<i64>,
    /// Wallets TonAPI refused (a bad address), with its answer.
    pub errors: Vec<String>,
}

/// What the monitor may be told: how many pending payments one run looks at.
#[derive(Deserialize, Default)]
pub struct Monitor {
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    1000
}

/// Every pending payment: each receiving wallet's transfers are read once
/// per run. TonAPI rate-limiting or failing makes the run retryable (after
/// the wallets it could read are settled), so the host's back-off spaces
/// the calls, and `overlap = "skip"` keeps the next tick from starting a
/// second run meanwhile.
pub fn monitor(job: &Job, p: Monitor) -> Result<Checked, JobError> {
    let rows = db::query(
        DB,
        &format!(
            "SELECT {COLUMNS} FROM payments WHERE status = 'pending' ORDER BY expires_at, id LIMIT $1"
        ),
        &[Value::Integer(p.limit.into())],
    )?;
    let payments: Vec<Payment> = rows.rows.iter().filter_map(|r| read(r)).collect();
    let mut by_wallet: BTreeMap<&str, Vec<&Payment>> = BTreeMap::new();
    for payment in &payments {
        by_wallet.entry(&payment.wallet).or_default().push(payment);
    }
    let mut checked = Checked {
        pending: payments.len(),
        ..Default::default()
    };
    let mut retry = None;
    for (wallet, payments) in by_wallet {
        let transfers = match tonapi::transfers(wallet) {
            Ok(t) => t,
            Err(Failure::Refused(note)) => {
                log::warn(&note);
                checked.errors.push(note);
                continue;
            }
            Err(Failure::Retry(e)) => {
                retry.get_or_insert(e);
                continue;
            }
        };
        for payment in payments {
            settle(job, payment, &transfers, &mut checked)?;
        }
    }
    match retry {
        Some(e) => Err(e),
        None => Ok(checked),
    }
}

/// The seed's on-demand check of one payment.
#[derive(Deserialize)]
pub struct Verification {
    pub payment_id: i64,
    pub wallet_address: String,
    pub amount: Json,
    pub memo: String,
}

/// One payment, as the bot's web service asks right after the user paid:
/// confirmed or expired ends the job; no transfer yet is retryable, so the
/// handler's retry policy polls until one of the two, and the last
/// attempt leaves a still-pending payment to the monitor (an unpaid
/// payment is no reason for the dead-letter queue).
pub fn verification(job: &Job, v: Verification) -> Result<Checked, JobError> {
    let amount_nano = ton::from_json(&v.amount).map_err(|e| JobError::permanent(e.to_string()))?;
    let rows = db::query(
        DB,
        &format!("SELECT {COLUMNS} FROM payments WHERE id = $1"),
        &[Value::Integer(v.payment_id)],
    )?;
    let payment = rows
        .rows
        .first()
        .and_then(|r| read(r))
        .ok_or_else(|| JobError::permanent(format!("no payment with id {}", v.payment_id)))?;
    // The row is the truth; a payload that disagrees with it is a bug in
    // whoever enqueued it, and checking it against the chain would confirm
    // the wrong thing.
    for (field, asked, stored) in [
        (
            "wallet_address",
            v.wallet_address.clone(),
            payment.wallet.clone(),
        ),
        ("memo", v.memo.clone(), payment.memo.clone()),
        (
            "amount",
            amount_nano.to_string(),
            payment.amount_nano.to_string(),
        ),
    ] {
        if asked != stored {
            return Err(JobError::permanent(format!(
                "payment {}: payload {field} {asked:?} differs from the stored {stored:?}",
                payment.id
            )));
        }
    }
    let mut checked = Checked::default();
    if payment.status != "pending" {
        log::info(&format!(
            "payment {} is already {}",
            payment.id, payment.status
        ));
        return Ok(checked);
    }
    checked.pending = 1;
    let transfers = match tonapi::transfers(&payment.wallet) {
        Ok(t) => t,
        Err(Failure::Refused(note)) => return Err(JobError::permanent(note)),
        Err(Failure::Retry(e)) => return Err(e),
    };
    settle(job, &payment, &transfers, &mut checked)?;
    if checked.confirmed.is_empty() && checked.expired.is_empty() {
        if job.attempt >= job.max_attempts {
            // Not a failure of the job: the user has not paid (yet). The
            // monitor keeps watching the payment until it expires.
            log::info(&format!(
                "payment {}: no transfer after {} checks; left to payment_monitor",
                payment.id, job.attempt
            ));
            return Ok(checked);
        }
        return Err(JobError::retry(format!(
            "payment {}: no transfer with memo {:?} and at least {} nanotons yet",
            payment.id, payment.memo, payment.amount_nano
        )));
    }
    Ok(checked)
}

/// Confirms `payment` if a transfer matches, else expires it when its time
/// is up; either change applies only to a payment still pending.
fn settle(
    job: &Job,
    payment: &Payment,
    transfers: &[Transfer],
    checked: &mut Checked,
) -> Result<(), JobError> {
    let now = now_ms(job);
    if let Some(t) = tonapi::matching(transfers, &payment.memo, payment.amount_nano) {
        if confirm(job, payment, t)? {
            log::info(&format!(
                "payment {} confirmed by {} ({} nanotons)",
                payment.id, t.hash, t.value_nano
            ));
            checked.confirmed.push(payment.id);
        }
        return Ok(());
    }
    if payment.expires_at <= now {
        let n = db::execute(
            DB,
            "UPDATE payments SET status = 'expired', checked_at = $1, job_id = $2 WHERE id = $3 AND status = 'pending'",
            &[
                Value::Integer(now),
                Value::Text(job.id.clone()),
                Value::Integer(payment.id),
            ],
        )?;
        if n == 1 {
            checked.expired.push(payment.id);
        }
        return Ok(());
    }
    db::execute(
        DB,
        "UPDATE payments SET checked_at = $1 WHERE id = $2 AND status = 'pending'",
        &[Value::Integer(now), Value::Integer(payment.id)],
    )?;
    Ok(())
}

/// Confirms the payment and activates its subscription in one transaction.
/// The payment passes through `confirming` inside the transaction, so only
/// the run whose update found it pending inserts the subscription (another
/// run, or a rerun of this one, finds it `confirmed` and changes nothing);
/// the subscription's key on the payment backs that up.
fn confirm(job: &Job, payment: &Payment, t: &Transfer) -> Result<bool, JobError> {
    let now = now_ms(job);
    let ends = payment
        .plan_days
        .checked_mul(DAY_MS)
        .and_then(|d| d.checked_add(now))
        .ok_or_else(|| {
            JobError::permanent(format!(
                "payment {}: plan_days {} is out of range",
                payment.id, payment.plan_days
            ))
        })?;
    let id = Value::Integer(payment.id);
    let affected = db::transaction(
        DB,
        &[
            Statement {
                sql: "UPDATE payments SET status = 'confirming', confirmed_at = $1, checked_at = $1, \
                      tx_hash = $2, received_nano = $3, job_id = $4 WHERE id = $5 AND status = 'pending'"
                    .into(),
                params: vec![
                    Value::Integer(now),
                    Value::Text(t.hash.clone()),
                    Value::Integer(t.value_nano),
                    Value::Text(job.id.clone()),
                    id.clone(),
                ],
            },
            Statement {
                sql: "INSERT INTO subscriptions (payment_id, user_id, starts_at, ends_at) \
                      SELECT id, user_id, CAST($1 AS BIGINT), CAST($2 AS BIGINT) FROM payments \
                      WHERE id = $3 AND status = 'confirming' ON CONFLICT (payment_id) DO NOTHING"
                    .into(),
                params: vec![Value::Integer(now), Value::Integer(ends), id.clone()],
            },
            Statement {
                sql: "UPDATE payments SET status = 'confirmed' WHERE id = $1 AND status = 'confirming'"
                    .into(),
                params: vec![id],
            },
        ],
    )?;
    Ok(affected.first().copied() == Some(1))
}

//! The investment platform's background jobs (seed 000): the critical
//! retry jobs (the seed's "PART5" tasks), payment retry and notification
//! retry, and the regular ones, deposit monitoring ([`deposits`]) and daily
//! rewards ([`rewards`]).
//!
//! Each has a sweep, scheduled every minute, that finds the failed rows due
//! for retry and enqueues one job per row (idempotency key per row and retry
//! round, so two sweeps or two hosts never enqueue a row twice), and a
//! per-row handler that calls the remote and records the outcome. Every
//! state change of a row is one `db.transaction` together with its audit
//! row. The host's retry policy (`[handlers."payment.retry"] retry`) spaces
//! the attempts; on the last one the handler marks the row for manual
//! review before the job goes to the dead-letter queue.
//!
//! Grants (see `examples/invest/taskhost.toml`): database `invest` (write),
//! `http` to the provider and Telegram, `chains = ["bsc"]`, settings
//! `provider_url`, `telegram_url`, `usdt_contract` and the reward levels,
//! secrets `provider_api_key` and `telegram_token`, and
//! `jobs = ["payment.retry", "notification.retry", "rewards.batch"]`.

mod deposits;
mod money;
mod notification;
mod payment;
mod rewards;
mod rows;

use serde::Deserialize;
use taskhost_sdk::{HostError, JobError, config};

/// The database every handler of this plugin works on (`[databases.invest]`).
pub(crate) const DB: &str = "invest";

/// A setting, `None` when the config does not declare it.
pub(crate) fn setting(key: &str) -> Result<Option<String>, JobError> {
    match config::get(key) {
        Ok(v) => Ok(Some(v)),
        Err(HostError::Denied(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a sweep may be told: how many rows it enqueues at most per run.
#[derive(Deserialize, Default)]
pub(crate) struct Sweep {
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    500
}

/// A retry job's payload: the row it works on.
#[derive(Deserialize)]
pub(crate) struct Target {
    pub id: String,
}

taskhost_sdk::plugin! {
    handler("payment.sweep", payment::sweep)
        .describe("Enqueues one payment.retry job per failed payment due for retry"),
    handler("payment.retry", payment::retry)
        .describe("Retries one failed payment at the provider, idempotently"),
    handler("notification.sweep", notification::sweep)
        .describe("Enqueues one notification.retry job per undelivered notification due for retry"),
    handler("notification.retry", notification::retry)
        .describe("Sends one undelivered notification through the Telegram Bot API"),
    handler("deposits.monitor", deposits::monitor)
        .describe("Records token transfers to deposit addresses; credits each once at the chain's required confirmations, orphans reorganised ones"),
    handler("rewards.daily", rewards::daily)
        .describe("Fans out one rewards.batch job per page of active deposits not yet paid for the tick's UTC day"),
    handler("rewards.batch", rewards::batch)
        .describe("Pays one page of deposits their daily reward up to their level's cap, once per day, in one transaction"),
}

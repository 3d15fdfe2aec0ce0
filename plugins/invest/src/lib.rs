//! The investment platform's critical retry jobs (the seed's "PART5"
//! tasks): payment retry and notification retry.
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
//! `http` to the provider and Telegram, settings `provider_url` and
//! `telegram_url`, secrets `provider_api_key` and `telegram_token`, and
//! `jobs = ["payment.retry", "notification.retry"]`.

mod notification;
mod payment;
mod rows;

use serde::Deserialize;

/// The database every handler of this plugin works on (`[databases.invest]`).
pub(crate) const DB: &str = "invest";

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
}

//! The portfolio tracker's background jobs (seed 003, which ran them on
//! Taskiq) and the trading platform's maintenance jobs (seed 001, which
//! ran them on a home-made Redis queue), on one database `app`.
//!
//! | handler | runs | does |
//! | --- | --- | --- |
//! | `create_hourly_snapshots` … `create_monthly_snapshots` | `5 * * * *`, `15 0 * * *`, `0 1 * * 0`, `0 2 1 * *` | one balance snapshot per wallet and asset for the tick |
//! | `cleanup_old_snapshots` | `0 3 * * *` | hourly snapshots past 7 days, the others past 90, in batches |
//! | `recalculate_wallet_balances` | on demand | one wallet's balances from its transactions, in one transaction |
//! | `recalculate_all_wallets` | on demand | one job per wallet, paged, followed in `recalculation_runs` |
//! | `sync_all_portfolios` | every 5 min | one `sync_portfolio` per user with exchange keys |
//! | `sync_portfolio` | from the above | the user's exchange balances (HMAC-signed by the host) into `holdings` |
//! | `cleanup_data` | `0 3 * * *` | old trades, logs and cache rows, in batches |
//! | `vacuum_database` | `0 4 * * 0` | `VACUUM` and `ANALYZE` under the `maintenance` grant |
//! | `bot_health_check` | every 2 min | the bots' health endpoints; the Nth failure in a row marks a bot unhealthy and enqueues one restart |
//! | `restart_unhealthy_bots` | from the above | asks each unhealthy bot to restart |
//! | `send_daily_summary_emails` | `0 8 * * *` | one summary mail per user and day through the mail provider |
//!
//! Amounts are integers in each asset's smallest unit, never floats;
//! exchange balances are kept as the exchange's decimal text.

mod batch;
mod bots;
mod mail;
mod maintenance;
mod recalc;
mod settings;
mod snapshots;
mod sync;
mod time;

/// The database every handler works on (`[databases.app]`).
pub(crate) const DB: &str = "app";

/// The time this run is for, in Unix milliseconds: the host's due time of
/// the job (a schedule's tick, a retry's run-at), so one run reads one clock.
pub(crate) fn now_ms(job: &taskhost_sdk::Job) -> i64 {
    job.scheduled_for as i64
}

/// A host error's text, for a job's message.
pub(crate) fn host_error(e: &taskhost_sdk::HostError) -> String {
    use taskhost_sdk::HostError::*;
    match e {
        Denied(m) => format!("denied: {m}"),
        Invalid(m) => format!("invalid: {m}"),
        Failed(m) => format!("failed: {m}"),
        Timeout(m) => format!("timed out: {m}"),
        Remote(r) => format!("remote error {}: {}", r.code, r.message),
    }
}

taskhost_sdk::plugin! {
    handler("create_hourly_snapshots", snapshots::hourly)
        .describe("One balance snapshot per wallet and asset for this hour's tick (BALANCE_HOURLY_SNAPSHOTS)"),
    handler("create_daily_snapshots", snapshots::daily)
        .describe("One balance snapshot per wallet and asset for this day's tick (BALANCE_DAILY_SNAPSHOTS)"),
    handler("create_weekly_snapshots", snapshots::weekly)
        .describe("One balance snapshot per wallet and asset for this week's tick (weeks start on Sunday, UTC)"),
    handler("create_monthly_snapshots", snapshots::monthly)
        .describe("One balance snapshot per wallet and asset for this month's tick"),
    handler("cleanup_old_snapshots", snapshots::cleanup)
        .describe("Deletes hourly snapshots past hourly_retention_days and the others past history_retention_days, in batches"),
    handler("recalculate_wallet_balances", recalc::wallet)
        .describe("Recalculates one wallet's balances {wallet_id, create_snapshots} from its transactions, in one transaction"),
    handler("recalculate_all_wallets", recalc::all)
        .describe("Enqueues recalculate_wallet_balances for every wallet {create_snapshots}, paged; progress in recalculation_runs"),
    handler("sync_all_portfolios", sync::all)
        .describe("Enqueues sync_portfolio for every user with exchange keys"),
    handler("sync_portfolio", sync::user)
        .describe("Reads one user's {user_id} balances from the exchange (HMAC-signed by the host) into holdings"),
    handler("cleanup_data", maintenance::cleanup)
        .describe("Deletes old trades, logs and expired cache rows by the configured ages, in batches"),
    handler("vacuum_database", maintenance::vacuum)
        .describe("VACUUM and ANALYZE the database (needs the maintenance grant)"),
    handler("bot_health_check", bots::check)
        .describe("Checks every running bot's health endpoint; a bot failing unhealthy_after checks in a row is marked unhealthy and restarted"),
    handler("restart_unhealthy_bots", bots::restart)
        .describe("Asks each unhealthy bot {bot_id?} to restart and marks it running again"),
    handler("send_daily_summary_emails", mail::daily)
        .describe("Sends each subscribed user one summary of their wallets per day through the mail provider"),
}

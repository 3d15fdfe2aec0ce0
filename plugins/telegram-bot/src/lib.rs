//! The Telegram advertising bot's background work (seed 002), which the
//! bot ran on a home-made SQLite queue: five scheduled jobs and the three
//! on-demand tasks its web service enqueues.
//!
//! | handler | runs | does |
//! | --- | --- | --- |
//! | `payment_monitor` | every 30 s | checks every pending TON payment against TonAPI |
//! | `payment_verification` | on demand | checks one payment |
//! | `channel_analytics` | every 6 h, or on demand for one channel | subscriber counts and prices |
//! | `reward_processor` | every 5 min | credits pending rewards |
//! | `reward_distribution` | on demand (300 s delay) | credits one reward |
//! | `database_cleanup` | daily | deletes old rows in bounded batches |
//! | `health_checker` | every 15 min | checks the web service and the database |
//! | `health_alert` | from `health_checker` | tells the admin chat |
//!
//! Amounts are integer nanotons throughout ([`ton`]). Every change that
//! moves money or grants access (a payment confirmed with its subscription,
//! a reward with the balance it credits) is one `db.transaction`.
//!
//! Grants (see `examples/telegram-bot/taskhost.toml`): database `bot`
//! (write), `http` to TonAPI, the Bot API and the bot's web service,
//! settings (`tonapi_url`, `telegram_url`, `web_url`, `admin_chat_id`, the
//! price formula, the cleanup ages), secrets `tonapi_key` and
//! `telegram_token`, and `jobs = ["health_alert"]`.

mod analytics;
mod cleanup;
mod health;
mod payment;
mod rewards;
mod settings;
mod telegram;
mod ton;
mod tonapi;

/// The database every handler works on (`[databases.bot]`), shared with
/// the bot's web service.
pub(crate) const DB: &str = "bot";

/// The time this run is for, in Unix milliseconds: the host's due time of
/// the job (a schedule's tick, a retry's run-at), so one run reads one clock.
pub(crate) fn now_ms(job: &taskhost_sdk::Job) -> i64 {
    job.scheduled_for as i64
}

/// A host error's text, for a job's message and a row's note.
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
    handler("payment_monitor", payment::monitor)
        .describe("Checks every pending TON payment against TonAPI; confirms (activating the subscription) or expires it"),
    handler("payment_verification", payment::verification)
        .describe("Checks one TON payment {payment_id, wallet_address, amount, memo}; retried until confirmed or expired"),
    handler("channel_analytics", analytics::run)
        .describe("Subscriber counts from the Bot API, active subscribers (45 %) and the post price; one channel {channel_id, force_update} or all"),
    handler("reward_processor", rewards::processor)
        .describe("Credits every pending reward to its user's TON balance, each once"),
    handler("reward_distribution", rewards::distribution)
        .describe("Credits one reward {user_id, reward_type, amount} once, however often the job runs"),
    handler("database_cleanup", cleanup::run)
        .describe("Deletes expired payments, credited rewards and health checks older than the configured ages, in bounded batches"),
    handler("health_checker", health::check)
        .describe("Checks the bot's web service and database, records the result, alerts the admin chat on failure"),
    handler("health_alert", health::alert)
        .describe("Sends one health alert to the admin chat through the Bot API"),
}

//! The Telegram bot example's background jobs end to end (seed 002):
//! `taskhost serve` processes running the `telegram_bot` plugin against
//! the bot's tables (`examples/telegram-bot/schema.sql`, on SQLite and on
//! PostgreSQL) and stand-ins for TonAPI, the Bot API and the bot's web
//! service (`support::standins`) speaking their wire formats.
//!
//! The seed's times (30-second ticks, a 300-second reward delay) are scaled
//! to seconds in each test's config; the shipped config is checked as
//! written by `config::the_shipped_config_has_the_seeds_schedules`.

mod analytics;
mod config;
mod maintenance;
mod payments;
mod rewards;

use std::path::{Path, PathBuf};
use std::time::Duration;

use taskhost::job::{Job, JobStatus, OutcomeKind};
use taskhost::store::{ListQuery, Store};

use crate::support::appdb::AppDb;
use crate::support::standins::{self, Reply, Standin};
use crate::support::{TestHost, services, spawn_serve, spawn_serve_logged, wait_until};

const TONAPI_KEY: &str = "AE7TONAPI-secret-key-q8Wm2";
const BOT_TOKEN: &str = "6098765432:AAF-secret-i3lani-bot-token-R7";
/// The bot's receiving wallet (user-friendly form, as the seed writes it).
const WALLET: &str = "UQDZpO1bF4dG9xkJ2Xh7cV3rT0wQeYhN5mLsPa8uKiCj6RzB";
const ADMIN_CHAT: &str = "-1009988776655";
/// A ceiling for a hang, not a measurement.
const LIMIT: Duration = Duration::from_secs(60);
/// Nanotons in one TON.
const TON: i64 = 1_000_000_000;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/telegram-bot")
        .join(file)
}

/// A host running the telegram_bot plugin against the stand-ins, with the
/// schedules and policies a test gives it in `extra`.
struct Bot {
    host: TestHost,
    tonapi: Standin,
    telegram: Standin,
    web: Standin,
    db: AppDb,
}

impl Bot {
    /// On a SQLite file in the host's folder.
    fn new(extra: &str) -> Bot {
        Self::on(false, extra)
    }

    /// On a fresh PostgreSQL database.
    fn on_postgres(extra: &str) -> Bot {
        Self::on(true, extra)
    }

    fn on(postgres: bool, extra: &str) -> Bot {
        let tonapi = standins::tonapi(TONAPI_KEY);
        let telegram = standins::telegram(BOT_TOKEN);
        let web = standins::web();
        let schema = std::fs::read_to_string(example("schema.sql")).unwrap();
        let pg = postgres.then(|| AppDb::postgres(&schema));
        let database = match &pg {
            Some(db) => db.config_line(),
            None => "sqlite = \"bot.db\"".to_string(),
        };
        let config = format!(
            r#"
[databases.bot]
{database}

[plugins.telegram_bot]
databases = {{ bot = "write" }}
http = ["{ton}", "{tg}", "{web}"]
secrets = {{ tonapi_key = "{TONAPI_KEY}", telegram_token = "{BOT_TOKEN}" }}
jobs = ["health_alert"]

[plugins.telegram_bot.settings]
tonapi_url = "{ton}"
telegram_url = "{tg}"
web_url = "{web}"
admin_chat_id = "{ADMIN_CHAT}"
price_base_nano = "1000000000"
price_per_1000_active_nano = "500000000"
analytics_fresh_seconds = "3600"
cleanup_batch = "2"

[workers]
queues = {{ default = 8 }}

{extra}
"#,
            ton = tonapi.url,
            tg = telegram.url,
            web = web.url,
        );
        let host = TestHost::new(&config);
        let db = pg.unwrap_or_else(|| AppDb::sqlite(&host.path().join("bot.db"), &schema));
        Bot {
            host,
            tonapi,
            telegram,
            web,
            db,
        }
    }

    /// A pending payment of `amount_nano` for user `user`, expiring
    /// `expires_in_ms` from now (negative: already past), memo `i3lani_<id>`.
    fn payment(&self, id: i64, user: i64, amount_nano: i64, expires_in_ms: i64) {
        let expires = now_ms() + expires_in_ms;
        self.db.exec(&format!(
            "INSERT INTO payments (id, user_id, wallet_address, amount_nano, memo, plan_days, created_at, expires_at) \
             VALUES ({id}, {user}, '{WALLET}', {amount_nano}, 'i3lani_{id}', 30, {now}, {expires})",
            now = now_ms(),
        ));
    }

    fn status(&self, payment: i64) -> String {
        self.db
            .value(&format!("SELECT status FROM payments WHERE id = {payment}"))
    }

    fn wait_status(&self, payment: i64, want: &str) {
        wait_until(LIMIT, &format!("payment {payment} to be {want}"), || {
            (self.status(payment) == want).then_some(())
        });
    }

    fn balance(&self, user: i64) -> i64 {
        let v = self.db.value(&format!(
            "SELECT ton_balance_nano FROM users WHERE id = {user}"
        ));
        v.parse().unwrap_or(0)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A schedule of `handler` every `every`, overlap skipped as shipped.
fn schedule(name: &str, every: &str, handler: &str) -> String {
    format!(
        "[[schedules]]\nname = \"{name}\"\nschedule = \"every {every}\"\nhandler = \"{handler}\"\npayload = {{}}\noverlap = \"skip\"\n"
    )
}

/// Every job of `handler` in the store, oldest first.
async fn jobs_of(store: &dyn Store, handler: &str) -> Vec<Job> {
    let mut jobs = store
        .list(&ListQuery {
            handler: Some(handler.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    jobs.sort_by_key(|j| j.id);
    jobs
}

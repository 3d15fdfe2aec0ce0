//! The portfolio example's jobs end to end (seeds 001 and 003):
//! `taskhost serve` processes running the `portfolio` plugin against the
//! app's tables (`examples/portfolio/schema.sql`, on SQLite and on
//! PostgreSQL) and stand-ins for the exchange, the trading bots and the
//! mail provider (`support::portfolio_standins`) speaking their wire
//! formats.
//!
//! The seed's times (2-minute health checks, daily cleanups) are scaled to
//! seconds or fired on demand in each test's config; the shipped config is
//! checked as written by `config::the_shipped_config_has_both_seeds_schedules`.

mod config;
mod maintenance;
mod snapshots;
mod sync;
mod wallets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use taskhost::job::{Job, JobStatus};
use taskhost::store::{ListQuery, Store};

use crate::support::appdb::AppDb;
use crate::support::portfolio_standins;
use crate::support::standins::Standin;
use crate::support::{TestHost, services, spawn_serve, wait_until};

const EXCHANGE_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const EXCHANGE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const MAIL_KEY: &str = "SG.mail-secret-key-7QmZ2x";
/// A ceiling for a hang, not a measurement.
const LIMIT: Duration = Duration::from_secs(60);
const DAY_MS: i64 = 86_400_000;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/portfolio")
        .join(file)
}

/// A host running the portfolio plugin against the stand-ins.
struct Portfolio {
    host: TestHost,
    exchange: Standin,
    bots: Standin,
    mail: Standin,
    db: AppDb,
}

/// How a test's host differs from the shipped grants.
#[derive(Default)]
struct Setup<'a> {
    postgres: bool,
    /// No `maintenance` grant.
    no_maintenance: bool,
    /// The `maintenance` grant without the `write` grant.
    maintenance_only: bool,
    /// More `[plugins.portfolio.settings]` lines.
    settings: &'a str,
    /// More config after the plugin's tables (schedules, handlers).
    extra: &'a str,
}

impl Portfolio {
    fn new(extra: &str) -> Portfolio {
        Self::with(Setup {
            extra,
            ..Default::default()
        })
    }

    fn on_postgres(extra: &str) -> Portfolio {
        Self::with(Setup {
            postgres: true,
            extra,
            ..Default::default()
        })
    }

    fn with(setup: Setup) -> Portfolio {
        let exchange = portfolio_standins::exchange();
        let bots = portfolio_standins::bots();
        let mail = portfolio_standins::mail(MAIL_KEY);
        let schema = std::fs::read_to_string(example("schema.sql")).unwrap();
        let pg = setup.postgres.then(|| AppDb::postgres(&schema));
        let database = match &pg {
            Some(db) => db.config_line(),
            None => "sqlite = \"app.db\"".to_string(),
        };
        let maintenance = if setup.no_maintenance {
            ""
        } else {
            "maintenance = [\"app\"]"
        };
        let write = if setup.maintenance_only {
            ""
        } else {
            "databases = { app = \"write\" }"
        };
        let config = format!(
            r#"
[databases.app]
{database}

[plugins.portfolio]
{write}
{maintenance}
http = ["{ex}", "{bots}", "{mail}"]
jobs = ["recalculate_wallet_balances", "recalculate_all_wallets", "sync_portfolio", "restart_unhealthy_bots"]
jobs_per_run = 1000
jobs_max_priority = "high"

[plugins.portfolio.secrets]
exchange_key_1 = "{EXCHANGE_KEY}"
exchange_secret_1 = "{EXCHANGE_SECRET}"
mail_api_key = "{MAIL_KEY}"

[plugins.portfolio.settings]
exchange_url = "{ex}"
mail_url = "{mail}"
mail_from = "reports@example.com"
{settings}

[workers]
queues = {{ default = 8 }}

{extra}
"#,
            ex = exchange.url,
            bots = bots.url,
            mail = mail.url,
            settings = setup.settings,
            extra = setup.extra,
        );
        let host = TestHost::new(&config);
        let db = pg.unwrap_or_else(|| AppDb::sqlite(&host.path().join("app.db"), &schema));
        Portfolio {
            host,
            exchange,
            bots,
            mail,
            db,
        }
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

/// Every job of `handler` in the store (page after page), oldest first.
async fn jobs_of(store: &dyn Store, handler: &str) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                handler: Some(handler.into()),
                after,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        jobs.extend(page.jobs);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    jobs.sort_by_key(|j| j.id);
    jobs
}

/// Runs one job of `handler` on a serving host and returns it finished.
async fn run(s: &taskhost::services::Services, handler: &str, payload: serde_json::Value) -> Job {
    let e = s
        .enqueuer
        .enqueue(crate::support::request(handler, payload))
        .await
        .unwrap();
    crate::support::finished(s.store.as_ref(), e.id).await
}

fn succeeded(job: &Job) -> serde_json::Value {
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
    job.result.clone().unwrap()
}

/// Keeps the serving host alive for the test's length.
fn serve(t: &Portfolio) -> crate::support::ServeProcess {
    spawn_serve(&t.host)
}

async fn services_of(t: &Portfolio) -> taskhost::services::Services {
    services(&t.host).await
}

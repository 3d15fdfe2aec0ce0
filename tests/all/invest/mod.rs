//! The invest example's seed jobs end to end: `taskhost serve` processes
//! running the `invest` plugin's sweeps and retries, deposit monitoring and
//! daily rewards on a real SQLite or PostgreSQL database with
//! `examples/invest/schema.sql`, against the stand-in payment provider and
//! Telegram (`support::standins`) and a local chain (anvil).
//!
//! The seed's delays (minutes, hours) are scaled down to seconds or
//! milliseconds in each test's config; the shipped config is checked as
//! written by `hosts::the_shipped_config_loads_and_lists_the_seed_schedules`.

mod deposits;
mod hosts;
mod notifications;
mod payments;
mod rewards;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use taskhost::job::{Job, JobStatus, OutcomeKind};
use taskhost::store::{ListQuery, Store};

use crate::support::appdb::AppDb;
use crate::support::standins::{self, Reply, Standin};
use crate::support::{
    TestHost, services, spawn_serve, spawn_serve_logged, stderr, stdout, taskhost_bin, wait_until,
};

const API_KEY: &str = "sk_test_4f9a1c2e7b";
const BOT_TOKEN: &str = "7012345678:AAHx9vQ-secret-bot-token-Zk3";
/// A ceiling for a hang, not a measurement.
const LIMIT: Duration = Duration::from_secs(90);

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/invest")
        .join(file)
}

/// Which implementation of the seed jobs a host runs: the Rust `invest`
/// plugin, or its Python twin `py_invest` (notification retry only), which
/// must pass the same tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Twin {
    Rust,
    Python,
}

impl Twin {
    /// The plugin's name, as its `[plugins.NAME]` grants say.
    fn plugin(self) -> &'static str {
        match self {
            Twin::Rust => "invest",
            Twin::Python => "py_invest",
        }
    }
}

/// A host running the invest plugin against the two stand-ins, its sweeps
/// scheduled every second, with `extra` config (handler policies, rates).
struct Invest {
    host: TestHost,
    provider: Standin,
    telegram: Standin,
    db: AppDb,
}

impl Invest {
    /// On a SQLite file in the host's folder.
    fn new(extra: &str) -> Invest {
        Self::on(false, Twin::Rust, extra)
    }

    /// On a SQLite file, running `twin`'s notification jobs; a Python host
    /// loads the polyglot plugins, compiled once per test process.
    async fn notifications(twin: Twin, extra: &str) -> Invest {
        if twin == Twin::Python {
            crate::support::polyglot::warm().await;
        }
        Self::on(false, twin, extra)
    }

    /// On a fresh PostgreSQL database.
    fn on_postgres(extra: &str) -> Invest {
        Self::on(true, Twin::Rust, extra)
    }

    fn on(postgres: bool, twin: Twin, extra: &str) -> Invest {
        Self::build(postgres, twin, "", "", extra)
    }

    /// The Rust plugin with `grants` lines added to `[plugins.invest]` and
    /// `settings` lines to its settings table.
    fn with(postgres: bool, grants: &str, settings: &str, extra: &str) -> Invest {
        Self::build(postgres, Twin::Rust, grants, settings, extra)
    }

    fn build(postgres: bool, twin: Twin, grants: &str, settings: &str, extra: &str) -> Invest {
        let provider = standins::provider(API_KEY);
        let telegram = standins::telegram(BOT_TOKEN);
        let schema = std::fs::read_to_string(example("schema.sql")).unwrap();
        let pg = postgres.then(|| AppDb::postgres(&schema));
        let database = match &pg {
            Some(db) => db.config_line(),
            None => "sqlite = \"invest.db\"".to_string(),
        };
        let config = format!(
            r#"
[databases.invest]
{database}

[plugins.{plugin}]
databases = {{ invest = "write" }}
http = ["{p}", "{t}"]
secrets = {{ provider_api_key = "{API_KEY}", telegram_token = "{BOT_TOKEN}" }}
jobs = ["payment.retry", "notification.retry", "rewards.batch"]
{grants}

[plugins.{plugin}.settings]
provider_url = "{p}"
telegram_url = "{t}"
{settings}

{workers}
{payment_schedule}
[[schedules]]
name = "notification-retry"
schedule = "every 1s"
handler = "notification.sweep"
payload = {{}}
overlap = "skip"

{extra}
"#,
            p = provider.url,
            t = telegram.url,
            plugin = twin.plugin(),
            // The Python twin ports the notification jobs only.
            payment_schedule = if twin == Twin::Rust {
                "[[schedules]]\nname = \"payment-retry\"\nschedule = \"every 1s\"\n\
                 handler = \"payment.sweep\"\npayload = {}\noverlap = \"skip\"\n"
            } else {
                ""
            },
            workers = if extra.contains("[workers]") {
                ""
            } else {
                "[workers]\nqueues = { default = 32 }\n"
            },
        );
        let host = match twin {
            Twin::Rust => TestHost::new(&config),
            Twin::Python => {
                TestHost::with_host_table(&crate::support::polyglot::host_table(), &config)
            }
        };
        let db = pg.unwrap_or_else(|| AppDb::sqlite(&host.path().join("invest.db"), &schema));
        Invest {
            host,
            provider,
            telegram,
            db,
        }
    }

    fn failed_payment(&self, id: &str) {
        self.db.exec(&format!(
            "INSERT INTO payments (id, user_id, amount, currency, status) VALUES ('{id}', 7, '100.50', 'USDT', 'failed')"
        ));
    }

    fn failed_notification(&self, id: &str, chat: &str) {
        self.db.exec(&format!(
            "INSERT INTO notifications (id, chat_id, text, status) VALUES ('{id}', '{chat}', 'Your deposit is confirmed', 'failed')"
        ));
    }

    fn status(&self, table: &str, id: &str) -> String {
        self.db
            .value(&format!("SELECT status FROM {table} WHERE id = '{id}'"))
    }

    /// Waits until row `id` of `table` has status `want`.
    fn wait_status(&self, table: &str, id: &str, want: &str) {
        wait_until(LIMIT, &format!("{table} {id} to be {want}"), || {
            (self.status(table, id) == want).then_some(())
        });
    }

    /// The audit rows of one entity: (round, attempt, from, to), in order.
    fn audit(&self, entity: &str, id: &str) -> Vec<(i64, i64, String, String)> {
        self.db
            .rows(&format!(
                "SELECT retry_round, attempt, from_status, to_status FROM audit \
             WHERE entity = '{entity}' AND entity_id = '{id}' ORDER BY retry_round, attempt, at"
            ))
            .into_iter()
            .map(|r| {
                (
                    r[0].parse().unwrap(),
                    r[1].parse().unwrap(),
                    r[2].clone(),
                    r[3].clone(),
                )
            })
            .collect()
    }
}

/// Every job of `handler` in the store.
async fn jobs_of(store: &dyn Store, handler: &str) -> Vec<Job> {
    store
        .list(&ListQuery {
            handler: Some(handler.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
}

/// Waits until `handler` has exactly one job, in a final state.
async fn the_finished_job(store: &dyn Store, handler: &str) -> Job {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let jobs = jobs_of(store, handler).await;
        assert!(jobs.len() <= 1, "one job, got {}", jobs.len());
        if let Some(j) = jobs.into_iter().next().filter(|j| j.status.is_final()) {
            return j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{handler} job to finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gaps(job: &Job) -> Vec<Duration> {
    job.attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).to_std().unwrap())
        .collect()
}

/// Each gap at least its delay (a retry never comes early) and within a
/// generous ceiling for a loaded machine.
fn assert_gaps(job: &Job, want: &[Duration]) {
    let got = gaps(job);
    assert_eq!(got.len(), want.len(), "gaps {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            g >= w && *g < *w + Duration::from_millis(1500),
            "gap {g:?}, wanted {w:?} (all: {got:?})"
        );
    }
}

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

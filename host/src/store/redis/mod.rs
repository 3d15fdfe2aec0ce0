//! The Redis store: any number of hosts on any number of machines share
//! queues, schedules and the DLQ through one Redis.
//!
//! Every atomic state change is one Lua script ([`scripts`]), so a lease is
//! compare-and-set by its fence inside Redis, never guarded by
//! `MULTI`/`EXEC`. Times (due times, lease expiries, retention) come from
//! Redis `TIME` inside the scripts, so hosts with skewed clocks agree.
//! Change signals travel by pub/sub on a dedicated connection ([`signals`]).
//!
//! Keys live under a prefix, so several apps share one Redis. The layout:
//! a hash per job, per-(queue, handler, priority) sorted sets of waiting
//! jobs by run-at, a sorted set of leases by expiry, lexically sorted id
//! indexes for listing, and a hash of counts kept by the scripts.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::store::{StoreConfig, StoreError, StoreResult};

mod batches;
mod chains;
mod codec;
mod completer;
mod connect;
mod limits;
mod ops;
mod plugins;
mod reads;
mod scripts;
mod signals;
mod terminate;
#[doc(hidden)]
pub mod test_server;
#[cfg(test)]
mod tests;
mod tls;

pub use connect::redact;
pub use tls::{RedisTls, read_tls_ca, read_tls_client};

use signals::Signals;

/// Where the store reads the time its decisions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreTime {
    /// Redis `TIME`, inside each script: what every host sharing the store
    /// agrees on. The only setting `serve` uses.
    #[default]
    Redis,
    /// The clock given to [`RedisStore::open`], sent with each call: for
    /// tests that move time by hand.
    Clock,
}

/// How to open the Redis store. Its `Debug` shows the URL without its
/// password and never the password field, so a logged config leaks nothing.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` or `rediss://` for TLS (credentials may be
    /// given here or below).
    pub url: String,
    /// For `rediss://`: a private CA and a client certificate.
    pub tls: RedisTls,
    /// The ACL user, if not in the URL.
    pub username: Option<String>,
    /// The password (already resolved from its secret reference).
    pub password: Option<String>,
    /// Put in front of every key, so several apps share one Redis.
    pub prefix: String,
    /// Settings shared with every backend.
    pub store: StoreConfig,
    /// Where times come from.
    pub time: StoreTime,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &connect::redact(&self.url))
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("prefix", &self.prefix)
            .field("store", &self.store)
            .field("time", &self.time)
            .finish()
    }
}

impl RedisOptions {
    /// Options for `url` with the default prefix and settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: RedisTls::default(),
            username: None,
            password: None,
            prefix: "taskhost:".into(),
            store: StoreConfig::default(),
            time: StoreTime::Redis,
        }
    }
}

/// How recent a failed call must be for `check_writable` to report it.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Expired leases reaped per lease call (the rest on the next calls).
const REAP_STEP: u32 = 1000;

/// The Redis store.
pub struct RedisStore {
    runner: Arc<Runner>,
    config: StoreConfig,
    signals: Arc<Signals>,
    stop: watch::Sender<bool>,
    completions: tokio::sync::mpsc::UnboundedSender<completer::Completion>,
}

/// What every call needs: the connection, the prefix and the time source.
/// Shared with the task that completes runs in batches.
pub(super) struct Runner {
    shown_url: String,
    prefix: String,
    conn: ConnectionManager,
    clock: Arc<dyn Clock>,
    time: StoreTime,
    closed: AtomicBool,
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl RedisStore {
    /// Connects and subscribes to the store's signals. `clock` converts due
    /// times into this host's frame (and is the time source under
    /// [`StoreTime::Clock`]).
    pub async fn open(options: RedisOptions, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let url = connect::connection_url(
            &options.url,
            options.username.as_deref(),
            options.password.as_deref(),
        )?;
        let shown_url = redact(&options.url);
        let (client, conn) = connect::connect(&url, &options.tls).await?;
        let signals = Arc::new(Signals::default());
        let (stop, stopped) = watch::channel(false);
        signals::listen(
            client,
            format!("{}signal", options.prefix),
            signals.clone(),
            stopped.clone(),
        )
        .await
        .map_err(|e| {
            StoreError::backend(format!("cannot subscribe to Redis at {shown_url}: {e}"))
        })?;
        let runner = Arc::new(Runner {
            shown_url,
            prefix: options.prefix,
            conn,
            clock,
            time: options.time,
            closed: AtomicBool::new(false),
            last_failure: Mutex::new(None),
        });
        let completions = completer::start(runner.clone(), signals.clone(), stopped);
        Ok(Self {
            runner,
            config: options.store,
            signals,
            stop,
            completions,
        })
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.runner.shown_url
    }

    async fn run(&self, script: &Script, args: &[String]) -> StoreResult<Value> {
        self.runner.run(script, args).await
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        self.runner.query(cmd).await
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.runner.prefix)
    }

    /// A store time as this host's clock reads it: the host sleeps by its
    /// own clock, so a due time is moved by the difference of the clocks.
    fn to_host_time(&self, at: i64, store_now: i64) -> StoreResult<DateTime<Utc>> {
        let ahead = chrono::Duration::microseconds(at.saturating_sub(store_now));
        Ok(self.runner.clock.now() + ahead)
    }
}

impl Runner {
    /// The time argument of every script: empty for Redis `TIME`.
    fn time_arg(&self) -> String {
        match self.time {
            StoreTime::Redis => String::new(),
            StoreTime::Clock => codec::micros(self.clock.now()).to_string(),
        }
    }

    /// `Closed` once the store was closed.
    pub(super) fn check_open(&self) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn open_conn(&self) -> StoreResult<ConnectionManager> {
        self.check_open()?;
        Ok(self.conn.clone())
    }

    /// Notes a failed call for `check_writable` and wraps it.
    fn failed(&self, e: redis::RedisError) -> StoreError {
        let message = format!("Redis at {}: {e}", self.shown_url);
        if let Ok(mut last) = self.last_failure.lock() {
            *last = Some((Instant::now(), message.clone()));
        }
        StoreError::backend(message)
    }

    /// Runs `script` with the prefix, the time and `args`. A call whose
    /// connection broke is retried once the manager has reconnected (the
    /// first command after a Redis restart fails); the scripts are safe to
    /// repeat or, for a lease, only delay jobs by one lease length.
    pub(super) async fn run(&self, script: &Script, args: &[String]) -> StoreResult<Value> {
        let mut conn = self.open_conn()?;
        let mut tries = 0;
        loop {
            let mut call = script.prepare_invoke();
            call.arg(&self.prefix).arg(self.time_arg());
            for a in args {
                call.arg(a);
            }
            match call.invoke_async::<Value>(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) if tries < 3 && connect::is_connection_error(&e) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Runs a plain command (reads without a time).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut conn = self.open_conn()?;
        let mut tries = 0;
        loop {
            match cmd.query_async::<T>(&mut conn).await {
                Ok(v) => return Ok(v),
                Err(e) if tries < 3 && connect::is_connection_error(&e) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
    }
}

/// The answer of a script that may refuse a job operation.
fn refusal(reply: &[Value], id: crate::job::JobId, action: &'static str) -> StoreResult<()> {
    match reply.first().map(codec::text).transpose()?.as_deref() {
        Some("ok") => Ok(()),
        Some("nf") => Err(StoreError::NotFound(id)),
        Some("lost") => Err(StoreError::LeaseLost(id)),
        Some("wrong") => {
            let status = codec::text(&reply[1])?;
            Err(StoreError::WrongState {
                id,
                status: status.parse().map_err(|e: String| StoreError::backend(e))?,
                action,
            })
        }
        other => Err(StoreError::backend(format!(
            "unexpected script answer {other:?}"
        ))),
    }
}

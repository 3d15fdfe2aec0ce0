//! `[store]`, `[workers]`, `[retry]` and `[plugins.NAME]`: where jobs are
//! kept, who runs them, how failures are retried, and what each plugin may do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::serde_units;

/// Where jobs are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Which store: `sqlite` (the embedded file, the default) or `redis`
    /// (shared by hosts on many machines).
    pub backend: StoreBackend,
    /// The embedded store's file, relative to `host.data`.
    pub path: String,
    /// Redis: `redis://host:port/db`, or `rediss://` for TLS. Shown
    /// without its password.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted_url"
    )]
    pub url: Option<String>,
    /// Redis over TLS: a PEM file of the CA (a private one, as managed
    /// Redis services and self-hosted TLS use) the server's certificate
    /// must chain to, instead of the built-in webpki roots. Relative to the
    /// config file's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Redis over TLS: a PEM client certificate (chain) sent to servers
    /// that check clients (`tls-auth-clients yes`); with `tls_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Redis over TLS: the PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Redis: the ACL user, when not in the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Redis: the password, `"env:VAR"` (read from the variable at start)
    /// or the text itself. Never printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// Redis: put in front of every key, so several apps share one Redis.
    pub prefix: String,
    /// `normal` survives a killed process; `full` also survives power loss
    /// (see the README for what `normal` may cost then).
    pub durability: DurabilitySetting,
    /// How long an idempotency key answers with its original job id.
    #[serde(
        deserialize_with = "bounds::keep",
        serialize_with = "serde_units::duration::serialize"
    )]
    pub idempotency_ttl: Duration,
    /// How long finished jobs are kept (dead jobs stay until purged).
    #[serde(
        deserialize_with = "bounds::keep",
        serialize_with = "serde_units::duration::serialize"
    )]
    pub retention: Duration,
    /// How often `serve` sweeps out jobs past retention, expired idempotency
    /// keys and old schedule ticks (jittered; one host per period sweeps).
    #[serde(
        deserialize_with = "bounds::sweep_every",
        serialize_with = "serde_units::duration::serialize"
    )]
    pub sweep_every: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Sqlite,
            path: "taskhost.db".into(),
            url: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            username: None,
            password: None,
            prefix: "taskhost:".into(),
            durability: DurabilitySetting::Normal,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            sweep_every: Duration::from_secs(5 * 60),
        }
    }
}

/// Which store backend a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// One SQLite file on this machine.
    Sqlite,
    /// A Redis server shared by any number of hosts.
    Redis,
}

/// A secret in the config: `"env:VAR"` names an environment variable read
/// when the host starts; anything else is the value itself. Debug output
/// and serialization never show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl SecretRef {
    /// The value, reading `env:VAR` from the environment; `what` names the
    /// setting in the error.
    pub fn resolve(&self, what: &str) -> Result<String, String> {
        match self.0.strip_prefix("env:") {
            Some(var) => std::env::var(var)
                .map_err(|_| format!("{what}: environment variable {var} is not set")),
            None => Ok(self.0.clone()),
        }
    }
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(super::http::REDACTED)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::http::REDACTED)
    }
}

fn serialize_redacted_url<S: serde::Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&crate::store::redis::redact(url)),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilitySetting {
    Normal,
    Full,
}

/// Who runs jobs on this host.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Whether this host runs jobs at all (a host may only schedule or serve the API).
    pub enabled: bool,
    /// Queue name → how many of its jobs run at once on this host.
    #[serde(deserialize_with = "bounds::queues")]
    pub queues: BTreeMap<String, u32>,
    /// How long a lease lasts without renewal; a killed host's jobs return
    /// to their queue this long after its last heartbeat.
    #[serde(
        deserialize_with = "bounds::lease",
        serialize_with = "serde_units::duration::serialize"
    )]
    pub lease: Duration,
    /// How long running jobs may finish after SIGTERM before their leases
    /// are released.
    #[serde(with = "serde_units::duration")]
    pub shutdown_grace: Duration,
    /// The largest payload an enqueue accepts.
    #[serde(with = "serde_units::size")]
    pub max_payload: u64,
    /// The longest wait a plugin's `retry-after` may ask for; a longer one
    /// is cut to this, so no plugin can park a job for years.
    #[serde(with = "serde_units::duration")]
    pub max_retry_after: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            enabled: true,
            queues: BTreeMap::from([("default".to_string(), 64)]),
            lease: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_payload: 1 << 20,
            max_retry_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The scheduler of this host.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Whether this host fires schedules (any number of hosts may; each tick
    /// is enqueued once).
    pub enabled: bool,
    /// How late a tick may still fire; older unfired ticks are missed.
    #[serde(with = "serde_units::duration")]
    pub grace: Duration,
    /// How often schedules changed by other processes are re-read.
    #[serde(with = "serde_units::duration")]
    pub refresh: Duration,
    /// The shortest span between two fires a schedule may have; a schedule
    /// that fires more often is refused.
    #[serde(with = "serde_units::duration")]
    pub min_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            grace: Duration::from_secs(60),
            refresh: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
        }
    }
}

/// A retry policy: an explicit list of delays (one retry per entry), or
/// exponential back-off. `max_attempts` counts the first run too. The same
/// shape is a handler's `[handlers.NAME.retry]` and a job's own `retry` at
/// enqueue.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// `["1m", "2m", "4m"]`: the delay before the 2nd, 3rd, 4th attempt.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "option_durations"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub delays: Option<Vec<Duration>>,
    /// The first delay of exponential back-off (default `1s`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_units::option_duration"
    )]
    #[schema(value_type = Option<String>)]
    pub base: Option<Duration>,
    /// Each delay is the one before times this (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// The longest delay (default `1h`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_units::option_duration"
    )]
    #[schema(value_type = Option<String>)]
    pub max_delay: Option<Duration>,
    /// Fraction of each delay to randomise by, 0.0–1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
}

/// What one plugin is granted, beyond `log`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrants {
    /// Handlers this plugin may enqueue through `jobs`; a trailing `*`
    /// matches a prefix (`"probe.*"`), `"*"` matches all.
    #[serde(default)]
    pub jobs: Vec<String>,
    /// Queues this plugin's `jobs` calls may name; without this key, only
    /// the default queue (a request that names none, or `"default"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_queues: Option<Vec<String>>,
    /// The highest priority this plugin's `jobs` calls may ask for
    /// (default `"normal"`: `high` and `critical` need this grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_max_priority: Option<crate::job::Priority>,
    /// How many jobs one run of this plugin's handlers may enqueue
    /// (default `[limits] max_enqueues`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_per_run: Option<u64>,
    /// Databases (names from `[databases]`) this plugin may use, each
    /// `"read"` or `"write"`: `databases = { app = "write", reports = "read" }`.
    #[serde(default)]
    pub databases: BTreeMap<String, super::DbAccess>,
    /// Databases (names from `[databases]`) on which this plugin may run
    /// `VACUUM` and `ANALYZE`, and nothing else by this grant:
    /// `maintenance = ["app"]`. Separate from `databases`, so a plugin
    /// that only keeps a database in shape needs no read or write grant,
    /// and a write grant alone cannot take the long locks a vacuum takes.
    #[serde(default)]
    pub maintenance: Vec<String>,
    /// Outbound HTTP origins this plugin may reach, as
    /// `scheme://host[:port]`: `"https://api.telegram.org"`,
    /// `"https://*.example.com"` (any subdomain), `"http://127.0.0.1:8080"`,
    /// `":*"` for any port, `"*://"` for either scheme.
    #[serde(default)]
    pub http: Vec<String>,
    /// Chains (names from `[chains]`) this plugin may call: `chains = ["mainnet"]`.
    #[serde(default)]
    pub chains: Vec<String>,
    /// Plain values the plugin reads with `config.get`.
    #[serde(default, deserialize_with = "super::http::scalar_map::deserialize")]
    pub settings: BTreeMap<String, String>,
    /// Values the plugin reads with `config.get` and places into requests
    /// as `{secret:NAME}`; never logged. `"env:VAR"` reads the variable
    /// `VAR` when the host starts.
    #[serde(default)]
    pub secrets: super::http::SecretMap,
}

impl PluginGrants {
    /// Whether this plugin's `jobs` calls may put a job on `queue`
    /// (`None`: the default queue).
    pub fn may_use_queue(&self, queue: Option<&str>) -> bool {
        let queue = queue.unwrap_or(crate::job::DEFAULT_QUEUE);
        match &self.jobs_queues {
            Some(queues) => queues.iter().any(|q| q == queue),
            None => queue == crate::job::DEFAULT_QUEUE,
        }
    }

    /// Whether this plugin's `jobs` calls may ask for `priority`.
    pub fn may_use_priority(&self, priority: crate::job::Priority) -> bool {
        // Lower rank runs first: a grant of `high` allows high, normal, low.
        priority.rank()
            >= self
                .jobs_max_priority
                .unwrap_or(crate::job::Priority::Normal)
                .rank()
    }

    pub fn may_enqueue(&self, handler: &str) -> bool {
        self.jobs
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => handler.starts_with(prefix),
                None => pattern == handler,
            })
    }
}

mod option_durations {
    use crate::units::serde_units::durations;
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
        durations::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<Duration>>, s: S) -> Result<S::Ok, S::Error> {
        durations::serialize(v.as_deref().unwrap_or(&[]), s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_match_exact_names_and_prefixes() {
        let g = PluginGrants {
            jobs: vec!["hello".into(), "probe.*".into()],
            ..Default::default()
        };
        assert!(g.may_enqueue("hello"));
        assert!(g.may_enqueue("probe.sleep"));
        assert!(!g.may_enqueue("hello2"));
        assert!(!g.may_enqueue("other"));
        assert!(!PluginGrants::default().may_enqueue("hello"));
    }
}

/// Range checks run while the config is read, so a value that would make a
/// host useless is refused with the file's line and key.
mod bounds {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use crate::units::serde_units::within;

    const SECOND: Duration = Duration::from_secs(1);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// A lease shorter than a second expires between two heartbeats; one
    /// longer than a day keeps a killed host's jobs for that long.
    pub fn lease<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        within(d, SECOND, DAY)
    }

    /// Retention and idempotency TTLs: at least a second, at most ten years.
    pub fn keep<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        within(d, SECOND, DAY * 3650)
    }

    /// The sweep period: from a second to a day.
    pub fn sweep_every<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        within(d, SECOND, DAY)
    }

    /// The most jobs of one queue a host may run at once.
    const MAX_CONCURRENCY: u32 = 10_000;

    /// At least one queue, each running 1 to [`MAX_CONCURRENCY`] jobs at once.
    pub fn queues<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u32>, D::Error> {
        let queues = BTreeMap::<String, u32>::deserialize(d)?;
        if queues.is_empty() {
            return Err(D::Error::custom(
                "no queues: this host would run nothing; name at least one (queues = { default = 8 }) or set enabled = false",
            ));
        }
        for (name, n) in &queues {
            if *n == 0 || *n > MAX_CONCURRENCY {
                return Err(D::Error::custom(format!(
                    "queue {name:?} runs {n} jobs at once; it must be from 1 to {MAX_CONCURRENCY}"
                )));
            }
        }
        Ok(queues)
    }
}

//! `taskhost.toml`: one file for the host, its limits and its handlers,
//! every key overridable by an environment variable (see [`load`]).

mod api;
mod chains;
mod databases;
mod http;
mod load;
mod workers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::serde_units;

pub use api::{ApiSettings, Scope, TokenSettings};
pub use chains::{ChainSettings, redact_rpc_url};
pub use databases::{DatabaseSettings, DbAccess, redact_url};
pub use http::{HttpSettings, REDACTED, SecretMap};
pub use load::{ConfigError, ENV_PREFIX, load, parse};
pub use workers::{
    DurabilitySetting, PluginGrants, RetrySettings, SchedulerConfig, SecretRef, StoreBackend,
    StoreSettings, WorkerSettings,
};

/// The whole host configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub host: HostSettings,
    /// Limits for every handler that does not set its own.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Per-handler overrides, keyed by handler name.
    #[serde(default)]
    pub handlers: BTreeMap<String, HandlerSettings>,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub workers: WorkerSettings,
    /// The retry policy of every handler that does not set its own.
    #[serde(default)]
    pub retry: RetrySettings,
    /// What each plugin (by file stem) is granted.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginGrants>,
    /// SQL databases by name, for the `db` capability.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseSettings>,
    /// EVM chains by name, for the `chain` capability.
    #[serde(default)]
    pub chains: BTreeMap<String, ChainSettings>,
    /// Outbound HTTP defaults (timeout, response cap, redirects).
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub api: ApiSettings,
    /// Schedules declared here are synced into the store at start.
    #[serde(default)]
    pub schedules: Vec<crate::scheduler::ScheduleDef>,
    /// The folder relative paths are resolved against: the config file's own.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Where the host finds its plugins and keeps its files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSettings {
    /// Folder of `.wasm` plugin components.
    pub plugins: PathBuf,
    /// Folder for compiled plugins, keyed by content and engine settings.
    pub cache: PathBuf,
    /// Folder for the embedded store.
    pub data: PathBuf,
    /// How many job instances may exist at once (the pooling allocator's size).
    pub pool_size: u32,
    /// Cranelift optimisation level for plugins: `speed`, `speed_and_size` or `none`.
    pub opt_level: OptLevel,
    /// Whether `serve` watches the plugin folder and loads added or changed
    /// files without a restart.
    pub watch: bool,
    /// How long a plugin whose file was deleted keeps taking jobs: a file
    /// that comes back within it (a delete-then-copy) drops nothing.
    #[serde(with = "serde_units::duration")]
    pub unload_grace: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            plugins: "plugins".into(),
            cache: ".taskhost/cache".into(),
            data: ".taskhost".into(),
            pool_size: 256,
            opt_level: OptLevel::Speed,
            watch: true,
            unload_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptLevel {
    Speed,
    SpeedAndSize,
    None,
}

/// What one job may use. Fuel `0` means unlimited (the deadline still holds).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub fuel: u64,
    #[serde(with = "serde_units::duration")]
    pub timeout: Duration,
    /// Cap on the job's linear memory, e.g. `"64MiB"`.
    #[serde(with = "serde_units::size")]
    pub memory: u64,
    /// Cap on calls into host interfaces (log, db, http, chain, config, jobs).
    pub host_calls: u64,
    /// Cap on the captured log (stdout, stderr and `log` calls together).
    #[serde(with = "serde_units::size")]
    pub log: u64,
    /// The most attempts a plugin may declare for its handlers or ask for
    /// when it enqueues (only `[handlers.NAME]` and `[retry]` may set more).
    pub max_attempts: u32,
    /// The largest result (JSON text) a job may return; a larger one ends
    /// the job as `result-too-large`.
    #[serde(with = "serde_units::size")]
    pub max_result: u64,
    /// The longest error, panic or trap message kept from a job (and the
    /// longest plugin text in one host log line); longer ones are cut and
    /// marked `[truncated]`.
    #[serde(with = "serde_units::size")]
    pub max_message: u64,
    /// How many jobs one run of a handler may enqueue through `jobs`.
    pub max_enqueues: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            fuel: 10_000_000_000,
            timeout: Duration::from_secs(30),
            memory: 64 << 20,
            host_calls: 10_000,
            log: 64 << 10,
            max_attempts: 25,
            max_result: 1 << 20,
            max_message: 4 << 10,
            max_enqueues: 1_000,
        }
    }
}

/// Overrides for one handler; unset keys fall back to the plugin's own
/// defaults, then to `[limits]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSettings {
    pub fuel: Option<u64>,
    #[serde(default, with = "serde_units::option_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "option_size")]
    pub memory: Option<u64>,
    pub host_calls: Option<u64>,
    pub max_attempts: Option<u32>,
    /// This handler's retry policy (replaces `[retry]` as a whole).
    pub retry: Option<RetrySettings>,
    /// At most this many starts of the handler per span (`"30/s"`), on all
    /// hosts sharing the store together; jobs beyond it stay pending until
    /// their slot, they do not fail. See [`crate::store::limits`].
    pub rate: Option<crate::worker::rate::Rate>,
    /// At most this many jobs of the handler running at once, on all hosts
    /// sharing the store together.
    pub concurrency: Option<std::num::NonZeroU32>,
    /// `"while-active"`: at most one waiting or running job per unique key
    /// (the enqueue's `unique_key`, else the payload); see [`crate::unique`].
    pub unique: Option<crate::unique::UniquePolicy>,
}

mod option_size {
    use serde::{Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        crate::units::serde_units::size::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }
}

impl Config {
    /// Resolves a configured path against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.resolve(&self.host.plugins)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.resolve(&self.host.cache)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.host.data)
    }

    /// The embedded store's file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir().join(&self.store.path)
    }

    /// Where jobs are kept, as messages show it: the embedded store's file,
    /// or the Redis URL without its password.
    pub fn store_location(&self) -> String {
        match (self.store.backend, &self.store.url) {
            (StoreBackend::Redis, Some(url)) => crate::store::redis::redact(url),
            (StoreBackend::Redis, None) => "Redis (no url set)".into(),
            (StoreBackend::Sqlite, _) => self.store_path().display().to_string(),
        }
    }

    /// The grants of a plugin (none when it has no `[plugins.NAME]` table).
    pub fn grants(&self, plugin: &str) -> PluginGrants {
        self.plugins.get(plugin).cloned().unwrap_or_default()
    }
}

//! Everything a host process runs on, opened in one place: the config, the
//! store, the plugins and the enqueuer that joins them.

use std::sync::Arc;

use crate::clock::{Clock, HostClock};
use crate::config::{Config, DurabilitySetting, StoreBackend};
use crate::enqueue::Enqueuer;
use crate::runtime::{Runtime, RuntimeError};
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::store::sqlite::{Durability, SqliteOptions, SqliteStore};
use crate::store::{Store, StoreConfig, StoreError};
use crate::worker::retry::RetryError;

/// Why the host could not open its parts; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot open the store at {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        source: StoreError,
    },
    #[error("cannot open the Redis store at {url}: {source}")]
    RedisStore {
        /// The URL without its password.
        url: String,
        source: StoreError,
    },
    #[error("[store] backend = \"redis\": {0}")]
    RedisConfig(String),
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Retry(#[from] RetryError),
}

/// The open parts of a host.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub runtime: Arc<Runtime>,
    pub enqueuer: Arc<Enqueuer>,
    /// The hosts running on the store, for "no host serves this queue".
    pub presence: Arc<crate::presence::Presence>,
}

impl Services {
    /// Loads the plugins and opens (creating on first start) the embedded store.
    pub async fn open(config: Arc<Config>) -> Result<Services, ServicesError> {
        // Robust to clock steps and to hosts whose clocks differ; see HostClock.
        let clock: Arc<dyn Clock> = Arc::new(HostClock::new());
        let runtime = Arc::new(Runtime::load(config.clone()).await?);
        let store = open_store(&config, clock.clone()).await?;
        let enqueuer = Arc::new(Enqueuer::new(
            &config,
            &runtime.registry(),
            store.clone(),
            clock.clone(),
        )?);
        runtime.attach_enqueuer(enqueuer.clone());
        let presence = Arc::new(crate::presence::Presence::new(store.clone(), clock.clone()));
        Ok(Services {
            config,
            clock,
            store,
            runtime,
            enqueuer,
            presence,
        })
    }
}

impl Services {
    /// A scheduler over this host's store that fires the loaded handlers.
    pub fn scheduler(&self, host_id: &str) -> Scheduler {
        let settings = SchedulerSettings {
            grace: self.config.scheduler.grace,
            host_id: host_id.to_string(),
            refresh: self.config.scheduler.refresh,
            min_interval: self.config.scheduler.min_interval,
            declared: self
                .config
                .schedules
                .iter()
                .map(|s| s.name.clone())
                .collect(),
        };
        Scheduler::new(
            self.store.clone(),
            self.clock.clone(),
            settings,
            self.runtime.registry().handler_names(),
        )
    }
}

impl Services {
    /// Keeps the enqueuer and `scheduler` in step with the handler table:
    /// after every reload they take its handler set (the workers follow it
    /// themselves). Runs until `shutdown` turns true.
    pub fn follow_plugins(
        &self,
        scheduler: Arc<Scheduler>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let (runtime, enqueuer) = (self.runtime.clone(), self.enqueuer.clone());
        let mut generation = runtime.generation();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = generation.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => return,
                }
                let registry = runtime.registry();
                if let Err(e) = enqueuer.refresh(runtime.config(), &registry) {
                    tracing::error!(
                        "the new handlers' retry policies are refused, enqueues keep the previous set: {e}"
                    );
                }
                if let Err(e) = scheduler.set_known_handlers(registry.handler_names()).await {
                    tracing::warn!("cannot re-read the schedules after a plugin change: {e}");
                }
            }
        })
    }
}

/// The store settings every backend shares.
fn store_config(config: &Config) -> StoreConfig {
    StoreConfig {
        idempotency_ttl: config.store.idempotency_ttl,
        finished_retention: config.store.retention,
        ..StoreConfig::default()
    }
}

/// Opens the store the config names.
pub async fn open_store(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, ServicesError> {
    if config.store.backend == StoreBackend::Redis {
        return open_redis(config, clock).await;
    }
    let dir = config.data_dir();
    std::fs::create_dir_all(&dir).map_err(|source| ServicesError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let path = config.store_path();
    let options = SqliteOptions {
        store: store_config(config),
        durability: match config.store.durability {
            DurabilitySetting::Normal => Durability::Normal,
            DurabilitySetting::Full => Durability::Full,
        },
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&path, options, clock)
        .await
        .map_err(|source| ServicesError::Store {
            path: path.clone(),
            source,
        })?;
    Ok(Arc::new(store))
}

/// Opens the Redis store of `[store] backend = "redis"`. Times come from
/// Redis; `clock` only turns due times into this host's frame.
async fn open_redis(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, ServicesError> {
    use crate::store::redis::{RedisOptions, RedisStore, redact};
    let settings = &config.store;
    let url = settings.url.clone().ok_or_else(|| {
        ServicesError::RedisConfig("set url = \"redis://host:port/db\" in [store]".into())
    })?;
    let password = settings
        .password
        .as_ref()
        .map(|p| p.resolve("store.password"))
        .transpose()
        .map_err(ServicesError::RedisConfig)?;
    let options = RedisOptions {
        username: settings.username.clone(),
        password,
        prefix: settings.prefix.clone(),
        store: store_config(config),
        ..RedisOptions::new(url.clone())
    };
    let store =
        RedisStore::open(options, clock)
            .await
            .map_err(|source| ServicesError::RedisStore {
                url: redact(&url),
                source,
            })?;
    Ok(Arc::new(store))
}

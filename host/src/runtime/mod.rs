//! Runs job handlers: one engine, plugins compiled once (and cached on
//! disk), pre-linked once, and a fresh store and instance for every job.

mod cache;
mod capture;
mod engine;
mod limits;
mod outcome;
mod registry;
mod reload;
mod state;
mod text;
mod unmatched;
pub mod watcher;
mod wit_version;

use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tracing::Instrument;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use crate::capabilities::{self, bindings};
use crate::config::Config;
use crate::enqueue::Enqueuer;

pub use cache::{CacheError, CompileCache};
pub use capture::Capture;
pub use engine::{EPOCH_TICK, EngineSettings, EpochTicker, build_engine};
pub use limits::{Limits, plugin_max_attempts};
pub use outcome::{JobReport, Outcome};
pub use registry::{
    GonePlugin, HandlerDefaults, HandlerEntry, LoadStats, Plugin, PluginError, Registry,
    component_digest,
};
pub use reload::Loaded;
pub use state::{
    DENIALS_LOGGED, HostCallLimitExceeded, JobIdentity, JobServices, JobState, MemoryLimitExceeded,
};
pub use text::{TRUNCATED, clip, clip_in_place, one_line};
pub use wit_version::{WIT_PACKAGE, WIT_VERSION, speaks};

/// The most fuel a job's report may miss when the deadline stops it (see
/// [`Runtime::new_store`]); about a millisecond of compute.
pub const FUEL_SLICE: u64 = 1_000_000;

/// Raised (as a trap) by the epoch callback once a job's deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("wall-clock deadline exceeded")]
pub struct DeadlineExceeded;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot build the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot read plugin folder {path}: {source}")]
    PluginDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use cache folder {path}: {source}")]
    CacheDir {
        path: std::path::PathBuf,
        source: cache::CacheError,
    },
    #[error("capabilities: {0}")]
    Capabilities(String),
    #[error("{} plugin(s) refused:\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    Plugins(Vec<PluginError>),
}

/// Why a job could not even start (every way it can end is an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no loaded plugin provides handler {0:?}")]
    UnknownHandler(String),
}

/// One job to run, as the handler will see it.
#[derive(Debug, Clone)]
pub struct JobInput {
    pub id: String,
    pub handler: String,
    pub queue: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub enqueued_at_ms: u64,
    pub scheduled_for_ms: u64,
    /// JSON text.
    pub payload: String,
}

impl JobInput {
    /// A one-off job with a fresh id, for `taskhost run` and tests.
    pub fn adhoc(handler: &str, payload: &str) -> JobInput {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        JobInput {
            id: uuid::Uuid::now_v7().to_string(),
            handler: handler.to_string(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 1,
            enqueued_at_ms: now,
            scheduled_for_ms: now,
            payload: payload.to_string(),
        }
    }
}

/// The engine, the loaded plugins and the instance pool of one host.
pub struct Runtime {
    engine: Engine,
    /// The handler table in service; replaced whole by a reload (see
    /// [`Runtime::registry`]).
    registry: RwLock<Arc<Registry>>,
    /// Bumped after every change of the handler table, so workers, the
    /// scheduler and the enqueuer pick up the new handler set.
    generation: watch::Sender<u64>,
    /// Serialises reloads: two changes of one table never race.
    reloading: tokio::sync::Mutex<()>,
    cache: Arc<CompileCache>,
    linker: Arc<Linker<JobState>>,
    config: Arc<Config>,
    permits: Arc<Semaphore>,
    enqueuer: OnceLock<Arc<Enqueuer>>,
    shared: Arc<capabilities::Shared>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine and loads every `.wasm` of the configured plugin
    /// folder. Any refused plugin fails the load, naming the file: a host
    /// that silently lacks a handler would strand its jobs.
    pub async fn load(config: Arc<Config>) -> Result<Runtime, RuntimeError> {
        let max_memory = config
            .handlers
            .values()
            .filter_map(|h| h.memory)
            .chain([config.limits.memory])
            .max()
            .unwrap_or(config.limits.memory);
        let engine = build_engine(&EngineSettings {
            pool_size: config.host.pool_size,
            max_memory_bytes: max_memory,
            opt_level: config.host.opt_level,
        })
        .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let shared = Arc::new(
            capabilities::Shared::from_config(&config).map_err(RuntimeError::Capabilities)?,
        );
        let cache_dir = config.cache_dir();
        let cache = Arc::new(CompileCache::new(&cache_dir, &engine).map_err(|source| {
            RuntimeError::CacheDir {
                path: cache_dir,
                source,
            }
        })?);
        let mut linker = Linker::<JobState>::new(&engine);
        capabilities::add_to_linker(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(&engine);
        let mut runtime = Runtime {
            permits: Arc::new(Semaphore::new(config.host.pool_size.max(1) as usize)),
            engine,
            registry: RwLock::default(),
            generation: watch::Sender::new(0),
            reloading: tokio::sync::Mutex::new(()),
            cache,
            linker: Arc::new(linker),
            config,
            enqueuer: OnceLock::new(),
            shared,
            _ticker: ticker,
        };
        runtime.load_plugins().await?;
        unmatched::warn_unmatched(&runtime.config, &runtime.registry());
        Ok(runtime)
    }

    async fn load_plugins(&mut self) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let dir = self.config.plugin_dir();
        let files = registry::wasm_files(&dir).map_err(|source| RuntimeError::PluginDir {
            path: dir.clone(),
            source,
        })?;
        if files.is_empty() {
            tracing::warn!(
                "plugin folder {} holds no .wasm file: no handler is loaded (host.plugins in the config)",
                dir.display()
            );
        }
        let (cache, linker) = (self.cache.clone(), self.linker.clone());
        let mut registry = Registry::default();

        // Compile (or map from the cache) on blocking threads, all at once.
        let mut compiling = Vec::new();
        for path in files {
            let (engine, cache, linker) = (self.engine.clone(), cache.clone(), linker.clone());
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let grants = Arc::new(self.config.grants(&stem));
            compiling.push(tokio::task::spawn_blocking(move || {
                let (bytes, digest) = registry::read_component(&path)?;
                prepare(&engine, &cache, &linker, &path, &bytes, digest, grants)
            }));
        }
        let mut errors = Vec::new();
        for task in compiling {
            let plugin = match task.await.expect("plugin compile task panicked") {
                Ok(plugin) => Arc::new(plugin),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match self.describe(&plugin).await {
                Ok(handlers) => {
                    if let Err(e) = registry.insert(plugin, handlers) {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        registry.set_load_time(started.elapsed());
        *self.registry.get_mut().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Plugins(errors))
        }
    }

    /// Asks a plugin for its handlers, in a sandbox like any job's.
    async fn describe(&self, plugin: &Arc<Plugin>) -> Result<Vec<HandlerEntry>, PluginError> {
        // The message may carry the plugin's own text (a panic): redacted
        // of its secrets and cut, like everything else it says.
        let redactor = self.shared.config.plugin(&plugin.name);
        let describe_err = |message: String| PluginError::Describe {
            path: plugin.path.clone(),
            message: clip(
                &redactor.redactor().redact(&message),
                self.config.limits.max_message as usize,
            )
            .into_owned(),
        };
        let identity = JobIdentity {
            job_id: "describe".into(),
            plugin: plugin.name.clone(),
            handler: "handlers".into(),
        };
        let limits = Limits::resolve(&self.config, "", &HandlerDefaults::default());
        let mut store = self
            .new_store(identity, &limits, plugin.grants.clone())
            .map_err(|e| describe_err(format!("{e:#}")))?;
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_handlers(&mut store).await
        };
        let infos = tokio::time::timeout(limits.timeout, call)
            .await
            .map_err(|_| describe_err("timed out".into()))?
            .map_err(|e| describe_err(format!("{e:#}")))?;
        registry::check_declarations(&plugin.path, &infos)?;
        Ok(infos
            .into_iter()
            .map(|info| HandlerEntry {
                name: info.name,
                description: info.description,
                defaults: HandlerDefaults {
                    max_attempts: plugin_max_attempts(&self.config, info.max_attempts),
                    fuel: info.fuel,
                    timeout: info.timeout_ms.map(Duration::from_millis),
                },
                plugin: plugin.clone(),
            })
            .collect())
    }

    /// Lets plugins enqueue jobs (the `jobs` interface) through `enqueuer`;
    /// without it, as in a one-off `taskhost run`, they are denied.
    pub fn attach_enqueuer(&self, enqueuer: Arc<Enqueuer>) {
        let _ = self.enqueuer.set(enqueuer);
    }

    /// The handler table in service now: a snapshot, so what a caller
    /// reads from it stays consistent while a reload swaps in the next.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ticks after every change of the handler table.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// What the capabilities share across jobs (clients, pools, counters).
    pub fn capabilities(&self) -> &Arc<capabilities::Shared> {
        &self.shared
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits a handler runs under.
    pub fn limits(&self, handler: &HandlerEntry) -> Limits {
        Limits::resolve(&self.config, &handler.name, &handler.defaults)
    }

    pub(crate) fn new_store(
        &self,
        identity: JobIdentity,
        limits: &Limits,
        grants: Arc<crate::config::PluginGrants>,
    ) -> wasmtime::Result<Store<JobState>> {
        let services = JobServices {
            enqueuer: self.enqueuer.get().cloned(),
            grants,
            shared: self.shared.clone(),
        };
        let mut store = Store::new(&self.engine, JobState::new(identity, limits, services));
        store.limiter(|s| s.limiter());
        store.set_fuel(limits.fuel.unwrap_or(u64::MAX))?;
        // Compiled code keeps its fuel count in a register and writes it
        // back only at calls and when its injected slice runs out; a job
        // stopped by the deadline would lose the unwritten part (all of a
        // tight loop's). Injecting fuel in slices bounds that loss to one
        // slice, so `fuel_used` is right to within FUEL_SLICE.
        store.fuel_async_yield_interval(Some(FUEL_SLICE))?;
        let deadline = Instant::now() + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                // Give the executor back to other jobs once per tick.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }

    /// Runs one job in a fresh instance and reports how it ended. Only an
    /// unknown handler is an error; everything the guest does is an outcome.
    /// The job runs on the plugin version in service when it starts, to
    /// its end, whatever reloads happen meanwhile.
    pub async fn run(&self, input: JobInput) -> Result<JobReport, RunError> {
        // The snapshot lives as long as the job: one reference count, and
        // the plugin it ran on cannot go away under it.
        let registry = self.registry();
        let entry = registry
            .handler(&input.handler)
            .ok_or_else(|| RunError::UnknownHandler(input.handler.clone()))?;
        let span = tracing::info_span!("job", id = %input.id, handler = %input.handler, attempt = input.attempt);
        Ok(self.run_entry(entry, input).instrument(span).await)
    }

    async fn run_entry(&self, entry: &HandlerEntry, input: JobInput) -> JobReport {
        let limits = self.limits(entry);
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the instance semaphore is never closed");
        let started = Instant::now();
        let identity = JobIdentity {
            job_id: input.id.clone(),
            plugin: entry.plugin.name.clone(),
            handler: entry.name.clone(),
        };
        let trap = |message: String| Outcome::Trap {
            message,
            plugin: entry.plugin.name.to_string(),
            handler: entry.name.clone(),
        };
        let store = self
            .new_store(identity, &limits, entry.plugin.grants.clone())
            .and_then(|store| Ok((store.get_fuel()?, store)));
        let (fuel_at_start, mut store) = match store {
            Ok(started) => started,
            Err(e) => {
                return JobReport {
                    outcome: trap(format!("cannot create the job's store: {e:#}")),
                    fuel_used: 0,
                    duration: started.elapsed(),
                    log: String::new(),
                    log_truncated: false,
                    plugin_digest: Some(entry.plugin.digest.clone()),
                };
            }
        };
        let ctx = bindings::taskhost::plugin::types::JobContext {
            id: input.id,
            handler: input.handler,
            queue: input.queue,
            attempt: input.attempt,
            max_attempts: input.max_attempts,
            enqueued_at: input.enqueued_at_ms,
            scheduled_for: input.scheduled_for_ms,
        };
        let call = async {
            let instance = entry.plugin.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &ctx, &input.payload).await
        };
        // The epoch deadline stops a guest that computes; this timeout stops
        // one that waits in a host call that never returns.
        let result = tokio::time::timeout(limits.timeout, call).await;
        // Measured against what the store really holds (the engine keeps
        // less than `u64::MAX` when fuel is unlimited), however the run ended.
        let fuel_used = fuel_at_start.saturating_sub(store.get_fuel().unwrap_or(0));
        let mut outcome = match result {
            Err(_elapsed) => Outcome::DeadlineExceeded {
                timeout: limits.timeout,
            },
            Ok(Ok(Ok(json))) if json.len() as u64 > limits.result_bytes => {
                Outcome::ResultTooLarge {
                    size: json.len() as u64,
                    limit: limits.result_bytes,
                }
            }
            Ok(Ok(Ok(json))) => match serde_json::from_str(&json) {
                Ok(result) => Outcome::Success { result },
                Err(e) => Outcome::Permanent {
                    message: format!("handler returned invalid JSON: {e}"),
                },
            },
            Ok(Ok(Err(bindings::taskhost::plugin::types::JobError::Retryable(r)))) => {
                Outcome::Retryable {
                    message: r.message,
                    retry_after: r.retry_after_ms.map(Duration::from_millis),
                }
            }
            Ok(Ok(Err(bindings::taskhost::plugin::types::JobError::Permanent(message)))) => {
                Outcome::Permanent { message }
            }
            Ok(Err(e)) => {
                classify(&e, &limits, fuel_used, store.data_mut().take_panic()).unwrap_or_else(trap)
            }
        };
        let (mut log, log_truncated) = store.data().capture().contents();
        // Whatever the plugin did with its secrets, the record never holds them.
        self.shared
            .config
            .plugin(&entry.plugin.name)
            .redact_report(&mut outcome, &mut log);
        // Redacted first, so a cut never leaves half a secret behind.
        outcome.clip_messages(limits.message_bytes as usize);
        let denials = store.data().denials();
        if denials > DENIALS_LOGGED {
            tracing::warn!(
                plugin = %entry.plugin.name,
                "{} more refused call(s) of this job were not logged (see its log and /metrics)",
                denials - DENIALS_LOGGED
            );
        }
        JobReport {
            outcome,
            fuel_used,
            duration: started.elapsed(),
            log,
            log_truncated,
            plugin_digest: Some(entry.plugin.digest.clone()),
        }
    }
}

/// Maps a trap to its outcome kind; `Err(message)` for a plain trap.
fn classify(
    e: &wasmtime::Error,
    limits: &Limits,
    fuel_used: u64,
    panic: Option<String>,
) -> Result<Outcome, String> {
    if let Some(l) = e.downcast_ref::<HostCallLimitExceeded>() {
        return Ok(Outcome::HostCallLimit { limit: l.limit });
    }
    if let Some(m) = e.downcast_ref::<MemoryLimitExceeded>() {
        return Ok(Outcome::MemoryLimit {
            limit_bytes: m.limit,
        });
    }
    if e.downcast_ref::<DeadlineExceeded>().is_some() {
        return Ok(Outcome::DeadlineExceeded {
            timeout: limits.timeout,
        });
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Ok(Outcome::OutOfFuel { fuel_used }),
        Some(Trap::StackOverflow) => Err("stack overflow: the handler recursed too deeply".into()),
        _ => Err(match panic {
            Some(p) => p,
            None => format!("{e:#}"),
        }),
    }
}

/// Compiles (or maps from the cache) and pre-links one plugin file's
/// bytes, after checking the WIT version it was built against.
fn prepare(
    engine: &Engine,
    cache: &CompileCache,
    linker: &Linker<JobState>,
    path: &Path,
    bytes: &[u8],
    digest: String,
    grants: Arc<crate::config::PluginGrants>,
) -> Result<Plugin, PluginError> {
    let (component, from_cache) =
        cache
            .load(engine, bytes, &digest)
            .map_err(|e| PluginError::Compile {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
    wit_version::check(engine, &component, path)?;
    let wrong_world = |e: wasmtime::Error| PluginError::WrongWorld {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    };
    let pre = linker.instantiate_pre(&component).map_err(wrong_world)?;
    let pre = bindings::PluginPre::new(pre).map_err(wrong_world)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Plugin {
        name: name.into(),
        path: path.to_path_buf(),
        digest,
        from_cache,
        grants,
        loaded_at: chrono::Utc::now(),
        pre,
    })
}

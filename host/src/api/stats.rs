//! Read-only views: statistics in the shapes users know, the loaded
//! handlers and plugins, `/health` and `/metrics`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::{Authorized, Read};
use super::error::{ApiError, ErrorBody};
use crate::job::{JobId, Priority};
use crate::scheduler::SchedulerStats;
use crate::stats::{QueueStats, queue_stats};
use crate::worker::StatsSnapshot;

/// Per queue: pending per priority, scheduled, running, dead, total.
#[utoipa::path(get, path = "/api/v1/queues", tag = "stats",
    responses((status = 200, body = Vec<QueueStats>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn queues(
    _: Authorized<Read>,
    State(state): State<ApiState>,
) -> Result<Json<Vec<QueueStats>>, ApiError> {
    Ok(Json(
        queue_stats(state.services.store.as_ref(), state.services.clock.now()).await?,
    ))
}

/// One queue's numbers (zeros for a queue that has never had jobs).
#[utoipa::path(get, path = "/api/v1/queues/{name}/stats", tag = "stats", params(("name" = String, Path)),
    responses((status = 200, body = QueueStats), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn queue(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<QueueStats>, ApiError> {
    crate::job::check_queue_name(&name).map_err(ApiError::bad_request)?;
    let all = queue_stats(state.services.store.as_ref(), state.services.clock.now()).await?;
    Ok(Json(
        all.into_iter()
            .find(|q| q.name == name)
            .unwrap_or_else(|| QueueStats {
                name,
                paused: false,
                pending: Priority::ALL
                    .iter()
                    .map(|p| (p.as_str().to_string(), 0))
                    .collect(),
                scheduled: 0,
                retrying: 0,
                running: 0,
                succeeded: 0,
                dead: 0,
                cancelled: 0,
                total: 0,
                hosts: 0,
            }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct WorkerStats {
    /// This host's worker id (`host:pid`).
    pub id: String,
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

#[derive(Serialize, ToSchema)]
pub struct WorkersStats {
    pub workers: Vec<WorkerStats>,
    pub total: StatsSnapshot,
}

pub(super) fn workers_stats(state: &ApiState) -> WorkersStats {
    let workers: Vec<WorkerStats> = state
        .workers
        .iter()
        .map(|w| WorkerStats {
            id: w.host_id().to_string(),
            stats: w.stats(),
        })
        .collect();
    let total = state
        .workers
        .as_ref()
        .map(|w| w.stats())
        .unwrap_or_else(|| crate::worker::WorkerStats::default().snapshot());
    WorkersStats { workers, total }
}

/// What this host's workers processed: counts, success rate, duration and fuel.
#[utoipa::path(get, path = "/api/v1/workers/stats", tag = "stats",
    responses((status = 200, body = WorkersStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn workers(_: Authorized<Read>, State(state): State<ApiState>) -> Json<WorkersStats> {
    Json(workers_stats(&state))
}

/// The scheduler's counters and lateness.
#[utoipa::path(get, path = "/api/v1/scheduler/stats", tag = "stats",
    responses((status = 200, body = SchedulerStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn scheduler(_: Authorized<Read>, State(state): State<ApiState>) -> Json<SchedulerStats> {
    Json(state.scheduler.stats())
}

#[derive(Serialize, ToSchema)]
pub struct AllStats {
    pub queues: Vec<QueueStats>,
    pub workers: WorkersStats,
    pub scheduler: SchedulerStats,
    pub handlers: usize,
    pub plugins: usize,
    /// Plugins whose file was deleted (after `host.unload_grace`): their
    /// handlers' jobs stay pending here until the plugin comes back.
    pub waiting_for_plugins: Vec<WaitingPlugin>,
    /// Handlers with a rate or concurrency limit: their running jobs on
    /// every host, their next rate slot, and whether the limit holds their
    /// jobs back now.
    pub flow_limits: Vec<crate::store::LimitState>,
    pub uptime_seconds: u64,
}

/// A plugin out of service whose handlers' jobs wait for it.
#[derive(Serialize, ToSchema)]
pub struct WaitingPlugin {
    pub plugin: String,
    /// The digest that was in service.
    pub digest: String,
    pub handlers: Vec<String>,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// Everything at once.
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    responses((status = 200, body = AllStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn all(
    _: Authorized<Read>,
    State(state): State<ApiState>,
) -> Result<Json<AllStats>, ApiError> {
    let registry = state.services.runtime.registry();
    Ok(Json(AllStats {
        queues: queue_stats(state.services.store.as_ref(), state.services.clock.now()).await?,
        workers: workers_stats(&state),
        scheduler: state.scheduler.stats(),
        handlers: registry.handlers().count(),
        plugins: registry.plugins().len(),
        waiting_for_plugins: registry
            .gone()
            .map(|g| WaitingPlugin {
                plugin: g.name.clone(),
                digest: g.digest.clone(),
                handlers: g.handlers.clone(),
                since: g.since,
            })
            .collect(),
        flow_limits: limit_states(&state).await?,
        uptime_seconds: state.started.elapsed().as_secs(),
    }))
}

/// Where this host's limited handlers stand, read from the store.
async fn limit_states(state: &ApiState) -> Result<Vec<crate::store::LimitState>, ApiError> {
    let limits = crate::store::HandlerLimit::from_config(state.services.runtime.config());
    Ok(state.services.store.limit_states(&limits).await?)
}

#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    /// `null`: unlimited.
    pub fuel: Option<u64>,
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub host_calls: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HandlerView {
    pub name: String,
    pub description: String,
    pub plugin: String,
    /// sha256 of the plugin file.
    pub plugin_digest: String,
    pub limits: LimitsView,
    /// The resolved retry policy.
    #[schema(value_type = Object)]
    pub retry: serde_json::Value,
    /// `[handlers.NAME] rate` ("30/s"): the most starts per span on all
    /// hosts sharing the store; `null`: unlimited.
    pub rate: Option<String>,
    /// `[handlers.NAME] concurrency`: the most jobs running at once on all
    /// hosts sharing the store; `null`: unlimited.
    pub concurrency: Option<u32>,
}

/// The handlers this host runs, with their limits and retry policies.
#[utoipa::path(get, path = "/api/v1/handlers", tag = "plugins",
    responses((status = 200, body = Vec<HandlerView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn handlers(
    _: Authorized<Read>,
    State(state): State<ApiState>,
) -> Json<Vec<HandlerView>> {
    Json(handler_views(&state))
}

/// The loaded handlers as `/handlers` and the dashboard show them.
pub(super) fn handler_views(state: &ApiState) -> Vec<HandlerView> {
    let runtime = &state.services.runtime;
    {
        runtime
            .registry()
            .handlers()
            .map(|h| {
                let limits = runtime.limits(h);
                let settings = runtime.config().handlers.get(&h.name);
                HandlerView {
                    name: h.name.clone(),
                    description: h.description.clone(),
                    plugin: h.plugin.name.to_string(),
                    plugin_digest: h.plugin.digest.clone(),
                    limits: LimitsView {
                        fuel: limits.fuel,
                        timeout_ms: limits.timeout.as_millis() as u64,
                        memory_bytes: limits.memory_bytes,
                        host_calls: limits.host_calls,
                    },
                    retry: serde_json::to_value(state.services.enqueuer.policy(&h.name))
                        .unwrap_or_default(),
                    rate: settings.and_then(|s| s.rate).map(|r| r.to_string()),
                    concurrency: settings.and_then(|s| s.concurrency).map(|n| n.get()),
                }
            })
            .collect()
    }
}

#[derive(Serialize, ToSchema)]
pub struct PluginView {
    pub name: String,
    pub file: String,
    pub digest: String,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// When this version went into service on this host.
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub handlers: Vec<String>,
}

/// The loaded plugins.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn plugins(_: Authorized<Read>, State(state): State<ApiState>) -> Json<Vec<PluginView>> {
    Json(plugin_views(&state))
}

/// The loaded plugins as `/plugins` and the dashboard show them.
pub(super) fn plugin_views(state: &ApiState) -> Vec<PluginView> {
    let registry = state.services.runtime.registry();
    {
        registry
            .plugins()
            .iter()
            .map(|p| PluginView {
                name: p.name.to_string(),
                file: p.path.display().to_string(),
                digest: p.digest.clone(),
                from_cache: p.from_cache,
                loaded_at: p.loaded_at,
                handlers: registry
                    .handlers()
                    .filter(|h| std::sync::Arc::ptr_eq(&h.plugin, p))
                    .map(|h| h.name.clone())
                    .collect(),
            })
            .collect()
    }
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when any part below is down.
    pub status: String,
    /// The store answers reads.
    pub store: bool,
    /// The store takes work: a probe write commits and no store operation
    /// of this host (an enqueue, a worker's lease, renewal or result, a read)
    /// failed in the backend in the last minute.
    pub store_writable: bool,
    pub plugins: usize,
    pub workers: bool,
    pub scheduler: bool,
    /// Why the host is unavailable, one sentence per failing part.
    pub reasons: Vec<String>,
}

/// Liveness and readiness: store readable and writable, plugins loaded,
/// workers and scheduler running (where enabled). No token needed. A 503
/// names its reasons.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Health>) {
    let config = &state.services.config;
    // A lookup of an id that cannot exist: one index probe.
    let mut reasons = Vec::new();
    let store = match state.services.store.get(JobId::from_bytes([0; 16])).await {
        Err(crate::store::StoreError::NotFound(_)) => true,
        Ok(_) => true,
        Err(e) => {
            reasons.push(format!("the store cannot be read: {e}"));
            false
        }
    };
    let store_writable = match state.services.store.check_writable().await {
        Ok(()) => true,
        Err(e) => {
            reasons.push(format!("the store cannot take work: {e}"));
            false
        }
    };
    let plugins = state.services.runtime.registry().plugins().len();
    if plugins == 0 {
        reasons.push("no plugins are loaded".into());
    }
    let workers = !config.workers.enabled || state.liveness.workers.load(Ordering::Relaxed);
    if !workers {
        reasons.push("the workers are not running".into());
    }
    let scheduler = !config.scheduler.enabled || state.liveness.scheduler.load(Ordering::Relaxed);
    if !scheduler {
        reasons.push("the scheduler is not running".into());
    }
    let ok = reasons.is_empty();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        store,
        store_writable,
        plugins,
        workers,
        scheduler,
        reasons,
    };
    (status, Json(body))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn metrics(
    parts: axum::http::request::Parts,
    State(state): State<ApiState>,
) -> Result<impl IntoResponse, ApiError> {
    if state.services.config.api.metrics_auth {
        use axum::extract::FromRequestParts;
        let mut parts = parts;
        Authorized::<Read>::from_request_parts(&mut parts, &state).await?;
    }
    let counts = state.services.store.counts().await?;
    let sched = state.scheduler.stats();
    let gauges = crate::metrics::Gauges {
        jobs: counts
            .rows
            .iter()
            .map(|r| (r.queue.clone(), r.priority, r.status, r.count))
            .collect(),
        schedule_fires: sched.fired,
        schedule_misses: sched.missed,
        limits: limit_states(&state).await?,
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::global().render(&gauges),
    ))
}

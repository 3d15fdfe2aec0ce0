//! The HTTP API: JSON under `/api/v1`, `/health` and `/metrics` at the root,
//! the web dashboard at `/`, and the OpenAPI document generated from the handlers themselves
//! (`/api/v1/openapi.json`), so it cannot drift from the code.

mod admin;
mod auth;
mod batches;
mod chains;
mod dashboard;
mod error;
mod extract;
mod jobs;
mod openapi;
mod plugins;
mod stats;
mod wait;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use auth::{Auth, hash_token};
pub use error::ApiError;

use crate::scheduler::Scheduler;
use crate::services::Services;
use crate::worker::Workers;

/// Whether the background parts of this host are running, for `/health`.
#[derive(Default)]
pub struct Liveness {
    pub workers: AtomicBool,
    pub scheduler: AtomicBool,
}

/// What every handler reads.
#[derive(Clone)]
pub struct ApiState {
    pub services: Services,
    pub workers: Option<Arc<Workers>>,
    pub scheduler: Arc<Scheduler>,
    pub auth: Arc<Auth>,
    pub liveness: Arc<Liveness>,
    pub started: Instant,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("api.listen {0:?} is not an address like 127.0.0.1:8080")]
    BadAddress(String),
    #[error(
        "refusing to listen on {0} without an API token: anyone who reaches it could run jobs; add an [[api.tokens]] entry (see `taskhost token hash`) or listen on 127.0.0.1"
    )]
    OpenOnNetwork(SocketAddr),
    #[error("{0}")]
    Tokens(String),
    #[error(
        "cannot listen on {addr} ([api] listen, or TASKHOST_API__LISTEN in the environment): {source}"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Checks the `[api]` settings and binds the listener.
pub async fn bind(services: &Services) -> Result<(tokio::net::TcpListener, Auth), ApiStartError> {
    let api = &services.config.api;
    let addr: SocketAddr = api
        .listen
        .parse()
        .map_err(|_| ApiStartError::BadAddress(api.listen.clone()))?;
    let auth = Auth::from_settings(api).map_err(ApiStartError::Tokens)?;
    if auth.is_open() && !addr.ip().is_loopback() {
        return Err(ApiStartError::OpenOnNetwork(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiStartError::Bind { addr, source })?;
    Ok((listener, auth))
}

/// The whole API as a router.
pub fn app(state: ApiState) -> Router {
    let max_body = state.services.config.api.max_body as usize;
    let max_plugin = state.services.config.api.max_plugin as usize;
    let v1 = Router::new()
        .route("/stats", get(stats::all))
        .route("/queues", get(stats::queues))
        .route("/queues/{name}/stats", get(stats::queue))
        .route("/queues/{name}/pause", post(admin::pause_queue))
        .route("/queues/{name}/resume", post(admin::resume_queue))
        .route("/queues/{name}", axum::routing::delete(admin::purge_queue))
        .route("/workers/stats", get(stats::workers))
        .route("/scheduler/stats", get(stats::scheduler))
        .route("/handlers", get(stats::handlers))
        .route(
            "/plugins",
            get(stats::plugins)
                .post(plugins::deploy)
                .layer(DefaultBodyLimit::max(max_plugin)),
        )
        .route("/plugins/{name}/rollback", post(plugins::rollback))
        .route("/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/jobs/batch", post(jobs::enqueue_batch))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/result", get(jobs::result))
        .route("/jobs/{id}/wait", get(jobs::wait))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/chains", post(chains::enqueue_chain))
        .route("/chains/{id}", get(chains::get_chain))
        .route("/chains/{id}/wait", get(chains::wait_chain))
        .route("/chains/{id}/cancel", post(chains::cancel_chain))
        .route("/batches", post(batches::start_batch))
        .route("/batches/{id}", get(batches::get_batch))
        .route("/batches/{id}/wait", get(batches::wait_batch))
        .route("/batches/{id}/cancel", post(batches::cancel_batch))
        .route("/dlq", get(admin::dlq_list).delete(admin::dlq_purge))
        .route("/dlq/retry-all", post(admin::dlq_retry_all))
        .route("/dlq/{id}", get(admin::dlq_get))
        .route("/dlq/{id}/retry", post(admin::dlq_retry))
        .route(
            "/schedules",
            get(admin::list_schedules).post(admin::add_schedule),
        )
        .route(
            "/schedules/{name}",
            axum::routing::delete(admin::remove_schedule),
        )
        .route("/schedules/{name}/enable", post(admin::enable_schedule))
        .route("/schedules/{name}/disable", post(admin::disable_schedule))
        .route("/schedules/{name}/run", post(admin::run_schedule))
        .route("/openapi.json", get(openapi::document));
    Router::new()
        .nest("/api/v1", v1)
        .route("/health", get(stats::health))
        .route("/metrics", get(stats::metrics))
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(error::error_shape))
        .layer(axum::middleware::from_fn(error::catch_panic))
        .with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, batches, chains, jobs, plugins, stats};

#[derive(OpenApi)]
#[openapi(
    info(title = "taskhost", description = "Jobs, schedules, queues and the dead-letter queue of a taskhost host."),
    paths(
        jobs::enqueue, jobs::enqueue_batch, jobs::get_job, jobs::result, jobs::wait, jobs::cancel, jobs::list,
        chains::enqueue_chain, chains::get_chain, chains::wait_chain, chains::cancel_chain,
        batches::start_batch, batches::get_batch, batches::wait_batch, batches::cancel_batch,
        admin::dlq_list, admin::dlq_get, admin::dlq_retry, admin::dlq_retry_all, admin::dlq_purge,
        admin::pause_queue, admin::resume_queue, admin::purge_queue,
        admin::list_schedules, admin::add_schedule, admin::remove_schedule, admin::enable_schedule, admin::disable_schedule, admin::run_schedule,
        stats::queues, stats::queue, stats::workers, stats::scheduler, stats::all, stats::handlers, stats::plugins, stats::health, stats::metrics,
        plugins::deploy, plugins::rollback,
    ),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/v1/openapi.json` (no token needed).
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

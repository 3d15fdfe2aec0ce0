//! `/api/v1/dlq…`, `/api/v1/queues/{name}/…` controls and `/api/v1/schedules…`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::{Admin, Authorized, Read};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::jobs::{page_params, parse_id};
use crate::job::{Job, JobStatus, check_queue_name};
use crate::scheduler::{ScheduleDef, ScheduleInfo};
use crate::store::SummaryPage;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DlqParams {
    pub queue: Option<String>,
    pub cursor: Option<String>,
    /// 1–1000, default 50.
    pub limit: Option<u32>,
}

/// Dead jobs, newest first.
#[utoipa::path(get, path = "/api/v1/dlq", tag = "dlq", params(DlqParams),
    responses((status = 200, body = SummaryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn dlq_list(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    ApiQuery(p): ApiQuery<DlqParams>,
) -> Result<Json<SummaryPage>, ApiError> {
    let (after, limit) = page_params(p.cursor.as_deref(), p.limit)?;
    Ok(Json(
        state
            .services
            .store
            .dlq_list(p.queue.as_deref(), after, limit)
            .await?
            .into(),
    ))
}

/// One dead job with its whole attempt history.
#[utoipa::path(get, path = "/api/v1/dlq/{id}", tag = "dlq", params(("id" = String, Path)),
    responses((status = 200, body = Job), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn dlq_get(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let job = state.services.store.get(parse_id(&id)?).await?;
    if job.status != JobStatus::Dead {
        return Err(ApiError::not_found(format!(
            "job {id} is {}, not in the dead-letter queue",
            job.status.as_str()
        )));
    }
    Ok(Json(job))
}

/// Queue a dead job again with a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/dlq/{id}/retry", tag = "dlq", params(("id" = String, Path)),
    responses((status = 200, body = Job), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn dlq_retry(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_id(&id)?;
    state.services.store.dlq_retry(id).await?;
    Ok(Json(state.services.store.get(id).await?))
}

#[derive(Serialize, ToSchema)]
pub struct Count {
    pub count: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueFilter {
    /// Only this queue's dead jobs.
    pub queue: Option<String>,
}

/// Queue every dead job (of one queue) again.
#[utoipa::path(post, path = "/api/v1/dlq/retry-all", tag = "dlq", params(QueueFilter),
    responses((status = 200, body = Count), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn dlq_retry_all(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<QueueFilter>,
) -> Result<Json<Count>, ApiError> {
    Ok(Json(Count {
        count: state
            .services
            .store
            .dlq_retry_all(q.queue.as_deref())
            .await?,
    }))
}

/// Delete dead jobs (of one queue).
#[utoipa::path(delete, path = "/api/v1/dlq", tag = "dlq", params(QueueFilter),
    responses((status = 200, body = Count), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn dlq_purge(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<QueueFilter>,
) -> Result<Json<Count>, ApiError> {
    Ok(Json(Count {
        count: state.services.store.dlq_purge(q.queue.as_deref()).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct QueueState {
    pub queue: String,
    pub paused: bool,
}

fn queue_name(name: &str) -> Result<(), ApiError> {
    check_queue_name(name).map_err(ApiError::bad_request)
}

/// Stop leasing a queue's jobs (running ones finish).
#[utoipa::path(post, path = "/api/v1/queues/{name}/pause", tag = "queues", params(("name" = String, Path)),
    responses((status = 200, body = QueueState), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "a queue no job was ever enqueued to and no running host serves")))]
pub async fn pause_queue(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<QueueState>, ApiError> {
    queue_name(&name)?;
    let store = state.services.store.as_ref();
    if let Some(why) = crate::stats::unknown_queue(store, state.services.clock.now(), &name).await?
    {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_queue", why));
    }
    store.pause_queue(&name).await?;
    Ok(Json(QueueState {
        queue: name,
        paused: true,
    }))
}

/// Lease a paused queue's jobs again.
#[utoipa::path(post, path = "/api/v1/queues/{name}/resume", tag = "queues", params(("name" = String, Path)),
    responses((status = 200, body = QueueState), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn resume_queue(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<QueueState>, ApiError> {
    queue_name(&name)?;
    state.services.store.resume_queue(&name).await?;
    Ok(Json(QueueState {
        queue: name,
        paused: false,
    }))
}

/// Delete a queue's waiting jobs (pending, scheduled, retrying).
#[utoipa::path(delete, path = "/api/v1/queues/{name}", tag = "queues", params(("name" = String, Path)),
    responses((status = 200, body = Count), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn purge_queue(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Count>, ApiError> {
    queue_name(&name)?;
    Ok(Json(Count {
        count: state.services.store.purge_queue(&name).await?,
    }))
}

/// Every schedule with its next fire time.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    responses((status = 200, body = Vec<ScheduleInfo>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_schedules(
    _: Authorized<Read>,
    State(state): State<ApiState>,
) -> Result<Json<Vec<ScheduleInfo>>, ApiError> {
    Ok(Json(state.scheduler.list().await?))
}

/// Register a schedule; it survives restarts.
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = ScheduleDef,
    responses((status = 201, body = ScheduleInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown handler"), (status = 409, body = ErrorBody, description = "name taken"), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn add_schedule(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    ApiJson(def): ApiJson<ScheduleDef>,
) -> Result<(StatusCode, Json<ScheduleInfo>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.scheduler.add(def).await?)))
}

#[derive(Serialize, ToSchema)]
pub struct Removed {
    pub removed: String,
}

/// Remove a schedule.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", tag = "schedules", params(("name" = String, Path)),
    responses((status = 200, body = Removed), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_schedule(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    state.scheduler.remove(&name).await?;
    Ok(Json(Removed { removed: name }))
}

/// Enable a schedule.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/enable", tag = "schedules", params(("name" = String, Path)),
    responses((status = 200, body = ScheduleInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_schedule(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleInfo>, ApiError> {
    Ok(Json(state.scheduler.enable(&name).await?))
}

/// Disable a schedule (it keeps its place and history).
#[utoipa::path(post, path = "/api/v1/schedules/{name}/disable", tag = "schedules", params(("name" = String, Path)),
    responses((status = 200, body = ScheduleInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_schedule(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleInfo>, ApiError> {
    Ok(Json(state.scheduler.disable(&name).await?))
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    pub id: String,
}

/// Enqueue the schedule's job now.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/run", tag = "schedules", params(("name" = String, Path)),
    responses((status = 201, body = Started), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn run_schedule(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let id = state.scheduler.run_now(&name).await?;
    Ok((StatusCode::CREATED, Json(Started { id: id.to_string() })))
}

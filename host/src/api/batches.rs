//! `/api/v1/batches…`: run one handler over many items under one batch id,
//! watch its counts, wait for its end, cancel it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::{Admin, Authorized, Enqueue, Read};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::jobs::parse_id;
use crate::config::RetrySettings;
use crate::enqueue::{BatchRequest, EnqueueRequest};
use crate::job::Priority;
use crate::store::batch::{Batch, StartedBatch};

/// A batch to start: one job of `handler` per item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBatchBody {
    pub handler: String,
    /// 1 to 10,000 payloads, one job each.
    pub items: Vec<Value>,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    /// Each job's attempt budget (default: the retry policy's).
    pub max_attempts: Option<u32>,
    /// The jobs' own retry policy instead of their handler's.
    pub retry: Option<RetrySettings>,
    /// Jobs written per atomic chunk (default 1,000).
    pub batch_size: Option<usize>,
    /// Makes the start safe to repeat: within the idempotency TTL, a start
    /// with the same key (and handler) answers 200 with the batch the first
    /// made, after writing the jobs that one did not get to (its maker died
    /// between chunks); with other items or settings it is a 400.
    pub idempotency_key: Option<String>,
    /// A job enqueued once when every job of the batch has finished
    /// (succeeded, dead or cancelled).
    pub on_complete: Option<BatchCallbackBody>,
    /// A job enqueued once when every job of the batch has succeeded.
    pub on_success: Option<BatchCallbackBody>,
}

/// A batch callback: a job; its payload gets the batch id under `batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCallbackBody {
    pub handler: String,
    /// A JSON object (default `{}`); `batch` is reserved for the batch id.
    #[serde(default = "empty_object")]
    pub payload: Value,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    pub max_attempts: Option<u32>,
    /// The callback's own retry policy instead of its handler's.
    pub retry: Option<RetrySettings>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl BatchCallbackBody {
    fn into_request(self) -> EnqueueRequest {
        EnqueueRequest {
            handler: self.handler,
            payload: self.payload,
            queue: self.queue,
            priority: self.priority,
            max_attempts: self.max_attempts,
            retry: self.retry,
            ..EnqueueRequest::default()
        }
    }
}

/// Start a batch: its jobs are enqueued in atomic chunks of `batch_size`.
#[utoipa::path(post, path = "/api/v1/batches", request_body = StartBatchBody, tag = "batches",
    responses((status = 201, body = StartedBatch, description = "made; every job is enqueued"),
        (status = 200, body = StartedBatch, description = "an earlier start with this idempotency key made it; every job is enqueued"),
        (status = 400, body = ErrorBody, description = "no or too many items, a bad item (named) or callback"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown handler"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn start_batch(
    _: Authorized<Enqueue>,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<StartBatchBody>,
) -> Result<(StatusCode, Json<StartedBatch>), ApiError> {
    let req = BatchRequest {
        handler: body.handler,
        items: body.items,
        queue: body.queue,
        priority: body.priority,
        max_attempts: body.max_attempts,
        retry: body.retry,
        chunk: body.batch_size,
        on_complete: body.on_complete.map(BatchCallbackBody::into_request),
        on_success: body.on_success.map(BatchCallbackBody::into_request),
        idempotency_key: body.idempotency_key,
    };
    let started = state
        .services
        .enqueuer
        .start_batch(req)
        .await
        .map_err(|(at, e)| ApiError::from(e).at(at))?;
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started)))
}

/// One batch: its jobs' counts and callbacks.
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "batches", params(("id" = String, Path)),
    responses((status = 200, body = Batch), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_batch(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.services.store.get_batch(id).await?))
}

/// Cancel a batch: its waiting jobs are cancelled, its running ones
/// terminated (stopped within a second, on whichever host runs them). The
/// answer is the batch as it stands (terminated jobs count as running
/// until they have stopped). Cancelled jobs count as finished, so a
/// cancelled batch fires `on_complete` (not `on_success`).
#[utoipa::path(post, path = "/api/v1/batches/{id}/cancel", tag = "batches", params(("id" = String, Path)),
    responses((status = 200, body = Batch), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cancel_batch(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.services.store.cancel_batch(id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BatchWaitQuery {
    /// How long to hold the request: `30s` (default), at most `60s`.
    pub timeout: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchWaitAnswer {
    /// Whether every job of the batch finished within the timeout.
    pub finished: bool,
    pub batch: Batch,
}

/// Long-poll until every job of the batch has finished or the timeout
/// passes.
#[utoipa::path(get, path = "/api/v1/batches/{id}/wait", tag = "batches", params(("id" = String, Path), BatchWaitQuery),
    responses((status = 200, body = BatchWaitAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn wait_batch(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<BatchWaitQuery>,
) -> Result<Json<BatchWaitAnswer>, ApiError> {
    let id = parse_id(&id)?;
    let hold = super::wait::hold(q.timeout.as_deref())?;
    let store = &*state.services.store;
    // A batch finishes with the commit that ends its last job.
    let batch = super::wait::until(store, hold, || store.get_batch(id), |b| b.finished).await?;
    Ok(Json(BatchWaitAnswer {
        finished: batch.finished,
        batch,
    }))
}

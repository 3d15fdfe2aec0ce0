//! `/api/v1/jobs…`: enqueue, read, wait for and cancel jobs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::{Admin, Authorized, Enqueue, Read};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use crate::config::RetrySettings;
use crate::enqueue::EnqueueRequest;
use crate::job::{Job, JobId, JobStatus, Priority};
use crate::store::{ListQuery, SummaryPage};

/// A job to enqueue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBody {
    pub handler: String,
    /// The handler's input (any JSON; default `{}`).
    #[serde(default = "empty_object")]
    pub payload: Value,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    /// Run no earlier than this from now: `500ms`, `30s`, `5m`, `1h30m`.
    pub delay: Option<String>,
    /// Run no earlier than this instant (RFC 3339: `2026-01-31T09:00:00Z`).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<String>,
    /// A repeat within the key's TTL answers 200 with the original id.
    pub idempotency_key: Option<String>,
    /// The attempt budget (default: the retry policy's).
    pub max_attempts: Option<u32>,
    /// The job's own retry policy instead of its handler's: `delays`, or
    /// exponential `base`/`factor`/`max_delay`/`jitter`, as in the config.
    pub retry: Option<RetrySettings>,
    /// Only for a handler configured `unique = "while-active"` (400
    /// otherwise): the key it is unique under, default its payload. While
    /// a job of the handler with this key is scheduled, pending, running or
    /// retrying, the enqueue adds nothing and answers 200 with that job's
    /// id (`created: false`).
    pub unique_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl EnqueueBody {
    fn into_request(self) -> Result<EnqueueRequest, ApiError> {
        let delay = self
            .delay
            .as_deref()
            .map(|d| {
                crate::schedule::parse_duration(d)
                    .map_err(|e| ApiError::bad_request(format!("delay: {e}")))
            })
            .transpose()?;
        let run_at = self
            .run_at
            .as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "run_at: {t:?} is not an RFC 3339 time such as \
                             2026-01-31T09:00:00Z or 2026-01-31T10:00:00+01:00 ({e})"
                        ))
                    })
            })
            .transpose()?;
        Ok(EnqueueRequest {
            handler: self.handler,
            payload: self.payload,
            queue: self.queue,
            priority: self.priority,
            delay,
            run_at,
            idempotency_key: self.idempotency_key,
            max_attempts: self.max_attempts,
            retry: self.retry,
            unique_key: self.unique_key,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct Enqueued {
    pub id: String,
    /// False when an idempotency key matched an earlier job.
    pub created: bool,
    /// Set when no running host serves the job's queue: the job is stored
    /// and waits until one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Enqueue a job.
#[utoipa::path(post, path = "/api/v1/jobs", request_body = EnqueueBody, tag = "jobs",
    responses((status = 201, body = Enqueued, description = "enqueued"), (status = 200, body = Enqueued, description = "known idempotency key: the original job"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown handler"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn enqueue(
    _: Authorized<Enqueue>,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let request = body.into_request()?;
    let queue = request.queue_name().to_owned();
    let e = state.services.enqueuer.enqueue(request).await?;
    let warning = state.services.presence.unserved(&queue).await;
    let status = if e.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Enqueued {
            id: e.id.to_string(),
            created: e.created,
            warning,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub jobs: Vec<EnqueueBody>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchEnqueued {
    pub total: usize,
    /// Jobs newly created (the rest matched idempotency keys).
    pub enqueued: usize,
    pub ids: Vec<String>,
    /// One per queue of the batch that no running host serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Enqueue many jobs at once: all or none.
#[utoipa::path(post, path = "/api/v1/jobs/batch", request_body = BatchBody, tag = "jobs",
    responses((status = 201, body = BatchEnqueued), (status = 400, body = ErrorBody, description = "a bad item (named) or too many items"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn enqueue_batch(
    _: Authorized<Enqueue>,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<(StatusCode, Json<BatchEnqueued>), ApiError> {
    let max = state.services.config.api.max_batch;
    if body.jobs.len() > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "batch_too_large",
            format!("{} jobs in one batch; the limit is {max}", body.jobs.len()),
        ));
    }
    if body.jobs.is_empty() {
        return Err(ApiError::bad_request("the batch has no jobs"));
    }
    let mut requests = Vec::with_capacity(body.jobs.len());
    for (i, item) in body.jobs.into_iter().enumerate() {
        requests.push(item.into_request().map_err(|e| e.in_item(i))?);
    }
    let mut queues: Vec<String> = requests.iter().map(|r| r.queue_name().to_owned()).collect();
    queues.sort();
    queues.dedup();
    let enqueued = state
        .services
        .enqueuer
        .enqueue_batch(requests)
        .await
        .map_err(|(i, e)| ApiError::from(e).at(i.map(|i| format!("jobs[{i}]"))))?;
    let mut warnings = Vec::new();
    for queue in &queues {
        warnings.extend(state.services.presence.unserved(queue).await);
    }
    let body = BatchEnqueued {
        total: enqueued.len(),
        enqueued: enqueued.iter().filter(|e| e.created).count(),
        ids: enqueued.iter().map(|e| e.id.to_string()).collect(),
        warnings,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

pub(super) fn parse_id(id: &str) -> Result<JobId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a job id")))
}

/// One job with its attempt history.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = Job), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(state.services.store.get(parse_id(&id)?).await?))
}

#[derive(Serialize, ToSchema)]
pub struct JobResult {
    pub id: String,
    pub status: JobStatus,
    /// The handler's result, once succeeded.
    pub result: Option<Value>,
    /// The last attempt's error, if it failed.
    pub error: Option<String>,
}

/// A job's result (or its last error).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/result", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobResult), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn result(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobResult>, ApiError> {
    let job = state.services.store.get(parse_id(&id)?).await?;
    Ok(Json(job_result(job)))
}

fn job_result(job: Job) -> JobResult {
    let error = match job.status {
        JobStatus::Succeeded => None,
        _ => job.attempts.last().and_then(|a| a.message.clone()),
    };
    JobResult {
        id: job.id.to_string(),
        status: job.status,
        result: job.result,
        error,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// How long to hold the request: `30s` (default), at most `60s`.
    pub timeout: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WaitAnswer {
    /// Whether the job reached a final state within the timeout.
    pub finished: bool,
    pub job: JobResult,
}

/// Long-poll until the job ends or the timeout passes.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/wait", tag = "jobs", params(("id" = String, Path), WaitQuery),
    responses((status = 200, body = WaitAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn wait(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Json<WaitAnswer>, ApiError> {
    let id = parse_id(&id)?;
    let deadline = tokio::time::Instant::now() + super::wait::hold(q.timeout.as_deref())?;
    let job = crate::store::wait_for_end(&*state.services.store, id, deadline).await?;
    Ok(Json(WaitAnswer {
        finished: job.status.is_final(),
        job: job_result(job),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    /// Also stop the job if it is running: the host running it (this or
    /// another process sharing the store) drops the run within a second and
    /// records it `cancelled`, not retried. The answer is the job as it
    /// stands, still `running` until then; `wait` reports the end.
    pub terminate: Option<bool>,
}

/// Cancel a job that has not started (pending, scheduled or retrying), or,
/// with `terminate=true`, also one that is running.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path), CancelQuery),
    responses((status = 200, body = Job), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "already finished, or running and `terminate` not set")))]
pub async fn cancel(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<CancelQuery>,
) -> Result<Json<Job>, ApiError> {
    let id = parse_id(&id)?;
    if q.terminate == Some(true) {
        state.services.store.terminate(id).await?;
    } else {
        state.services.store.cancel(id).await?;
    }
    Ok(Json(state.services.store.get(id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub status: Option<String>,
    pub queue: Option<String>,
    pub handler: Option<String>,
    /// Only jobs enqueued by this schedule's ticks.
    pub schedule: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// 1–1000, default 50.
    pub limit: Option<u32>,
}

/// Validates list parameters shared by `/jobs` and `/dlq`.
pub(super) fn page_params(
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<(Option<JobId>, u32), ApiError> {
    let after = cursor.map(parse_id).transpose()?;
    let limit = limit.unwrap_or(ListQuery::DEFAULT_LIMIT);
    if !(1..=ListQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is outside 1..={}",
            ListQuery::MAX_LIMIT
        )));
    }
    Ok((after, limit))
}

/// Jobs, newest first, filtered, a page at a time, as summaries (no
/// payload, result, log or history: `GET /jobs/{id}` has those).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = SummaryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<SummaryPage>, ApiError> {
    let status = p
        .status
        .as_deref()
        .map(|s| s.parse::<JobStatus>().map_err(ApiError::bad_request))
        .transpose()?;
    let (after, limit) = page_params(p.cursor.as_deref(), p.limit)?;
    let query = ListQuery {
        status,
        queue: p.queue,
        handler: p.handler,
        after,
        limit,
        schedule: p.schedule,
    };
    Ok(Json(state.services.store.list(&query).await?.into()))
}

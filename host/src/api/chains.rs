//! `/api/v1/chains…`: make a chain of jobs run one after another, read it,
//! and wait for its end.

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
use crate::enqueue::EnqueueRequest;
use crate::job::Priority;
use crate::store::StoreError;
use crate::store::chain::{Chain, ChainStatus, MAX_STEPS};

/// A chain to make: its steps, in order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainBody {
    /// 1 to 100 steps. Step N+1 is enqueued when step N succeeds, with N's
    /// result under `previous` in its payload.
    pub steps: Vec<ChainStepBody>,
}

/// One step of a chain: a job, enqueued when its turn comes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainStepBody {
    pub handler: String,
    /// A JSON object (default `{}`); `previous` is reserved for the result
    /// of the step before.
    #[serde(default = "empty_object")]
    pub payload: Value,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    /// The step's attempt budget (default: its retry policy's).
    pub max_attempts: Option<u32>,
    /// The step's own retry policy instead of its handler's.
    pub retry: Option<RetrySettings>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Make a chain; its first step is enqueued at once.
#[utoipa::path(post, path = "/api/v1/chains", request_body = ChainBody, tag = "chains",
    responses((status = 201, body = Chain, description = "made; the first step is enqueued"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown handler"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn enqueue_chain(
    _: Authorized<Enqueue>,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ChainBody>,
) -> Result<(StatusCode, Json<Chain>), ApiError> {
    if body.steps.is_empty() || body.steps.len() > MAX_STEPS {
        return Err(ApiError::bad_request(format!(
            "a chain has 1 to {MAX_STEPS} steps, not {}",
            body.steps.len()
        )));
    }
    let steps = body
        .steps
        .into_iter()
        .map(|s| EnqueueRequest {
            handler: s.handler,
            payload: s.payload,
            queue: s.queue,
            priority: s.priority,
            max_attempts: s.max_attempts,
            retry: s.retry,
            ..EnqueueRequest::default()
        })
        .collect();
    let chain = state
        .services
        .enqueuer
        .enqueue_chain(steps)
        .await
        .map_err(|(i, e)| ApiError::from(e).at(i.map(|i| format!("steps[{i}]"))))?;
    Ok((StatusCode::CREATED, Json(chain)))
}

/// One chain: its status and each step's job and status.
#[utoipa::path(get, path = "/api/v1/chains/{id}", tag = "chains", params(("id" = String, Path)),
    responses((status = 200, body = Chain), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_chain(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Chain>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(state.services.store.get_chain(id).await?))
}

/// Cancel a running chain: its waiting step is cancelled, its running step
/// terminated (stopped within a second, on whichever host runs it), and the
/// chain ends `cancelled`; later steps never run. The answer is the chain
/// as it stands (`running` until a terminated step has stopped).
#[utoipa::path(post, path = "/api/v1/chains/{id}/cancel", tag = "chains", params(("id" = String, Path)),
    responses((status = 200, body = Chain), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the chain already ended")))]
pub async fn cancel_chain(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Chain>, ApiError> {
    let id = parse_id(&id)?;
    let store = &state.services.store;
    // A step may end (and the next begin) between the read and the
    // terminate: then look again, at most once per step.
    for _ in 0..=MAX_STEPS {
        let chain = store.get_chain(id).await?;
        if chain.status != ChainStatus::Running {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("chain {id} is {}; cannot cancel it", chain.status.as_str()),
            ));
        }
        let active = chain.steps.iter().find(|s| {
            matches!(
                s.status.as_str(),
                "scheduled" | "pending" | "running" | "retrying"
            )
        });
        let Some(step) = active else {
            return Ok(Json(chain));
        };
        match store.terminate(step.job).await {
            Ok(_) => return Ok(Json(store.get_chain(id).await?)),
            Err(StoreError::WrongState { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(store.get_chain(id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChainWaitQuery {
    /// How long to hold the request: `30s` (default), at most `60s`.
    pub timeout: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChainWaitAnswer {
    /// Whether the chain ended (succeeded, failed or cancelled) within the
    /// timeout. A failed chain may still resume by a DLQ retry.
    pub finished: bool,
    pub chain: Chain,
}

/// Long-poll until the chain ends or the timeout passes.
#[utoipa::path(get, path = "/api/v1/chains/{id}/wait", tag = "chains", params(("id" = String, Path), ChainWaitQuery),
    responses((status = 200, body = ChainWaitAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn wait_chain(
    _: Authorized<Read>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ChainWaitQuery>,
) -> Result<Json<ChainWaitAnswer>, ApiError> {
    let id = parse_id(&id)?;
    let hold = super::wait::hold(q.timeout.as_deref())?;
    let store = &*state.services.store;
    // A chain ends with the commit that ends one of its jobs.
    let chain =
        super::wait::until(store, hold, || store.get_chain(id), |c| c.status.is_final()).await?;
    Ok(Json(ChainWaitAnswer {
        finished: chain.status.is_final(),
        chain,
    }))
}

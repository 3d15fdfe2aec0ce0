//! API errors: every refusal is `{"error": {"code", "message"}}` with the
//! right status. Internal failures are logged and answered without their
//! details.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::enqueue::EnqueueError;
use crate::scheduler::SchedulerError;
use crate::store::StoreError;

/// An API error: status, stable code, human message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request`, `invalid_json`, `not_found`, …
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("API request failed: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the host's log",
        )
    }

    /// The same error about item `i` of a batch.
    pub fn in_item(mut self, i: usize) -> ApiError {
        self.message = format!("jobs[{i}]: {}", self.message);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(_) | StoreError::ScheduleNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            StoreError::WrongState { .. } | StoreError::LeaseLost(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::Full { .. } => {
                tracing::error!("API request refused: {e}");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "store_full",
                    e.to_string(),
                )
            }
            e => ApiError::internal(e),
        }
    }
}

impl From<EnqueueError> for ApiError {
    fn from(e: EnqueueError) -> ApiError {
        match e {
            EnqueueError::UnknownHandler { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_handler", e.to_string())
            }
            EnqueueError::PayloadTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            EnqueueError::Invalid(m) => ApiError::bad_request(m),
            EnqueueError::Store(e) => e.into(),
        }
    }
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> ApiError {
        match e {
            SchedulerError::NotFound(_) => ApiError::not_found(e.to_string()),
            SchedulerError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            SchedulerError::UnknownHandler { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_handler", e.to_string())
            }
            SchedulerError::Store(e) => e.into(),
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

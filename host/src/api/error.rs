//! API errors: every refusal is `{"error": {"code", "message"}}` with the
//! right status. Internal failures are logged and answered without their
//! details.

use std::panic::AssertUnwindSafe;

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
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
    pub fn in_item(self, i: usize) -> ApiError {
        self.at(Some(format!("jobs[{i}]")))
    }

    /// The same error about one part of the request (`steps[2]`,
    /// `on_success`), when it names one.
    pub fn at(mut self, place: Option<impl std::fmt::Display>) -> ApiError {
        if let Some(place) = place {
            self.message = format!("{place}: {}", self.message);
        }
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

/// Middleware: a panic while answering a request becomes a 500 in the
/// usual error shape (and a log line), instead of a connection closed with
/// no answer. The host itself never depended on it: each connection runs in
/// its own task.
pub async fn catch_panic(request: Request, next: Next) -> Response {
    let route = format!("{} {}", request.method(), request.uri().path());
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = crate::panic_message(&*panic);
            ApiError::internal(format_args!("panic while answering {route}: {what}"))
                .into_response()
        }
    }
}

/// Middleware: an error answered outside the handlers — a 405 for a
/// method the route lacks, a path segment that is not UTF-8, a body over
/// the limit — comes from axum as plain text; it is rewritten into the
/// `{"error": {...}}` shape so every client parses one format.
pub async fn error_shape(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            // JSON errors are already shaped; the dashboard's HTML error
            // pages are meant for a browser.
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = match (status, text.is_empty()) {
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            let allowed = parts
                .headers
                .get(axum::http::header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("this endpoint does not take that method (allowed: {allowed})")
        }
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
        (_, false) => text,
    };
    let mut shaped = ApiError::new(status, code, message).into_response();
    if let Some(allow) = parts.headers.get(axum::http::header::ALLOW) {
        shaped
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    shaped
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(_)
            | StoreError::ScheduleNotFound(_)
            | StoreError::ChainNotFound(_)
            | StoreError::BatchNotFound(_) => ApiError::not_found(e.to_string()),
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
            SchedulerError::ConfigManaged(_) => {
                ApiError::new(StatusCode::CONFLICT, "config_managed", e.to_string())
            }
            SchedulerError::UnknownHandler { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_handler", e.to_string())
            }
            SchedulerError::Store(e) => e.into(),
            e => ApiError::bad_request(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape() {
        async fn boom() -> &'static str {
            if std::hint::black_box(true) {
                panic!("handler bug");
            }
            "unreachable"
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(catch_panic));
        let answer = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(
            !body.to_string().contains("handler bug"),
            "details stay in the log"
        );
        let fine = app
            .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(fine.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn errors_from_outside_the_handlers_get_the_error_shape() {
        let app = Router::new()
            .route("/only-get", get(|| async { "ok" }))
            .route(
                "/items/{id}",
                get(|axum::extract::Path(id): axum::extract::Path<String>| async move { id }),
            )
            .layer(axum::middleware::from_fn(error_shape));
        let call = |req: Request| {
            let app = app.clone();
            async move {
                let answer = app.oneshot(req).await.unwrap();
                let status = answer.status();
                let allow = answer.headers().get("allow").cloned();
                let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (
                    status,
                    allow,
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                )
            }
        };
        let (status, allow, body) =
            call(Request::post("/only-get").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert!(allow.is_some(), "the Allow header is kept");
        let (status, _, body) =
            call(Request::get("/items/%FF%FE").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("UTF-8"),
            "{body}"
        );
    }
}

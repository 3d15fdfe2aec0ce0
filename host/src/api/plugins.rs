//! `POST /api/v1/plugins?name=…` (deploy a component to every host sharing
//! the store) and `POST /api/v1/plugins/{name}/rollback`; admin scope.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiState;
use super::auth::{Admin, Authorized};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use crate::deploy::{self, DeployError};
use crate::store::PluginRelease;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeployParams {
    /// The plugin's name, its file stem in every host's folder (`hello`).
    pub name: String,
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> ApiError {
        match e {
            DeployError::BadName(_) => ApiError::bad_request(e.to_string()),
            DeployError::Refused(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "plugin_refused",
                e.to_string(),
            ),
            DeployError::Store(e) => e.into(),
        }
    }
}

/// Deploys a component (the body, the `.wasm` bytes) as plugin `name` to
/// every host sharing this store: checked here as a hot reload checks a
/// file (a refusal changes nothing), stored by digest, and loaded by each
/// host within a second or so. Bodies over `[api] max_plugin` are refused.
#[utoipa::path(post, path = "/api/v1/plugins", tag = "plugins", params(DeployParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = PluginRelease), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn deploy(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    ApiQuery(p): ApiQuery<DeployParams>,
    body: Bytes,
) -> Result<(StatusCode, Json<PluginRelease>), ApiError> {
    let services = &state.services;
    let release = deploy::deploy(
        &services.runtime,
        services.store.as_ref(),
        &p.name,
        body.to_vec(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(release)))
}

/// Returns plugin `name` to the release deployed before the one in
/// service, on every host sharing this store.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/rollback", tag = "plugins", params(("name" = String, Path)),
    responses((status = 200, body = PluginRelease), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rollback(
    _: Authorized<Admin>,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PluginRelease>, ApiError> {
    let services = &state.services;
    Ok(Json(
        deploy::rollback(&services.runtime, services.store.as_ref(), &name).await?,
    ))
}

//! The dashboard's actions: POST forms that need the session's CSRF token
//! and an `admin` token, then call what the JSON API's admin endpoints call
//! and redirect back with what happened.

use std::future::Future;

use axum::Form;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::super::ApiState;
use super::super::error::ApiError;
use super::html::{error_page, esc, html};
use super::pages::failed;
use super::session::Viewer;
use crate::job::{JobId, check_queue_name};

/// Every action form's fields.
#[derive(Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    /// Where to go afterwards: a dashboard path.
    back: Option<String>,
    /// `yes` once the viewer confirmed a destructive action.
    confirmed: Option<String>,
}

impl ActionForm {
    /// `back` if it is a local path (never another site).
    fn back(&self, default: &str) -> String {
        match self.back.as_deref() {
            Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.contains('\\') => {
                b.to_string()
            }
            _ => default.to_string(),
        }
    }
}

/// Checks the form, asks `confirm` first when given, runs `work` and
/// redirects back with its message.
async fn act<F>(
    v: Viewer,
    uri: &OriginalUri,
    form: ActionForm,
    confirm: Option<String>,
    work: F,
) -> Response
where
    F: Future<Output = Result<String, ApiError>>,
{
    if let Err(refused) = v.may_act(form.csrf.as_deref()) {
        return error_page(StatusCode::FORBIDDEN, refused);
    }
    let back = form.back("/");
    if let Some(question) = confirm
        && form.confirmed.as_deref() != Some("yes")
    {
        return confirmation(&v, uri.path(), &back, &question);
    }
    match work.await {
        Ok(done) => {
            let sep = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{back}{sep}done={}", super::html::url(&done))).into_response()
        }
        Err(e) => failed(e),
    }
}

/// The page that asks before a destructive action.
fn confirmation(v: &Viewer, path: &str, back: &str, question: &str) -> Response {
    html(
        StatusCode::OK,
        &format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Confirm · taskhost</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head>\
             <body><main id=\"main\"><h1>Confirm</h1><p role=\"alert\">{q}</p>\
             <form method=\"post\" action=\"{path}\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"back\" value=\"{back}\">\
             <input type=\"hidden\" name=\"confirmed\" value=\"yes\">\
             <button class=\"danger\" autofocus>Yes, do it</button></form> \
             <a href=\"{back}\">No, go back</a></main></body></html>",
            q = esc(question),
            path = esc(path),
            csrf = esc(&v.csrf),
            back = esc(back),
        ),
    )
}

fn job_id(id: &str) -> Result<JobId, String> {
    id.parse().map_err(|_| format!("{id:?} is not a job id"))
}

/// Retry a dead job.
pub async fn retry_job(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let id = match job_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    act(v, &uri, form, None, async {
        state.services.store.dlq_retry(id).await?;
        Ok(format!("job {id} queued again"))
    })
    .await
}

/// Cancel a job that has not started.
pub async fn cancel_job(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let id = match job_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    act(v, &uri, form, None, async {
        state.services.store.cancel(id).await?;
        Ok(format!("job {id} cancelled"))
    })
    .await
}

/// Retry every dead job.
pub async fn retry_all_dead(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    Form(form): Form<ActionForm>,
) -> Response {
    act(v, &uri, form, None, async {
        let n = state.services.store.dlq_retry_all(None).await?;
        Ok(format!("{n} dead jobs queued again"))
    })
    .await
}

/// Retry the dead jobs ticked in the list (the form repeats `id`).
pub async fn retry_selected_dead(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    body: axum::body::Bytes,
) -> Response {
    let mut form = ActionForm {
        csrf: None,
        back: None,
        confirmed: None,
    };
    let mut ids = Vec::new();
    for (k, val) in url::form_urlencoded::parse(&body) {
        match &*k {
            "csrf" => form.csrf = Some(val.into_owned()),
            "back" => form.back = Some(val.into_owned()),
            "id" => match job_id(&val) {
                Ok(id) => ids.push(id),
                Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
            },
            _ => {}
        }
    }
    act(v, &uri, form, None, async {
        if ids.is_empty() {
            return Err(ApiError::bad_request("no dead jobs were selected"));
        }
        for id in &ids {
            state.services.store.dlq_retry(*id).await?;
        }
        Ok(format!("{} dead jobs queued again", ids.len()))
    })
    .await
}

/// Delete every dead job, once confirmed.
pub async fn purge_dead(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    Form(form): Form<ActionForm>,
) -> Response {
    let question = "Delete every dead job? This cannot be undone.".to_string();
    act(v, &uri, form, Some(question), async {
        let n = state.services.store.dlq_purge(None).await?;
        Ok(format!("{n} dead jobs deleted"))
    })
    .await
}

/// What can be done to a queue.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum QueueVerb {
    Pause,
    Resume,
    Purge,
}

/// Pause, resume or (once confirmed) purge a queue.
pub async fn queue(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    Path((name, verb)): Path<(String, QueueVerb)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(e) = check_queue_name(&name) {
        return error_page(StatusCode::BAD_REQUEST, &e);
    }
    let confirm = matches!(verb, QueueVerb::Purge).then(|| {
        format!("Delete every waiting job (pending, scheduled, retrying) of queue {name:?}? This cannot be undone.")
    });
    let store = &state.services.store;
    act(v, &uri, form, confirm, async {
        Ok(match verb {
            QueueVerb::Pause => {
                store.pause_queue(&name).await?;
                format!("queue {name} paused")
            }
            QueueVerb::Resume => {
                store.resume_queue(&name).await?;
                format!("queue {name} resumed")
            }
            QueueVerb::Purge => {
                let n = store.purge_queue(&name).await?;
                format!("{n} jobs of queue {name} deleted")
            }
        })
    })
    .await
}

/// What can be done to a schedule.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleVerb {
    Enable,
    Disable,
    Run,
}

/// Enable, disable or run a schedule now.
pub async fn schedule(
    v: Viewer,
    State(state): State<ApiState>,
    uri: OriginalUri,
    Path((name, verb)): Path<(String, ScheduleVerb)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let scheduler = &state.scheduler;
    act(v, &uri, form, None, async {
        Ok(match verb {
            ScheduleVerb::Enable => {
                scheduler.enable(&name).await?;
                format!("schedule {name} enabled")
            }
            ScheduleVerb::Disable => {
                scheduler.disable(&name).await?;
                format!("schedule {name} disabled")
            }
            ScheduleVerb::Run => {
                let id = scheduler.run_now(&name).await?;
                format!("schedule {name} enqueued job {id}")
            }
        })
    })
    .await
}

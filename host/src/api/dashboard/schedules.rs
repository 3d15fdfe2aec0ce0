//! The schedules page.

use axum::extract::{Query, State};
use axum::response::Response;

use super::super::ApiState;
use super::html::{action, esc, page, table, url};
use super::pages::{Flash, failed, frame, job_link, time};
use super::session::Viewer;

/// Schedules: expression, next five fire times, enable/disable/run now.
pub async fn schedules(
    v: Viewer,
    State(state): State<ApiState>,
    Query(f): Query<Flash>,
) -> Response {
    let list = match state.scheduler.list().await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let now = chrono::Utc::now();
    let mut current = Vec::with_capacity(list.len());
    for info in &list {
        match state
            .services
            .store
            .active_schedule_job(&info.schedule.name)
            .await
        {
            Ok(id) => current.push(id),
            Err(e) => return failed(e),
        }
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .zip(&current)
        .map(|(info, current)| {
            let s = &info.schedule;
            let next = if !s.enabled {
                "disabled".to_string()
            } else {
                match crate::schedule::next_fires(&s.spec, Some(&s.timezone), now, 5) {
                    Ok(times) => format!(
                        "<ol class=\"fires\">{}</ol>",
                        times
                            .iter()
                            .map(|t| format!(
                                "<li>{}</li>",
                                esc(&t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
                            ))
                            .collect::<String>()
                    ),
                    Err(e) => format!("<span class=\"error\">{}</span>", esc(&e.to_string())),
                }
            };
            let problem = info
                .problem
                .as_deref()
                .map(|p| format!("<br><span class=\"error\">{}</span>", esc(p)))
                .unwrap_or_default();
            let mut acts = String::new();
            if v.can_act {
                let base = format!("/actions/schedules/{}", url(&s.name));
                if s.enabled {
                    acts.push_str(&action(
                        &format!("{base}/disable"),
                        "Disable",
                        &v.csrf,
                        "/schedules",
                        "",
                    ));
                } else {
                    acts.push_str(&action(
                        &format!("{base}/enable"),
                        "Enable",
                        &v.csrf,
                        "/schedules",
                        "",
                    ));
                }
                acts.push_str(&action(
                    &format!("{base}/run"),
                    "Run now",
                    &v.csrf,
                    "/schedules",
                    "",
                ));
            }
            vec![
                esc(&s.name),
                format!(
                    "{}<code>{}</code> ({}){problem}",
                    super::words::describe(&s.spec, &s.timezone)
                        .map(|w| format!("<span class=\"words\">{}</span><br>", esc(&w)))
                        .unwrap_or_default(),
                    esc(&s.spec),
                    esc(&s.timezone)
                ),
                esc(&s.handler),
                esc(&s.queue),
                if s.enabled { "yes" } else { "no" }.into(),
                s.last_tick.map(time).unwrap_or_else(|| "—".into()),
                current.map(job_link).unwrap_or_else(|| "—".into()),
                next,
                acts,
            ]
        })
        .collect();
    let body = table(
        "Schedules",
        &[
            "Name",
            "Expression",
            "Handler",
            "Queue",
            "Enabled",
            "Last fire",
            "Current job",
            "Next five fires",
            "Actions",
        ],
        &rows,
        "schedules",
    );
    v.finish(page(&frame(&v, "/schedules", "Schedules", &f.done), &body))
}

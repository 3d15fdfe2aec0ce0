//! `taskhost enqueue | job | jobs | wait`: put work in and follow it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use super::BadInput;
use super::output::{job_detail, job_table};
use super::remote::{Remote, query};
use crate::config::{Config, RetrySettings};
use crate::enqueue::{EnqueueError, EnqueueRequest};
use crate::job::Job;
use crate::job::{JobId, JobStatus, Priority};
use crate::services::{Services, open_store};
use crate::store::{ListQuery, SummaryPage};

#[derive(Args)]
pub struct EnqueueArgs {
    handler: String,
    /// The job's payload, JSON.
    #[arg(long, short, default_value = "{}")]
    payload: String,
    #[arg(long, short)]
    queue: Option<String>,
    /// critical, high, normal or low.
    #[arg(long)]
    priority: Option<String>,
    /// Run no earlier than this from now: 30s, 5m, 1h30m.
    #[arg(long, conflicts_with = "at")]
    delay: Option<String>,
    /// Run no earlier than this instant (RFC 3339).
    #[arg(long)]
    at: Option<String>,
    /// Idempotency key: a repeat within its TTL returns the original id.
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    max_attempts: Option<u32>,
    /// The job's own retry policy instead of its handler's, JSON as the
    /// config's `retry` table: `{"delays": ["1s", "5s"]}` or `{"base":
    /// "2s", "factor": 3, "max_attempts": 6}`.
    #[arg(long)]
    retry: Option<String>,
    /// For a handler with `unique = "while-active"`: the key it is unique
    /// under (default: its payload); while a job with it is active, the
    /// enqueue answers that job's id.
    #[arg(long)]
    unique_key: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Turns the arguments into a request, refusing bad input before anything opens.
fn request(args: &EnqueueArgs) -> Result<EnqueueRequest, BadInput> {
    let payload = serde_json::from_str(&args.payload)
        .map_err(|e| BadInput(format!("--payload is not valid JSON: {e}")))?;
    let priority = args
        .priority
        .as_deref()
        .map(|p| p.parse::<Priority>().map_err(BadInput))
        .transpose()?;
    let delay = args
        .delay
        .as_deref()
        .map(|d| crate::schedule::parse_duration(d).map_err(|e| BadInput(format!("--delay: {e}"))))
        .transpose()?;
    let run_at = args
        .at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| BadInput(format!("--at {t:?} is not an RFC 3339 time: {e}")))
        })
        .transpose()?;
    Ok(EnqueueRequest {
        handler: args.handler.clone(),
        payload,
        queue: args.queue.clone(),
        priority,
        delay,
        run_at,
        idempotency_key: args.key.clone(),
        max_attempts: args.max_attempts,
        retry: parse_retry(&args.retry)?,
        unique_key: args.unique_key.clone(),
    })
}

/// `--retry`'s JSON, refused with the shape it should have.
pub(super) fn parse_retry(text: &Option<String>) -> Result<Option<RetrySettings>, BadInput> {
    text.as_deref()
        .map(|t| {
            serde_json::from_str(t).map_err(|e| {
                BadInput(format!(
                    "--retry is not a retry policy such as {{\"delays\": [\"1s\", \"5s\"]}}: {e}"
                ))
            })
        })
        .transpose()
}

pub async fn enqueue(config: Arc<Config>, args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    let req = request(&args)?;
    let queue = req.queue_name().to_owned();
    let services = Services::open(config).await?;
    let enqueued = services.enqueuer.enqueue(req).await.map_err(|e| match e {
        EnqueueError::Store(e) => anyhow::Error::new(e),
        e => BadInput(e.to_string()).into(),
    })?;
    let warning = services.presence.unserved(&queue).await;
    print_enqueued(
        &Answer {
            id: enqueued.id,
            created: enqueued.created,
            warning,
        },
        args.json,
    );
    services.store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// What an enqueue answers, locally or from the API.
#[derive(serde::Serialize, serde::Deserialize)]
struct Answer {
    id: JobId,
    created: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

/// The id on stdout (or the answer as JSON); a warning on stderr.
fn print_enqueued(answer: &Answer, json: bool) {
    if json {
        println!("{}", serde_json::to_string(answer).unwrap_or_default());
    } else {
        println!("{}", answer.id);
    }
    if let Some(w) = &answer.warning {
        eprintln!("warning: {w}");
    }
}

/// `enqueue --url`: the same checks first, then `POST /api/v1/jobs`.
pub async fn enqueue_remote(remote: &Remote, args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    let req = request(&args)?;
    let body = serde_json::json!({
        "handler": req.handler,
        "payload": req.payload,
        "queue": req.queue,
        "priority": req.priority,
        "delay": args.delay,
        "run_at": req.run_at,
        "idempotency_key": req.idempotency_key,
        "max_attempts": req.max_attempts,
        "retry": req.retry,
        "unique_key": req.unique_key,
    });
    let answer: Answer = remote.post("/api/v1/jobs", &body).await?;
    print_enqueued(&answer, args.json);
    Ok(ExitCode::SUCCESS)
}

pub fn parse_id(id: &str) -> Result<JobId, BadInput> {
    id.parse()
        .map_err(|e| BadInput(format!("{id:?} is not a job id: {e}")))
}

pub async fn show(config: Arc<Config>, id: String, json: bool) -> anyhow::Result<ExitCode> {
    let id = parse_id(&id)?;
    let store = open_store(&config, Arc::new(crate::clock::SystemClock)).await?;
    print_job(&store.get(id).await?, json)
}

/// The `--limit` of list commands: a page of 1 to 1,000, as the API takes.
pub fn page_limit() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(ListQuery::MAX_LIMIT))
}

/// `cancel`: a job that has not started (pending, scheduled, retrying);
/// with `terminate`, also a running one (its host stops it).
pub async fn cancel(
    config: Arc<Config>,
    id: String,
    terminate: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let id = parse_id(&id)?;
    let store = open_store(&config, Arc::new(crate::clock::SystemClock)).await?;
    if terminate {
        store.terminate(id).await?;
    } else {
        store.cancel(id).await?;
    }
    print_job(&store.get(id).await?, json)
}

pub async fn cancel_remote(
    remote: &Remote,
    id: String,
    terminate: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let id = parse_id(&id)?;
    let query = if terminate { "?terminate=true" } else { "" };
    let job: Job = remote
        .post(
            &format!("/api/v1/jobs/{id}/cancel{query}"),
            &serde_json::json!({}),
        )
        .await?;
    print_job(&job, json)
}

pub fn print_job(job: &Job, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(job)?);
    } else {
        print!("{}", job_detail(job));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show_remote(remote: &Remote, id: String, json: bool) -> anyhow::Result<ExitCode> {
    let id = parse_id(&id)?;
    print_job(&remote.get(&format!("/api/v1/jobs/{id}")).await?, json)
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    status: Option<String>,
    #[arg(long, short)]
    queue: Option<String>,
    #[arg(long)]
    handler: Option<String>,
    /// Only jobs enqueued by this schedule.
    #[arg(long)]
    schedule: Option<String>,
    /// 1–1000, as the API.
    #[arg(long, default_value_t = 50, value_parser = page_limit())]
    limit: u32,
    /// Continue after this job id (the `next` of the previous page).
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn list(config: Arc<Config>, args: ListArgs) -> anyhow::Result<ExitCode> {
    let status = args
        .status
        .as_deref()
        .map(|s| s.parse::<JobStatus>().map_err(BadInput))
        .transpose()?;
    let after = args.cursor.as_deref().map(parse_id).transpose()?;
    let store = open_store(&config, Arc::new(crate::clock::SystemClock)).await?;
    let page = store
        .list(&ListQuery {
            status,
            queue: args.queue,
            handler: args.handler,
            after,
            limit: args.limit,
            schedule: args.schedule,
        })
        .await?;
    print_page(&page.into(), args.json)
}

pub fn print_page(page: &SummaryPage, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(page)?);
    } else {
        print!("{}", job_table(&page.jobs));
        if let Some(next) = page.next {
            println!("more: --cursor {next}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list_remote(remote: &Remote, args: ListArgs) -> anyhow::Result<ExitCode> {
    let q = query(&[
        ("status", args.status),
        ("queue", args.queue),
        ("handler", args.handler),
        ("schedule", args.schedule),
        ("cursor", args.cursor),
        ("limit", Some(args.limit.to_string())),
    ]);
    print_page(&remote.get(&format!("/api/v1/jobs{q}")).await?, args.json)
}

/// Exit codes of `wait`: how the job ended.
pub const WAIT_DEAD: u8 = 1;
pub const WAIT_CANCELLED: u8 = 3;
pub const WAIT_TIMEOUT: u8 = 4;

pub async fn wait(config: Arc<Config>, id: String, timeout: String) -> anyhow::Result<ExitCode> {
    let id = parse_id(&id)?;
    let timeout = crate::schedule::parse_duration(&timeout)
        .map_err(|e| BadInput(format!("--timeout: {e}")))?;
    let store = open_store(&config, Arc::new(crate::clock::SystemClock)).await?;
    let mut changes = store.job_ends();
    let deadline = tokio::time::Instant::now() + timeout;
    let started = std::time::Instant::now();
    loop {
        changes.borrow_and_update();
        let job = store.get(id).await?;
        if let Some(code) = wait_progress(&job, started) {
            return Ok(code);
        }
        // Wake on any write (ours or another process's), at least once a second.
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            _ = changes.changed() => {}
            _ = tick => {}
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!();
                eprintln!("still {} after {timeout:?}", job.status.as_str());
                return Ok(ExitCode::from(WAIT_TIMEOUT));
            }
        }
    }
}

/// Prints the progress line; once the job has ended, its result and the
/// exit code that says how it ended.
fn wait_progress(job: &Job, started: std::time::Instant) -> Option<ExitCode> {
    eprint!(
        "\r{}  {:<9} attempt {}/{}  {:>6.1}s ",
        job.id,
        job.status.as_str(),
        job.attempt,
        job.max_attempts,
        started.elapsed().as_secs_f64()
    );
    let code = match job.status {
        JobStatus::Succeeded => ExitCode::SUCCESS,
        JobStatus::Dead => ExitCode::from(WAIT_DEAD),
        JobStatus::Cancelled => ExitCode::from(WAIT_CANCELLED),
        _ => return None,
    };
    eprintln!();
    if let Some(result) = &job.result {
        println!("{result}");
    }
    if let (JobStatus::Dead, Some(last)) = (job.status, job.attempts.last()) {
        let why = last.message.as_deref().unwrap_or("no message");
        eprintln!(
            "dead after attempt {}: {} — {why}",
            last.attempt, last.outcome
        );
    }
    Some(code)
}

/// `wait --url`: long-polls `/api/v1/jobs/{id}/wait` (60 s at a time).
pub async fn wait_remote(remote: &Remote, id: String, timeout: String) -> anyhow::Result<ExitCode> {
    let id = parse_id(&id)?;
    let timeout = crate::schedule::parse_duration(&timeout)
        .map_err(|e| BadInput(format!("--timeout: {e}")))?;
    let started = std::time::Instant::now();
    loop {
        let job: Job = remote.get(&format!("/api/v1/jobs/{id}")).await?;
        if let Some(code) = wait_progress(&job, started) {
            return Ok(code);
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            eprintln!();
            eprintln!("still {} after {timeout:?}", job.status.as_str());
            return Ok(ExitCode::from(WAIT_TIMEOUT));
        }
        let poll = left
            .min(Duration::from_secs(60))
            .max(Duration::from_millis(1));
        let _: serde_json::Value = remote
            .get(&format!(
                "/api/v1/jobs/{id}/wait?timeout={}ms",
                poll.as_millis()
            ))
            .await?;
    }
}

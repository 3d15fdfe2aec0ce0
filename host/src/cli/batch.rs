//! `taskhost batch start|show|cancel`: run one handler over many items
//! under one batch id (see `store::batch`), on the store or through a
//! host's API with `--url`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::BadInput;
use super::remote::Remote;
use crate::config::Config;
use crate::enqueue::{BatchRequest, EnqueueError};
use crate::job::{JobId, Priority};
use crate::services::Services;
use crate::store::StoreError;
use crate::store::batch::{Batch, StartedBatch};

#[derive(Subcommand)]
pub enum BatchCmd {
    /// Start a batch: one job of HANDLER per item; prints the batch id.
    Start(StartArgs),
    /// Show a batch's counts and callbacks (JSON).
    Show { id: String },
    /// Cancel a batch's waiting jobs and terminate its running ones.
    Cancel { id: String },
}

#[derive(Args)]
pub struct StartArgs {
    handler: String,
    /// The items, a JSON array: each is one job's payload.
    items: String,
    /// Jobs written per atomic chunk (default 1000).
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    queue: Option<String>,
    /// critical, high, normal or low.
    #[arg(long, value_parser = |s: &str| s.parse::<Priority>())]
    priority: Option<Priority>,
    #[arg(long)]
    max_attempts: Option<u32>,
    /// The jobs' own retry policy, JSON (as `taskhost enqueue --retry`).
    #[arg(long)]
    retry: Option<String>,
    /// A job enqueued once every job has finished: `{"handler": …,
    /// "payload": {…}}` (the payload gets the batch id under `batch`).
    #[arg(long)]
    on_complete: Option<String>,
    /// A job enqueued once every job has succeeded (as `--on-complete`).
    #[arg(long)]
    on_success: Option<String>,
    /// Idempotency key: a repeat within its TTL answers the batch the
    /// first start made, and writes the jobs that start did not get to.
    #[arg(long)]
    key: Option<String>,
    /// Print the batch and its job ids as JSON instead of its id.
    #[arg(long)]
    json: bool,
}

/// A callback as the command line takes it: a chain step's shape.
type Callback = super::chain::Step;

fn items(args: &StartArgs) -> anyhow::Result<Vec<Value>> {
    serde_json::from_str(&args.items)
        .map_err(|e| BadInput(format!("the items are not a JSON array: {e}")).into())
}

fn callback(flag: &str, text: &Option<String>) -> anyhow::Result<Option<Callback>> {
    text.as_deref()
        .map(|t| {
            serde_json::from_str(t).map_err(|e| {
                BadInput(format!(
                    "--{flag} is not a {{\"handler\": …, \"payload\": {{…}}}} object: {e}"
                ))
                .into()
            })
        })
        .transpose()
}

fn print_started(started: &StartedBatch, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(started)?);
    } else {
        println!("{}", started.batch.id);
    }
    Ok(ExitCode::SUCCESS)
}

fn print(batch: &Batch) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(batch)?);
    Ok(ExitCode::SUCCESS)
}

fn parse_id(id: &str) -> anyhow::Result<JobId> {
    id.parse()
        .map_err(|_| BadInput(format!("{id:?} is not a batch id")).into())
}

pub async fn execute(config: Arc<Config>, cmd: BatchCmd) -> anyhow::Result<ExitCode> {
    // Bad input is refused before anything opens.
    let what = match cmd {
        BatchCmd::Start(args) => {
            let req = BatchRequest {
                handler: args.handler.clone(),
                items: items(&args)?,
                queue: args.queue.clone(),
                priority: args.priority,
                max_attempts: args.max_attempts,
                retry: super::jobs::parse_retry(&args.retry)?,
                chunk: args.batch_size,
                on_complete: callback("on-complete", &args.on_complete)?
                    .map(Callback::into_request),
                on_success: callback("on-success", &args.on_success)?.map(Callback::into_request),
                idempotency_key: args.key.clone(),
            };
            Ok((req, args.json))
        }
        BatchCmd::Show { id } => Err((parse_id(&id)?, false)),
        BatchCmd::Cancel { id } => Err((parse_id(&id)?, true)),
    };
    let services = Services::open(config).await?;
    let answer = match what {
        Ok((req, json)) => {
            let started = services
                .enqueuer
                .start_batch(req)
                .await
                .map_err(|(at, e)| match e {
                    EnqueueError::Store(e)
                        if at.is_none() && !matches!(e, StoreError::Invalid(_)) =>
                    {
                        anyhow::Error::new(e)
                    }
                    e => {
                        let at = at.map(|a| format!("{a}: ")).unwrap_or_default();
                        BadInput(format!("{at}{e}")).into()
                    }
                });
            started.and_then(|s| print_started(&s, json))
        }
        Err((id, false)) => match services.store.get_batch(id).await {
            Ok(b) => print(&b),
            Err(e) => Err(e.into()),
        },
        Err((id, true)) => match services.store.cancel_batch(id).await {
            Ok(b) => print(&b),
            Err(e) => Err(e.into()),
        },
    };
    services.store.close().await?;
    answer
}

pub async fn execute_remote(remote: &Remote, cmd: BatchCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        BatchCmd::Start(args) => {
            let parse = |flag: &str, t: &Option<String>| -> anyhow::Result<Value> {
                match t {
                    None => Ok(Value::Null),
                    Some(t) => serde_json::from_str(t)
                        .map_err(|e| BadInput(format!("--{flag} is not JSON: {e}")).into()),
                }
            };
            let mut body = json!({
                "handler": args.handler,
                "items": items(&args)?,
                "queue": args.queue,
                "priority": args.priority,
                "max_attempts": args.max_attempts,
                "retry": super::jobs::parse_retry(&args.retry)?,
                "batch_size": args.batch_size,
                "idempotency_key": args.key,
                "on_complete": parse("on-complete", &args.on_complete)?,
                "on_success": parse("on-success", &args.on_success)?,
            });
            if let Value::Object(map) = &mut body {
                map.retain(|_, v| !v.is_null());
            }
            let started: StartedBatch = remote.post("/api/v1/batches", &body).await?;
            print_started(&started, args.json)
        }
        BatchCmd::Show { id } => {
            let batch: Batch = remote
                .get(&format!("/api/v1/batches/{}", parse_id(&id)?))
                .await?;
            print(&batch)
        }
        BatchCmd::Cancel { id } => {
            let batch: Batch = remote
                .post(
                    &format!("/api/v1/batches/{}/cancel", parse_id(&id)?),
                    &json!({}),
                )
                .await?;
            print(&batch)
        }
    }
}

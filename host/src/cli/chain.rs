//! `taskhost chain STEPS`: make a chain of jobs (see `store::chain`), on
//! the store or through a host's API with `--url`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::BadInput;
use super::remote::Remote;
use crate::config::{Config, RetrySettings};
use crate::enqueue::{EnqueueError, EnqueueRequest};
use crate::job::Priority;
use crate::services::Services;
use crate::store::chain::Chain;

#[derive(Args)]
pub struct ChainArgs {
    /// The steps, a JSON array: `[{"handler": "validate_order", "payload":
    /// {...}}, {"handler": "process_payment"}]` (each may also give
    /// `queue`, `priority`, `max_attempts` and `retry`, a retry policy as
    /// the config's `retry` table).
    steps: String,
    /// Print the chain as JSON instead of its id.
    #[arg(long)]
    json: bool,
}

/// One step as the command line takes it (the API's step body); a batch
/// callback has the same shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Step {
    handler: String,
    #[serde(default = "empty_object")]
    payload: Value,
    queue: Option<String>,
    priority: Option<Priority>,
    max_attempts: Option<u32>,
    retry: Option<RetrySettings>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl Step {
    pub(super) fn into_request(self) -> EnqueueRequest {
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

fn steps(args: &ChainArgs) -> anyhow::Result<Vec<Step>> {
    serde_json::from_str(&args.steps).map_err(|e| {
        BadInput(format!(
            "the steps are not a JSON array of {{\"handler\": …, \"payload\": {{…}}}} objects: {e}"
        ))
        .into()
    })
}

fn print(chain: &Chain, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(chain)?);
    } else {
        println!("{}", chain.id);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn execute(config: Arc<Config>, args: ChainArgs) -> anyhow::Result<ExitCode> {
    let reqs = steps(&args)?.into_iter().map(Step::into_request).collect();
    let services = Services::open(config).await?;
    let chain = services
        .enqueuer
        .enqueue_chain(reqs)
        .await
        .map_err(|(i, e)| {
            let at = i.map(|i| format!("steps[{i}]: ")).unwrap_or_default();
            match e {
                EnqueueError::Store(e)
                    if i.is_none() && !matches!(e, crate::store::StoreError::Invalid(_)) =>
                {
                    anyhow::Error::new(e)
                }
                e => BadInput(format!("{at}{e}")).into(),
            }
        })?;
    services.store.close().await?;
    print(&chain, args.json)
}

pub async fn execute_remote(remote: &Remote, args: ChainArgs) -> anyhow::Result<ExitCode> {
    let steps: Value = serde_json::from_str(&args.steps)
        .map_err(|e| BadInput(format!("the steps are not JSON: {e}")))?;
    let chain: Chain = remote
        .post("/api/v1/chains", &serde_json::json!({ "steps": steps }))
        .await?;
    print(&chain, args.json)
}

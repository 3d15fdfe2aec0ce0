//! `taskhost run <handler> --payload <json>`: one job, now, in the sandbox.

use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::runtime::{JobInput, Outcome, Runtime};
use clap::Args;

use super::BadInput;

#[derive(Args)]
pub struct RunArgs {
    /// The handler to run.
    handler: String,
    /// The job's payload, JSON.
    #[arg(long, short, default_value = "{}")]
    payload: String,
    /// Print the whole report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn execute(config: Arc<Config>, args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&args.payload) {
        return Err(BadInput(format!("--payload is not valid JSON: {e}")).into());
    }
    let runtime = Runtime::load(config).await?;
    if runtime.registry().handler(&args.handler).is_none() {
        let near = runtime.registry().near_matches(&args.handler);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {})", near.join(", "))
        };
        return Err(BadInput(format!("unknown handler {:?}{hint}", args.handler)).into());
    }
    let report = runtime
        .run(JobInput::adhoc(&args.handler, &args.payload))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report.outcome {
            Outcome::Success { result } => println!("result:   {result}"),
            other => println!("error:    {}", other.message()),
        }
        println!("outcome:  {}", report.outcome.kind());
        println!("fuel:     {}", report.fuel_used);
        println!("duration: {:.3} ms", report.duration.as_secs_f64() * 1000.0);
        if !report.log.is_empty() {
            println!("log:\n{}", report.log.trim_end());
        }
    }
    Ok(if report.outcome.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

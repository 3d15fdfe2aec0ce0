//! `taskhost schedule next | list | add | remove | enable | disable | run`.
//! Management commands write to the store (or, with `--url`, go through a
//! host's API); a running host picks a change up within its refresh period
//! (`scheduler.refresh`, default 5 s).

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::json;

use super::BadInput;
use super::remote::{Remote, encode};
use crate::config::Config;
use crate::scheduler::{ScheduleDef, ScheduleInfo, SchedulerError, missed_text};
use crate::services::Services;

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Print the next fire times of an expression, one RFC 3339 time per line.
    Next {
        /// A cron expression (5 or 6 fields), `@daily`…, `every 5m`, or `at <rfc3339>`.
        expr: String,
        #[arg(long, short = 'n', default_value_t = 5)]
        count: usize,
        /// Start from this instant instead of now (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// IANA time zone the expression is read in (default UTC).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Every schedule with its next fire time.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Register a schedule (kept in the store; survives restarts).
    Add(AddArgs),
    Remove {
        name: String,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    /// Enqueue the schedule's job now (counts for its overlap policy).
    Run {
        name: String,
    },
}

#[derive(Args)]
pub struct AddArgs {
    name: String,
    /// The schedule expression, e.g. '*/15 * * * *' or 'every 30s'.
    expr: String,
    handler: String,
    #[arg(long, short, default_value = "{}")]
    payload: String,
    #[arg(long)]
    tz: Option<String>,
    #[arg(long, short)]
    queue: Option<String>,
    #[arg(long)]
    priority: Option<String>,
    /// skip (default) or catch-up-once.
    #[arg(long)]
    missed: Option<String>,
    /// allow (default) or skip.
    #[arg(long)]
    overlap: Option<String>,
    /// Register it disabled.
    #[arg(long)]
    disabled: bool,
}

/// The definition the arguments describe; bad values are refused here.
fn definition(a: AddArgs) -> Result<ScheduleDef, BadInput> {
    let mut def = ScheduleDef::new(a.name, a.expr, a.handler);
    def.payload = serde_json::from_str(&a.payload)
        .map_err(|e| BadInput(format!("--payload is not valid JSON: {e}")))?;
    def.timezone = a.tz;
    if let Some(q) = a.queue {
        def.queue = q;
    }
    if let Some(p) = a.priority {
        def.priority = p.parse().map_err(BadInput)?;
    }
    if let Some(m) = a.missed {
        def.missed = missed_text::parse(&m).map_err(BadInput)?;
    }
    if let Some(o) = a.overlap {
        def.overlap = serde_json::from_value(serde_json::Value::String(o.clone()))
            .map_err(|_| BadInput(format!("--overlap {o:?}: expected allow or skip")))?;
    }
    def.enabled = !a.disabled;
    Ok(def)
}

fn print_list(list: &[ScheduleInfo], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<16} {:<20} {:<8} NEXT FIRE",
        "NAME", "SCHEDULE", "ZONE", "HANDLER", "ENABLED"
    );
    for info in list {
        let s = &info.schedule;
        let next = info
            .next_fire
            .map(|t| t.to_rfc3339())
            .or_else(|| info.problem.clone())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<20} {:<16} {:<20} {:<8} {next}",
            s.name, s.spec, s.timezone, s.handler, s.enabled
        );
    }
    Ok(())
}

fn print_added(info: &ScheduleInfo) {
    let next = info
        .next_fire
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "-".into());
    println!("{} added; next fire {next}", info.schedule.name);
}

pub async fn execute(
    config: impl FnOnce() -> anyhow::Result<Arc<Config>>,
    cmd: ScheduleCommand,
) -> anyhow::Result<ExitCode> {
    if let ScheduleCommand::Next {
        expr,
        count,
        from,
        tz,
    } = cmd
    {
        return next(&expr, count, from, tz);
    }
    let services = Services::open(config()?).await?;
    let scheduler = services.scheduler(&super::serve::host_id());
    let user_error = |e: SchedulerError| -> anyhow::Error {
        match e {
            SchedulerError::Store(e) => e.into(),
            e => BadInput(e.to_string()).into(),
        }
    };
    match cmd {
        ScheduleCommand::Next { .. } => unreachable!("handled above"),
        ScheduleCommand::List { json } => {
            print_list(&scheduler.list().await.map_err(user_error)?, json)?
        }
        ScheduleCommand::Add(args) => {
            print_added(&scheduler.add(definition(args)?).await.map_err(user_error)?)
        }
        ScheduleCommand::Remove { name } => {
            scheduler.remove(&name).await.map_err(user_error)?;
            println!("{name} removed");
        }
        ScheduleCommand::Enable { name } => {
            scheduler.enable(&name).await.map_err(user_error)?;
            println!("{name} enabled");
        }
        ScheduleCommand::Disable { name } => {
            scheduler.disable(&name).await.map_err(user_error)?;
            println!("{name} disabled");
        }
        ScheduleCommand::Run { name } => {
            println!("{}", scheduler.run_now(&name).await.map_err(user_error)?)
        }
    }
    services.store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// The same commands through a host's API.
pub async fn execute_remote(remote: &Remote, cmd: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let path = |name: &str, verb: &str| format!("/api/v1/schedules/{}{verb}", encode(name));
    match cmd {
        ScheduleCommand::Next {
            expr,
            count,
            from,
            tz,
        } => return next(&expr, count, from, tz),
        ScheduleCommand::List { json } => print_list(
            &remote.get::<Vec<ScheduleInfo>>("/api/v1/schedules").await?,
            json,
        )?,
        ScheduleCommand::Add(args) => {
            let def = serde_json::to_value(definition(args)?)?;
            print_added(&remote.post("/api/v1/schedules", &def).await?);
        }
        ScheduleCommand::Remove { name } => {
            remote.delete::<serde_json::Value>(&path(&name, "")).await?;
            println!("{name} removed");
        }
        ScheduleCommand::Enable { name } => {
            remote
                .post::<serde_json::Value>(&path(&name, "/enable"), &json!({}))
                .await?;
            println!("{name} enabled");
        }
        ScheduleCommand::Disable { name } => {
            remote
                .post::<serde_json::Value>(&path(&name, "/disable"), &json!({}))
                .await?;
            println!("{name} disabled");
        }
        ScheduleCommand::Run { name } => {
            let started: serde_json::Value = remote.post(&path(&name, "/run"), &json!({})).await?;
            println!("{}", started["id"].as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn next(
    expr: &str,
    count: usize,
    from: Option<String>,
    tz: Option<String>,
) -> anyhow::Result<ExitCode> {
    let from = match from {
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map_err(|e| BadInput(format!("--from {s:?} is not an RFC 3339 time: {e}")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let fires = crate::schedule::next_fires(expr, tz.as_deref(), from, count)
        .map_err(|e| BadInput(e.to_string()))?;
    for t in fires {
        println!("{}", t.to_rfc3339());
    }
    Ok(ExitCode::SUCCESS)
}

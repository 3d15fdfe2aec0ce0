//! `taskhost schedule next | list | add | remove | enable | disable | run`.
//! Management commands write to the store; a running host picks the change
//! up within its refresh period (`scheduler.refresh`, default 5 s).

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::BadInput;
use crate::config::Config;
use crate::scheduler::{ScheduleDef, SchedulerError, missed_text};
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
    Add {
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
    },
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
            let list = scheduler.list().await.map_err(user_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<24} {:<20} {:<16} {:<20} {:<8} NEXT FIRE",
                    "NAME", "SCHEDULE", "ZONE", "HANDLER", "ENABLED"
                );
                for info in list {
                    let s = &info.schedule;
                    println!(
                        "{:<24} {:<20} {:<16} {:<20} {:<8} {}",
                        s.name,
                        s.spec,
                        s.timezone,
                        s.handler,
                        s.enabled,
                        info.next_fire
                            .map(|t| t.to_rfc3339())
                            .or(info.problem)
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        ScheduleCommand::Add {
            name,
            expr,
            handler,
            payload,
            tz,
            queue,
            priority,
            missed,
            overlap,
            disabled,
        } => {
            let mut def = ScheduleDef::new(name, expr, handler);
            def.payload = serde_json::from_str(&payload)
                .map_err(|e| BadInput(format!("--payload is not valid JSON: {e}")))?;
            def.timezone = tz;
            if let Some(q) = queue {
                def.queue = q;
            }
            if let Some(p) = priority {
                def.priority = p.parse().map_err(BadInput)?;
            }
            if let Some(m) = missed {
                def.missed = missed_text::parse(&m).map_err(BadInput)?;
            }
            if let Some(o) = overlap {
                def.overlap = serde_json::from_value(serde_json::Value::String(o.clone()))
                    .map_err(|_| BadInput(format!("--overlap {o:?}: expected allow or skip")))?;
            }
            def.enabled = !disabled;
            let info = scheduler.add(def).await.map_err(user_error)?;
            println!(
                "{} added; next fire {}",
                info.schedule.name,
                info.next_fire
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into())
            );
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
            let id = scheduler.run_now(&name).await.map_err(user_error)?;
            println!("{id}");
        }
    }
    services.store.close().await?;
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

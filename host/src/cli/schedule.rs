//! `taskhost schedule next '<expr>'`: when would this schedule fire?

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::BadInput;

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
}

pub fn execute(cmd: ScheduleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ScheduleCommand::Next {
            expr,
            count,
            from,
            tz,
        } => {
            let from = match from {
                Some(s) => DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| BadInput(format!("--from {s:?} is not an RFC 3339 time: {e}")))?
                    .with_timezone(&Utc),
                None => Utc::now(),
            };
            let fires = crate::schedule::next_fires(&expr, tz.as_deref(), from, count)
                .map_err(|e| BadInput(e.to_string()))?;
            for t in fires {
                println!("{}", t.to_rfc3339());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

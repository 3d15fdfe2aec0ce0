//! `taskhost bench …`: print the figures the issues ask for.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-job sandbox cost of `hello`, and cold vs cached plugin loading.
    Runtime,
    /// `hello` in Rust, Python and JavaScript: per-job time, compiled size,
    /// memory per instance, jobs/s through the workers.
    Languages,
    /// Store operations per second (enqueue, lease+complete).
    Store,
    /// End to end: enqueue rates, processed jobs/s, idle start latency.
    Workers,
    /// 10,000 schedules: idle CPU and fire lateness.
    Scheduler,
}

pub async fn execute(config: Arc<Config>, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    match cmd {
        BenchCommand::Runtime => print!(
            "{}",
            crate::bench::runtime::run(&config, scratch.path()).await?
        ),
        BenchCommand::Languages => print!(
            "{}",
            crate::bench::languages::run(&config, scratch.path()).await?
        ),
        BenchCommand::Store => print!("{}", crate::bench::store::run(scratch.path()).await?),
        BenchCommand::Scheduler => {
            print!("{}", crate::bench::scheduler::run(scratch.path()).await?)
        }
        BenchCommand::Workers => print!(
            "{}",
            crate::bench::workers::run(&config, scratch.path()).await?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

//! `taskhost bench …`: print the figures the issues ask for.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Per-job sandbox cost of `hello`, and cold vs cached plugin loading.
    Runtime,
}

pub async fn execute(config: Arc<Config>, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    match cmd {
        BenchCommand::Runtime => print!(
            "{}",
            crate::bench::runtime::run(&config, scratch.path()).await?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

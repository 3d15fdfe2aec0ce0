//! `taskhost store backup | compact | check`: maintenance of the embedded
//! store file named by the config (`[host] data` + `[store] path`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::BadInput;
use crate::config::Config;
use crate::store::StoreError;
use crate::store::sqlite::maintenance;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy the store to FILE while hosts keep running (a consistent
    /// snapshot of the last commit; never overwrites FILE).
    Backup { file: PathBuf },
    /// Give free space back to the file system and switch an older file to
    /// incremental reclaiming; hosts' writes wait while it runs.
    Compact,
    /// Check the store for damage, lost commits or a replaced file.
    Check,
}

pub async fn execute(config: Arc<Config>, cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    if config.store.backend == crate::config::StoreBackend::Redis {
        return Err(BadInput(format!(
            "taskhost store backup, compact and check work on the embedded store; this config uses Redis at {} \
             ([store] backend = \"redis\"): back it up with Redis's own tools (BGSAVE, AOF files)",
            config.store_location()
        ))
        .into());
    }
    let path = config.store_path();
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        match cmd {
            StoreCommand::Backup { file } => {
                let report = maintenance::backup(&path, &file).map_err(input_or_failure)?;
                println!(
                    "backed up {} to {}: {} job(s), {} bytes",
                    path.display(),
                    file.display(),
                    report.jobs,
                    report.bytes
                );
            }
            StoreCommand::Compact => {
                let report = maintenance::compact(&path).map_err(input_or_failure)?;
                println!(
                    "compacted {}: {} -> {} bytes",
                    path.display(),
                    report.before,
                    report.after
                );
            }
            StoreCommand::Check => {
                maintenance::check(&path).map_err(input_or_failure)?;
                println!("{}: ok", path.display());
            }
        }
        Ok(())
    })
    .await
    .context("the store command's task failed")?;
    result.map(|()| ExitCode::SUCCESS)
}

/// A refusal of the input (a missing file, an existing backup target) exits
/// 2; anything else (damage, I/O) exits 1.
fn input_or_failure(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid(m) => BadInput(m).into(),
        e => e.into(),
    }
}

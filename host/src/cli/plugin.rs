//! `taskhost plugin list | check <file>`, and against a serving host
//! (`--url`): `plugin deploy <file>` and `plugin rollback <name>`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::Config;
use crate::runtime::Runtime;
use clap::Subcommand;

use super::BadInput;
use super::remote::{Remote, encode};
use crate::store::PluginRelease;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// List the loaded plugins and their handlers.
    List,
    /// Check that one file is a loadable plugin and list its handlers.
    Check { file: PathBuf },
    /// Deploy a component to every host sharing the store of the host at
    /// --url (admin token in TASKHOST_TOKEN); the plugin's name is the
    /// file stem unless --name says otherwise.
    Deploy {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Return a deployed plugin to its previous version on every host
    /// sharing the store of the host at --url.
    Rollback { name: String },
}

/// `plugin deploy` and `plugin rollback` against the host at `--url`.
pub async fn execute_remote(remote: &Remote, cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    let release: PluginRelease = match cmd {
        PluginCommand::Deploy { file, name } => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .ok_or_else(|| BadInput(format!("{} is not a file", file.display())))?,
            };
            let bytes = std::fs::read(&file)
                .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
            remote
                .post_bytes(
                    &format!("/api/v1/plugins?name={}", encode(&name)),
                    bytes,
                    "application/wasm",
                )
                .await?
        }
        PluginCommand::Rollback { name } => {
            remote
                .post(
                    &format!("/api/v1/plugins/{}/rollback", encode(&name)),
                    &serde_json::Value::Null,
                )
                .await?
        }
        PluginCommand::List | PluginCommand::Check { .. } => {
            return Err(BadInput(
                "plugin list and plugin check work on this machine's files; drop --url".into(),
            )
            .into());
        }
    };
    println!(
        "{}  sha256:{}  deployed {}",
        release.name,
        release.digest,
        release.deployed_at.to_rfc3339()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn execute(config: Arc<Config>, cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    // `check` loads a folder holding just a copy of the file, with the same
    // settings; what it says names the file given, never the copy.
    let mut staged: Option<(tempfile::TempDir, PathBuf, PathBuf)> = None;
    let config = match &cmd {
        PluginCommand::Deploy { .. } | PluginCommand::Rollback { .. } => {
            return Err(BadInput(
                "plugin deploy and plugin rollback talk to a serving host: give --url (and TASKHOST_TOKEN)".into(),
            )
            .into());
        }
        PluginCommand::List => config,
        PluginCommand::Check { file } => {
            let staging = tempfile::tempdir()?;
            let stem = file
                .file_stem()
                .ok_or_else(|| BadInput(format!("{} is not a file", file.display())))?;
            let copy = staging
                .path()
                .join(format!("{}.wasm", stem.to_string_lossy()));
            std::fs::copy(file, &copy)
                .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
            let mut c = (*config).clone();
            c.host.plugins = staging.path().to_path_buf();
            staged = Some((staging, copy, file.clone()));
            Arc::new(c)
        }
    };
    let as_given = |text: String| match &staged {
        Some((_, copy, file)) => {
            text.replace(&copy.display().to_string(), &file.display().to_string())
        }
        None => text,
    };
    let runtime = Runtime::load(config)
        .await
        .map_err(|e| BadInput(as_given(e.to_string())))?;
    let stats = runtime.registry().stats();
    for plugin in runtime.registry().plugins() {
        println!(
            "{}  {}  sha256:{}  loaded {}",
            plugin.name,
            as_given(plugin.path.display().to_string()),
            &plugin.digest[..16],
            plugin
                .loaded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        for h in runtime
            .registry()
            .handlers()
            .filter(|h| Arc::ptr_eq(&h.plugin, plugin))
        {
            let limits = runtime.limits(h);
            println!(
                "  {:<24} {}  [fuel {}, timeout {:?}, memory {} MiB]",
                h.name,
                h.description,
                limits
                    .fuel
                    .map_or("unlimited".to_string(), |f| f.to_string()),
                limits.timeout,
                limits.memory_bytes >> 20
            );
        }
    }
    eprintln!(
        "{} plugin(s): {} compiled, {} from cache, in {:.1} ms",
        stats.plugins,
        stats.compiled,
        stats.from_cache,
        stats.load_time.as_secs_f64() * 1000.0
    );
    Ok(ExitCode::SUCCESS)
}

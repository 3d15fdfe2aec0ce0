//! Plugins deployed through the shared store, so one upload reaches every
//! host: `POST /api/v1/plugins` checks the component exactly as a hot
//! reload does and stores it (by digest) as the plugin's release in
//! service; each host polls the store's plugin generation and, when it
//! moves, writes the new release into its plugin folder (so a restart
//! starts on it) and puts it in service. A rollback takes the newest
//! release off the stack, and every host goes back to the one before.
//!
//! The store's release wins over the folder for a deployed plugin's name:
//! a host that starts (or a folder that changes) converges on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::runtime::{PluginError, Runtime, component_digest};
use crate::store::{PluginRelease, Store, StoreError};

/// How often a host asks the store whether a plugin was deployed (one
/// small read), besides waking on the store's change signal.
pub const POLL: Duration = Duration::from_millis(500);
/// The longest plugin name.
pub const MAX_NAME: usize = 64;

/// Why a deploy or rollback was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "plugin name {0:?} is not valid: use 1 to {MAX_NAME} letters, digits, '_' or '-' (the file stem, `hello` for hello.wasm)"
    )]
    BadName(String),
    #[error("refused: {0}")]
    Refused(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a plugin name: it becomes a file name in every host's folder.
pub fn check_name(name: &str) -> Result<(), DeployError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match ok {
        true => Ok(()),
        false => Err(DeployError::BadName(name.chars().take(80).collect())),
    }
}

/// Where plugin `name` lives in this host's folder.
fn path_of(runtime: &Runtime, name: &str) -> PathBuf {
    runtime.config().plugin_dir().join(format!("{name}.wasm"))
}

/// Checks `bytes` as plugin `name` on this host (everything a hot reload
/// checks), then stores them as its release in service and puts them in
/// service here. The other hosts follow within [`POLL`].
pub async fn deploy(
    runtime: &Runtime,
    store: &dyn Store,
    name: &str,
    bytes: Vec<u8>,
) -> Result<PluginRelease, DeployError> {
    check_name(name)?;
    let path = path_of(runtime, name);
    runtime.check_bytes(&path, bytes.clone()).await?;
    let digest = component_digest(&bytes);
    keep_folder_version(runtime, store, name).await?;
    let release = store.put_plugin(name, &digest, bytes.clone()).await?;
    install(runtime, &path, bytes).await;
    tracing::info!(plugin = %name, digest = %digest, "plugin deployed through the store");
    Ok(release)
}

/// On a plugin's first deploy, stores the version this host runs from its
/// folder as the release before it, so a rollback has somewhere to go.
async fn keep_folder_version(
    runtime: &Runtime,
    store: &dyn Store,
    name: &str,
) -> Result<(), StoreError> {
    let Some(running) = runtime.registry().plugin(name).cloned() else {
        return Ok(());
    };
    let deployed = store.plugin_releases().await?;
    if deployed.releases.iter().any(|r| r.name == name) {
        return Ok(());
    }
    // Only the very bytes in service (the file may have changed since).
    match std::fs::read(&running.path) {
        Ok(bytes) if component_digest(&bytes) == running.digest => {
            store.put_plugin(name, &running.digest, bytes).await?;
        }
        _ => {
            tracing::warn!(plugin = %name, "the folder's file is not the version in service; a rollback of this deploy will have no earlier version")
        }
    }
    Ok(())
}

/// Writes the release into the folder (so a restart starts on it) and puts
/// it in service. A folder this host cannot write only costs that.
async fn install(runtime: &Runtime, path: &Path, bytes: Vec<u8>) {
    if let Err(e) = write_atomically(path, &bytes) {
        tracing::warn!(file = %path.display(), "cannot write the deployed plugin into the folder (it is in service, but a restart loads the folder's file until the store is read): {e}");
    }
    if let Err(e) = runtime.load_bytes(path, bytes).await {
        tracing::error!("deployed plugin refused on this host, the version in service stays: {e}");
    }
}

/// A temporary file (hidden, so the watcher ignores it) renamed into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Puts in service every release of the store that differs from what this
/// host runs. Answers the generation the releases were read at.
pub async fn converge(runtime: &Runtime, store: &dyn Store) -> Result<u64, StoreError> {
    let releases = store.plugin_releases().await?;
    for release in &releases.releases {
        let running = runtime
            .registry()
            .plugin(&release.name)
            .map(|p| p.digest.clone());
        if running.as_deref() == Some(release.digest.as_str()) || check_name(&release.name).is_err()
        {
            continue;
        }
        let Some(bytes) = store.plugin_blob(&release.digest).await? else {
            tracing::error!(plugin = %release.name, digest = %release.digest, "the store lists a release whose component it does not hold");
            continue;
        };
        install(runtime, &path_of(runtime, &release.name), bytes).await;
    }
    Ok(releases.generation)
}

/// Follows the store's releases until `shutdown` turns true: at start, and
/// whenever the plugin generation moves.
pub fn follow(
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = store.changes();
        let mut seen: Option<u64> = None;
        loop {
            match store.plugin_generation().await {
                Ok(g) if Some(g) == seen => {}
                Ok(_) => match converge(&runtime, store.as_ref()).await {
                    Ok(g) => seen = Some(g),
                    Err(e) => tracing::warn!("cannot read the deployed plugins: {e}"),
                },
                Err(e) => tracing::warn!("cannot read the plugin generation: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = changes.changed() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    })
}

/// Rolls plugin `name` back to its previous release everywhere: this host
/// at once, the others within [`POLL`].
pub async fn rollback(
    runtime: &Runtime,
    store: &dyn Store,
    name: &str,
) -> Result<PluginRelease, DeployError> {
    check_name(name)?;
    let release = store.rollback_plugin(name).await?;
    converge(runtime, store).await?;
    tracing::info!(plugin = %name, digest = %release.digest, "plugin rolled back");
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_plain_file_stems_are_refused() {
        for ok in ["hello", "telegram_bot", "db-probe", "A1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../etc", "a/b", "a.b", "with space", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}

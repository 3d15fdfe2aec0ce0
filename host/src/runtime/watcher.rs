//! Watches the plugin folder and reloads what changes in it, so dropping a
//! `.wasm` file in (or replacing one) needs no restart.
//!
//! A file is loaded once it has stood still (the same size and modification
//! time for [`QUIET`]) and its sections run exactly to its end. A copy in
//! progress keeps changing, or ends inside a section, so it is not loaded
//! half-written; when it is complete it is loaded once. (A file that stays
//! cut short for [`PATIENCE`] is tried, and refused as what it is.) A file that
//! fails the checks is refused with a log line naming it and why, and the
//! version in service stays. A deleted file takes its plugin out of service
//! only after `host.unload_grace`, and not at all if it comes back (a
//! delete-then-copy deploy never drops a job).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::reload::plugin_name;
use super::{PluginError, Runtime};

/// How long a file must stand still before it is loaded.
pub const QUIET: Duration = Duration::from_millis(400);
/// How long a file that stands still but ends inside a section is waited for.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How often files waiting to stand still are looked at.
const TICK: Duration = Duration::from_millis(100);

/// Why the folder cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch the plugin folder {path}: {source}")]
pub struct WatchError {
    path: PathBuf,
    source: notify::Error,
}

/// What the watcher tracks between looks.
#[derive(Default)]
struct Folder {
    /// Files seen changing, not yet loaded.
    settling: HashMap<PathBuf, Settling>,
    /// Plugins whose file is gone, and when their grace ends.
    leaving: HashMap<String, (PathBuf, Instant)>,
    /// Files refused because another plugin provides one of their
    /// handlers: tried again after the next change of the table (the other
    /// plugin renamed, deleted or changed).
    clashing: HashSet<PathBuf>,
}

/// A file seen changing, not yet loaded.
struct Settling {
    /// Size and modification time at the last look.
    seen: Option<(u64, Option<SystemTime>)>,
    since: Instant,
}

/// Starts watching the runtime's plugin folder until `shutdown` turns true.
pub fn spawn(
    runtime: Arc<Runtime>,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    let dir = runtime.config().plugin_dir();
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            // Opening and reading a file (as the load itself does) is no
            // change; treating it as one would read it again for ever.
            Ok(event)
                if matches!(
                    event.kind,
                    notify::EventKind::Access(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                ) => {}
            Ok(event) => {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
            Err(e) => tracing::warn!("plugin folder watch: {e}"),
        })
        .map_err(|source| WatchError {
            path: dir.clone(),
            source,
        })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            path: dir.clone(),
            source,
        })?;
    tracing::info!(folder = %dir.display(), "watching the plugin folder for changes");
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        let mut folder = Folder::default();
        // A change between the start's load and the watch would be missed:
        // look at every file once (an unchanged one is a no-op).
        if let Ok(files) = super::registry::wasm_files(&dir) {
            for f in files {
                folder.settling.insert(f, Settling::new());
            }
        }
        loop {
            let busy = !folder.settling.is_empty() || !folder.leaving.is_empty();
            tokio::select! {
                path = rx.recv() => match path {
                    Some(path) if is_plugin_file(&path) => {
                        tracing::debug!(file = %path.display(), "plugin file changed");
                        folder.settling.insert(path, Settling::new());
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep(TICK), if busy => {
                    look(&runtime, grace, &mut folder).await;
                }
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
        }
    }))
}

impl Settling {
    fn new() -> Settling {
        Settling {
            seen: None,
            since: Instant::now(),
        }
    }
}

/// A `.wasm` file not hidden: temporary files of atomic writes
/// (`.hello.wasm.123.tmp`, `.hello.wasm`) are not plugins.
fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "wasm")
        && path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}

/// Loads the files that stood still long enough, notes deleted ones, and
/// takes out of service the plugins whose grace is over.
async fn look(runtime: &Runtime, grace: Duration, folder: &mut Folder) {
    let Folder {
        settling,
        leaving,
        clashing,
    } = folder;
    let now = Instant::now();
    let mut changed = false;
    let mut ready = Vec::new();
    settling.retain(|path, s| {
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            _ => {
                let name = plugin_name(path);
                if runtime.registry().plugin(&name).is_some() && !leaving.contains_key(&name) {
                    tracing::warn!(
                        plugin = %name,
                        file = %path.display(),
                        "plugin file removed; its handlers stop taking jobs in {grace:?} unless it comes back"
                    );
                    leaving.insert(name, (path.clone(), now + grace));
                }
                return false;
            }
        };
        let stamp = (meta.len(), meta.modified().ok());
        if s.seen != Some(stamp) {
            s.seen = Some(stamp);
            s.since = now;
            return true;
        }
        let still = now.duration_since(s.since);
        if still < QUIET {
            return true;
        }
        let Ok(bytes) = std::fs::read(path) else {
            return true;
        };
        if !sections_complete(&bytes) && still < PATIENCE {
            return true;
        }
        ready.push((path.clone(), bytes));
        false
    });
    for (path, bytes) in ready {
        leaving.remove(&plugin_name(&path));
        match runtime.load_bytes(&path, bytes).await {
            Ok(super::Loaded::Replaced { .. }) => changed = true,
            Ok(super::Loaded::Unchanged { .. }) => {}
            Err(e) => {
                if matches!(e, PluginError::DuplicateHandler { .. }) {
                    clashing.insert(path.clone());
                }
                tracing::error!(
                    file = %path.display(),
                    "plugin refused, the version in service (if any) stays: {e}"
                )
            }
        }
    }
    let due: Vec<String> = leaving
        .iter()
        .filter(|(_, (_, at))| *at <= now)
        .map(|(name, _)| name.clone())
        .collect();
    for name in due {
        let Some((path, _)) = leaving.remove(&name) else {
            continue;
        };
        if path.is_file() {
            continue;
        }
        changed |= runtime.unload(&name).await;
    }
    if changed {
        for path in clashing.drain() {
            settling.entry(path).or_insert_with(Settling::new);
        }
    }
}

/// Whether a WebAssembly binary's top-level sections (an id byte, a LEB128
/// length, that many bytes) end exactly at its end: a cut-short copy ends
/// inside one. Says nothing of what the sections hold (the load checks that).
pub fn sections_complete(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        // Empty or a few bytes: a copy that has just begun.
        return false;
    }
    if &bytes[..4] != b"\0asm" {
        // Not wasm at all: let the load say so rather than wait.
        return true;
    }
    let mut at = 8;
    while at < bytes.len() {
        at += 1; // section id
        let mut size: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&b) = bytes.get(at) else {
                return false;
            };
            at += 1;
            if shift < 64 {
                size |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let Some(end) = usize::try_from(size).ok().and_then(|s| at.checked_add(s)) else {
            return false;
        };
        if end > bytes.len() {
            return false;
        }
        at = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_short_binary_is_incomplete() {
        // Header, then a custom section (id 0) of 3 bytes.
        let whole = b"\0asm\x0d\0\x01\0\x00\x03abc".to_vec();
        assert!(sections_complete(&whole));
        for cut in 0..whole.len() {
            if cut == 8 {
                continue; // a bare header has no section to be inside
            }
            assert!(!sections_complete(&whole[..cut]), "cut at {cut}");
        }
        assert!(sections_complete(b"not wasm at all"));
        assert!(is_plugin_file(Path::new("/p/hello.wasm")));
        assert!(!is_plugin_file(Path::new("/p/.hello.wasm")));
        assert!(!is_plugin_file(Path::new("/p/hello.wasm.tmp")));
    }
}

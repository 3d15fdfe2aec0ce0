//! The plugins a host has loaded and the handlers they provide.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::capabilities::bindings::PluginPre;
use crate::config::PluginGrants;

use super::state::JobState;

/// What a plugin declared about a handler (the config may override it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerDefaults {
    pub max_attempts: Option<u32>,
    pub fuel: Option<u64>,
    pub timeout: Option<Duration>,
}

/// One loaded `.wasm` component, compiled and pre-linked.
pub struct Plugin {
    /// The file stem: `hello` for `hello.wasm`.
    pub name: Arc<str>,
    pub path: PathBuf,
    /// sha256 of the file, hex.
    pub digest: String,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// What the config grants this plugin.
    pub grants: Arc<PluginGrants>,
    /// When this version went into service on this host.
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub(crate) pre: PluginPre<JobState>,
}

/// One handler and the plugin that provides it.
#[derive(Clone)]
pub struct HandlerEntry {
    pub name: String,
    pub description: String,
    pub defaults: HandlerDefaults,
    pub plugin: Arc<Plugin>,
}

/// Why a plugin file was refused; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WebAssembly file (no \\0asm header)")]
    NotWasm { path: PathBuf },
    #[error(
        "{path}: a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule { path: PathBuf },
    #[error("{path}: cannot compile: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("{path}: does not implement the taskhost:plugin@0.1.x world: {message}")]
    WrongWorld { path: PathBuf, message: String },
    #[error(
        "{path}: built against taskhost:plugin@{found}, a version this host does not speak; it speaks {speaks}. Rebuild the plugin against this host's wit/ (or upgrade the host)"
    )]
    WitVersion {
        path: PathBuf,
        found: String,
        speaks: String,
    },
    #[error("{path}: its `handlers` export failed: {message}")]
    Describe { path: PathBuf, message: String },
    #[error("{path}: declares no handlers")]
    NoHandlers { path: PathBuf },
    #[error("{path}: refused handler declaration: {message}")]
    BadDeclaration { path: PathBuf, message: String },
    #[error("{path}: handler {handler:?} is already provided by {other}")]
    DuplicateHandler {
        path: PathBuf,
        handler: String,
        other: PathBuf,
    },
}

/// The most handlers one plugin may declare.
pub const MAX_HANDLERS: usize = 1_000;
/// The longest handler name, in bytes.
pub const MAX_HANDLER_NAME: usize = 128;
/// The longest handler description, in bytes.
pub const MAX_DESCRIPTION: usize = 4_096;

/// Checks what a plugin's `handlers` export declared before any of it is
/// used: not empty, at most [`MAX_HANDLERS`], names of 1 to
/// [`MAX_HANDLER_NAME`] bytes without control characters (NUL, newline),
/// descriptions of at most [`MAX_DESCRIPTION`] bytes, no name twice. The
/// error quotes a name only cut and escaped.
pub fn check_declarations(
    path: &Path,
    infos: &[crate::capabilities::bindings::taskhost::plugin::types::HandlerInfo],
) -> Result<(), PluginError> {
    let refuse = |message: String| PluginError::BadDeclaration {
        path: path.to_path_buf(),
        message,
    };
    let shown = |name: &str| format!("{:?}", super::text::clip(name, 64));
    if infos.is_empty() {
        return Err(PluginError::NoHandlers {
            path: path.to_path_buf(),
        });
    }
    if infos.len() > MAX_HANDLERS {
        return Err(refuse(format!(
            "{} handlers declared, at most {MAX_HANDLERS} are allowed",
            infos.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for info in infos {
        let name = &info.name;
        if name.is_empty() {
            return Err(refuse("a handler name is empty".into()));
        }
        if name.len() > MAX_HANDLER_NAME {
            return Err(refuse(format!(
                "handler name {} is {} bytes long, at most {MAX_HANDLER_NAME} are allowed",
                shown(name),
                name.len()
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(refuse(format!(
                "handler name {} holds a control character (NUL, newline, ...)",
                shown(name)
            )));
        }
        if info.description.len() > MAX_DESCRIPTION {
            return Err(refuse(format!(
                "the description of handler {} is {} bytes long, at most {MAX_DESCRIPTION} are allowed",
                shown(name),
                info.description.len()
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(refuse(format!("handler {} is declared twice", shown(name))));
        }
    }
    Ok(())
}

/// Counts from one load of the plugin folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub plugins: usize,
    pub compiled: usize,
    pub from_cache: usize,
    pub load_time: Duration,
}

/// A plugin whose file was deleted and whose grace has passed: its
/// handlers take no work here until it comes back, and their pending jobs
/// wait (the stats list them, so a stuck queue explains itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GonePlugin {
    pub name: String,
    /// The digest that was in service.
    pub digest: String,
    pub handlers: Vec<String>,
    pub since: chrono::DateTime<chrono::Utc>,
}

/// The handler table: handler name → plugin. A value: a reload builds a
/// new one and the runtime swaps it in whole, so a job that took a
/// snapshot runs on the version it started with.
#[derive(Default, Clone)]
pub struct Registry {
    plugins: Vec<Arc<Plugin>>,
    handlers: BTreeMap<String, HandlerEntry>,
    stats: LoadStats,
    gone: BTreeMap<String, GonePlugin>,
}

impl Registry {
    pub fn handler(&self, name: &str) -> Option<&HandlerEntry> {
        self.handlers.get(name)
    }

    pub fn handlers(&self) -> impl Iterator<Item = &HandlerEntry> {
        self.handlers.values()
    }

    pub fn handler_names(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    pub fn stats(&self) -> LoadStats {
        self.stats
    }

    /// The loaded plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.plugins.iter().find(|p| &*p.name == name)
    }

    /// The handlers `plugin` provides, by name.
    pub fn handlers_of(&self, plugin: &Arc<Plugin>) -> Vec<String> {
        self.handlers
            .values()
            .filter(|h| Arc::ptr_eq(&h.plugin, plugin))
            .map(|h| h.name.clone())
            .collect()
    }

    /// Plugins whose file went away: their handlers wait for them.
    pub fn gone(&self) -> impl Iterator<Item = &GonePlugin> {
        self.gone.values()
    }

    /// This table with `plugin` in place of the plugin of the same name (if
    /// any). Refused, changing nothing, when one of its handlers belongs to
    /// another plugin.
    pub(crate) fn replaced(
        &self,
        plugin: Arc<Plugin>,
        handlers: Vec<HandlerEntry>,
    ) -> Result<Registry, PluginError> {
        let mut next = self.without(&plugin.name);
        next.gone.remove(&*plugin.name);
        next.insert(plugin, handlers)?;
        // A gone plugin whose handlers are all served again (its file came
        // back under another name) no longer holds jobs up.
        let served = &next.handlers;
        next.gone
            .retain(|_, g| g.handlers.iter().any(|h| !served.contains_key(h)));
        Ok(next)
    }

    /// This table without the plugin called `name`, which is remembered as
    /// gone (with its handlers) when `gone` is set.
    pub(crate) fn removed(&self, name: &str) -> Registry {
        let mut next = self.without(name);
        if let Some(p) = self.plugin(name) {
            next.gone.insert(
                name.to_string(),
                GonePlugin {
                    name: name.to_string(),
                    digest: p.digest.clone(),
                    handlers: self.handlers_of(p),
                    since: chrono::Utc::now(),
                },
            );
        }
        next
    }

    fn without(&self, name: &str) -> Registry {
        let mut next = self.clone();
        if let Some(old) = self.plugin(name) {
            next.plugins.retain(|p| !Arc::ptr_eq(p, old));
            next.handlers.retain(|_, h| !Arc::ptr_eq(&h.plugin, old));
            next.stats.plugins = next.plugins.len();
        }
        next
    }

    /// Handler names close to `name`, for "did you mean" answers.
    pub fn near_matches(&self, name: &str) -> Vec<String> {
        crate::enqueue::near_matches(&self.handler_names(), name)
    }

    pub(crate) fn insert(
        &mut self,
        plugin: Arc<Plugin>,
        handlers: Vec<HandlerEntry>,
    ) -> Result<(), PluginError> {
        for h in &handlers {
            if let Some(existing) = self.handlers.get(&h.name) {
                return Err(PluginError::DuplicateHandler {
                    path: plugin.path.clone(),
                    handler: h.name.clone(),
                    other: existing.plugin.path.clone(),
                });
            }
        }
        for h in handlers {
            self.handlers.insert(h.name.clone(), h);
        }
        self.stats.plugins += 1;
        if plugin.from_cache {
            self.stats.from_cache += 1;
        } else {
            self.stats.compiled += 1;
        }
        self.plugins.push(plugin);
        Ok(())
    }

    pub(crate) fn set_load_time(&mut self, d: Duration) {
        self.stats.load_time = d;
    }
}

/// The `.wasm` files of a folder, sorted so that load order (and so which
/// of two duplicates is refused) does not depend on the file system.
pub fn wasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads a plugin file and checks it is a component before compiling.
pub fn read_component(path: &Path) -> Result<(Vec<u8>, String), PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let digest = check_component(path, &bytes)?;
    Ok((bytes, digest))
}

/// Checks that `bytes` (the file `path`) are a component, not a core
/// module or anything else; answers their digest.
pub fn check_component(path: &Path, bytes: &[u8]) -> Result<String, PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Bytes 4..8: a core module is version 1, layer 0; a component has layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(component_digest(bytes))
}

/// A plugin version's name: the sha256 of its file, hex.
pub fn component_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_components_are_refused_before_compiling() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.wasm");
        std::fs::write(&text, b"hello world, not wasm").unwrap();
        assert!(matches!(
            read_component(&text),
            Err(PluginError::NotWasm { .. })
        ));
        let core = dir.path().join("core.wasm");
        std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
        let err = read_component(&core).unwrap_err();
        assert!(matches!(err, PluginError::CoreModule { .. }));
        assert!(err.to_string().contains("core.wasm"), "{err}");
    }
}

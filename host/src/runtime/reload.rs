//! Changing the handler table of a running host: a plugin file added,
//! changed or deleted. A new version is compiled and checked off the job
//! path exactly as at start (component, WIT version, world, its `handlers`
//! export, no handler taken from another plugin); only then does the new
//! table replace the old one, in one swap. Jobs already running hold the
//! old plugin and finish on it. A refused file changes nothing.

use std::path::Path;
use std::sync::Arc;

use super::registry::{self, HandlerEntry, Plugin, PluginError, Registry};
use super::{Runtime, prepare};

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// This version was already in service; nothing changed.
    Unchanged { digest: String },
    /// The version went into service, replacing `previous` if there was one.
    Replaced {
        digest: String,
        previous: Option<String>,
    },
}

impl Loaded {
    pub fn digest(&self) -> &str {
        match self {
            Loaded::Unchanged { digest } | Loaded::Replaced { digest, .. } => digest,
        }
    }
}

impl Runtime {
    /// Checks `bytes` as the plugin file `path` without putting it in
    /// service: everything a load checks, against the table in service.
    /// Answers the plugin and its handlers, ready to install.
    pub async fn check_bytes(
        &self,
        path: &Path,
        bytes: Vec<u8>,
    ) -> Result<(Arc<Plugin>, Vec<HandlerEntry>), PluginError> {
        let digest = registry::check_component(path, &bytes)?;
        let (engine, cache, linker) =
            (self.engine.clone(), self.cache.clone(), self.linker.clone());
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let grants = Arc::new(self.config.grants(&stem));
        let owned = path.to_path_buf();
        let plugin = tokio::task::spawn_blocking(move || {
            prepare(&engine, &cache, &linker, &owned, &bytes, digest, grants)
        })
        .await
        .map_err(|e| PluginError::Compile {
            path: path.to_path_buf(),
            message: format!("the compile task failed: {e}"),
        })??;
        let plugin = Arc::new(plugin);
        let handlers = self.describe(&plugin).await?;
        // Checked now so a refusal names the clash; checked again at the swap.
        self.registry().replaced(plugin.clone(), handlers.clone())?;
        Ok((plugin, handlers))
    }

    /// Loads (or reloads) the plugin file at `path` and puts it in service
    /// if it passes every check. The version in service stays when it does
    /// not, and when the file holds the version already in service.
    pub async fn load_file(&self, path: &Path) -> Result<Loaded, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(path, bytes).await
    }

    /// [`Runtime::load_file`] for bytes already read, named as `path`.
    pub async fn load_bytes(&self, path: &Path, bytes: Vec<u8>) -> Result<Loaded, PluginError> {
        let _one_at_a_time = self.reloading.lock().await;
        let digest = registry::check_component(path, &bytes)?;
        let name = plugin_name(path);
        let previous = self.registry().plugin(&name).map(|p| p.digest.clone());
        if previous.as_deref() == Some(digest.as_str()) {
            return Ok(Loaded::Unchanged { digest });
        }
        let (plugin, handlers) = self.check_bytes(path, bytes).await?;
        let current = self.registry();
        let next = current.replaced(plugin, handlers)?;
        self.swap(next);
        tracing::info!(
            plugin = %name,
            digest = %digest,
            previous = previous.as_deref().unwrap_or("none"),
            "plugin version in service"
        );
        Ok(Loaded::Replaced { digest, previous })
    }

    /// Takes the plugin called `name` out of service: its handlers take no
    /// new jobs here (their pending jobs wait) until it is loaded again.
    /// Running jobs finish on it. Answers whether it was loaded.
    pub async fn unload(&self, name: &str) -> bool {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.registry();
        if current.plugin(name).is_none() {
            return false;
        }
        self.swap(current.removed(name));
        tracing::warn!(plugin = %name, "plugin out of service: its file is gone; its handlers' jobs wait until it returns");
        true
    }

    fn swap(&self, next: Registry) {
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        self.generation.send_modify(|g| *g += 1);
    }
}

/// A plugin's name: its file stem, `hello` for `hello.wasm`.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

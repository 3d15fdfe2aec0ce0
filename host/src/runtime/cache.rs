//! Compiled plugins on disk, keyed by the `.wasm` digest and the engine's
//! compatibility hash, so a second start skips compilation and a cache
//! written under other engine settings is never loaded.
//!
//! A cache file is native code the host maps and runs, so it is trusted
//! only when it carries a keyed digest: HMAC-SHA256, under a random key
//! this installation made (`<cache>/key`, mode 0600), of the file's name
//! and content. A file copied over another's name, changed, or written by
//! anyone without the key is not loaded; the plugin is compiled again. The
//! folder is created 0700, and a group- or world-writable one is refused.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::hmac;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The key file's name inside the cache folder.
const KEY_FILE: &str = "key";
/// Bytes of the HMAC-SHA256 tag appended to each cache file.
const TAG_LEN: usize = 32;

/// Why the cache folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "it is writable by {who} (mode {mode:o}); other users could plant native code the host would run. Run `chmod go-w` on it"
    )]
    Writable { who: &'static str, mode: u32 },
    #[error(
        "its key file {path} is {problem}; delete it to make a new one (the cache is then rebuilt)"
    )]
    BadKey { path: PathBuf, problem: String },
}

/// A folder of `<wasm sha256>-<engine hash>.cwasm` files, each ending in
/// its tag.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    key: hmac::Key,
}

impl CompileCache {
    pub fn new(dir: &Path, engine: &Engine) -> Result<CompileCache, CacheError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o022 != 0 {
            let who = if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            };
            return Err(CacheError::Writable {
                who,
                mode: mode & 0o7777,
            });
        }
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &load_or_make_key(dir)?),
        })
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The tag of `bytes` stored under `name`: the name is covered, so a
    /// valid file copied over another plugin's entry does not verify.
    fn tag(&self, name: &str, bytes: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(name.len() as u64).to_le_bytes());
        ctx.update(name.as_bytes());
        ctx.update(bytes);
        ctx.sign()
    }

    /// The compiled code of a cache file whose tag verifies; why not otherwise.
    fn verified(&self, path: &Path) -> Result<Vec<u8>, String> {
        let mut bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        if bytes.len() < TAG_LEN {
            return Err("too short to carry a tag".into());
        }
        let tag = bytes.split_off(bytes.len() - TAG_LEN);
        let expected = self.tag(&file_name(path), &bytes);
        // Compared without an early exit, so timing tells nothing of the tag.
        let diff = expected
            .as_ref()
            .iter()
            .zip(&tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(
                "its tag does not verify (not written by this host for this plugin)".into(),
            );
        }
        Ok(bytes)
    }

    /// Loads the component for `bytes` from the cache, or compiles and
    /// stores it. Returns whether it came from the cache.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(digest);
        if path.is_file() {
            match self.verified(&path) {
                // SAFETY: these very bytes carry a tag under this host's key
                // for this file name, so this host serialized them from
                // this plugin with an engine of the same compatibility hash
                // (it is in the name). They are loaded from memory, so the
                // file cannot change between the check and the load.
                Ok(code) => match unsafe { Component::deserialize(engine, &code) } {
                    Ok(component) => return Ok((component, true)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "ignoring unreadable compiled plugin: {e}")
                    }
                },
                Err(why) => {
                    tracing::warn!(path = %path.display(), "ignoring compiled plugin: {why}; compiling again")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component.serialize()?) {
            tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {e}");
        }
        Ok((component, false))
    }

    /// Writes the code and its tag through a unique temporary file (0600)
    /// and renames it into place: several hosts may start at once.
    fn store(&self, path: &Path, code: &[u8]) -> std::io::Result<()> {
        let name = file_name(path);
        let tmp = unique_tmp(&self.dir, &name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(code)?;
        file.write_all(self.tag(&name, code).as_ref())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads the installation's key, or makes one (32 random bytes, 0600) on
/// first use. A key others may read or write is refused: with it they could
/// sign code. A key file of the wrong size is replaced by a new key (every
/// entry then fails to verify and is compiled again).
fn load_or_make_key(dir: &Path) -> Result<Vec<u8>, CacheError> {
    let path = dir.join(KEY_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode();
            if !meta.is_file() {
                return Err(CacheError::BadKey {
                    path,
                    problem: "not a regular file".into(),
                });
            }
            if mode & 0o077 != 0 {
                return Err(CacheError::BadKey {
                    path,
                    problem: format!("readable or writable by others (mode {:o})", mode & 0o7777),
                });
            }
            let key = std::fs::read(&path)?;
            if key.len() == 32 {
                return Ok(key);
            }
            tracing::warn!(path = %path.display(), "cache key file is damaged; making a new key (the cache is rebuilt)");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // Written under a unique name, then linked into place only if no key
    // is there yet: of two hosts starting at once, one key wins and both
    // use it. A damaged key is replaced by rename.
    let key: [u8; 32] = rand::random();
    let tmp = unique_tmp(dir, KEY_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&key)?;
    file.sync_all()?;
    drop(file);
    let placed = if path.exists() {
        std::fs::rename(&tmp, &path)
    } else {
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        linked
    };
    match placed {
        Ok(()) => Ok(key.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_make_key(dir),
        Err(e) => Err(e.into()),
    }
}

/// A temporary file name in `dir` no other writer (thread or process) uses.
fn unique_tmp(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_folder_or_an_exposed_key_is_refused() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        CompileCache::new(&cache, &engine).unwrap();
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let key_mode = std::fs::metadata(cache.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);

        std::fs::set_permissions(cache.join(KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = CompileCache::new(&cache, &engine)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("key file") && e.contains("644"), "{e}");

        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = CompileCache::new(&cache, &engine)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("writable by everyone"), "{e}");
    }
}

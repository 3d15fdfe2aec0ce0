//! Python virtualenvs under `target/`, created once and reused across runs,
//! for the tests that run Python tools (Schemathesis) or Python code (the
//! client library's pytest suite). Needs `python3` with `venv`
//! (`python3-venv` on Debian; `.ci/run` installs it) and PyPI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Where the test virtualenvs live: next to the built plugins in `target/`.
fn venv_root() -> PathBuf {
    crate::support::plugin_dir()
        .parent()
        .expect("plugin dir has a parent")
        .to_path_buf()
}

/// The virtualenv `target/<name>`, made ready once per test process: when
/// `ready` (a Python snippet run by its interpreter) does not exit 0, the
/// venv is created (if missing) and `pip install <install…>` runs in it.
/// Returns the venv's folder. Tests sharing a venv wait for each other.
pub fn venv(name: &str, ready: &str, install: &[&str]) -> PathBuf {
    static READY: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut done = READY.lock().unwrap_or_else(|e| e.into_inner());
    let done = done.get_or_insert_with(HashMap::new);
    if let Some(dir) = done.get(name) {
        return dir.clone();
    }
    let dir = venv_root().join(name);
    if !is_ready(&dir, ready) {
        let created = dir.join("bin").join("python").exists()
            || Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            created,
            "cannot create the virtualenv {} (is python3-venv installed?)",
            dir.display()
        );
        let installed = Command::new(bin(&dir, "pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(install)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "cannot pip install {install:?} into {}",
            dir.display()
        );
        assert!(
            is_ready(&dir, ready),
            "after pip install {install:?}, {} still fails the check {ready:?}",
            dir.display()
        );
    }
    done.insert(name.to_owned(), dir.clone());
    dir
}

fn is_ready(dir: &Path, ready: &str) -> bool {
    Command::new(bin(dir, "python"))
        .args(["-c", ready])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A command installed in a virtualenv.
pub fn bin(venv: &Path, command: &str) -> PathBuf {
    venv.join("bin").join(command)
}

//! Plugins in Python and JavaScript, built from `wit/` alone: a folder of
//! `plugins/` with an `app.py` is built with componentize-py, one with an
//! `app.js` with componentize-js. Both tools are installed on first use
//! under `target/polyglot-tools/` (a virtualenv and a `node_modules`), at
//! pinned versions, so a newcomer runs no manual step.
//!
//! The components land in [`polyglot_plugin_dir`], apart from the Rust
//! plugins: each holds a whole interpreter (~12–20 MB), and compiling one
//! with Cranelift costs far more than all Rust plugins together, so only
//! the tests that want them pay for them. The `*-hello` ones are also
//! copied into the example host's folder.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{BuildError, copy_if_changed, example_plugin_dir, is_test_plugin, run};

/// The componentize-py release the Python plugins are built with (PyPI).
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js release the JavaScript plugins are built with (npm).
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The folder the Python and JavaScript components are built into:
/// `<root>/target/polyglot-plugins`.
pub fn polyglot_plugin_dir(root: &Path) -> PathBuf {
    root.join("target").join("polyglot-plugins")
}

/// The language of a plugin folder, by its entry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    JavaScript,
}

impl Lang {
    fn entry(self) -> &'static str {
        match self {
            Lang::Python => "app.py",
            Lang::JavaScript => "app.js",
        }
    }

    /// The folder name prefix of the language's plugins, and its SDK's folder.
    fn sdk(self) -> &'static str {
        match self {
            Lang::Python => "sdk-python",
            Lang::JavaScript => "sdk-js",
        }
    }

    fn hello(self) -> &'static str {
        match self {
            Lang::Python => "py-hello",
            Lang::JavaScript => "js-hello",
        }
    }
}

/// Every Python or JavaScript plugin folder of `<root>/plugins`, by name.
pub fn polyglot_plugins(plugins: &Path) -> Result<Vec<(String, Lang)>, BuildError> {
    let entries = std::fs::read_dir(plugins)
        .map_err(|e| BuildError(format!("cannot read {}: {e}", plugins.display())))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        for lang in [Lang::Python, Lang::JavaScript] {
            if entry.path().join(lang.entry()).is_file() {
                found.push((name.clone(), lang));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The folders a plugin's component is built from: its own, its
/// language's SDK, and, for a test plugin (`*-probe`), its language's
/// hello plugin, whose handlers it carries so the tests compile one
/// component per language instead of two.
fn source_dirs(plugins: &Path, name: &str, lang: Lang) -> Vec<PathBuf> {
    let mut dirs = vec![plugins.join(name), plugins.join(lang.sdk())];
    if is_test_plugin(name) {
        dirs.push(plugins.join(lang.hello()));
    }
    dirs
}

/// Builds the Python and JavaScript plugins into [`polyglot_plugin_dir`],
/// skipping any whose sources, WIT and tool version are unchanged since
/// its last build, and copies the `*-hello` ones into the example folder.
/// With `examples == false` (the tests' build) the `*-hello` plugins are
/// not built: the probes carry their handlers.
pub fn build_polyglot(root: &Path, examples: bool) -> Result<PathBuf, BuildError> {
    let plugins = root.join("plugins");
    let out = polyglot_plugin_dir(root);
    let work = root.join("target").join("polyglot-build");
    for dir in [&out, &work] {
        std::fs::create_dir_all(dir)
            .map_err(|e| BuildError(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut tools = Tools::new(root);
    for (name, lang) in polyglot_plugins(&plugins)? {
        let hello = name.ends_with("-hello");
        if hello && !examples {
            continue;
        }
        let file = format!("{}.wasm", name.replace('-', "_"));
        let built = work.join(&file);
        let stamp = work.join(format!("{file}.inputs"));
        let key = inputs_key(root, &source_dirs(&plugins, &name, lang), lang)?;
        let fresh = built.is_file() && std::fs::read_to_string(&stamp).ok() == Some(key.clone());
        if !fresh {
            tools.build(root, &name, lang, &built)?;
            std::fs::write(&stamp, &key)
                .map_err(|e| BuildError(format!("cannot write {}: {e}", stamp.display())))?;
        }
        if hello {
            let examples = example_plugin_dir(root);
            std::fs::create_dir_all(&examples)
                .map_err(|e| BuildError(format!("cannot create {}: {e}", examples.display())))?;
            copy_if_changed(&built, &examples.join(&file))?;
        } else {
            copy_if_changed(&built, &out.join(&file))?;
        }
    }
    Ok(out)
}

/// Every path whose change must rebuild the polyglot plugins (for build scripts).
pub fn polyglot_sources(root: &Path) -> Vec<PathBuf> {
    let plugins = root.join("plugins");
    let mut paths = Vec::new();
    for lang in [Lang::Python, Lang::JavaScript] {
        paths.push(plugins.join(lang.sdk()));
    }
    if let Ok(found) = polyglot_plugins(&plugins) {
        paths.extend(found.into_iter().map(|(name, _)| plugins.join(name)));
    }
    paths
}

/// A digest of everything a component is built from: the WIT, the source
/// folders' files (names and bytes) and the tool's version.
fn inputs_key(root: &Path, dirs: &[PathBuf], lang: Lang) -> Result<String, BuildError> {
    let mut files = Vec::new();
    collect_files(&root.join("wit"), &mut files)?;
    for dir in dirs {
        collect_files(dir, &mut files)?;
    }
    files.sort();
    let mut h = DefaultHasher::new();
    match lang {
        Lang::Python => COMPONENTIZE_PY.hash(&mut h),
        Lang::JavaScript => COMPONENTIZE_JS.hash(&mut h),
    }
    for file in files {
        file.hash(&mut h);
        std::fs::read(&file)
            .map_err(|e| BuildError(format!("cannot read {}: {e}", file.display())))?
            .hash(&mut h);
    }
    Ok(format!("{:016x}\n", h.finish()))
}

/// The source files under `dir`, skipping caches (`__pycache__`, dot folders).
fn collect_files(dir: &Path, into: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BuildError(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__pycache__" || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, into)?;
        } else {
            into.push(path);
        }
    }
    Ok(())
}

/// The two toolchains, each installed (or found installed) on first need.
struct Tools {
    dir: PathBuf,
    python: Option<PathBuf>,
    js: Option<PathBuf>,
}

impl Tools {
    fn new(root: &Path) -> Tools {
        Tools {
            dir: root.join("target").join("polyglot-tools"),
            python: None,
            js: None,
        }
    }

    fn build(&mut self, root: &Path, name: &str, lang: Lang, out: &Path) -> Result<(), BuildError> {
        let plugins = root.join("plugins");
        let tmp = out.with_extension("wasm.part");
        let mut cmd = match lang {
            Lang::Python => {
                let mut cmd = Command::new(self.componentize_py()?);
                // No `__pycache__` in the source folders.
                cmd.env("PYTHONDONTWRITEBYTECODE", "1")
                    .arg("--wit-path")
                    .arg(root.join("wit"))
                    .args(["--world", "plugin", "componentize"]);
                for dir in source_dirs(&plugins, name, lang) {
                    cmd.arg("--python-path").arg(dir);
                }
                cmd.arg("app").arg("--output").arg(&tmp);
                cmd
            }
            Lang::JavaScript => {
                let mut cmd = Command::new("node");
                // Run from `plugins/`: the entry may import the SDK and
                // other plugins' modules by relative path, and
                // componentize-js resolves them under its working folder.
                // `wasi:http` is not part of the host, so it is left out.
                cmd.current_dir(&plugins)
                    .arg(self.componentize_js()?)
                    .arg(Path::new(name).join(lang.entry()))
                    .arg("--wit")
                    .arg(root.join("wit"))
                    .args(["--world-name", "plugin", "--disable", "http", "fetch-event"])
                    .arg("--out")
                    .arg(&tmp);
                cmd
            }
        };
        eprintln!("building the {lang:?} plugin {name} (a whole interpreter: ~10 s)");
        run(&mut cmd)?;
        std::fs::rename(&tmp, out)
            .map_err(|e| BuildError(format!("cannot write {}: {e}", out.display())))
    }

    /// componentize-py from a virtualenv under `target/`, installed from
    /// PyPI at [`COMPONENTIZE_PY`] when missing or another version.
    fn componentize_py(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(bin) = &self.python {
            return Ok(bin.clone());
        }
        let venv = self.dir.join("venv");
        let bin = venv.join("bin").join("componentize-py");
        let version = |bin: &Path| {
            Command::new(bin)
                .arg("--version")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(COMPONENTIZE_PY))
        };
        if !version(&bin) {
            if !venv.join("bin").join("pip").is_file() {
                run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).map_err(|e| {
                    BuildError(format!(
                        "{e} (is python3-venv installed? .ci/run installs it)"
                    ))
                })?;
            }
            run(Command::new(venv.join("bin").join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]))?;
            if !version(&bin) {
                return Err(BuildError(format!(
                    "{} does not report version {COMPONENTIZE_PY} after installing it",
                    bin.display()
                )));
            }
        }
        self.python = Some(bin.clone());
        Ok(bin)
    }

    /// componentize-js's command-line script from a `node_modules` under
    /// `target/`, installed from npm at [`COMPONENTIZE_JS`] when missing
    /// or another version.
    fn componentize_js(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(script) = &self.js {
            return Ok(script.clone());
        }
        let package = self
            .dir
            .join("node_modules")
            .join("@bytecodealliance")
            .join("componentize-js");
        let installed = std::fs::read_to_string(package.join("package.json"))
            .is_ok_and(|text| text.contains(&format!("\"version\": \"{COMPONENTIZE_JS}\"")));
        if !installed {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| BuildError(format!("cannot create {}: {e}", self.dir.display())))?;
            run(Command::new("npm")
                .args([
                    "install",
                    "--no-save",
                    "--no-package-lock",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                ])
                .arg(&self.dir)
                .arg(format!(
                    "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
                )))
            .map_err(|e| {
                BuildError(format!(
                    "{e} (are node and npm installed? .ci/run installs them)"
                ))
            })?;
        }
        let script = package.join("src").join("cli.js");
        if !script.is_file() {
            return Err(BuildError(format!(
                "{} is missing after npm install",
                script.display()
            )));
        }
        self.js = Some(script.clone());
        Ok(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_folders_are_found_by_entry_file_and_probes_carry_their_hello() {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path();
        for (dir, file) in [
            ("py-hello", "app.py"),
            ("py-probe", "app.py"),
            ("js-hello", "app.js"),
            ("sdk-python", "__init__.py"),
            ("hello", "Cargo.toml"),
        ] {
            std::fs::create_dir_all(plugins.join(dir)).unwrap();
            std::fs::write(plugins.join(dir).join(file), "").unwrap();
        }
        assert_eq!(
            polyglot_plugins(plugins).unwrap(),
            vec![
                ("js-hello".to_string(), Lang::JavaScript),
                ("py-hello".to_string(), Lang::Python),
                ("py-probe".to_string(), Lang::Python),
            ]
        );
        assert_eq!(
            source_dirs(plugins, "py-probe", Lang::Python),
            vec![
                plugins.join("py-probe"),
                plugins.join("sdk-python"),
                plugins.join("py-hello")
            ]
        );
        assert_eq!(
            source_dirs(plugins, "js-hello", Lang::JavaScript),
            vec![plugins.join("js-hello"), plugins.join("sdk-js")]
        );
    }

    #[test]
    fn the_inputs_key_changes_with_a_source_file_and_ignores_caches() {
        let root = tempfile::tempdir().unwrap();
        let (wit, app) = (root.path().join("wit"), root.path().join("app"));
        std::fs::create_dir_all(&wit).unwrap();
        std::fs::create_dir_all(app.join("__pycache__")).unwrap();
        std::fs::write(wit.join("plugin.wit"), "package a:b;").unwrap();
        std::fs::write(app.join("app.py"), "x = 1").unwrap();
        let key = || inputs_key(root.path(), std::slice::from_ref(&app), Lang::Python).unwrap();
        let first = key();
        std::fs::write(app.join("__pycache__").join("app.pyc"), "cache").unwrap();
        assert_eq!(key(), first, "a bytecode cache is not a source");
        std::fs::write(app.join("app.py"), "x = 2").unwrap();
        assert_ne!(key(), first);
        assert_ne!(
            inputs_key(root.path(), std::slice::from_ref(&app), Lang::JavaScript).unwrap(),
            key(),
            "the tool's version is part of the key"
        );
    }
}

//! Builds the plugins for `wasm32-wasip2`, so that neither a newcomer nor CI
//! runs a manual step: the test crate's build script and the `cargo xtask`
//! commands both call [`build_plugins`].

pub mod polyglot;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target every plugin is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Why the plugins could not be built; the message says which command failed.
#[derive(Debug)]
pub struct BuildError(pub(crate) String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// The config `cargo xtask serve` and `cargo xtask host` use unless told
/// otherwise, relative to the workspace root.
pub const EXAMPLE_CONFIG: &str = "examples/taskhost.toml";

/// The folder every built `.wasm` file is copied into (the tests load it):
/// `<root>/target/plugins`.
pub fn plugin_dir(root: &Path) -> PathBuf {
    root.join("target").join("plugins")
}

/// The folder the example host loads: the same plugins without the test
/// probes, `<root>/target/example-plugins`.
pub fn example_plugin_dir(root: &Path) -> PathBuf {
    root.join("target").join("example-plugins")
}

/// `taskhost` arguments with `--config <the example config>` in front,
/// unless they name a config themselves or the environment does
/// (`env_names_config`: `TASKHOST_CONFIG` is set). A config given on the
/// command line replaces the default instead of clashing with it.
pub fn with_example_config(args: Vec<String>, env_names_config: bool) -> Vec<String> {
    let named = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--config" || a == "-c" || a.starts_with("--config="));
    if named || env_names_config {
        return args;
    }
    let mut with = vec!["--config".to_string(), EXAMPLE_CONFIG.to_string()];
    with.extend(args);
    with
}

/// The folder of next versions of plugins, for the reload tests:
/// `<root>/target/plugin-variants`, each file named as the plugin it
/// replaces (`hello.wasm`), so no host loads them unless a test copies one.
pub fn plugin_variant_dir(root: &Path) -> PathBuf {
    root.join("target").join("plugin-variants")
}

/// The plugin a variant crate is the next version of: `hello` for
/// `hello-next`; `None` for a regular plugin.
pub fn variant_of(name: &str) -> Option<&str> {
    name.strip_suffix("-next")
}

/// Whether a plugin crate exists only for the tests: by convention its
/// name ends in `probe` (`probe`, `db-probe`, …), and it misbehaves on
/// purpose, so no example host should load it.
pub fn is_test_plugin(name: &str) -> bool {
    name.ends_with("probe")
}

/// The workspace root, found from this crate's own manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Builds every plugin of `<root>/plugins` in release mode and copies each
/// component into [`plugin_dir`]. Adds the wasm target with rustup when it
/// is missing. Returns the plugin folder.
pub fn build_plugins(root: &Path) -> Result<PathBuf, BuildError> {
    ensure_target()?;
    let manifest = root.join("plugins").join("Cargo.toml");
    let target_dir = root.join("target").join("plugins-build");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    // Settings meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        // Under `cargo clippy` the host build runs through clippy-driver;
        // the plugins are linted on their own (see .ci/run).
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
    ] {
        cargo.env_remove(var);
    }
    run(&mut cargo)?;

    let built = target_dir.join(WASM_TARGET).join("release");
    let (out, examples) = (plugin_dir(root), example_plugin_dir(root));
    let variants = plugin_variant_dir(root);
    for dir in [&out, &examples, &variants] {
        std::fs::create_dir_all(dir)
            .map_err(|e| BuildError(format!("cannot create {}: {e}", dir.display())))?;
    }
    for name in plugin_names(&root.join("plugins"))? {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let from = built.join(&file);
        if !from.is_file() {
            return Err(BuildError(format!(
                "plugin crate {name} built no {}: does its Cargo.toml say \
                 `[lib] crate-type = [\"cdylib\"]`?",
                from.display()
            )));
        }
        if let Some(base) = variant_of(&name) {
            let as_base = format!("{}.wasm", base.replace('-', "_"));
            copy_if_changed(&from, &variants.join(as_base))?;
            continue;
        }
        copy_if_changed(&from, &out.join(&file))?;
        if !is_test_plugin(&name) {
            copy_if_changed(&from, &examples.join(&file))?;
        }
    }
    Ok(out)
}

/// The plugin crates: every member folder of the plugin workspace except the SDK.
fn plugin_names(plugins: &Path) -> Result<Vec<String>, BuildError> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(plugins)
        .map_err(|e| BuildError(format!("cannot read {}: {e}", plugins.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "sdk" && entry.path().join("Cargo.toml").is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Scaffolds plugin crate `name` in `<root>/plugins/<name>`: a manifest with
/// `crate-type = ["cdylib"]`, one handler to start from, and its place in the
/// plugin workspace's members. Refuses a bad or taken name, changing nothing.
pub fn new_plugin(root: &Path, name: &str) -> Result<PathBuf, BuildError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid || name == "sdk" {
        return Err(BuildError(format!(
            "{name:?} is not a plugin name: use lower-case letters, digits and dashes, \
             starting with a letter (the .wasm file will be {}.wasm)",
            name.replace('-', "_")
        )));
    }
    let plugins = root.join("plugins");
    let dir = plugins.join(name);
    if dir.exists() {
        return Err(BuildError(format!("{} already exists", dir.display())));
    }
    let manifest_path = plugins.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .map_err(|e| BuildError(format!("cannot read {}: {e}", manifest_path.display())))?;
    let members = manifest
        .find("members = [")
        .and_then(|at| manifest[at..].find(']').map(|end| at + end))
        .ok_or_else(|| {
            BuildError(format!(
                "no `members = [...]` in {}",
                manifest_path.display()
            ))
        })?;
    let handler = format!("{}.hello", name.replace('-', "_"));
    let files = [
        (
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"{name}\"\nversion.workspace = true\nedition.workspace = true\n\
                 rust-version.workspace = true\nlicense.workspace = true\npublish.workspace = true\n\n\
                 [lib]\n# A component is built from a cdylib; without this no .wasm appears.\n\
                 crate-type = [\"cdylib\"]\n\n[dependencies]\ntaskhost-sdk.workspace = true\n\
                 serde.workspace = true\nserde_json.workspace = true\n"
            ),
        ),
        (
            dir.join("src").join("lib.rs"),
            format!(
                "//! The {name} plugin.\n\nuse serde::Deserialize;\nuse taskhost_sdk::{{Job, JobError}};\n\n\
                 #[derive(Deserialize)]\nstruct Input {{\n    name: String,\n}}\n\n\
                 /// Delivery is at-least-once: make side effects idempotent with `job.id`.\n\
                 fn hello(job: &Job, input: Input) -> Result<String, JobError> {{\n\
                 \x20   if input.name.is_empty() {{\n\
                 \x20       return Err(JobError::permanent(\"name must not be empty\"));\n    }}\n\
                 \x20   Ok(format!(\"hello, {{}} (attempt {{}})\", input.name, job.attempt))\n}}\n\n\
                 taskhost_sdk::plugin! {{\n    handler(\"{handler}\", hello).describe(\"Says hello\"),\n}}\n"
            ),
        ),
    ];
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| BuildError(format!("cannot create {}: {e}", dir.display())))?;
    for (path, text) in &files {
        std::fs::write(path, text)
            .map_err(|e| BuildError(format!("cannot write {}: {e}", path.display())))?;
    }
    let mut updated = manifest.clone();
    let before = updated[..members].trim_end();
    let sep = if before.ends_with('[') || before.ends_with(',') {
        ""
    } else {
        ", "
    };
    updated.insert_str(members, &format!("{sep}\"{name}\""));
    std::fs::write(&manifest_path, updated)
        .map_err(|e| BuildError(format!("cannot write {}: {e}", manifest_path.display())))?;
    Ok(dir)
}

/// Every source path whose change must rebuild the plugins (for build scripts).
pub fn plugin_sources(root: &Path) -> Vec<PathBuf> {
    let mut paths = vec![root.join("wit"), root.join("plugins").join("Cargo.toml")];
    if let Ok(entries) = std::fs::read_dir(root.join("plugins")) {
        for entry in entries.flatten() {
            if entry.path().join("Cargo.toml").is_file() {
                paths.push(entry.path());
            }
        }
    }
    paths
}

/// Copies only when the bytes differ, so an unchanged plugin keeps its
/// modification time; goes through a temporary file so that a running host
/// never reads half a file.
pub(crate) fn copy_if_changed(from: &Path, to: &Path) -> Result<(), BuildError> {
    let bytes = std::fs::read(from)
        .map_err(|e| BuildError(format!("built plugin {} is missing: {e}", from.display())))?;
    if std::fs::read(to).ok().as_deref() == Some(&bytes[..]) {
        return Ok(());
    }
    let tmp = to.with_extension("wasm.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, to))
        .map_err(|e| BuildError(format!("cannot write {}: {e}", to.display())))
}

fn ensure_target() -> Result<(), BuildError> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| BuildError(format!("cannot run rustup to look for {WASM_TARGET}: {e}")))?;
    let listed = String::from_utf8_lossy(&installed.stdout);
    if listed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), BuildError> {
    let status = cmd
        .status()
        .map_err(|e| BuildError(format!("cannot start {cmd:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError(format!("{cmd:?} failed with {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_example_config_is_the_default_and_a_named_one_replaces_it() {
        assert_eq!(
            with_example_config(args("plugin list"), false),
            args("--config examples/taskhost.toml plugin list")
        );
        for own in [
            "serve --config my.toml",
            "serve -c my.toml",
            "jobs --config=my.toml",
        ] {
            assert_eq!(with_example_config(args(own), false), args(own));
        }
        assert_eq!(with_example_config(args("jobs"), true), args("jobs"));
    }

    #[test]
    fn new_plugin_scaffolds_a_member_crate_and_refuses_bad_names() {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::write(
            plugins.join("Cargo.toml"),
            "[workspace]\nmembers = [\"sdk\", \"hello\"]\n",
        )
        .unwrap();
        let dir = new_plugin(root.path(), "quote-fetch").unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"quote-fetch\"") && manifest.contains("cdylib"));
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("handler(\"quote_fetch.hello\", hello)"),
            "{lib}"
        );
        let workspace = std::fs::read_to_string(plugins.join("Cargo.toml")).unwrap();
        assert!(
            workspace.contains("members = [\"sdk\", \"hello\", \"quote-fetch\"]"),
            "{workspace}"
        );
        for bad in ["quote-fetch", "Quote", "1st", "a b", "sdk", ""] {
            assert!(new_plugin(root.path(), bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            std::fs::read_to_string(plugins.join("Cargo.toml")).unwrap(),
            workspace,
            "a refusal changes nothing"
        );
    }

    #[test]
    fn probes_are_test_plugins_and_the_rest_are_examples() {
        assert!(is_test_plugin("probe") && is_test_plugin("db-probe"));
        assert!(!is_test_plugin("hello") && !is_test_plugin("payments"));
    }
}

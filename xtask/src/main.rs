//! `cargo xtask plugins` builds the plugins; `cargo xtask serve` builds them
//! and starts the host on the example config; `cargo xtask host ARGS…` builds
//! them and runs any `taskhost` command, on the example config unless
//! `--config` (or `TASKHOST_CONFIG`) names another; `cargo xtask new-plugin
//! NAME` scaffolds a plugin crate.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = xtask::workspace_root();
    if args.first().map(String::as_str) == Some("new-plugin") {
        let Some(name) = args.get(1) else {
            eprintln!("usage: cargo xtask new-plugin NAME");
            return ExitCode::from(2);
        };
        return match xtask::new_plugin(&root, name) {
            Ok(dir) => {
                println!(
                    "created {}; `cargo xtask plugins` builds it into {}",
                    dir.display(),
                    xtask::plugin_dir(&root).display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = xtask::build_plugins(&root) {
        eprintln!("xtask: {e}");
        return ExitCode::FAILURE;
    }
    // The Python and JavaScript hellos need python3-venv and Node/npm; a
    // machine without them still runs the host with the Rust plugins.
    if let Err(e) = xtask::polyglot::build_polyglot(&root, true) {
        eprintln!(
            "xtask: warning: the Python and JavaScript example plugins were not built \
             (the host runs without py_hello and js_hello): {e}"
        );
    }
    let host_args: Vec<String> = match args.first().map(String::as_str) {
        Some("plugins") => {
            println!(
                "plugins built into {} (Python and JavaScript: {}; examples: {})",
                xtask::plugin_dir(&root).display(),
                xtask::polyglot::polyglot_plugin_dir(&root).display(),
                xtask::example_plugin_dir(&root).display()
            );
            return ExitCode::SUCCESS;
        }
        Some("serve") => xtask::with_example_config(
            std::iter::once("serve".to_string())
                .chain(args[1..].iter().cloned())
                .collect(),
            std::env::var_os("TASKHOST_CONFIG").is_some(),
        ),
        Some("host") => xtask::with_example_config(
            args[1..].to_vec(),
            std::env::var_os("TASKHOST_CONFIG").is_some(),
        ),
        _ => {
            eprintln!("usage: cargo xtask plugins | serve [ARGS…] | host ARGS… | new-plugin NAME");
            return ExitCode::from(2);
        }
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The build shows its progress: a first build takes minutes.
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["run", "--release", "--package", "taskhost", "--"])
        .args(&host_args)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `cargo xtask plugins` builds the plugins; `cargo xtask serve` builds them
//! and starts the host on the example config; `cargo xtask host ARGS…` builds
//! them and runs any `taskhost` command.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = xtask::workspace_root();
    if let Err(e) = xtask::build_plugins(&root) {
        eprintln!("xtask: {e}");
        return ExitCode::FAILURE;
    }
    let host_args: Vec<String> = match args.first().map(String::as_str) {
        Some("plugins") => {
            println!("plugins built into {}", xtask::plugin_dir(&root).display());
            return ExitCode::SUCCESS;
        }
        Some("serve") => ["serve", "--config", "examples/taskhost.toml"]
            .iter()
            .map(|s| s.to_string())
            .chain(args[1..].iter().cloned())
            .collect(),
        Some("host") => args[1..].to_vec(),
        _ => {
            eprintln!("usage: cargo xtask plugins | serve [ARGS…] | host ARGS…");
            return ExitCode::from(2);
        }
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["run", "--release", "--quiet", "--package", "taskhost", "--"])
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

//! The plugin crates' own unit tests (exact money arithmetic in `invest`,
//! nanotons in `telegram-bot`, UTC days of the rewards), run natively: the
//! plugins build for `wasm32-wasip2`, where no test harness runs, so the
//! suite runs them on the host's target in their own workspace.

use std::process::Command;

use crate::support::{repo_root, stderr};

#[test]
fn the_plugin_crates_unit_tests_pass_on_the_host_target() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host target");
    let out = Command::new(cargo)
        .current_dir(repo_root().join("plugins"))
        // Their own target directory: the outer test run's is locked.
        .env_remove("CARGO_TARGET_DIR")
        .args(["test", "--workspace", "--lib", "--target", &host])
        .output()
        .expect("cargo test runs in plugins/");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let passed: u32 = text
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<u32>().ok())
        .sum();
    assert!(passed >= 4, "only {passed} plugin unit tests ran:\n{text}");
}

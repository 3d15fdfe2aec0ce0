//! Shared fixtures: the built plugins, a host folder with its own config,
//! and the `taskhost` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use taskhost::config::Config;
use taskhost::runtime::{JobInput, JobReport, Runtime};

/// The folder the build script built the plugins into.
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("TASKHOST_PLUGIN_DIR"))
}

/// The compiled-plugin cache the tests share (each test that checks the
/// cache itself uses its own).
pub fn shared_cache_dir() -> PathBuf {
    plugin_dir()
        .parent()
        .expect("plugin dir has a parent")
        .join("test-cache")
}

/// The `taskhost` binary built for these tests.
pub fn taskhost_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_taskhost"))
}

/// A folder with a `taskhost.toml`; plugins come from [`plugin_dir`] unless
/// the config says otherwise.
pub struct TestHost {
    pub dir: tempfile::TempDir,
}

impl TestHost {
    /// A host whose config is the default plus `extra` TOML (which may not
    /// repeat the `[host]` table).
    pub fn new(extra: &str) -> TestHost {
        Self::with_host_table(
            &format!(
                "plugins = {:?}\ncache = {:?}\n",
                plugin_dir().display().to_string(),
                shared_cache_dir().display().to_string()
            ),
            extra,
        )
    }

    /// A host with the given `[host]` table body and the rest of the config.
    pub fn with_host_table(host: &str, extra: &str) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!("[host]\n{host}\n{extra}\n");
        std::fs::write(dir.path().join("taskhost.toml"), text).expect("write config");
        TestHost { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("taskhost.toml")
    }

    pub fn config(&self) -> Arc<Config> {
        let no_env: Vec<(String, String)> = Vec::new();
        Arc::new(taskhost::config::load(&self.config_path(), no_env).expect("test config loads"))
    }

    pub async fn runtime(&self) -> Runtime {
        Runtime::load(self.config()).await.expect("runtime loads")
    }

    /// `taskhost --config <this host's config> ARGS…`, run to completion.
    pub fn run_cli(&self, args: &[&str]) -> Output {
        Command::new(taskhost_bin())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("TASKHOST_CONFIG")
            .output()
            .expect("taskhost starts")
    }
}

/// Runs `handler` with a JSON payload.
pub async fn run_job(runtime: &Runtime, handler: &str, payload: serde_json::Value) -> JobReport {
    runtime
        .run(JobInput::adhoc(handler, &payload.to_string()))
        .await
        .expect("handler is known")
}

/// Asserts that `hello` still works in this runtime: the check after every
/// misbehaving plugin that it took nothing else down.
pub async fn assert_hello_works(runtime: &Runtime) {
    let report = run_job(runtime, "hello", serde_json::json!({"name": "still here"})).await;
    assert_eq!(
        report.outcome,
        taskhost::runtime::Outcome::Success {
            result: serde_json::json!({"greeting": "Hello, still here!", "attempt": 1})
        }
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

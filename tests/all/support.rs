//! Shared fixtures: the built plugins, a host folder with its own config,
//! and the `taskhost` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use taskhost::config::Config;
use taskhost::runtime::{JobInput, JobReport, Runtime};

pub mod anvil;
pub mod appdb;
pub mod browser;
pub mod polyglot;
pub mod portfolio_standins;
pub mod postgres;
pub mod python;
pub mod redis;
pub mod standins;

/// The folder the build script built the plugins into.
pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("TASKHOST_PLUGIN_DIR"))
}

/// The next version of plugin `name` (`hello`: `target/plugin-variants/hello.wasm`,
/// built from `plugins/hello-next`), for the reload and deploy tests.
pub fn plugin_variant(name: &str) -> PathBuf {
    PathBuf::from(env!("TASKHOST_PLUGIN_VARIANT_DIR")).join(format!("{name}.wasm"))
}

/// The compiled-plugin cache the tests share (each test that checks the
/// cache itself uses its own).
pub fn shared_cache_dir() -> PathBuf {
    plugin_dir()
        .parent()
        .expect("plugin dir has a parent")
        .join("test-cache")
}

/// The `taskhost` command, built in the test package as `taskhost-e2e` (so
/// its file does not collide with the host package's `taskhost`).
pub fn taskhost_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_taskhost-e2e"))
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
    /// Unless `extra` has its own `[api]` table, the API listens on a free
    /// port, so that hosts of tests running side by side never collide.
    pub fn with_host_table(host: &str, extra: &str) -> TestHost {
        let dir = tempfile::tempdir().expect("temp dir");
        let api = if extra.contains("[api]") {
            ""
        } else {
            "[api]\nlisten = \"127.0.0.1:0\"\n"
        };
        let text = format!("[host]\n{host}\n{extra}\n{api}");
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

/// Collects everything `tracing` writes while its guard lives (on this
/// thread: the tests run on a current-thread runtime), to check what the
/// host logs.
#[derive(Clone, Default)]
pub struct LogCollector(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCollector {
    /// Starts collecting every level; collection stops when the guard drops.
    pub fn start() -> (LogCollector, tracing::subscriber::DefaultGuard) {
        let logs = LogCollector::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCollector {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCollector {
    type Writer = LogCollector;
    fn make_writer(&'a self) -> LogCollector {
        self.clone()
    }
}

/// The host's parts opened in this process (store in the host folder).
/// The repository's root (the parent of `tests/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub async fn services(host: &TestHost) -> taskhost::services::Services {
    taskhost::services::Services::open(host.config())
        .await
        .expect("services open")
}

/// Workers running in this process until the returned sender says stop.
pub struct RunningWorkers {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<taskhost::worker::ShutdownReport>,
}

impl RunningWorkers {
    pub async fn stop(self) -> taskhost::worker::ShutdownReport {
        let _ = self.stop.send(true);
        self.task.await.expect("workers stop cleanly")
    }
}

pub fn start_workers(s: &taskhost::services::Services) -> RunningWorkers {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = taskhost::worker::Workers::new(
        s.store.clone(),
        s.runtime.clone(),
        s.enqueuer.clone(),
        s.clock.clone(),
        s.config.workers.clone(),
        "test-host".into(),
    );
    let task = tokio::spawn(workers.run(stopped));
    RunningWorkers { stop, task }
}

/// A test that needs something this machine lacks (libfaketime, the right
/// to mount): on a developer's machine it says so and passes; under CI
/// (`CI` set, as `.ci/run` runs), where `.ci/run` installs everything, it
/// fails, so a missing install step can never pass as green.
pub fn skip_unless_ci(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI must run this test, but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Blocks, checking every 50 ms, until `check` returns `Some`; fails after
/// `limit` (a ceiling for a hang, not a measurement).
pub fn wait_until<T>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(limit: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until the job is in a final state and returns it.
pub async fn finished(
    store: &dyn taskhost::store::Store,
    id: taskhost::job::JobId,
) -> taskhost::job::Job {
    eventually(
        std::time::Duration::from_secs(30),
        "the job to finish",
        || async {
            let job = store.get(id).await.expect("job exists");
            job.status.is_final().then_some(job)
        },
    )
    .await
}

/// An enqueue request with the defaults.
pub fn request(handler: &str, payload: serde_json::Value) -> taskhost::enqueue::EnqueueRequest {
    taskhost::enqueue::EnqueueRequest {
        handler: handler.into(),
        payload,
        ..Default::default()
    }
}

/// A `taskhost serve` child process, killed if the test ends (or fails)
/// without stopping it, so no host outlives its test.
pub struct ServeProcess(pub std::process::Child);

impl std::ops::Deref for ServeProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ServeProcess {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `taskhost serve` on this host's config, as a child process.
pub fn spawn_serve(host: &TestHost) -> ServeProcess {
    let child = Command::new(taskhost_bin())
        .arg("--config")
        .arg(host.config_path())
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("taskhost serve starts");
    ServeProcess(child)
}

/// `taskhost serve` on this host's config, its stdout and stderr written
/// to `log` (for tests that read what the host logged).
pub fn spawn_serve_logged(host: &TestHost, log: &Path) -> ServeProcess {
    let file = std::fs::File::create(log).expect("serve log file");
    let child = Command::new(taskhost_bin())
        .arg("--config")
        .arg(host.config_path())
        .arg("serve")
        .stdout(file.try_clone().expect("log file clone"))
        .stderr(file)
        .spawn()
        .expect("taskhost serve starts");
    ServeProcess(child)
}

/// Sends a signal (`-TERM`, `-KILL`, …) to a child process.
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// SIGTERM, and the process must exit 0.
pub fn terminate(mut child: ServeProcess) {
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// The API address a `serve` logged (`api listening on http://ADDR`),
/// waiting for the line.
pub fn api_address(log: &Path) -> String {
    wait_until(
        std::time::Duration::from_secs(60),
        "the api address in the log",
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let at = text.find("api listening on http://")?;
            let rest = &text[at + "api listening on http://".len()..];
            Some(rest.split_whitespace().next()?.to_string())
        },
    )
}

/// A plain GET over a TCP socket (the tests crate has no HTTP client).
pub async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        format!("GET /{path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    out
}

/// Every byte under `dir`, as text (lossy), to look for a secret in.
pub fn all_files(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_files(&path));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

/// `bytes` with every `from` replaced by `to` (same length, so a
/// component stays valid: how the tests make a plugin name another WIT
/// version).
pub fn bytes_replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same length keeps the binary valid");
    let mut out = bytes.to_vec();
    let mut found = 0;
    let mut at = 0;
    while let Some(pos) = out[at..].windows(from.len()).position(|w| w == from) {
        out[at + pos..at + pos + to.len()].copy_from_slice(to);
        at += pos + to.len();
        found += 1;
    }
    assert!(found > 0, "the component names its WIT version");
    out
}

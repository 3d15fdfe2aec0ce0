//! Wall-clock steps and skew between real `taskhost serve` processes on one
//! store, with the clock moved by libfaketime (Debian's `faketime` package)
//! while the monotonic clock runs true: a forward step on one host re-runs
//! nothing, and a host whose clock is behind (stepped back, or skewed) does
//! not hold jobs that are due.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use taskhost::job::JobStatus;
use taskhost::store::{ListQuery, Store};

use crate::support::{TestHost, eventually, services, signal, spawn_serve, stderr, taskhost_bin};

/// libfaketime, if this machine has it.
fn libfaketime() -> Option<PathBuf> {
    let found = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    if found.is_none() {
        crate::support::skip_unless_ci(
            "the clock-step tests need libfaketime (apt-get install faketime) to move a host's wall clock",
        );
    }
    found
}

/// `taskhost serve` whose wall clock is offset by the contents of `offset`
/// (libfaketime's "+1h" / "-1h" syntax, re-read every second); its
/// monotonic clock is left alone.
struct Skewed {
    child: Child,
    offset: PathBuf,
}

impl Skewed {
    fn start(host: &TestHost, lib: &Path, offset: &str) -> Skewed {
        let file = host.path().join(format!("offset-{}", rand_suffix()));
        std::fs::write(&file, offset).unwrap();
        let child = Command::new(taskhost_bin())
            .arg("--config")
            .arg(host.config_path())
            .arg("serve")
            .env("LD_PRELOAD", lib)
            .env("FAKETIME_TIMESTAMP_FILE", &file)
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready once it says what it serves; then keep draining its log.
        let mut child = child;
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .expect("the skewed host exited before serving")
                .unwrap();
            if line.contains(" serving ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Skewed {
            child,
            offset: file,
        }
    }

    fn step_to(&self, offset: &str) {
        std::fs::write(&self.offset, offset).unwrap();
    }
}

impl Drop for Skewed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> String {
    taskhost::job::JobId::generate().to_string()
}

async fn count(store: &dyn Store, status: JobStatus) -> u64 {
    store.counts().await.unwrap().sum(None, None, Some(status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_step_on_one_host_reruns_nothing() {
    let Some(lib) = libfaketime() else { return };
    const JOBS: usize = 24;
    let host = TestHost::new("[workers]\nlease = \"2s\"\nqueues = { default = 4 }\n");
    let s = services(&host).await;
    let batch = (0..JOBS)
        .map(|_| crate::support::request("probe.sleep", json!({"ms": 3000})))
        .collect();
    s.enqueuer.enqueue_batch(batch).await.unwrap();

    let stepped = Skewed::start(&host, &lib, "+0");
    let mut steady = spawn_serve(&host);
    eventually(
        Duration::from_secs(60),
        "both hosts to run jobs",
        || async { (count(s.store.as_ref(), JobStatus::Running).await >= 8).then_some(()) },
    )
    .await;
    // One host's wall clock jumps an hour ahead while all jobs run.
    stepped.step_to("+1h");
    eventually(Duration::from_secs(180), "all jobs to succeed", || async {
        (count(s.store.as_ref(), JobStatus::Succeeded).await == JOBS as u64).then_some(())
    })
    .await;
    let page = s
        .store
        .list(&ListQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let rerun: Vec<_> = page
        .jobs
        .iter()
        .filter(|j| j.attempts.len() > 1)
        .map(|j| format!("{}: {:?}", j.id, j.attempts))
        .collect();
    assert!(
        rerun.is_empty(),
        "jobs ran twice after the step: {rerun:#?}"
    );
    signal(&steady, "-TERM");
    assert!(steady.wait().unwrap().success());
    drop(stepped);
}

/// Enqueues `n` quick jobs (with `extra` arguments) from a CLI process,
/// which runs on the true clock, and waits for them to finish on the hosts
/// serving.
async fn cli_jobs_finish_promptly(host: &TestHost, store: &dyn Store, n: usize, extra: &[&str]) {
    for i in 0..n {
        let payload = json!({"name": format!("job {i}")}).to_string();
        let mut args = vec!["enqueue", "hello", "--payload", &payload];
        args.extend_from_slice(extra);
        let out = host.run_cli(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    eventually(
        Duration::from_secs(60),
        "the jobs to run, not wait for the clock",
        || async { (count(store, JobStatus::Succeeded).await == n as u64).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stepped_back_an_hour_still_runs_due_jobs() {
    let Some(lib) = libfaketime() else { return };
    let host = TestHost::new("[workers]\nlease = \"5s\"\n");
    let s = services(&host).await;
    // Started on the true time; then its clock goes back an hour.
    let stepped = Skewed::start(&host, &lib, "+0");
    stepped.step_to("-1h");
    // Due in 2 s on the true time, which the host's time must keep following.
    cli_jobs_finish_promptly(&host, s.store.as_ref(), 5, &["--delay", "2s"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_clock_is_behind_runs_jobs_enqueued_on_true_time() {
    let Some(lib) = libfaketime() else { return };
    let host = TestHost::new("[workers]\nlease = \"5s\"\n");
    let s = services(&host).await;
    let _behind = Skewed::start(&host, &lib, "-1h");
    cli_jobs_finish_promptly(&host, s.store.as_ref(), 5, &[]).await;
}

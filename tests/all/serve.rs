//! `taskhost serve` as real processes: killed with SIGKILL it loses
//! nothing; stopped with SIGTERM it finishes what runs and exits 0; and the
//! job commands refuse bad input without writing anything.

use std::time::Duration;

use serde_json::json;
use taskhost::job::JobStatus;
use taskhost::store::{ListQuery, Store};

use crate::support::{
    TestHost, eventually, request, services, signal, spawn_serve, stderr, stdout,
};

async fn count(store: &dyn Store, status: JobStatus) -> u64 {
    store.counts().await.unwrap().sum(None, None, Some(status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_run_loses_no_job() {
    const JOBS: usize = 1000;
    let host = TestHost::new("[workers]\nlease = \"1s\"\nqueues = { default = 16 }\n");
    let s = services(&host).await;
    let batch = (0..JOBS)
        .map(|_| request("probe.sleep", json!({"ms": 50})))
        .collect();
    s.enqueuer.enqueue_batch(batch).await.unwrap();

    let mut first = spawn_serve(&host);
    // Kill on progress, not on a timer: once 300 jobs have succeeded.
    eventually(Duration::from_secs(60), "300 jobs to succeed", || async {
        (count(s.store.as_ref(), JobStatus::Succeeded).await >= 300).then_some(())
    })
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let running_at_kill = count(s.store.as_ref(), JobStatus::Running).await;

    let mut second = spawn_serve(&host);
    eventually(Duration::from_secs(120), "all jobs to succeed", || async {
        (count(s.store.as_ref(), JobStatus::Succeeded).await == JOBS as u64).then_some(())
    })
    .await;
    signal(&second, "-TERM");
    assert!(second.wait().unwrap().success());

    let page = s
        .store
        .list(&ListQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), JOBS);
    assert!(page.jobs.iter().all(|j| j.status == JobStatus::Succeeded));
    let rerun = page.jobs.iter().filter(|j| j.attempts.len() > 1).count();
    println!(
        "crash test: {running_at_kill} job(s) were running at the kill; {rerun} of {JOBS} ran more than once"
    );
    assert!(
        rerun as u64 <= running_at_kill,
        "only jobs running at the kill may run twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_and_exits_0() {
    let host = TestHost::new("[workers]\nqueues = { default = 4 }\nshutdown_grace = \"20s\"\n");
    let s = services(&host).await;
    let batch = (0..12)
        .map(|_| request("probe.sleep", json!({"ms": 400})))
        .collect();
    s.enqueuer.enqueue_batch(batch).await.unwrap();
    let mut serve = spawn_serve(&host);
    eventually(Duration::from_secs(30), "jobs to start", || async {
        (count(s.store.as_ref(), JobStatus::Running).await > 0).then_some(())
    })
    .await;
    signal(&serve, "-TERM");
    let status = serve.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    // Read the file afresh: what the process left behind.
    let counts = s.store.counts().await.unwrap();
    assert_eq!(
        counts.sum(None, None, Some(JobStatus::Running)),
        0,
        "nothing left running"
    );
    assert!(counts.sum(None, None, Some(JobStatus::Succeeded)) >= 1);
    assert_eq!(counts.sum(None, None, None), 12);
}

#[test]
fn enqueue_refuses_bad_input_with_exit_2_and_writes_nothing() {
    let host = TestHost::new("[workers]\nmax_payload = \"1KiB\"\n");
    let big = json!({"name": "x".repeat(2000)}).to_string();
    let cases: [(&[&str], &str); 7] = [
        (
            &["enqueue", "nosuch", "--payload", "{}"],
            "unknown handler \"nosuch\"",
        ),
        (
            &["enqueue", "helo", "--payload", "{}"],
            "did you mean hello",
        ),
        (
            &["enqueue", "hello", "--payload", "{bad"],
            "--payload is not valid JSON",
        ),
        (
            &["enqueue", "hello", "--payload", &big],
            "over the 1024-byte limit",
        ),
        (
            &["enqueue", "hello", "--delay", "5x"],
            "invalid duration \"5x\"",
        ),
        (
            &["enqueue", "hello", "--priority", "urgent"],
            "unknown priority \"urgent\"",
        ),
        (
            &["enqueue", "hello", "--at", "tomorrow"],
            "--at \"tomorrow\" is not an RFC 3339 time",
        ),
    ];
    for (args, message) in cases {
        let out = host.run_cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let out = host.run_cli(&["jobs", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["jobs"], json!([]), "nothing was written");

    let out = host.run_cli(&["job", "not-an-id"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_job_commands_work_against_a_serving_host() {
    let host = TestHost::new("[workers]\nlease = \"5s\"\n");
    let mut serve = spawn_serve(&host);
    let out = host.run_cli(&[
        "enqueue",
        "hello",
        "--payload",
        r#"{"name":"cli"}"#,
        "--key",
        "k-1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let again = host.run_cli(&[
        "enqueue",
        "hello",
        "--payload",
        r#"{"name":"cli"}"#,
        "--key",
        "k-1",
    ]);
    assert_eq!(
        stdout(&again).trim(),
        id,
        "the idempotency key returns the original id"
    );

    let out = host.run_cli(&["wait", &id, "--timeout", "30s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"{"attempt":1,"greeting":"Hello, cli!"}"#
    );

    let out = host.run_cli(&[
        "enqueue",
        "probe.outcome",
        "--payload",
        r#"{"kind":"permanent"}"#,
    ]);
    let dead = stdout(&out).trim().to_string();
    let out = host.run_cli(&["wait", &dead, "--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1), "wait exits 1 for a dead job");
    assert!(
        stderr(&out).contains("dead after attempt 1: permanent — permanent failure on attempt 1"),
        "wait tells why: {}",
        stderr(&out)
    );

    let out = host.run_cli(&["dlq", "list"]);
    assert!(
        stdout(&out).contains(&dead) && !stdout(&out).contains(&id),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("ERROR") && stdout(&out).contains("permanent failure on attempt 1"),
        "the error column: {}",
        stdout(&out)
    );
    for list in [
        &["jobs", "--limit", "0"][..],
        &["dlq", "list", "--limit", "1001"],
    ] {
        let out = host.run_cli(list);
        assert_eq!(out.status.code(), Some(2), "{list:?}");
        assert!(stderr(&out).contains("1..=1000"), "{}", stderr(&out));
    }

    // Cancel: a job that has not started, once.
    let out = host.run_cli(&["enqueue", "hello", "--payload", "{}", "--delay", "1h"]);
    let later = stdout(&out).trim().to_string();
    let out = host.run_cli(&["cancel", &later, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "cancelled");
    let out = host.run_cli(&["cancel", &later]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is cancelled; cannot cancel it"),
        "{}",
        stderr(&out)
    );
    let out = host.run_cli(&["dlq", "show", &dead]);
    assert!(
        stdout(&out).contains("permanent failure on attempt 1"),
        "{}",
        stdout(&out)
    );
    let out = host.run_cli(&["job", &id, "--json"]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "succeeded");

    let out = host.run_cli(&["queue", "pause", "default"]);
    assert!(out.status.success());
    let out = host.run_cli(&["enqueue", "hello", "--payload", r#"{"name":"paused"}"#]);
    let paused = stdout(&out).trim().to_string();
    let out = host.run_cli(&["wait", &paused, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(4), "a paused queue's job waits");
    let out = host.run_cli(&["queue", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats[0]["paused"], true);
    assert_eq!(stats[0]["pending"]["normal"], 1);
    assert_eq!(stats[0]["dead"], 1);
    host.run_cli(&["queue", "resume", "default"]);
    let out = host.run_cli(&["wait", &paused, "--timeout", "30s"]);
    assert!(out.status.success(), "resumed: {}", stderr(&out));

    let out = host.run_cli(&["dlq", "purge"]);
    assert!(
        stdout(&out).contains("1 dead job(s) deleted"),
        "{}",
        stdout(&out)
    );
    signal(&serve, "-TERM");
    assert!(serve.wait().unwrap().success());
}

#[test]
fn processes_starting_together_on_a_new_store_all_open_it() {
    for round in 0..3 {
        let host = TestHost::new("");
        let children: Vec<_> = (0..4)
            .map(|i| {
                std::process::Command::new(crate::support::taskhost_bin())
                    .arg("--config")
                    .arg(host.config_path())
                    .args([
                        "enqueue",
                        "hello",
                        "--payload",
                        &format!(r#"{{"name":"p{i}"}}"#),
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
    }
}

//! Terminating running jobs (`POST /api/v1/jobs/{id}/cancel?terminate=true`,
//! `taskhost cancel --terminate`): a job that computes and one that waits
//! in a 30 s host call both end `cancelled` within a second of the request,
//! whichever host process runs them, and are not retried.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use taskhost::job::{JobId, JobStatus, OutcomeKind};
use taskhost::store::Store;

use crate::http_client::Server;
use crate::support::redis;
use crate::support::{TestHost, eventually, services, spawn_serve, stderr};

/// Both probes may run for minutes and have attempts to spare, so only
/// the termination can end them, and a retry would show.
const HANDLERS: &str = "[handlers.\"probe.spin\"]\nfuel = 0\ntimeout = \"120s\"\nmax_attempts = 5\n\
    [handlers.\"probe.sleep\"]\ntimeout = \"120s\"\nmax_attempts = 5\n";

/// The longest a termination may take, from the request to the commit
/// that ends the job.
const WITHIN: Duration = Duration::from_secs(1);

/// A job that spins, and one that waits in a 30 s host call (the WASI
/// clock's sleep).
fn the_two_jobs() -> [(&'static str, serde_json::Value); 2] {
    [
        ("probe.spin", json!({})),
        ("probe.sleep", json!({"ms": 30_000})),
    ]
}

async fn enqueue(api: &Server, handler: &str, payload: &serde_json::Value) -> JobId {
    let r = api.post(
        "/api/v1/jobs",
        None,
        &json!({"handler": handler, "payload": payload}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().parse().unwrap()
}

async fn running(store: &dyn Store, id: JobId) {
    eventually(Duration::from_secs(60), "the job to run", || async {
        (store.get(id).await.unwrap().status == JobStatus::Running).then_some(())
    })
    .await;
}

/// Sends the termination through `api` and checks the job ends
/// `cancelled` within [`WITHIN`] of it, after its one run.
async fn terminate_and_check(api: &Server, store: &dyn Store, id: JobId, what: &str) {
    let asked = Utc::now();
    let r = api.post(
        &format!("/api/v1/jobs/{id}/cancel?terminate=true"),
        None,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A generous ceiling for the wait; the measure is the job's own end time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = taskhost::store::wait_for_end(store, id, deadline)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Cancelled, "{what}: {job:?}");
    let took = (job.finished_at.unwrap() - asked)
        .to_std()
        .unwrap_or_default();
    println!("{what} stopped {took:?} after the request");
    assert!(took < WITHIN, "{what} took {took:?} to stop");
    assert_eq!(job.attempts.len(), 1, "{what} ran once: {:?}", job.attempts);
    assert_eq!(job.attempts[0].outcome, OutcomeKind::Cancelled);
    assert!(job.lease.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_stops_a_spinning_and_a_waiting_job_within_a_second() {
    let host = TestHost::new(&format!(
        "[workers]\nlease = \"30s\"\nqueues = {{ default = 4 }}\n{HANDLERS}"
    ));
    let api = Server::start(&host);
    let s = services(&host).await;
    for (handler, payload) in the_two_jobs() {
        let id = enqueue(&api, handler, &payload).await;
        running(s.store.as_ref(), id).await;
        terminate_and_check(&api, s.store.as_ref(), id, handler).await;
    }
    // A job that is not running any more cannot be terminated again, and
    // a bad value of the flag is refused.
    let done = enqueue(&api, "hello", &json!({"name": "x"})).await;
    crate::support::finished(s.store.as_ref(), done).await;
    let again = api.post(
        &format!("/api/v1/jobs/{done}/cancel?terminate=true"),
        None,
        &json!({}),
    );
    assert_eq!(again.status, 409, "{}", again.text());
    let bad = api.post(
        &format!("/api/v1/jobs/{done}/cancel?terminate=maybe"),
        None,
        &json!({}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    api.stop();
}

/// Two hosts on one store: the API host serves another queue, so the jobs
/// run on the second process (lease 30 s, so no heartbeat helps), and the
/// request reaches it through the store; then the CLI, a third process.
async fn across_hosts(worker: &TestHost, front: &TestHost, store: &dyn Store) {
    let api = Server::start(front);
    let _runner = spawn_serve(worker);
    for (handler, payload) in the_two_jobs() {
        let id = enqueue(&api, handler, &payload).await;
        running(store, id).await;
        // Only the second process serves `default`: it runs the job.
        terminate_and_check(&api, store, id, handler).await;
    }
    let id = enqueue(&api, "probe.spin", &json!({})).await;
    running(store, id).await;
    let out = worker.run_cli(&["cancel", &id.to_string(), "--terminate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job = crate::support::finished(store, id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.attempts.len(), 1);
    api.stop();
}

const WORKER: &str = "[workers]\nlease = \"30s\"\nqueues = { default = 4 }\n";
const FRONT: &str = "[workers]\nqueues = { elsewhere = 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_reaches_a_job_on_another_host_process() {
    let worker = TestHost::new(&format!("{WORKER}{HANDLERS}"));
    let store_file = worker.config().store_path();
    let front = TestHost::new(&format!(
        "[store]\npath = {:?}\n{FRONT}{HANDLERS}",
        store_file.display().to_string()
    ));
    // Opened first: it makes the store file the front host then shares.
    let s = services(&worker).await;
    across_hosts(&worker, &front, s.store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_reaches_a_job_on_another_host_process_on_redis() {
    let server = redis::start();
    let table = redis::store_table(&server.url(), "term:");
    let worker = TestHost::new(&format!("{table}{WORKER}{HANDLERS}"));
    let front = TestHost::new(&format!("{table}{FRONT}{HANDLERS}"));
    let store = redis::open(&server.url(), "term:").await;
    across_hosts(&worker, &front, &store).await;
}

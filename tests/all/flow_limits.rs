//! Rate and concurrency limits across hosts: two `serve` processes on one
//! store (an SQLite file, or Redis) share one budget per handler, judged
//! from the start and end times the store recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use taskhost::job::{Job, JobStatus, NewJob};
use taskhost::store::{ListQuery, Store};

use crate::support::redis;
use crate::support::{TestHost, eventually, services, spawn_serve};

/// A generous ceiling for a drain that takes about ten seconds.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

/// Every job of `handler`, once all `n` succeeded.
async fn all_succeeded(store: &dyn Store, handler: &str, n: usize) -> Vec<Job> {
    eventually(
        DRAIN_LIMIT,
        &format!("{n} {handler} jobs to succeed"),
        || async {
            let page = store
                .list(&ListQuery {
                    status: Some(JobStatus::Succeeded),
                    handler: Some(handler.into()),
                    limit: ListQuery::MAX_LIMIT,
                    ..Default::default()
                })
                .await
                .unwrap();
            (page.jobs.len() == n).then_some(page.jobs)
        },
    )
    .await
}

fn started(job: &Job) -> DateTime<Utc> {
    assert_eq!(job.attempts.len(), 1, "one run each: {job:?}");
    job.attempts[0].at
}

/// Two hosts of `table` (with 8 workers each, far more than the rate
/// needs) drain 500 `hello` jobs at "50/s": the starts span at least
/// 9.5 s and no second holds more than 50 of them.
async fn rate_across_hosts(table: &str, store: &dyn Store) {
    let config = format!(
        "{table}[workers]\nqueues = {{ default = 8 }}\n[handlers.hello]\nrate = \"50/s\"\n"
    );
    let (a, b) = (TestHost::new(&config), TestHost::new(&config));
    let jobs = (0..500)
        .map(|i| NewJob::new("hello", json!({ "name": format!("n{i}") })))
        .collect();
    store.enqueue_batch(jobs).await.unwrap();
    let _serving = [spawn_serve(&a), spawn_serve(&b)];
    let jobs = all_succeeded(store, "hello", 500).await;
    let mut starts: Vec<DateTime<Utc>> = jobs.iter().map(started).collect();
    starts.sort();
    let span = (starts[499] - starts[0]).to_std().unwrap();
    println!("500 starts at 50/s over two hosts spanned {span:?}");
    assert!(span >= Duration::from_millis(9_500), "drained in {span:?}");
    let second = chrono::Duration::seconds(1);
    let busiest = (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|t| **t < starts[i] + second)
                .count()
        })
        .max()
        .unwrap();
    assert!(busiest <= 50, "{busiest} starts within one second");
    let hosts: std::collections::HashSet<&str> =
        jobs.iter().map(|j| j.attempts[0].host.as_str()).collect();
    assert_eq!(hosts.len(), 2, "both hosts ran jobs: {hosts:?}");
}

/// Two hosts with 4 workers each run 12 jobs of half a second under
/// `concurrency = 3`: never more than 3 at once (from the store's start
/// and end times), and 3 at some point (the limit, not the workers, held
/// them back).
async fn concurrency_across_hosts(table: &str, store: &dyn Store) {
    let config = format!(
        "{table}[workers]\nqueues = {{ default = 4 }}\n[handlers.\"probe.sleep\"]\nconcurrency = 3\n"
    );
    let (a, b) = (TestHost::new(&config), TestHost::new(&config));
    let jobs = (0..12)
        .map(|_| NewJob::new("probe.sleep", json!({ "ms": 500 })))
        .collect();
    store.enqueue_batch(jobs).await.unwrap();
    let _serving = [spawn_serve(&a), spawn_serve(&b)];
    let jobs = all_succeeded(store, "probe.sleep", 12).await;
    // +1 at a start, -1 at an end; an end at the same instant as a start
    // comes first (the place was free again).
    let mut events: Vec<(DateTime<Utc>, i32)> = jobs
        .iter()
        .flat_map(|j| [(started(j), 1), (j.finished_at.unwrap(), -1)])
        .collect();
    events.sort();
    let (mut running, mut most) = (0, 0);
    for (_, step) in events {
        running += step;
        most = most.max(running);
    }
    assert_eq!(most, 3, "at most 3 running at once, and 3 reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_holds_across_two_host_processes() {
    let first = TestHost::new("");
    let path = first.config().store_path();
    let table = format!("[store]\npath = {:?}\n", path.display().to_string());
    let s = services(&first).await;
    rate_across_hosts(&table, s.store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_holds_across_two_host_processes_on_redis() {
    let server = redis::start();
    let table = redis::store_table(&server.url(), "rate:");
    let store = redis::open(&server.url(), "rate:").await;
    rate_across_hosts(&table, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_holds_across_two_host_processes() {
    let first = TestHost::new("");
    let path = first.config().store_path();
    let table = format!("[store]\npath = {:?}\n", path.display().to_string());
    let s = services(&first).await;
    concurrency_across_hosts(&table, s.store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_holds_across_two_host_processes_on_redis() {
    let server = redis::start();
    let table = redis::store_table(&server.url(), "conc:");
    let store = redis::open(&server.url(), "conc:").await;
    concurrency_across_hosts(&table, &store).await;
}

//! Workers run jobs in priority order and on time, retry by policy, bury
//! what cannot succeed, and lose nothing.

use std::time::Duration;

use serde_json::json;
use taskhost::job::{JobStatus, OutcomeKind, Priority};

use crate::support::{TestHost, eventually, finished, request, services, start_workers};

const ONE_WORKER: &str = "[workers]\nqueues = { default = 1 }\n";

#[tokio::test]
async fn jobs_run_in_strict_priority_order() {
    let host = TestHost::new(ONE_WORKER);
    let s = services(&host).await;
    let mut ids = Vec::new();
    for p in [
        Priority::Low,
        Priority::Normal,
        Priority::Critical,
        Priority::High,
        Priority::Low,
    ] {
        let req = taskhost::enqueue::EnqueueRequest {
            priority: Some(p),
            ..request("hello", json!({"name": "p"}))
        };
        ids.push((p, s.enqueuer.enqueue(req).await.unwrap().id));
    }
    let workers = start_workers(&s);
    let mut started = Vec::new();
    for (p, id) in &ids {
        let job = finished(s.store.as_ref(), *id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        started.push((job.attempts[0].at, *p));
    }
    started.sort();
    let order: Vec<Priority> = started.into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        order,
        vec![
            Priority::Critical,
            Priority::High,
            Priority::Normal,
            Priority::Low,
            Priority::Low
        ]
    );
    workers.stop().await;
}

#[tokio::test]
async fn a_delayed_job_starts_on_time_not_before() {
    let host = TestHost::new("");
    let s = services(&host).await;
    let workers = start_workers(&s);
    let req = taskhost::enqueue::EnqueueRequest {
        delay: Some(Duration::from_millis(600)),
        ..request("hello", json!({"name": "later"}))
    };
    let before = chrono::Utc::now();
    let id = s.enqueuer.enqueue(req).await.unwrap().id;
    let job = finished(s.store.as_ref(), id).await;
    assert!(
        job.run_at - before >= chrono::Duration::milliseconds(600),
        "run-at is the delay from the enqueue"
    );
    let late = job.attempts[0].at - job.run_at;
    // Tolerance: not before run-at; at most 150 ms after (the worker sleeps exactly until run-at).
    assert!(late >= chrono::Duration::zero(), "started {late:?} early");
    assert!(
        late < chrono::Duration::milliseconds(150),
        "started {late:?} late"
    );
    workers.stop().await;
}

/// Runs `probe.outcome` with `payload` under `config` until it is dead and
/// returns the gaps between consecutive attempts.
async fn attempt_gaps(
    config: &str,
    payload: serde_json::Value,
) -> (taskhost::job::Job, Vec<Duration>) {
    let host = TestHost::new(config);
    let s = services(&host).await;
    let workers = start_workers(&s);
    let id = s
        .enqueuer
        .enqueue(request("probe.outcome", payload))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    workers.stop().await;
    let gaps = job
        .attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).to_std().unwrap())
        .collect();
    (job, gaps)
}

fn assert_near(got: &[Duration], want_ms: &[u64]) {
    assert_eq!(got.len(), want_ms.len(), "{got:?}");
    for (g, w) in got.iter().zip(want_ms) {
        // A retry is due exactly at its delay; allow 250 ms for a loaded machine.
        let w = Duration::from_millis(*w);
        assert!(
            *g >= w && *g < w + Duration::from_millis(250),
            "gap {g:?}, wanted {w:?} (all: {got:?})"
        );
    }
}

#[tokio::test]
async fn an_explicit_delay_list_gives_one_retry_per_entry_then_the_dlq() {
    let config =
        "[handlers.\"probe.outcome\"]\nretry = { delays = [\"300ms\", \"600ms\", \"900ms\"] }\n";
    let (job, gaps) = attempt_gaps(config, json!({"kind": "retry"})).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(
        job.attempts.len(),
        4,
        "three delays: three retries after the first run"
    );
    assert!(
        job.attempts
            .iter()
            .all(|a| a.outcome == OutcomeKind::Retryable)
    );
    assert_near(&gaps, &[300, 600, 900]);
}

#[tokio::test]
async fn exponential_backoff_doubles() {
    let config = "[handlers.\"probe.outcome\"]\nretry = { base = \"200ms\", factor = 2.0, jitter = 0.0, max_attempts = 4 }\n";
    let (job, gaps) = attempt_gaps(config, json!({"kind": "retry"})).await;
    assert_eq!((job.status, job.attempts.len()), (JobStatus::Dead, 4));
    assert_near(&gaps, &[200, 400, 800]);
}

#[tokio::test]
async fn retry_after_from_the_plugin_overrides_the_policy() {
    let config = "[handlers.\"probe.outcome\"]\nretry = { delays = [\"30s\"] }\n";
    let (job, gaps) = attempt_gaps(
        config,
        json!({"kind": "retry-after", "retry_after_ms": 400}),
    )
    .await;
    assert_eq!((job.status, job.attempts.len()), (JobStatus::Dead, 2));
    assert_near(&gaps, &[400]);
}

#[tokio::test]
async fn a_permanent_error_goes_straight_to_the_dlq_and_retry_gives_a_fresh_budget() {
    let host = TestHost::new("");
    let s = services(&host).await;
    let workers = start_workers(&s);
    let id = s
        .enqueuer
        .enqueue(request("probe.outcome", json!({"kind": "permanent"})))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(
        (job.status, job.attempts.len(), job.attempt),
        (JobStatus::Dead, 1, 1)
    );
    assert_eq!(job.attempts[0].outcome, OutcomeKind::Permanent);
    assert!(
        job.attempts[0]
            .message
            .as_deref()
            .unwrap()
            .contains("permanent failure on attempt 1")
    );
    let dlq = s.store.dlq_list(None, None, 10).await.unwrap();
    assert_eq!(dlq.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);

    s.store.dlq_retry(id).await.unwrap();
    let job = eventually(
        Duration::from_secs(10),
        "the retried job to die again",
        || async {
            let j = s.store.get(id).await.unwrap();
            (j.status == JobStatus::Dead && j.attempts.len() == 2).then_some(j)
        },
    )
    .await;
    assert_eq!(
        (job.attempt, job.max_attempts, job.attempts[1].attempt),
        (2, 6, 2),
        "a DLQ retry gives a fresh budget (5 more runs), numbered on from the first run"
    );
    workers.stop().await;
}

#[tokio::test]
async fn a_sandbox_failure_is_retried_and_recorded_by_kind() {
    let config = "[handlers.\"probe.spin\"]\nfuel = 1_000_000\nmax_attempts = 2\nretry = { delays = [\"100ms\"] }\n";
    let host = TestHost::new(config);
    let s = services(&host).await;
    let workers = start_workers(&s);
    let id = s
        .enqueuer
        .enqueue(request("probe.spin", json!({})))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Dead);
    let kinds: Vec<OutcomeKind> = job.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(kinds, vec![OutcomeKind::OutOfFuel, OutcomeKind::OutOfFuel]);
    assert!(job.attempts.iter().all(|a| a.fuel.unwrap() <= 1_000_000));
    workers.stop().await;
}

#[tokio::test]
async fn a_plugin_fans_out_a_hundred_jobs_that_all_complete() {
    let host = TestHost::new("[plugins.probe]\njobs = [\"hello\"]\n");
    let s = services(&host).await;
    let workers = start_workers(&s);
    let payload = json!({"count": 100, "handler": "hello", "payload": {"name": "child"}});
    let id = s
        .enqueuer
        .enqueue(request("probe.fanout", payload))
        .await
        .unwrap()
        .id;
    let parent = finished(s.store.as_ref(), id).await;
    assert_eq!(parent.status, JobStatus::Succeeded, "{:?}", parent.attempts);
    let children: Vec<String> = serde_json::from_value(parent.result.unwrap()).unwrap();
    assert_eq!(children.len(), 100);
    for child in children {
        let job = finished(s.store.as_ref(), child.parse().unwrap()).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.result.unwrap()["greeting"], "Hello, child!");
    }
    workers.stop().await;
}

#[tokio::test]
async fn fan_out_without_a_grant_is_denied() {
    let host = TestHost::new("[plugins.probe]\njobs = [\"probe.*\"]\n");
    let s = services(&host).await;
    let workers = start_workers(&s);
    let payload = json!({"count": 1, "handler": "hello", "payload": {}});
    let req = taskhost::enqueue::EnqueueRequest {
        max_attempts: Some(1),
        ..request("probe.fanout", payload)
    };
    let id = s.enqueuer.enqueue(req).await.unwrap().id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Dead);
    let message = job.attempts[0].message.clone().unwrap();
    assert!(
        message.contains("Denied") && message.contains("\\\"hello\\\""),
        "{message}"
    );
    workers.stop().await;
}

#[tokio::test]
async fn shutdown_releases_what_does_not_finish_in_the_grace_period() {
    let host = TestHost::new("[workers]\nqueues = { default = 2 }\nshutdown_grace = \"200ms\"\n");
    let s = services(&host).await;
    let workers = start_workers(&s);
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(
            s.enqueuer
                .enqueue(request("probe.sleep", json!({"ms": 20_000})))
                .await
                .unwrap()
                .id,
        );
    }
    eventually(Duration::from_secs(10), "both jobs to run", || async {
        let c = s.store.counts().await.unwrap();
        (c.sum(None, None, Some(JobStatus::Running)) == 2).then_some(())
    })
    .await;
    let report = workers.stop().await;
    assert_eq!((report.finished, report.released), (0, 2));
    for id in ids {
        let job = s.store.get(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Pending, "released, not running");
        assert_eq!(
            job.attempt, 0,
            "a released run does not count as an attempt"
        );
    }
}

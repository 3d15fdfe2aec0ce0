//! Hostile plugins against the host's own limits: a plugin cannot raise
//! its budgets, store or return unbounded text, flood the host's log, forge
//! host lines in its job log, or fan out without bound. After each, the
//! host still runs the next job.

use std::time::Duration;

use serde_json::{Value, json};
use taskhost::job::{JobStatus, OutcomeKind};
use taskhost::runtime::{JobInput, Outcome, TRUNCATED};

use crate::support::{
    LogCollector, TestHost, assert_hello_works, finished, request, run_job, services, start_workers,
};

/// A generous ceiling, so that a job the host fails to stop fails the test
/// instead of hanging it.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_plugin_cannot_declare_itself_unlimited() {
    // probe.greedy declares fuel 0, a timeout of 10^12 ms and u32::MAX attempts.
    let host = TestHost::new("[limits]\nfuel = 50_000_000\ntimeout = \"20s\"\nmax_attempts = 7\n");
    let s = services(&host).await;
    let entry = s
        .runtime
        .registry()
        .handler("probe.greedy")
        .cloned()
        .unwrap();
    let limits = s.runtime.limits(&entry);
    assert_eq!(
        (limits.fuel, limits.timeout),
        (Some(50_000_000), Duration::from_secs(20))
    );
    assert_eq!(entry.defaults.max_attempts, Some(7));
    assert_eq!(s.enqueuer.policy("probe.greedy").unwrap().max_attempts(), 7);

    let report = tokio::time::timeout(HANG, run_job(&s.runtime, "probe.greedy", json!({})))
        .await
        .expect("the host's fuel limit stops the job");
    let Outcome::OutOfFuel { fuel_used } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(fuel_used <= 50_000_000, "used {fuel_used}");
    assert_hello_works(&s.runtime).await;
}

#[tokio::test]
async fn only_the_operator_may_raise_a_handler_above_the_host_limits() {
    let host = TestHost::new(
        "[limits]\nfuel = 50_000_000\n[handlers.\"probe.greedy\"]\nfuel = 0\ntimeout = \"300ms\"\n",
    );
    let runtime = host.runtime().await;
    let report = tokio::time::timeout(HANG, run_job(&runtime, "probe.greedy", json!({})))
        .await
        .expect("the operator's deadline stops the job");
    assert_eq!(
        report.outcome,
        Outcome::DeadlineExceeded {
            timeout: Duration::from_millis(300)
        }
    );
    // It ran unlimited until the deadline: what it burned is counted, and
    // is what ~300 ms of one core can burn, not the engine's reserve.
    assert!(
        report.fuel_used > 5 * taskhost::runtime::FUEL_SLICE
            && report.fuel_used < 1_000_000_000_000,
        "fuel_used {}",
        report.fuel_used
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn results_over_the_cap_fail_typed_and_messages_are_cut() {
    let host = TestHost::new("[limits]\nmax_result = \"64KiB\"\nmax_message = \"1KiB\"\n");
    let s = services(&host).await;
    let big = |bytes: usize, how: &str| json!({"bytes": bytes, "how": how});

    let report = run_job(&s.runtime, "probe.big", big(10 << 20, "result")).await;
    let Outcome::ResultTooLarge { size, limit } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!((size, limit), ((10 << 20) + 2, 64 << 10));
    assert!(!report.outcome.may_retry());
    let report = run_job(&s.runtime, "probe.big", big(1000, "result")).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);

    for how in ["retry", "permanent", "panic"] {
        let report = run_job(&s.runtime, "probe.big", big(10 << 20, how)).await;
        let message = match &report.outcome {
            Outcome::Retryable { message, .. }
            | Outcome::Permanent { message }
            | Outcome::Trap { message, .. } => message.clone(),
            other => panic!("{how}: {other:?}"),
        };
        assert!(message.len() <= 1024, "{how}: {} bytes", message.len());
        assert!(message.ends_with(TRUNCATED), "{how}: {message}");
    }

    // Through the workers and the store: one attempt, no retry, in the DLQ.
    let workers = start_workers(&s);
    let id = s
        .enqueuer
        .enqueue(request("probe.big", big(1 << 20, "result")))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempts.len(), 1, "{:?}", job.attempts);
    assert_eq!(job.attempts[0].outcome, OutcomeKind::ResultTooLarge);
    assert!(job.result.is_none());
    let next = s
        .enqueuer
        .enqueue(request("hello", json!({"name": "next"})))
        .await
        .unwrap()
        .id;
    assert_eq!(
        finished(s.store.as_ref(), next).await.status,
        JobStatus::Succeeded
    );
    workers.stop().await;
}

#[tokio::test]
async fn refused_calls_cannot_flood_the_host_log_or_leak_a_secret() {
    const SECRET: &str = "s3cr3t-4f9a-token";
    let host = TestHost::new(&format!(
        "[plugins.probe]\nsecrets = {{ token = {SECRET:?} }}\n"
    ));
    let runtime = host.runtime().await;
    let (logs, _guard) = LogCollector::start();

    // 50 refusals, each naming a 1 MB key.
    let flood = json!({"key": "k", "repeat": 1 << 20, "calls": 50});
    let report = run_job(&runtime, "probe.deny-flood", flood).await;
    assert_eq!(report.outcome, Outcome::Success { result: json!(50) });
    let text = logs.text();
    assert!(
        text.len() < 64 << 10,
        "the host logged {} bytes",
        text.len()
    );
    let logged = text.matches("is not granted config key").count();
    assert_eq!(
        logged,
        taskhost::runtime::DENIALS_LOGGED as usize,
        "{}",
        taskhost::runtime::clip(&text, 3000)
    );
    assert!(text.contains("45 more refused call(s)"), "{text}");

    // A secret's value passed as a key is redacted before anything logs it.
    let probe = json!({"key": SECRET, "calls": 1});
    let report = run_job(&runtime, "probe.deny-flood", probe).await;
    assert_eq!(report.outcome, Outcome::Success { result: json!(1) });
    let text = logs.text();
    assert!(
        text.matches("is not granted config key").count() > 5,
        "{text}"
    );
    assert!(!text.contains(SECRET), "the host log holds the secret");
    assert!(!report.log.contains(SECRET), "{}", report.log);
    assert!(report.log.contains("[redacted]"), "{}", report.log);

    // An ungranted HTTP request is logged once, like any refusal.
    let report = run_job(&runtime, "probe.capabilities", json!({})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
    let text = logs.text();
    let http: Vec<&str> = text.lines().filter(|l| l.contains("HTTP")).collect();
    assert_eq!(
        text.matches("is not granted outbound HTTP").count(),
        1,
        "{http:#?}"
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn a_plugin_cannot_forge_host_lines_in_its_log() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.forge", json!({})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
    let forged: Vec<&str> = report
        .log
        .lines()
        .filter(|l| l.starts_with("[DENIED]"))
        .collect();
    assert!(forged.is_empty(), "forged host lines: {}", report.log);
    assert!(
        report.log.contains("[INFO] harmless\\n[DENIED]")
            && report.log.contains("\n [DENIED] plugin"),
        "{}",
        report.log
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn panic_reports_beyond_the_first_count_as_host_calls() {
    let host = TestHost::new("[handlers.\"probe.panic-flood\"]\nhost_calls = 100\n");
    let runtime = host.runtime().await;
    let report = tokio::time::timeout(HANG, run_job(&runtime, "probe.panic-flood", json!({})))
        .await
        .expect("the host-call cap stops the loop");
    assert_eq!(report.outcome, Outcome::HostCallLimit { limit: 100 });
    assert_hello_works(&runtime).await;
}

/// Runs probe.fanout in this process and returns each enqueue's answer.
async fn fan_out(s: &taskhost::services::Services, payload: Value) -> Vec<Value> {
    let mut payload = payload;
    payload["handler"] = json!("hello");
    payload["payload"] = json!({"name": "child"});
    payload["report"] = json!(true);
    let input = JobInput::adhoc("probe.fanout", &payload.to_string());
    let report = s.runtime.run(input).await.unwrap();
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    serde_json::from_value(result).unwrap()
}

fn refused(answer: &Value, kind: &str, needle: &str) -> bool {
    answer["err"]
        .as_str()
        .is_some_and(|e| e.starts_with(kind) && e.contains(needle))
}

#[tokio::test]
async fn fan_out_is_bounded_per_run_and_by_the_grant() {
    let host = TestHost::new(
        "[limits]\nmax_enqueues = 3\nmax_attempts = 7\n[plugins.probe]\njobs = [\"hello\"]\n",
    );
    let s = services(&host).await;
    let answers = fan_out(&s, json!({"count": 5})).await;
    assert!(
        answers[..3].iter().all(|a| a["ok"].is_string()),
        "{answers:?}"
    );
    for a in &answers[3..] {
        assert!(refused(a, "HostError::Denied", "max_enqueues"), "{a}");
    }
    // Queues, priorities and attempts the grant does not cover.
    for (payload, kind, needle) in [
        (
            json!({"count": 1, "queue": "bulk"}),
            "HostError::Denied",
            "queue \\\"bulk\\\"",
        ),
        (
            json!({"count": 1, "priority": "high"}),
            "HostError::Denied",
            "priority high",
        ),
        (
            json!({"count": 1, "max_attempts": u32::MAX}),
            "HostError::Invalid",
            "max_attempts",
        ),
    ] {
        let answers = fan_out(&s, payload.clone()).await;
        assert!(refused(&answers[0], kind, needle), "{payload}: {answers:?}");
    }
    let allowed = fan_out(
        &s,
        json!({"count": 1, "priority": "low", "max_attempts": 7}),
    )
    .await;
    assert!(allowed[0]["ok"].is_string(), "{allowed:?}");
    let counts = s.store.counts().await.unwrap();
    assert_eq!(counts.sum(None, None, None), 4, "3 + 1 jobs enqueued");
    assert_hello_works(&s.runtime).await;
}

#[tokio::test]
async fn a_plugin_grant_may_set_its_own_fan_out_budget() {
    let host = TestHost::new("[plugins.probe]\njobs = [\"hello\"]\njobs_per_run = 2\n");
    let s = services(&host).await;
    let answers = fan_out(&s, json!({"count": 3})).await;
    assert!(
        answers[..2].iter().all(|a| a["ok"].is_string()),
        "{answers:?}"
    );
    assert!(
        refused(&answers[2], "HostError::Denied", "jobs_per_run"),
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_grant_may_open_further_queues_and_priorities() {
    let host = TestHost::new(
        "[plugins.probe]\njobs = [\"hello\"]\njobs_queues = [\"default\", \"bulk\"]\n\
         jobs_max_priority = \"high\"\n",
    );
    let s = services(&host).await;
    let ok = fan_out(&s, json!({"count": 1, "queue": "bulk", "priority": "high"})).await;
    assert!(ok[0]["ok"].is_string(), "{ok:?}");
    let no = fan_out(&s, json!({"count": 1, "priority": "critical"})).await;
    assert!(
        refused(&no[0], "HostError::Denied", "priority critical"),
        "{no:?}"
    );
    let no = fan_out(&s, json!({"count": 1, "queue": "other"})).await;
    assert!(refused(&no[0], "HostError::Denied", "queue"), "{no:?}");
    assert_hello_works(&s.runtime).await;
}

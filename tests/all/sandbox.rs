//! The sandbox holds: every limit stops its job with a typed outcome, no
//! state leaks between jobs, nothing escapes, and the host carries on.

use std::time::Duration;

use serde_json::json;
use taskhost::runtime::Outcome;

use crate::support::{TestHost, assert_hello_works, run_job};

#[tokio::test]
async fn a_loop_stops_by_fuel_within_its_budget() {
    let host = TestHost::new("[handlers.\"probe.spin\"]\nfuel = 50_000_000\ntimeout = \"20s\"\n");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.spin", json!({})).await;
    let Outcome::OutOfFuel { fuel_used } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(fuel_used <= 50_000_000, "used {fuel_used}");
    assert!(fuel_used > 40_000_000, "stopped too early: {fuel_used}");
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn with_unlimited_fuel_the_deadline_stops_a_loop() {
    let host = TestHost::new("[handlers.\"probe.spin\"]\nfuel = 0\ntimeout = \"300ms\"\n");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.spin", json!({})).await;
    assert_eq!(
        report.outcome,
        Outcome::DeadlineExceeded {
            timeout: Duration::from_millis(300)
        }
    );
    // Stopped at the deadline, give or take the epoch tick and a loaded machine.
    assert!(
        report.duration >= Duration::from_millis(300),
        "{:?}",
        report.duration
    );
    assert!(
        report.duration < Duration::from_secs(3),
        "{:?}",
        report.duration
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn a_job_waiting_in_a_host_call_stops_at_the_deadline() {
    let host = TestHost::new("[handlers.\"probe.sleep\"]\ntimeout = \"300ms\"\n");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.sleep", json!({"ms": 60_000})).await;
    assert_eq!(
        report.outcome,
        Outcome::DeadlineExceeded {
            timeout: Duration::from_millis(300)
        }
    );
    assert!(
        report.duration < Duration::from_secs(3),
        "{:?}",
        report.duration
    );
    // Waiting burns no fuel: far less than a busy loop would in that time.
    assert!(
        report.fuel_used < 10_000_000,
        "sleeping used {} fuel",
        report.fuel_used
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn runaway_memory_hits_the_cap() {
    let host = TestHost::new("[handlers.\"probe.grow\"]\nmemory = \"16MiB\"\n");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.grow", json!({"mib": 512})).await;
    assert_eq!(
        report.outcome,
        Outcome::MemoryLimit {
            limit_bytes: 16 << 20
        }
    );
    // Under the cap the same handler is fine.
    let report = run_job(&runtime, "probe.grow", json!({"mib": 4})).await;
    assert_eq!(
        report.outcome,
        Outcome::Success {
            result: json!(4 << 20)
        }
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.recurse", json!({"depth": 100_000_000u64})).await;
    let Outcome::Trap {
        message,
        plugin,
        handler,
    } = report.outcome
    else {
        panic!("{:?}", report.outcome)
    };
    assert!(message.contains("stack overflow"), "{message}");
    assert_eq!(
        (plugin.as_str(), handler.as_str()),
        ("probe", "probe.recurse")
    );
    // A shallow recursion is fine.
    let report = run_job(&runtime, "probe.recurse", json!({"depth": 100})).await;
    assert_eq!(
        report.outcome,
        Outcome::Success {
            result: json!(5050)
        }
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn a_panic_reports_its_message() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.panic", json!({})).await;
    let Outcome::Trap { message, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(
        message.contains("the probe panicked on purpose"),
        "{message}"
    );
    assert!(
        message.contains("src/lib.rs"),
        "the panic location is kept: {message}"
    );
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn a_flood_of_host_calls_hits_the_cap() {
    let host = TestHost::new("[handlers.\"probe.log-flood\"]\nhost_calls = 100\n");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.log-flood", json!({"calls": 1_000_000})).await;
    assert_eq!(report.outcome, Outcome::HostCallLimit { limit: 100 });
    let report = run_job(&runtime, "probe.log-flood", json!({"calls": 100})).await;
    assert_eq!(report.outcome, Outcome::Success { result: json!(100) });
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn no_state_survives_from_one_job_to_the_next() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    for _ in 0..2 {
        let report = run_job(&runtime, "probe.counter", json!({})).await;
        assert_eq!(report.outcome, Outcome::Success { result: json!(1) });
    }
}

#[tokio::test]
async fn the_escape_probe_gets_nothing() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.escape", json!({})).await;
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(result["files"], json!([]), "{result}");
    assert_eq!(result["dirs"], json!([]), "{result}");
    assert_eq!(result["created"], json!(false), "{result}");
    assert_eq!(result["env"], json!([]), "{result}");
    assert_eq!(result["tcp_connected"], json!(false), "{result}");
    assert_eq!(result["lookup"], json!(false), "{result}");
    assert_eq!(result["listen"], json!(false), "{result}");
    assert_eq!(result["udp"], json!(false), "{result}");
    // What a job may use still works.
    assert_eq!(result["clock_ok"], json!(true), "{result}");
}

#[tokio::test]
async fn output_and_log_lines_are_captured_in_order_and_capped() {
    let host = TestHost::new("[limits]\nlog = \"4KiB\"\n");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.chatter", json!({"bytes": 100})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
    assert!(!report.log_truncated);
    let stdout_at = report.log.find("0123456789").expect("stdout captured");
    let stderr_at = report.log.find("chatter done").expect("stderr captured");
    let log_at = report
        .log
        .find("[INFO] chatter logged")
        .expect("log line captured");
    assert!(
        stdout_at < stderr_at && stderr_at < log_at,
        "{}",
        report.log
    );

    let report = run_job(&runtime, "probe.chatter", json!({"bytes": 1 << 20})).await;
    assert!(
        report.outcome.is_success(),
        "a full log must not fail the job: {:?}",
        report.outcome
    );
    assert!(report.log_truncated);
    assert_eq!(report.log.len(), 4096);
}

#[tokio::test]
async fn many_misbehaving_jobs_at_once_leave_the_host_standing() {
    let host = TestHost::new(
        "[handlers.\"probe.spin\"]\nfuel = 20_000_000\n[handlers.\"probe.grow\"]\nmemory = \"8MiB\"\n",
    );
    let runtime = std::sync::Arc::new(host.runtime().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let rt = runtime.clone();
        tasks.push(tokio::spawn(async move {
            let (handler, payload) = match i % 4 {
                0 => ("probe.spin", json!({})),
                1 => ("probe.grow", json!({"mib": 64})),
                2 => ("probe.panic", json!({})),
                _ => ("hello", json!({"name": "n"})),
            };
            (i % 4, run_job(&rt, handler, payload).await.outcome.kind())
        }));
    }
    for t in tasks {
        let (which, kind) = t.await.unwrap();
        let expected = ["out-of-fuel", "memory-limit", "trap", "success"][which];
        assert_eq!(kind, expected);
    }
    assert_hello_works(&runtime).await;
}

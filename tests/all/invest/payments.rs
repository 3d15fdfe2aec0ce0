//! Payment retry: paid once after failures, the DLQ and manual review,
//! a lost answer, declines and Retry-After.

use super::*;

const SCALED_PAYMENT_POLICY: &str = "[handlers.\"payment.retry\"]\nretry = { delays = [\"1s\", \"2s\", \"4s\", \"8s\", \"16s\"] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_failing_three_times_then_succeeding_is_paid_exactly_once() {
    paid_once_after_three_failures(Invest::new(SCALED_PAYMENT_POLICY)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_payment_failing_three_times_then_succeeding_is_paid_exactly_once() {
    paid_once_after_three_failures(Invest::on_postgres(SCALED_PAYMENT_POLICY)).await;
}

async fn paid_once_after_three_failures(t: Invest) {
    t.failed_payment("pay-1");
    t.provider.script(
        "pay-1",
        [Reply::Fail(503), Reply::Fail(502), Reply::Fail(500)],
    );
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status("payments", "pay-1", "completed");
    let job = the_finished_job(s.store.as_ref(), "payment.retry").await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let kinds: Vec<_> = job.attempts.iter().map(|a| a.outcome).collect();
    use OutcomeKind::*;
    assert_eq!(kinds, [Retryable, Retryable, Retryable, Succeeded]);
    assert_gaps(&job, &secs(&[1, 2, 4]));

    let calls = t.provider.calls_for("pay-1");
    let statuses: Vec<_> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [503, 502, 500, 200]);
    assert_eq!(t.provider.done().len(), 1, "paid exactly once");
    assert_eq!(calls[0].body["amount"], "100.50");

    let provider_ref =
        t.db.value("SELECT provider_ref FROM payments WHERE id = 'pay-1'");
    assert_eq!(provider_ref, "ch_1");
    let r = |a: i64, f: &str, to: &str| (1, a, f.to_string(), to.to_string());
    assert_eq!(
        t.audit("payment", "pay-1"),
        [
            r(0, "failed", "retrying"),
            r(1, "retrying", "retrying"),
            r(2, "retrying", "retrying"),
            r(3, "retrying", "retrying"),
            r(4, "retrying", "completed"),
        ],
        "one audit row per state change: the sweep's claim, each attempt"
    );
}

/// The seed's 1, 2, 4, 8, 16 minutes as milliseconds.
const MS_PAYMENT_POLICY: &str = "[handlers.\"payment.retry\"]\nretry = { delays = [\"100ms\", \"200ms\", \"400ms\", \"800ms\", \"1600ms\"] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_that_always_fails_goes_to_the_dlq_for_manual_review_and_dlq_retry_pays_it() {
    dead_for_manual_review_then_paid_by_a_dlq_retry(Invest::new(MS_PAYMENT_POLICY)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_payment_that_always_fails_goes_to_the_dlq_for_manual_review() {
    dead_for_manual_review_then_paid_by_a_dlq_retry(Invest::on_postgres(MS_PAYMENT_POLICY)).await;
}

async fn dead_for_manual_review_then_paid_by_a_dlq_retry(t: Invest) {
    t.failed_payment("pay-2");
    t.provider.script("pay-2", vec![Reply::Fail(503); 6]);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    let job = the_finished_job(s.store.as_ref(), "payment.retry").await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempts.len(), 6, "five retries after the first run");
    assert_gaps(&job, &[100, 200, 400, 800, 1600].map(Duration::from_millis));
    assert_eq!(t.status("payments", "pay-2"), "manual_review");
    assert_eq!(t.provider.calls_for("pay-2").len(), 6);
    assert!(t.provider.done().is_empty());
    let last = t.audit("payment", "pay-2").pop().unwrap();
    assert_eq!(last, (1, 6, "retrying".into(), "manual_review".into()));

    let out = t.host.run_cli(&["dlq", "retry", &job.id.to_string()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    t.wait_status("payments", "pay-2", "completed");
    let statuses: Vec<_> = t
        .provider
        .calls_for("pay-2")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [503, 503, 503, 503, 503, 503, 200]);
    assert_eq!(t.provider.done().len(), 1);
    let job = s.store.get(job.id).await.unwrap();
    assert_eq!(
        (job.status, job.attempt, job.max_attempts),
        (JobStatus::Succeeded, 7, 12),
        "a fresh budget of six runs, numbered on from the first six"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_timing_out_after_taking_the_payment_is_not_paid_twice() {
    let t = Invest::new(
        "[http]\ntimeout = \"1s\"\n[handlers.\"payment.retry\"]\nretry = { delays = [\"1s\", \"2s\"] }\n",
    );
    t.failed_payment("pay-3");
    t.provider
        .script("pay-3", [Reply::TakeThenStall(Duration::from_secs(3))]);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status("payments", "pay-3", "completed");
    let job = the_finished_job(s.store.as_ref(), "payment.retry").await;
    assert_eq!(job.attempts.len(), 2);
    assert_eq!(job.attempts[0].outcome, OutcomeKind::Retryable);
    let first = job.attempts[0].message.as_deref().unwrap();
    assert!(first.contains("timed out"), "{first}");
    let calls = t.provider.calls_for("pay-3");
    assert_eq!(calls.len(), 2, "the retry carried the same idempotency key");
    assert_eq!(t.provider.done().len(), 1, "the provider took one payment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_answers_map_a_decline_to_permanent_and_429_to_its_retry_after() {
    // The policy says 30 s: a retry after about 1 s can only be Retry-After's.
    let t = Invest::new("[handlers.\"payment.retry\"]\nretry = { delays = [\"30s\", \"30s\"] }\n");
    t.failed_payment("declined");
    t.failed_payment("throttled");
    t.provider.script("declined", [Reply::Refuse(402)]);
    t.provider.script("throttled", [Reply::RateLimit(1)]);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status("payments", "declined", "failed_permanent");
    t.wait_status("payments", "throttled", "completed");
    let jobs = jobs_of(s.store.as_ref(), "payment.retry").await;
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        let job = crate::support::finished(s.store.as_ref(), job.id).await;
        if job.payload["id"] == "declined" {
            assert_eq!(job.status, JobStatus::Dead, "a decline goes to the DLQ");
            assert_eq!(job.attempts.len(), 1);
            assert_eq!(job.attempts[0].outcome, OutcomeKind::Permanent);
        } else {
            assert_eq!(job.status, JobStatus::Succeeded);
            assert_gaps(&job, &secs(&[1]));
        }
    }
    assert_eq!(t.provider.calls_for("declined").len(), 1);
    assert_eq!(
        t.provider.done().len(),
        1,
        "only the throttled payment was charged"
    );
}

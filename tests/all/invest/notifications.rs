//! Notification retry: Telegram's retry_after, refusals, the bot token
//! kept secret, server errors, and a backlog drained at the handler's rate.
//! Each check runs against the Rust plugin (`<test>::rust`) and its Python
//! twin (`<test>::python`).

use super::*;

/// For each check `name(twin)`, a module `name` with the tests `rust` and `python`.
macro_rules! twins {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rust() {
                super::$name(super::Twin::Rust).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn python() {
                super::$name(super::Twin::Python).await
            }
        }
    )*};
}

twins!(
    a_rate_limited_notification_is_retried_after_telegrams_retry_after_not_before,
    a_blocked_user_gets_one_attempt_and_the_bot_token_is_nowhere,
    a_backlog_of_notifications_drains_at_the_configured_rate_and_none_twice,
    a_telegram_server_error_is_retried_with_the_policys_delay,
);

async fn a_rate_limited_notification_is_retried_after_telegrams_retry_after_not_before(twin: Twin) {
    // The policy says 30 s: a retry after about 2 s can only be Telegram's.
    let t = Invest::notifications(
        twin,
        "[handlers.\"notification.retry\"]\nretry = { delays = [\"30s\", \"30s\"] }\n",
    )
    .await;
    t.failed_notification("n-1", "1001");
    t.telegram.script("1001", [Reply::RateLimit(2)]);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status("notifications", "n-1", "delivered");
    let job = the_finished_job(s.store.as_ref(), "notification.retry").await;
    assert_eq!(job.attempts.len(), 2);
    assert_gaps(&job, &secs(&[2]));
    let calls = t.telegram.calls_for("1001");
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let gap = calls[1].at.duration_since(calls[0].at).unwrap();
    assert!(gap >= Duration::from_secs(2), "resent after {gap:?}");
    assert_eq!(calls[1].body["text"], "Your deposit is confirmed");
}

async fn a_blocked_user_gets_one_attempt_and_the_bot_token_is_nowhere(twin: Twin) {
    let t = Invest::notifications(twin, "").await;
    t.failed_notification("n-2", "2002");
    t.failed_notification("n-3", "3003");
    t.telegram.script("2002", [Reply::Refuse(403)]);
    t.telegram.script("3003", [Reply::Refuse(400)]);
    let s = services(&t.host).await;
    let log = t.host.path().join("serve.log");
    let serve = spawn_serve_logged(&t.host, &log);

    t.wait_status("notifications", "n-2", "undeliverable");
    t.wait_status("notifications", "n-3", "undeliverable");
    let jobs = jobs_of(s.store.as_ref(), "notification.retry").await;
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        let job = crate::support::finished(s.store.as_ref(), job.id).await;
        assert_eq!(job.status, JobStatus::Dead);
        assert_eq!(job.attempts.len(), 1, "no retry for a refusal");
        assert_eq!(job.attempts[0].outcome, OutcomeKind::Permanent);
    }
    assert_eq!(t.telegram.calls().len(), 2);
    assert!(
        t.telegram.calls().iter().all(|c| c.status != 401),
        "the token reached Telegram"
    );

    let listen = crate::support::api_address(&log);
    let metrics = crate::support::http_get(&format!("http://{listen}/metrics")).await;
    assert!(metrics.contains("taskhost_jobs_dead_total"), "{metrics}");
    crate::support::terminate(serve);

    let store = crate::support::all_files(&t.host.path().join(".taskhost"));
    let logged = std::fs::read_to_string(&log).unwrap();
    for (place, text) in [
        ("the store", &store),
        ("the host's log", &logged),
        ("/metrics", &metrics),
    ] {
        assert!(!text.contains(BOT_TOKEN), "the bot token is in {place}");
        assert!(
            !text.contains("AAHx9vQ"),
            "part of the bot token is in {place}"
        );
    }
}

async fn a_backlog_of_notifications_drains_at_the_configured_rate_and_none_twice(twin: Twin) {
    // Scaled down from the 5,000 at 30/s (almost 3 minutes) to
    // 200 at 20/s: ten seconds, the same shape.
    const N: usize = 200;
    const RATE: f64 = 20.0;
    // The twins take turns: two backlogs at once on a busy machine stall
    // worker threads enough to bunch the logged starts of either.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let t = Invest::notifications(
        twin,
        "[handlers.\"notification.retry\"]\nrate = \"20/s\"\n[handlers.\"notification.sweep\"]\ntimeout = \"5m\"\n",
    ).await;
    let rows: Vec<_> = (0..N)
        .map(|i| format!("('b-{i}', '{}', 'backlog', 'failed')", 5000 + i))
        .collect();
    t.db.exec(&format!(
        "INSERT INTO notifications (id, chat_id, text, status) VALUES {}",
        rows.join(", ")
    ));
    let log = t.host.path().join("serve.log");
    let _serve = spawn_serve_logged(&t.host, &log);
    wait_until(Duration::from_secs(180), "the backlog to drain", || {
        let left =
            t.db.count("SELECT count(*) FROM notifications WHERE status <> 'delivered'");
        (left == 0).then_some(())
    });

    let sent = t.telegram.done();
    assert_eq!(sent.len(), N);
    let mut chats: Vec<_> = sent.iter().map(|(chat, _)| chat.clone()).collect();
    chats.sort();
    chats.dedup();
    assert_eq!(chats.len(), N, "none sent twice");
    let calls = t.telegram.calls();
    assert!(
        calls.iter().all(|c| c.status == 200),
        "no 429 storm, no errors"
    );

    // What the host enforces: the starts of the handler's jobs, as its
    // log records them, spaced 1/rate apart, so N starts span at least
    // (N - 1) / rate (1 % for the log's clock reads).
    let starts: Vec<chrono::DateTime<chrono::Utc>> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("job started") && l.contains("handler=notification.retry "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), N, "one start per notification");
    let span = (starts[N - 1] - starts[0]).as_seconds_f64();
    let floor = (N - 1) as f64 / RATE;
    let second = chrono::Duration::seconds(1);
    let most = starts
        .iter()
        .map(|t0| {
            starts
                .iter()
                .filter(|t| **t >= *t0 && **t - *t0 < second)
                .count()
        })
        .max()
        .unwrap();
    println!(
        "backlog: {N} starts in {span:.2} s, at most {most} within one second (limit {RATE}/s)"
    );
    assert!(
        span >= floor * 0.99,
        "{N} starts in {span:.2} s, under the {floor:.2} s the rate allows"
    );
    // A slot is never early, but a worker woken late (a busy machine
    // stalls a thread) starts right before the next one: a window may hold
    // one or two more than the rate, never a burst.
    assert!(
        most as f64 <= RATE * 1.25 + 1.0,
        "{most} starts within one second at {RATE}/s"
    );

    // What the remote saw: the same pace. Each arrival is its start plus
    // the job's own work before its request (a db read), which a loaded
    // machine stretches unevenly (most while the first instances warm up),
    // so the average is allowed 10 % here.
    let times: Vec<SystemTime> = calls.iter().map(|c| c.at).collect();
    let span = times[N - 1].duration_since(times[0]).unwrap().as_secs_f64();
    let pace = (N - 1) as f64 / span;
    println!("backlog: {N} notifications sent in {span:.2} s ({pace:.1}/s, limit {RATE}/s)");
    assert!(
        pace <= RATE * 1.1,
        "{N} sends at {pace:.1}/s, limit {RATE}/s"
    );
}

async fn a_telegram_server_error_is_retried_with_the_policys_delay(twin: Twin) {
    let t = Invest::notifications(
        twin,
        "[handlers.\"notification.retry\"]\nretry = { delays = [\"1s\", \"5s\", \"15s\", \"60s\", \"120s\"] }\n",
    ).await;
    t.failed_notification("n-5", "5005");
    t.telegram.script("5005", [Reply::Fail(502)]);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status("notifications", "n-5", "delivered");
    let job = the_finished_job(s.store.as_ref(), "notification.retry").await;
    assert_eq!(job.attempts[0].outcome, OutcomeKind::Retryable);
    assert_gaps(&job, &secs(&[1]));
    let statuses: Vec<_> = t
        .telegram
        .calls_for("5005")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [502, 200]);
    let message_id =
        t.db.value("SELECT telegram_message_id FROM notifications WHERE id = 'n-5'");
    assert_eq!(message_id, "1");
}

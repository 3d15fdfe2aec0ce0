//! TON payments: confirmed on the poll that first sees the transfer,
//! nothing for a wrong memo or too little, expiry, TonAPI failing under a
//! 30-second schedule (scaled to 1 s), and the on-demand check.

use super::*;

fn monitor_every_second(extra: &str) -> String {
    format!(
        "{}{extra}",
        schedule("payment-monitor", "1s", "payment_monitor")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_appearing_on_the_third_poll_confirms_its_payment_then_and_activates_once() {
    confirmed_on_the_third_poll(Bot::new(&monitor_every_second(""))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_transfer_appearing_on_the_third_poll_confirms_its_payment_then() {
    confirmed_on_the_third_poll(Bot::on_postgres(&monitor_every_second(""))).await;
}

async fn confirmed_on_the_third_poll(t: Bot) {
    const HOUR: i64 = 3_600_000;
    t.payment(1, 501, 10 * TON, HOUR);
    t.payment(2, 502, 10 * TON, HOUR); // its transfer names another memo
    t.payment(3, 503, 10 * TON, HOUR); // its transfer is one nanoton short
    t.payment(4, 504, 10 * TON, -1000); // past its expiry, nothing paid
    // On the chain from the start: a wrong memo, too small an amount.
    t.tonapi.script(
        WALLET,
        [Reply::Add(standins::ton_transfer(
            WALLET,
            "a1",
            50 * TON,
            "i3lani_22",
        ))],
    );
    t.tonapi.script(
        WALLET,
        [
            Reply::Add(standins::ton_transfer(
                WALLET,
                "a2",
                10 * TON - 1,
                "i3lani_3",
            )),
            // The third poll: payment 1's transfer has arrived (a little more
            // than asked).
            Reply::Add(standins::ton_transfer(
                WALLET,
                "c3",
                10 * TON + 7,
                "i3lani_1",
            )),
        ],
    );
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status(1, "confirmed");
    let polls = jobs_of(s.store.as_ref(), "payment_monitor").await;
    let confirmer = t.db.value("SELECT job_id FROM payments WHERE id = 1");
    let third = polls[2].id.to_string();
    assert_eq!(confirmer, third, "confirmed by the third poll");
    let expirer = t.db.value("SELECT job_id FROM payments WHERE id = 4");
    assert_eq!(
        expirer,
        polls[0].id.to_string(),
        "expired by the first poll"
    );
    assert_eq!(t.status(4), "expired");
    assert_eq!(
        t.db.value("SELECT received_nano FROM payments WHERE id = 1"),
        (10 * TON + 7).to_string()
    );
    assert_eq!(
        t.db.value("SELECT tx_hash FROM payments WHERE id = 1"),
        "c3"
    );

    // Two more polls see the same transfer: nothing changes.
    wait_until(LIMIT, "two more polls", || {
        (t.tonapi.calls_for(WALLET).len() >= 5).then_some(())
    });
    let subs =
        t.db.rows("SELECT payment_id, user_id, ends_at - starts_at FROM subscriptions");
    assert_eq!(
        subs,
        [vec![
            "1".to_string(),
            "501".into(),
            (30 * 86_400_000i64).to_string()
        ]],
        "one subscription, for payment 1's user and plan"
    );
    assert_eq!(t.status(2), "pending", "a wrong memo confirms nothing");
    assert_eq!(
        t.status(3),
        "pending",
        "too small an amount confirms nothing"
    );
    assert!(
        t.tonapi.calls().iter().all(|c| c.status == 200),
        "the API key reached TonAPI"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonapi_rate_limiting_and_failing_is_retried_with_back_off_and_ticks_do_not_pile_up() {
    // Retries 2 s and then 3 s apart while the schedule ticks every second:
    // without the overlap policy two or more runs would pile up.
    let t = Bot::new(&monitor_every_second(
        "[handlers.payment_monitor]\nretry = { delays = [\"2s\", \"30s\"] }\n",
    ));
    t.payment(7, 507, 3 * TON, 3_600_000);
    t.tonapi.script(
        WALLET,
        [
            Reply::Fail(503),
            // Retry-After beats the policy's 30 s.
            Reply::RateLimit(3),
            Reply::Add(standins::ton_transfer(WALLET, "h7", 3 * TON, "i3lani_7")),
        ],
    );
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    t.wait_status(7, "confirmed");
    let polls = jobs_of(s.store.as_ref(), "payment_monitor").await;
    let first = crate::support::finished(s.store.as_ref(), polls[0].id).await;
    use OutcomeKind::*;
    let kinds: Vec<_> = first.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(kinds, [Retryable, Retryable, Succeeded]);
    let messages: Vec<_> = first
        .attempts
        .iter()
        .filter_map(|a| a.message.clone())
        .collect();
    assert!(messages[0].contains("503"), "{messages:?}");
    assert!(messages[1].contains("429"), "{messages:?}");
    let gaps: Vec<Duration> = first
        .attempts
        .windows(2)
        .map(|w| (w[1].at - w[0].at).to_std().unwrap())
        .collect();
    for (gap, want) in gaps.iter().zip([2, 3]) {
        let want = Duration::from_secs(want);
        assert!(
            *gap >= want && *gap < want + Duration::from_secs(5),
            "gaps {gaps:?}"
        );
    }
    assert_eq!(
        t.db.value("SELECT job_id FROM payments WHERE id = 7"),
        first.id.to_string(),
        "the retried run confirmed it"
    );
    // No second run while the first was retrying: the next job of the
    // schedule was made after the first one ended.
    let ended = first.finished_at.unwrap();
    for later in &polls[1..] {
        assert!(
            later.created_at >= ended - chrono::Duration::milliseconds(50),
            "a run enqueued at {} while the first ran until {ended}",
            later.created_at
        );
    }
    let statuses: Vec<_> = t.tonapi.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses[..3], [503, 429, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_payment_verification_polls_one_payment_until_its_transfer_arrives() {
    let t = Bot::new(
        "[handlers.payment_verification]\nretry = { delays = [\"1s\", \"1s\", \"1s\"] }\n",
    );
    t.payment(12345, 42, 10 * TON, 3_600_000);
    t.tonapi.script(
        WALLET,
        [
            Reply::Ok,
            Reply::Add(standins::ton_transfer(
                WALLET,
                "v1",
                10 * TON,
                "i3lani_12345",
            )),
        ],
    );
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    // The seed's payload, amount in TON as a JSON number.
    let seed = serde_json::json!({
        "payment_id": 12345,
        "wallet_address": WALLET,
        "amount": 10.0,
        "memo": "i3lani_12345"
    });
    let ok = s
        .enqueuer
        .enqueue(crate::support::request(
            "payment_verification",
            seed.clone(),
        ))
        .await
        .unwrap();
    let mut wrong = seed;
    wrong["amount"] = serde_json::json!(1.5);
    let bad = s
        .enqueuer
        .enqueue(crate::support::request("payment_verification", wrong))
        .await
        .unwrap();

    let job = crate::support::finished(s.store.as_ref(), ok.id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    let kinds: Vec<_> = job.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(kinds, [OutcomeKind::Retryable, OutcomeKind::Succeeded]);
    assert_eq!(t.status(12345), "confirmed");
    assert_eq!(
        t.db.count("SELECT count(*) FROM subscriptions WHERE user_id = 42"),
        1
    );

    // A payment never paid: the last attempt leaves it to the monitor
    // instead of sending the job to the dead-letter queue.
    t.db.exec(&format!(
        "INSERT INTO payments (id, user_id, wallet_address, amount_nano, memo, expires_at) \
         VALUES (777, 43, 'UQ-other', {TON}, 'i3lani_777', {})",
        now_ms() + 3_600_000
    ));
    let unpaid = s
        .enqueuer
        .enqueue(taskhost::enqueue::EnqueueRequest {
            max_attempts: Some(2),
            ..crate::support::request(
                "payment_verification",
                serde_json::json!({"payment_id": 777, "wallet_address": "UQ-other", "amount": "1", "memo": "i3lani_777"}),
            )
        })
        .await
        .unwrap();
    let unpaid = crate::support::finished(s.store.as_ref(), unpaid.id).await;
    assert_eq!(unpaid.status, JobStatus::Succeeded);
    assert_eq!(unpaid.attempts.len(), 2);
    assert_eq!(t.status(777), "pending");
    assert_eq!(t.tonapi.calls_for("UQ-other").len(), 2);

    let bad = crate::support::finished(s.store.as_ref(), bad.id).await;
    assert_eq!(bad.status, JobStatus::Dead);
    let message = bad.attempts[0].message.clone().unwrap();
    assert!(
        message.contains("amount") && message.contains("1500000000"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_hosts_monitoring_at_once_activate_each_subscription_once() {
    const N: i64 = 10;
    let t = Bot::on_postgres(&monitor_every_second(""));
    for id in 1..=N {
        t.payment(id, 600 + id, TON, 3_600_000);
        t.tonapi.script(
            WALLET,
            [Reply::Add(standins::ton_transfer(
                WALLET,
                &format!("m{id}"),
                TON,
                &format!("i3lani_{id}"),
            ))],
        );
    }
    let s = services(&t.host).await;
    let _a = spawn_serve(&t.host);
    let _b = spawn_serve(&t.host);
    // Besides the schedule's runs, monitors enqueued by hand, so several
    // run at once on both hosts and race for the same payments.
    let runs = (0..6)
        .map(|_| crate::support::request("payment_monitor", serde_json::json!({})))
        .collect();
    s.enqueuer.enqueue_batch(runs).await.unwrap();
    wait_until(LIMIT, "every payment confirmed", || {
        (t.db
            .count("SELECT count(*) FROM payments WHERE status <> 'confirmed'")
            == 0)
            .then_some(())
    });
    // Every run that saw the transfers has finished.
    for job in jobs_of(s.store.as_ref(), "payment_monitor").await {
        crate::support::finished(s.store.as_ref(), job.id).await;
    }
    assert_eq!(t.db.count("SELECT count(*) FROM subscriptions"), N);
    assert_eq!(
        t.db.count("SELECT count(DISTINCT user_id) FROM subscriptions"),
        N,
        "one subscription per payment's user"
    );
}

//! Channel analytics: counts and price from the Bot API's answer, and the
//! bot token and TonAPI key nowhere in the store, the logs or /metrics.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_updates_counts_and_price_and_the_secrets_appear_nowhere() {
    counts_price_and_no_secrets(Bot::new(&schedules())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_analytics_updates_counts_and_price_and_the_secrets_appear_nowhere() {
    counts_price_and_no_secrets(Bot::on_postgres(&schedules())).await;
}

fn schedules() -> String {
    format!(
        "{}{}",
        schedule("channel-analytics", "1s", "channel_analytics"),
        schedule("payment-monitor", "1s", "payment_monitor"),
    )
}

async fn counts_price_and_no_secrets(t: Bot) {
    t.db.exec("INSERT INTO channels (id) VALUES ('@i3lani'), ('@gone')");
    t.telegram.set("@i3lani", serde_json::json!(20_000));
    // A payment, so the monitor calls TonAPI with its key too.
    t.payment(9, 509, TON, 3_600_000);
    let s = services(&t.host).await;
    let log = t.host.path().join("serve.log");
    let serve = spawn_serve_logged(&t.host, &log);

    wait_until(LIMIT, "the channel's figures", || {
        let updated =
            t.db.count("SELECT updated_at FROM channels WHERE id = '@i3lani'");
        (updated > 0).then_some(())
    });
    let figures = t.db.rows(
        "SELECT subscribers, active_subscribers, price_nano FROM channels WHERE id = '@i3lani'",
    );
    // 45 % of 20,000 active; 1 TON + 9,000 / 1,000 * 0.5 TON.
    assert_eq!(
        figures,
        [vec![
            "20000".to_string(),
            "9000".into(),
            (TON + 9 * TON / 2).to_string()
        ]]
    );
    wait_until(LIMIT, "the unknown channel's error", || {
        let error =
            t.db.value("SELECT last_error FROM channels WHERE id = '@gone'");
        (!error.is_empty()).then_some(error)
    });
    let error =
        t.db.value("SELECT last_error FROM channels WHERE id = '@gone'");
    assert!(
        error.contains("400") && error.contains("chat not found"),
        "{error}"
    );

    // The seed's on-demand form, enqueued with its delay (3,600 s, scaled):
    // fresh figures are skipped unless force_update.
    t.telegram.set("@i3lani", serde_json::json!(30_000));
    let mut ids = vec![];
    for force in [false, true] {
        let e = s
            .enqueuer
            .enqueue(taskhost::enqueue::EnqueueRequest {
                delay: Some(Duration::from_secs(1)),
                ..crate::support::request(
                    "channel_analytics",
                    serde_json::json!({"channel_id": "@i3lani", "force_update": force}),
                )
            })
            .await
            .unwrap();
        ids.push(e.id);
    }
    let lazy = crate::support::finished(s.store.as_ref(), ids[0]).await;
    let forced = crate::support::finished(s.store.as_ref(), ids[1]).await;
    assert_eq!(lazy.result.as_ref().unwrap()["fresh"], 1);
    assert_eq!(
        forced.result.as_ref().unwrap()["updated"][0]["subscribers"],
        30_000
    );
    assert_eq!(
        t.db.value("SELECT active_subscribers FROM channels WHERE id = '@i3lani'"),
        "13500"
    );
    wait_until(LIMIT, "a TonAPI poll", || {
        (!t.tonapi.calls().is_empty()).then_some(())
    });

    let metrics = crate::support::http_get(&format!(
        "http://{}/metrics",
        crate::support::api_address(&log)
    ))
    .await;
    assert!(metrics.contains("taskhost_jobs"), "{metrics}");
    crate::support::terminate(serve);
    let store = crate::support::all_files(&t.host.path().join(".taskhost"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("handler=channel_analytics"),
        "the log has the jobs"
    );
    assert!(
        t.telegram.calls().iter().all(|c| c.status != 401),
        "the token reached Telegram"
    );
    for (place, text) in [
        ("the store", &store),
        ("the host's log", &logged),
        ("/metrics", &metrics),
    ] {
        for (name, secret) in [("bot token", BOT_TOKEN), ("TonAPI key", TONAPI_KEY)] {
            assert!(!text.contains(secret), "the {name} is in {place}");
            let part = &secret[secret.len() / 2..];
            assert!(!text.contains(part), "part of the {name} is in {place}");
        }
    }
}

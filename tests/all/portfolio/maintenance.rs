//! The trading platform's upkeep: bot health checks and restarts, data
//! cleanup, VACUUM under the maintenance grant (and refused without it),
//! and the daily summary mails.

use super::*;
use crate::support::standins::Reply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_failing_three_checks_is_marked_unhealthy_and_restarted_once() {
    bot_health(Portfolio::new(&schedule(
        "bot-health-check",
        "1s",
        "bot_health_check",
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_bot_failing_three_checks_is_marked_unhealthy_and_restarted_once() {
    bot_health(Portfolio::on_postgres(&schedule(
        "bot-health-check",
        "1s",
        "bot_health_check",
    )))
    .await;
}

async fn bot_health(t: Portfolio) {
    t.db.exec(&format!(
        "INSERT INTO bots (id, name, url) VALUES (1, 'grid-btc', '{u}/bots/1'), (2, 'dca-eth', '{u}/bots/2')",
        u = t.bots.url
    ));
    t.bots.script("1", vec![Reply::Fail(503); 3]);
    let s = services_of(&t).await;
    let _serve = serve(&t);

    wait_until(LIMIT, "bot 1 to be restarted", || {
        (!t.bots.done().is_empty()).then_some(())
    });
    // Two more checks of the restarted bot: healthy, nothing more restarted.
    wait_until(LIMIT, "two checks after the restart", || {
        (t.bots.calls_for("1").len() >= 6).then_some(())
    });
    let health: Vec<u16> = t
        .bots
        .calls_for("1")
        .iter()
        .filter(|c| c.body == "health")
        .map(|c| c.status)
        .collect();
    assert_eq!(health[..3], [503, 503, 503], "{health:?}");
    assert!(health[3..].iter().all(|&s| s == 200), "{health:?}");
    let restarts = jobs_of(s.store.as_ref(), "restart_unhealthy_bots").await;
    assert_eq!(restarts.len(), 1, "one restart job");
    assert_eq!(restarts[0].priority, taskhost::job::Priority::High);
    let restart = crate::support::finished(s.store.as_ref(), restarts[0].id).await;
    assert_eq!(succeeded(&restart), serde_json::json!([1]));
    let done = t.bots.done();
    assert_eq!(done.len(), 1, "one restart request: {done:?}");
    assert_eq!(done[0].0, "1");
    assert_eq!(done[0].1["requested_by"], restart.id.to_string());
    let row =
        t.db.rows("SELECT status, failures, restart_job FROM bots WHERE id = 1");
    assert_eq!(row[0][0], "running");
    assert_eq!(row[0][1], "0");
    assert_eq!(row[0][2], restart.id.to_string());
    assert!(t.bots.calls_for("2").iter().all(|c| c.status == 200));
    assert_eq!(
        t.db.value("SELECT status FROM bots WHERE id = 2"),
        "running"
    );
    assert_eq!(t.db.value("SELECT restart_job FROM bots WHERE id = 2"), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_runs_under_the_maintenance_grant() {
    let t = Portfolio::new("");
    t.db.exec("INSERT INTO trades (id, user_id, symbol, executed_at) VALUES (1, 1, 'BTCUSDT', 1)");
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(&s, "vacuum_database", serde_json::json!({})).await;
    assert_eq!(
        succeeded(&job)["statements"],
        serde_json::json!(["VACUUM", "ANALYZE"])
    );
    assert!(
        t.db.count("SELECT count(*) FROM sqlite_stat1") >= 1,
        "ANALYZE ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_vacuum_runs_under_the_maintenance_grant() {
    let t = Portfolio::on_postgres("");
    t.db.exec("INSERT INTO trades (id, user_id, symbol, executed_at) VALUES (1, 1, 'BTCUSDT', 1)");
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(&s, "vacuum_database", serde_json::json!({})).await;
    assert_eq!(
        succeeded(&job)["statements"],
        serde_json::json!(["VACUUM", "ANALYZE"])
    );
    wait_until(LIMIT, "the vacuum in the statistics", || {
        let sql =
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'trades'";
        (t.db.value(sql) == "t").then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_maintenance_grant_vacuum_is_refused() {
    for postgres in [false, true] {
        let t = Portfolio::with(Setup {
            postgres,
            no_maintenance: true,
            ..Default::default()
        });
        let s = services_of(&t).await;
        let _serve = serve(&t);
        let job = run(&s, "vacuum_database", serde_json::json!({})).await;
        assert_eq!(job.status, JobStatus::Dead, "postgres: {postgres}");
        assert_eq!(job.attempts.len(), 1, "a refusal is permanent");
        let message = job.attempts[0].message.clone().unwrap_or_default();
        assert!(
            message.contains("denied") && message.contains("maintenance"),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_grant_alone_allows_vacuum_and_nothing_else() {
    let t = Portfolio::with(Setup {
        maintenance_only: true,
        ..Default::default()
    });
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(&s, "vacuum_database", serde_json::json!({})).await;
    assert_eq!(
        succeeded(&job)["statements"],
        serde_json::json!(["VACUUM", "ANALYZE"])
    );
    let cleanup = run(&s, "cleanup_data", serde_json::json!({})).await;
    assert_eq!(cleanup.status, JobStatus::Dead);
    let message = cleanup.attempts[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("denied") && message.contains("\"app\""),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_cleanup_data_deletes_old_trades_logs_and_cache_in_batches() {
    let t = Portfolio::with(Setup {
        postgres: true,
        settings: "cleanup_batch = \"2\"",
        ..Default::default()
    });
    let now = now_ms();
    let old_trade = now - 400 * DAY_MS;
    let old_log = now - 31 * DAY_MS;
    t.db.exec(&format!(
        "INSERT INTO trades (id, user_id, symbol, executed_at) VALUES
           (1, 1, 'BTCUSDT', {old_trade}), (2, 1, 'BTCUSDT', {old_trade}), (3, 1, 'BTCUSDT', {old_trade}),
           (4, 1, 'ETHUSDT', {recent});
         INSERT INTO logs (id, created_at, message) VALUES (1, {old_log}, 'old'), (2, {recent}, 'new');
         INSERT INTO cache (cache_key, value, expires_at) VALUES
           ('stale', 'x', {stale}), ('fresh', 'y', {fresh});",
        recent = now - DAY_MS,
        stale = now - 2 * 3_600_000,
        fresh = now + 3_600_000,
    ));
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let result = succeeded(&run(&s, "cleanup_data", serde_json::json!({})).await);
    assert_eq!(result[0]["what"], "trades");
    assert_eq!(result[0]["deleted"], 3);
    assert_eq!(result[0]["batches"], 2, "cleanup_batch = 2");
    assert_eq!(result[1]["deleted"], 1);
    assert_eq!(result[2]["deleted"], 1);
    assert_eq!(
        t.db.value("SELECT string_agg(id::text, ',') FROM trades"),
        "4"
    );
    assert_eq!(t.db.value("SELECT message FROM logs"), "new");
    assert_eq!(t.db.value("SELECT cache_key FROM cache"), "fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_summary_reaches_each_subscriber_once_after_the_providers_back_off() {
    let t =
        Portfolio::new("[handlers.send_daily_summary_emails]\nretry = { delays = [\"30s\"] }\n");
    t.db.exec(
        "INSERT INTO users (id, email, daily_summary) VALUES
           (1, 'ada@example.com', 1), (2, 'bob@example.com', 0), (3, 'cy@example.com', 1);
         INSERT INTO wallets (id, user_id, name) VALUES (1, 1, 'Main'), (3, 3, 'Savings');
         INSERT INTO wallet_balances (wallet_id, asset, amount) VALUES (1, 'BTC', 150000000), (3, 'USDT', 125000);",
    );
    t.mail.script("cy@example.com", [Reply::RateLimit(1)]);
    let s = services_of(&t).await;
    let log = t.host.path().join("serve.log");
    let serve = crate::support::spawn_serve_logged(&t.host, &log);
    let job = run(&s, "send_daily_summary_emails", serde_json::json!({})).await;
    let result = succeeded(&job);
    assert_eq!(
        job.attempts.len(),
        2,
        "the 429 retried, after the provider's second"
    );
    assert_eq!(
        result["sent"],
        serde_json::json!([3]),
        "ada's went out on the first attempt"
    );
    assert_eq!(result["already"], serde_json::json!([1]));
    let sent = t.mail.done();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].1["to"], "ada@example.com");
    assert!(
        sent[0].1["text"]
            .as_str()
            .unwrap()
            .contains("Main: BTC 150000000")
    );
    assert_eq!(sent[1].1["to"], "cy@example.com");
    assert_eq!(t.db.count("SELECT count(*) FROM summary_emails"), 2);
    // Run again the same day: nobody gets a second mail.
    let again = succeeded(&run(&s, "send_daily_summary_emails", serde_json::json!({})).await);
    assert_eq!(again["sent"], serde_json::json!([]));
    assert_eq!(t.mail.done().len(), 2);
    crate::support::terminate(serve);
    let store = crate::support::all_files(&t.host.path().join(".taskhost"));
    let logged = std::fs::read_to_string(&log).unwrap();
    for (place, text) in [("the store", &store), ("the host's log", &logged)] {
        assert!(!text.contains(MAIL_KEY), "the mail key is in {place}");
    }
}

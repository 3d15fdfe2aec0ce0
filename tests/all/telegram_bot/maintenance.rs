//! The health checker (checks recorded, one admin alert per window) and
//! the daily cleanup (old rows by age, in bounded batches).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_web_service_is_recorded_and_the_admin_chat_alerted_once_per_window() {
    let t = Bot::new(&schedule("health-checker", "1s", "health_checker"));
    t.web.script("health", vec![Reply::Fail(503); 100]);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    wait_until(LIMIT, "three failed checks", || {
        (t.db
            .count("SELECT count(*) FROM health_checks WHERE web_ok = 0")
            >= 3)
            .then_some(())
    });
    wait_until(LIMIT, "the alert", || {
        (!t.telegram.done().is_empty()).then_some(())
    });
    let detail =
        t.db.value("SELECT detail FROM health_checks ORDER BY checked_at LIMIT 1");
    assert!(
        detail.contains("web service") && detail.contains("503"),
        "{detail}"
    );
    assert_eq!(
        t.db.count("SELECT count(*) FROM health_checks WHERE db_ok = 1"),
        t.db.count("SELECT count(*) FROM health_checks")
    );
    let alerts = jobs_of(s.store.as_ref(), "health_alert").await;
    assert_eq!(
        alerts.len(),
        1,
        "one alert per hour, however many checks fail"
    );
    let sent = t.telegram.done();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, ADMIN_CHAT);
    let text = sent[0].1["text"].as_str().unwrap();
    assert!(text.contains("unhealthy") && text.contains("503"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_deletes_old_rows_in_bounded_batches_and_keeps_money_records() {
    cleanup(Bot::new("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_cleanup_deletes_old_rows_in_bounded_batches() {
    cleanup(Bot::on_postgres("")).await;
}

async fn cleanup(t: Bot) {
    let day = 86_400_000i64;
    let old = now_ms() - 40 * day;
    let recent = now_ms() - day;
    let mut sql = String::new();
    for i in 0..5 {
        sql.push_str(&format!(
            "INSERT INTO payments (id, user_id, wallet_address, amount_nano, memo, status, expires_at) \
             VALUES ({i}, 1, 'w', 1, 'i3lani_{i}', 'expired', {old});"
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO payments (id, user_id, wallet_address, amount_nano, memo, status, expires_at) VALUES
           (10, 1, 'w', 1, 'i3lani_10', 'expired', {recent}),
           (11, 1, 'w', 1, 'i3lani_11', 'confirmed', {old}),
           (12, 1, 'w', 1, 'i3lani_12', 'pending', {old});
         INSERT INTO rewards (id, user_id, reward_type, amount_nano, status, credited_at) VALUES
           ('old', 1, 'referral', 1, 'credited', {}),
           ('new', 1, 'referral', 1, 'credited', {recent}),
           ('due', 1, 'referral', 1, 'pending', NULL);
         INSERT INTO health_checks (job_id, checked_at, web_ok, db_ok, detail) VALUES
           ('h-old', {}, 1, 1, 'ok'), ('h-new', {recent}, 1, 1, 'ok');",
        now_ms() - 100 * day,
        now_ms() - 8 * day,
    ));
    t.db.exec(&sql);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    let e = s
        .enqueuer
        .enqueue(crate::support::request(
            "database_cleanup",
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    let job = crate::support::finished(s.store.as_ref(), e.id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
    let result = job.result.unwrap();
    // cleanup_batch = 2 in the test config: five old payments in three batches.
    assert_eq!(result[0]["table"], "payments");
    assert_eq!(result[0]["deleted"], 5);
    assert_eq!(result[0]["batches"], 3);
    assert_eq!(result[1]["deleted"], 1);
    assert_eq!(result[2]["deleted"], 1);
    let left = |sql: &str| {
        t.db.rows(sql)
            .into_iter()
            .map(|r| r[0].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        left("SELECT id FROM payments ORDER BY id"),
        ["10", "11", "12"]
    );
    assert_eq!(left("SELECT id FROM rewards ORDER BY id"), ["due", "new"]);
    assert_eq!(left("SELECT job_id FROM health_checks"), ["h-new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_an_unreachable_database_still_alerts_the_admin_chat() {
    let t = Bot::on_postgres(&schedule("health-checker", "1s", "health_checker"));
    let crate::support::appdb::AppDb::Postgres(pg) = &t.db else {
        unreachable!()
    };
    let _serve = spawn_serve(&t.host);
    wait_until(LIMIT, "a healthy check recorded", || {
        (t.db
            .count("SELECT count(*) FROM health_checks WHERE web_ok = 1 AND db_ok = 1")
            >= 1)
            .then_some(())
    });
    assert!(t.telegram.done().is_empty(), "no alert while healthy");

    // The database goes away: no new connections, the pooled ones cut.
    crate::support::postgres::postgres().psql(
        "postgres",
        &format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false; \
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}'",
            db = pg.name
        ),
    );
    let sent = wait_until(LIMIT, "the alert", || {
        let done = t.telegram.done();
        (!done.is_empty()).then_some(done)
    });
    assert_eq!(sent[0].0, ADMIN_CHAT);
    let text = sent[0].1["text"].as_str().unwrap();
    assert!(text.contains("database"), "{text}");
    crate::support::postgres::postgres().psql(
        "postgres",
        &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", pg.name),
    );
}

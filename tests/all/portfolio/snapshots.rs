//! Balance snapshots: one row per wallet and asset per tick, stamped with
//! the tick's time, nothing on a second run of the tick; retention windows
//! from the settings, deleted in batches.

use super::*;

/// The four snapshot schedules, parked far ahead so that only
/// `taskhost schedule run` fires them during the test.
const SCHEDULES: [(&str, &str, &str); 4] = [
    ("hourly-snapshots", "create_hourly_snapshots", "hourly"),
    ("daily-snapshots", "create_daily_snapshots", "daily"),
    ("weekly-snapshots", "create_weekly_snapshots", "weekly"),
    ("monthly-snapshots", "create_monthly_snapshots", "monthly"),
];

fn parked_schedules() -> String {
    SCHEDULES
        .iter()
        .map(|(name, handler, _)| {
            format!(
                "[[schedules]]\nname = \"{name}\"\nschedule = \"at 2035-01-01T00:00:00Z\"\nhandler = \"{handler}\"\npayload = {{}}\n"
            )
        })
        .collect()
}

fn balances(t: &Portfolio) {
    t.db.exec(
        "INSERT INTO wallets (id, user_id, name) VALUES (1, 1, 'Main'), (2, 1, 'Cold'), (3, 2, 'Trading');
         INSERT INTO wallet_balances (wallet_id, asset, amount) VALUES
           (1, 'BTC', 150000000), (1, 'ETH', 2000000000), (2, 'BTC', 7), (3, 'USDT', 125000);",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_periods_schedule_writes_one_row_per_wallet_and_asset_per_tick() {
    snapshots(Portfolio::new(&parked_schedules())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_each_periods_schedule_writes_one_row_per_wallet_and_asset_per_tick() {
    snapshots(Portfolio::on_postgres(&parked_schedules())).await;
}

async fn snapshots(t: Portfolio) {
    balances(&t);
    let s = services_of(&t).await;
    let _serve = serve(&t);
    wait_until(LIMIT, "the schedules to be synced", || {
        let out = t.host.run_cli(&["schedule", "list"]);
        let text = crate::support::stdout(&out);
        SCHEDULES
            .iter()
            .all(|(name, ..)| text.contains(name))
            .then_some(())
    });
    for (name, handler, period) in SCHEDULES {
        let out = t.host.run_cli(&["schedule", "run", name]);
        assert!(out.status.success(), "{}", crate::support::stderr(&out));
        let job = crate::support::eventually(LIMIT, "the snapshot job", || async {
            jobs_of(s.store.as_ref(), handler).await.into_iter().next()
        })
        .await;
        let job = crate::support::finished(s.store.as_ref(), job.id).await;
        let result = succeeded(&job);
        assert_eq!(result["written"], 4, "{period}: {result}");
        let tick = job.run_at.timestamp_millis();
        assert_eq!(result["taken_at"], tick, "{period}: stamped with the tick");
        let rows = t.db.rows(&format!(
            "SELECT wallet_id, asset, taken_at FROM balance_snapshots WHERE period = '{period}' ORDER BY wallet_id, asset"
        ));
        let want: Vec<Vec<String>> = [(1, "BTC"), (1, "ETH"), (2, "BTC"), (3, "USDT")]
            .iter()
            .map(|(w, a)| vec![w.to_string(), a.to_string(), tick.to_string()])
            .collect();
        assert_eq!(rows, want, "{period}");
    }

    // The same tick again (a retry, a duplicate delivery): a job due at
    // exactly the tick, twice.
    let tick = chrono::DateTime::parse_from_rfc3339("2026-01-04T01:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for (i, written) in [(0, 4), (1, 0)] {
        let e = s
            .enqueuer
            .enqueue(taskhost::enqueue::EnqueueRequest {
                run_at: Some(tick),
                ..crate::support::request("create_weekly_snapshots", serde_json::json!({}))
            })
            .await
            .unwrap();
        let job = crate::support::finished(s.store.as_ref(), e.id).await;
        let result = succeeded(&job);
        assert_eq!(result["written"], written, "run {i}: {result}");
        assert_eq!(result["taken_at"], tick.timestamp_millis());
    }
    assert_eq!(
        t.db.count(&format!(
            "SELECT count(*) FROM balance_snapshots WHERE period = 'weekly' AND taken_at = {}",
            tick.timestamp_millis()
        )),
        4
    );

    // Each tick belongs to its period's slot (UTC; weeks from Sunday), so
    // a late or retried run of it still lands on the same rows.
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    for (handler, tick, slot) in [
        (
            "create_hourly_snapshots",
            "2026-01-07T13:05:00Z",
            "2026-01-07T13:00:00Z",
        ),
        (
            "create_daily_snapshots",
            "2026-01-07T00:15:00Z",
            "2026-01-07T00:00:00Z",
        ),
        (
            "create_weekly_snapshots",
            "2026-01-10T23:00:00Z",
            "2026-01-04T00:00:00Z",
        ),
        (
            "create_monthly_snapshots",
            "2024-02-29T02:00:00Z",
            "2024-02-01T00:00:00Z",
        ),
    ] {
        let e = s
            .enqueuer
            .enqueue(taskhost::enqueue::EnqueueRequest {
                run_at: Some(at(tick)),
                ..crate::support::request(handler, serde_json::json!({}))
            })
            .await
            .unwrap();
        let job = crate::support::finished(s.store.as_ref(), e.id).await;
        let result = succeeded(&job);
        assert_eq!(
            result["slot"],
            at(slot).timestamp_millis(),
            "{handler}: {result}"
        );
        assert_eq!(result["taken_at"], at(tick).timestamp_millis(), "{handler}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switched_off_period_takes_nothing() {
    let t = Portfolio::with(Setup {
        settings: "hourly_snapshots = \"false\"",
        ..Default::default()
    });
    balances(&t);
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let hourly = succeeded(&run(&s, "create_hourly_snapshots", serde_json::json!({})).await);
    assert_eq!(hourly["written"], 0);
    assert_eq!(hourly["skipped"], "hourly_snapshots is false");
    let daily = succeeded(&run(&s, "create_daily_snapshots", serde_json::json!({})).await);
    assert_eq!(daily["written"], 4);
    assert_eq!(t.db.count("SELECT count(*) FROM balance_snapshots"), 4);
}

/// Snapshots every hour, day, week and 30 days over 120 days, each half an
/// hour off the hour so no row sits at a window's edge.
fn spread(t: &Portfolio) {
    let now = now_ms();
    let half = 1_800_000;
    for (period, count, step_ms) in [
        ("hourly", 120 * 24, 3_600_000),
        ("daily", 120, DAY_MS),
        ("weekly", 18, 7 * DAY_MS),
        ("monthly", 4, 30 * DAY_MS),
    ] {
        t.db.exec(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
             INSERT INTO balance_snapshots (wallet_id, asset, period, slot, taken_at, amount)
             SELECT 1, 'BTC', '{period}', {now} - CAST(i AS BIGINT) * {step_ms} - {half},
                    {now} - CAST(i AS BIGINT) * {step_ms} - {half}, 1 FROM n",
            last = count - 1,
        ));
    }
}

async fn retention(t: Portfolio, want: [(&str, i64); 4], hourly_batches: i64) {
    spread(&t);
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(&s, "cleanup_old_snapshots", serde_json::json!({})).await;
    let result = succeeded(&job);
    for (i, (period, kept)) in want.iter().enumerate() {
        assert_eq!(
            t.db.count(&format!(
                "SELECT count(*) FROM balance_snapshots WHERE period = '{period}'"
            )),
            *kept,
            "{period}: {result}"
        );
        let oldest_kept = t.db.count(&format!(
            "SELECT min(taken_at) FROM balance_snapshots WHERE period = '{period}'"
        ));
        assert!(
            oldest_kept >= job.run_at.timestamp_millis() - 90 * DAY_MS,
            "{period}"
        );
        assert_eq!(result[i]["more"], false);
    }
    assert_eq!(result[0]["batches"], hourly_batches, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_seven_days_of_hourly_and_ninety_of_the_rest_in_batches() {
    let t = Portfolio::with(Setup {
        settings: "cleanup_batch = \"500\"",
        ..Default::default()
    });
    // 2,880 hourly rows, 168 kept: 2,712 deleted in 6 batches of at most 500.
    retention(
        t,
        [
            ("hourly", 168),
            ("daily", 90),
            ("weekly", 13),
            ("monthly", 3),
        ],
        6,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_retention_settings_change_the_windows() {
    let t = Portfolio::with(Setup {
        postgres: true,
        settings: "hourly_retention_days = \"2\"\nhistory_retention_days = \"30\"",
        ..Default::default()
    });
    retention(
        t,
        [("hourly", 48), ("daily", 30), ("weekly", 5), ("monthly", 1)],
        3,
    )
    .await;
}

//! Daily rewards: the 500% cap reached to the cent, the capped remainder,
//! the same tick twice, a level without a rate, and 100,000 deposits.
//! Each day is a `rewards.daily` job enqueued to run at that day's 00:00
//! UTC, as the schedule's tick would be: the job reads its day from the
//! tick, whatever the wall clock says.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use taskhost::services::Services;

use super::*;
use crate::support::{eventually, finished, request};

/// 1.00 in the smallest unit of an 18-decimal token.
const ONE: u128 = 1_000_000_000_000_000_000;
const CENT: u128 = ONE / 100;

/// Level 1 at 10% a day (its cap left to the 500% default), level 2 at 3%
/// a day capped at 500%.
const LEVELS: &str =
    "reward_rate_level_1 = \"10%\"\nreward_rate_level_2 = \"3%\"\nreward_cap_level_2 = \"500%\"\n";

fn rewards(postgres: bool) -> Invest {
    Invest::with(postgres, "", LEVELS, "")
}

/// 00:00 UTC of 2026-01-01 plus `day - 1` days.
fn tick(day: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(day - 1)
}

fn deposit(t: &Invest, id: &str, level: i64, amount: u128, earned: u128) {
    t.db.exec(&format!(
        "INSERT INTO deposits (id, user_id, level, amount, earned) VALUES ('{id}', 7, {level}, '{amount}', '{earned}')"
    ));
}

/// Runs the day's `rewards.daily` and waits for every batch it made.
async fn pay_day(s: &Services, at: DateTime<Utc>) -> serde_json::Value {
    let mut req = request("rewards.daily", json!({}));
    req.run_at = Some(at);
    let id = s.enqueuer.enqueue(req).await.unwrap().id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
    all_batches_done(s).await;
    job.result.unwrap()
}

async fn all_batches_done(s: &Services) {
    eventually(LIMIT, "every rewards.batch job to finish", || async {
        let jobs = jobs_of(s.store.as_ref(), "rewards.batch").await;
        for j in &jobs {
            assert_ne!(j.status, JobStatus::Dead, "{:?}", j.attempts);
        }
        jobs.iter().all(|j| j.status.is_final()).then_some(())
    })
    .await;
}

fn earned(t: &Invest, id: &str) -> (u128, String) {
    let row = &t.db.rows(&format!(
        "SELECT earned, status FROM deposits WHERE id = '{id}'"
    ))[0];
    (row[0].parse().unwrap(), row[1].clone())
}

/// The rewards of one deposit: (day, amount), by day.
fn paid(t: &Invest, id: &str) -> Vec<(String, u128)> {
    t.db.rows(&format!(
        "SELECT day, amount FROM rewards WHERE deposit_id = '{id}' ORDER BY day"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), r[1].parse().unwrap()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_one_deposit_reaches_exactly_five_hundred_percent_on_day_fifty() {
    capped_at_five_hundred_percent(rewards(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_level_one_deposit_reaches_exactly_five_hundred_percent_on_day_fifty() {
    capped_at_five_hundred_percent(rewards(true)).await;
}

async fn capped_at_five_hundred_percent(t: Invest) {
    deposit(&t, "ten", 1, 100 * ONE, 0);
    // 3% a day: 498.50 earned, then 1.50 left to the cap.
    deposit(&t, "three-last", 2, 100 * ONE, 49_850 * CENT);
    // 3% a day: 495.00 earned, then 3.00, then the remainder 2.00.
    deposit(&t, "three", 2, 100 * ONE, 495 * ONE);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);

    for day in 1..=51 {
        pay_day(&s, tick(day)).await;
        let (total, status) = earned(&t, "ten");
        let want = (10 * ONE * day.min(50) as u128).min(500 * ONE);
        assert_eq!(total, want, "day {day}");
        assert_eq!(status == "closed", day >= 50, "day {day}: {status}");
        if day == 2 {
            assert_eq!(earned(&t, "three-last"), (500 * ONE, "closed".into()));
            assert_eq!(
                paid(&t, "three-last"),
                [("2026-01-01".to_string(), 150 * CENT)],
                "the capped remainder on the last day, then nothing"
            );
            assert_eq!(earned(&t, "three"), (500 * ONE, "closed".into()));
            assert_eq!(
                paid(&t, "three"),
                [
                    ("2026-01-01".to_string(), 3 * ONE),
                    ("2026-01-02".to_string(), 2 * ONE)
                ]
            );
        }
    }
    let ten = paid(&t, "ten");
    assert_eq!(ten.len(), 50, "paid on days 1 to 50, nothing on day 51");
    assert!(ten.iter().all(|(_, a)| *a == 10 * ONE));
    assert_eq!(ten.iter().map(|(_, a)| a).sum::<u128>(), 500 * ONE);
    assert_eq!(ten.last().unwrap().0, "2026-02-19", "day 50");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tick_run_twice_pays_once() {
    same_tick_twice(rewards(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_same_tick_run_twice_pays_once() {
    same_tick_twice(rewards(true)).await;
}

async fn same_tick_twice(t: Invest) {
    for i in 0..30 {
        deposit(&t, &format!("d{i:02}"), 1, 100 * ONE + i, 0);
    }
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    // Two jobs for one tick, at once (a second host, a rerun by hand), in
    // batches of 7 so several batches of both race for the rows.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut req = request("rewards.daily", json!({"batch_size": 7}));
        req.run_at = Some(tick(1));
        ids.push(s.enqueuer.enqueue(req).await.unwrap().id);
    }
    for id in ids {
        let job = finished(s.store.as_ref(), id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
    }
    all_batches_done(&s).await;
    // And once more, after the day is paid.
    let again = pay_day(&s, tick(1)).await;
    assert_eq!(again["deposits"], json!(0), "{again}");

    assert_eq!(t.db.count("SELECT count(*) FROM rewards"), 30);
    assert_eq!(
        t.db.count("SELECT count(*) FROM rewards WHERE day = '2026-01-01'"),
        30,
        "the tick's day, not the wall clock's"
    );
    for i in 0..30u128 {
        let (total, _) = earned(&t, &format!("d{i:02}"));
        assert_eq!(total, (100 * ONE + i) / 10, "d{i:02}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_without_a_rate_fails_the_day_clearly_and_pays_nothing() {
    let t = rewards(false);
    deposit(&t, "a", 1, 100 * ONE, 0);
    deposit(&t, "b", 3, 100 * ONE, 0);
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    let mut req = request("rewards.daily", json!({}));
    req.run_at = Some(tick(1));
    let id = s.enqueuer.enqueue(req).await.unwrap().id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(
        job.attempts.len(),
        1,
        "permanent: no retry adds the setting"
    );
    let message = job.attempts[0].message.clone().unwrap_or_default();
    assert!(message.contains("reward_rate_level_3"), "{message}");
    assert_eq!(t.db.count("SELECT count(*) FROM rewards"), 0);
    assert_eq!(earned(&t, "a"), (0, "active".into()));

    let mut bad = request(
        "rewards.batch",
        json!({"day": "1st of May", "tick": 0, "first": "a", "last": "b"}),
    );
    bad.max_attempts = Some(3);
    let id = s.enqueuer.enqueue(bad).await.unwrap().id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempts.len(), 1);
    let message = job.attempts[0].message.clone().unwrap_or_default();
    assert!(message.contains("YYYY-MM-DD"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_deposits_are_paid_within_the_timeout() {
    const N: i64 = 100_000;
    let t = rewards(false);
    t.db.exec(&format!(
        "INSERT INTO deposits (id, user_id, level, amount) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N}) \
         SELECT 'r' || (1000000 + i), i, 1, '{}' FROM n",
        100 * ONE
    ));
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    let started = std::time::Instant::now();
    let report = pay_day(&s, tick(1)).await;
    let took = started.elapsed();
    println!(
        "rewards for {N} deposits in {} batches: {took:.1?}",
        report["batches"]
    );
    assert_eq!(report["deposits"], json!(N));
    assert!(
        took < Duration::from_secs(600),
        "the seed's 10-minute timeout: {took:?}"
    );
    let want = (10 * ONE).to_string();
    assert_eq!(
        t.db.count(&format!(
            "SELECT count(*) FROM rewards WHERE day = '2026-01-01' AND amount = '{want}'"
        )),
        N
    );
    assert_eq!(
        t.db.count(&format!(
            "SELECT count(*) FROM deposits WHERE earned = '{want}' AND paid_through = '2026-01-01'"
        )),
        N
    );
}

//! Rewards: the seed's delayed `reward_distribution` and the scheduled
//! processor, each credit exactly once however often a job runs.

use taskhost::runtime::{JobInput, Outcome};

use super::*;

/// The seed's 300 s delay, scaled.
const DELAY: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reward_enqueued_with_the_seeds_delay_runs_no_earlier_and_credits_once_when_run_twice() {
    reward_delayed_and_credited_once(Bot::new("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_reward_enqueued_with_the_seeds_delay_credits_once_when_run_twice() {
    reward_delayed_and_credited_once(Bot::on_postgres("")).await;
}

async fn reward_delayed_and_credited_once(t: Bot) {
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    // The seed: add_task('reward_distribution', {...}, delay_seconds=300).
    let seed = serde_json::json!({"user_id": 12345, "reward_type": "referral", "amount": 2.0});
    // The delay counts from the enqueue call; the store stamps `created_at`
    // a moment later, so that is not the reference.
    let asked = chrono::Utc::now();
    let enqueued = s
        .enqueuer
        .enqueue(taskhost::enqueue::EnqueueRequest {
            delay: Some(DELAY),
            ..crate::support::request("reward_distribution", seed.clone())
        })
        .await
        .unwrap();
    let job = crate::support::finished(s.store.as_ref(), enqueued.id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
    let waited = (job.attempts[0].at - asked).to_std().unwrap();
    assert!(waited >= DELAY, "ran {waited:?} after the enqueue call");
    assert_eq!(t.balance(12345), 2 * TON);
    let row =
        t.db.rows("SELECT id, reward_type, amount_nano, status, credited_by FROM rewards");
    let id = job.id.to_string();
    assert_eq!(
        row,
        [vec![
            format!("job:{id}"),
            "referral".into(),
            (2 * TON).to_string(),
            "credited".into(),
            id.clone(),
        ]]
    );

    // Delivery is at-least-once: the same job runs again (its lease lost
    // after the credit committed, say). Nothing more is credited.
    let again = s
        .runtime
        .run(JobInput {
            id: id.clone(),
            handler: "reward_distribution".into(),
            queue: "default".into(),
            attempt: 2,
            max_attempts: job.max_attempts,
            enqueued_at_ms: job.created_at.timestamp_millis() as u64,
            scheduled_for_ms: now_ms() as u64,
            payload: seed.to_string(),
        })
        .await
        .unwrap();
    let Outcome::Success { result } = again.outcome else {
        panic!("the second run failed: {:?}", again.outcome)
    };
    assert_eq!(result["credited"], serde_json::json!([]));
    assert_eq!(result["already"], serde_json::json!([format!("job:{id}")]));
    assert_eq!(t.balance(12345), 2 * TON, "credited once");
    assert_eq!(t.db.count("SELECT count(*) FROM rewards"), 1);

    // An amount finer than a nanoton is refused, naming it; nothing is written.
    let bad = s
        .enqueuer
        .enqueue(crate::support::request(
            "reward_distribution",
            serde_json::json!({"user_id": 12345, "reward_type": "referral", "amount": "0.0000000001"}),
        ))
        .await
        .unwrap();
    let bad = crate::support::finished(s.store.as_ref(), bad.id).await;
    assert_eq!(bad.status, JobStatus::Dead);
    assert_eq!(bad.attempts[0].outcome, OutcomeKind::Permanent);
    let message = bad.attempts[0].message.clone().unwrap();
    assert!(
        message.contains("\"0.0000000001\"") && message.contains("at most 9 decimals"),
        "{message}"
    );
    assert_eq!(t.db.count("SELECT count(*) FROM rewards"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reward_processor_credits_each_pending_reward_once() {
    let t = Bot::new(&schedule("reward-processor", "1s", "reward_processor"));
    t.db.exec(&format!(
        "INSERT INTO users (id, ton_balance_nano) VALUES (77, {TON});
         INSERT INTO rewards (id, user_id, reward_type, amount_nano, created_at) VALUES
           ('r1', 77, 'referral', {}, 1), ('r2', 77, 'channel_addition', {}, 2), ('r3', 78, 'referral', 1, 3);",
        TON / 2,
        3 * TON
    ));
    let s = services(&t.host).await;
    let _serve = spawn_serve(&t.host);
    wait_until(LIMIT, "every reward credited", || {
        (t.db
            .count("SELECT count(*) FROM rewards WHERE status <> 'credited'")
            == 0)
            .then_some(())
    });
    assert_eq!(t.balance(77), TON + TON / 2 + 3 * TON);
    assert_eq!(t.balance(78), 1, "a user's row made for the reward");

    // A run of the processor after that (the next tick, or a rerun of the
    // one that credited them) finds nothing to credit.
    let report =
        crate::support::run_job(&s.runtime, "reward_processor", serde_json::json!({})).await;
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(result["credited"], serde_json::json!([]));
    assert_eq!(t.balance(77), TON + TON / 2 + 3 * TON, "credited once");
    let creditors =
        t.db.count("SELECT count(DISTINCT credited_by) FROM rewards WHERE credited_by IS NOT NULL");
    assert!(creditors >= 1);
}

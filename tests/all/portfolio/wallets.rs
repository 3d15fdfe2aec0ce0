//! Wallet recalculation: a corrupted wallet restored from its history, and
//! the system-wide recalculation as per-wallet jobs the caller follows.

use super::*;

/// Wallets 1..=n, each with BTC +100, BTC -30 and ETH +5 in its history.
fn wallets(t: &Portfolio, n: i64) {
    t.db.exec(&format!(
        "WITH RECURSIVE w(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM w WHERE i < {n})
         INSERT INTO wallets (id, user_id, name) SELECT i, i, 'Main' FROM w;
         INSERT INTO wallet_transactions (id, wallet_id, asset, amount, executed_at)
           SELECT id * 3, id, 'BTC', 100, 1 FROM wallets;
         INSERT INTO wallet_transactions (id, wallet_id, asset, amount, executed_at)
           SELECT id * 3 + 1, id, 'BTC', -30, 2 FROM wallets;
         INSERT INTO wallet_transactions (id, wallet_id, asset, amount, executed_at)
           SELECT id * 3 + 2, id, 'ETH', 5, 3 FROM wallets;"
    ));
}

fn balances_of(t: &Portfolio, wallet: i64) -> Vec<Vec<String>> {
    t.db.rows(&format!(
        "SELECT asset, amount FROM wallet_balances WHERE wallet_id = {wallet} ORDER BY asset"
    ))
}

fn want() -> Vec<Vec<String>> {
    vec![
        vec!["BTC".to_string(), "70".to_string()],
        vec!["ETH".to_string(), "5".to_string()],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_wallet_is_restored_from_its_history() {
    corrupted(Portfolio::new("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_corrupted_wallet_is_restored_from_its_history() {
    corrupted(Portfolio::on_postgres("")).await;
}

async fn corrupted(t: Portfolio) {
    wallets(&t, 2);
    t.db.exec(
        "INSERT INTO wallet_balances (wallet_id, asset, amount) VALUES
           (1, 'BTC', 999999), (1, 'DOGE', 42), (2, 'BTC', 70), (2, 'ETH', 5)",
    );
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(
        &s,
        "recalculate_wallet_balances",
        serde_json::json!({"wallet_id": 1, "create_snapshots": true}),
    )
    .await;
    let result = succeeded(&job);
    assert_eq!(result["assets"], 2);
    assert_eq!(result["snapshots"], 2);
    assert_eq!(balances_of(&t, 1), want(), "restored, the stray asset gone");
    assert_eq!(balances_of(&t, 2), want(), "another wallet untouched");
    assert_eq!(
        t.db.count(
            "SELECT count(*) FROM balance_snapshots WHERE wallet_id = 1 AND period = 'recalculated'"
        ),
        2
    );
    // A wallet that does not exist is a permanent error, and changes nothing.
    let missing = run(
        &s,
        "recalculate_wallet_balances",
        serde_json::json!({"wallet_id": 404}),
    )
    .await;
    assert_eq!(missing.status, JobStatus::Dead);
    assert_eq!(missing.attempts.len(), 1);
    let message = missing.attempts[0].message.clone().unwrap_or_default();
    assert!(message.contains("wallet 404 does not exist"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recalculating_all_wallets_runs_one_job_per_wallet_and_the_caller_sees_the_end() {
    // Scaled down from the 10,000 wallets to 1,000, over three
    // pages of 400: the same shape, a tenth of the time (10,000 took about
    // 90 s with the debug build on a shared 2-core machine).
    const N: i64 = 1000;
    let t = Portfolio::with(Setup {
        settings: "fanout_page = \"400\"",
        ..Default::default()
    });
    wallets(&t, N);
    // Every balance wrong before.
    t.db.exec(
        "INSERT INTO wallet_balances (wallet_id, asset, amount) SELECT id, 'BTC', 1 FROM wallets",
    );
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let first = run(&s, "recalculate_all_wallets", serde_json::json!({})).await;
    let page = succeeded(&first);
    let run_id = page["run"].as_str().unwrap().to_string();
    assert_eq!(
        run_id,
        first.id.to_string(),
        "the run is named by its first job"
    );
    assert_eq!(page["enqueued"], 400);

    // What the caller polls: the run's size, and how many wallets are done.
    let progress = format!(
        "SELECT r.wallets - (SELECT count(*) FROM wallet_recalculations d WHERE d.run_id = r.id) \
         FROM recalculation_runs r WHERE r.id = '{run_id}'"
    );
    assert_eq!(
        t.db.count(&format!(
            "SELECT wallets FROM recalculation_runs WHERE id = '{run_id}'"
        )),
        N
    );
    wait_until(
        Duration::from_secs(300),
        "every wallet to be recalculated",
        || (t.db.count(&progress) == 0).then_some(()),
    );
    assert_eq!(
        t.db.count("SELECT count(*) FROM wallet_balances WHERE asset = 'BTC' AND amount = 70"),
        N
    );
    assert_eq!(
        t.db.count("SELECT count(*) FROM wallet_balances WHERE asset = 'ETH' AND amount = 5"),
        N
    );
    let pages = jobs_of(s.store.as_ref(), "recalculate_all_wallets").await;
    assert_eq!(pages.len(), 3, "pages of 400, 400 and 200");
    let per_wallet = jobs_of(s.store.as_ref(), "recalculate_wallet_balances").await;
    assert_eq!(per_wallet.len() as i64, N, "one job per wallet, none twice");
}

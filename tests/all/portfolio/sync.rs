//! Portfolio sync against the stand-in exchange: signed by the host,
//! holdings written, the exchange's back-off honoured, and the API key and
//! secret nowhere in the store, the app's database, the log or /metrics.

use std::time::Duration;

use super::*;
use crate::support::portfolio_standins::account;
use crate::support::standins::Reply;

fn users(t: &Portfolio) {
    t.db.exec(
        "INSERT INTO users (id, email, exchange_key_ref, exchange_secret_ref) VALUES
           (1, 'ada@example.com', 'exchange_key_1', 'exchange_secret_1'),
           (2, 'bob@example.com', NULL, NULL);
         INSERT INTO holdings (user_id, asset, free, locked, synced_at) VALUES (1, 'DOGE', '5', '0', 1);",
    );
    t.exchange.set(
        EXCHANGE_KEY,
        account(
            EXCHANGE_SECRET,
            &[
                ("BTC", "0.50000000", "0.10000000"),
                ("ETH", "0.00000000", "0.00000000"),
                ("USDT", "1250.00", "0.00"),
            ],
        ),
    );
}

fn holdings(t: &Portfolio) -> Vec<Vec<String>> {
    t.db.rows("SELECT asset, free, locked FROM holdings WHERE user_id = 1 ORDER BY asset")
}

fn want() -> Vec<Vec<String>> {
    [
        ("BTC", "0.50000000", "0.10000000"),
        ("USDT", "1250.00", "0.00"),
    ]
    .iter()
    .map(|(a, f, l)| vec![a.to_string(), f.to_string(), l.to_string()])
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_honours_the_exchanges_back_off_and_leaks_no_key() {
    // The policy says 30 s: a retry after about 2 s can only be the exchange's.
    let t = Portfolio::new("[handlers.sync_portfolio]\nretry = { delays = [\"30s\", \"30s\"] }\n");
    users(&t);
    t.exchange.script(EXCHANGE_KEY, [Reply::RateLimit(2)]);
    let s = services_of(&t).await;
    let log = t.host.path().join("serve.log");
    let serve = crate::support::spawn_serve_logged(&t.host, &log);

    let fan_out = succeeded(&run(&s, "sync_all_portfolios", serde_json::json!({})).await);
    assert_eq!(
        fan_out.as_array().unwrap().len(),
        1,
        "only the user with keys"
    );
    wait_until(LIMIT, "the holdings", || {
        (holdings(&t) == want()).then_some(())
    });
    let job = jobs_of(s.store.as_ref(), "sync_portfolio").await.remove(0);
    let job = crate::support::finished(s.store.as_ref(), job.id).await;
    assert_eq!(succeeded(&job)["assets"], 2);
    assert_eq!(job.attempts.len(), 2);
    let calls = t.exchange.calls_for(EXCHANGE_KEY);
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let gap = calls[1].at.duration_since(calls[0].at).unwrap();
    assert!(gap >= Duration::from_secs(2), "asked again after {gap:?}");
    assert!(
        gap < Duration::from_secs(25),
        "waited for the policy, not the exchange: {gap:?}"
    );
    assert!(
        calls[1].body["timestamp"].is_string(),
        "{:?}",
        calls[1].body
    );
    assert_eq!(
        t.db.count("SELECT count(*) FROM users WHERE id = 1 AND synced_at IS NOT NULL"),
        1
    );

    let listen = crate::support::api_address(&log);
    let metrics = crate::support::http_get(&format!("http://{listen}/metrics")).await;
    assert!(
        metrics.contains("taskhost_jobs_succeeded_total"),
        "{metrics}"
    );
    crate::support::terminate(serve);
    let store = crate::support::all_files(&t.host.path().join(".taskhost"));
    let app = std::fs::read(t.host.path().join("app.db")).unwrap();
    let app = String::from_utf8_lossy(&app);
    let logged = std::fs::read_to_string(&log).unwrap();
    for (place, text) in [
        ("the store", &store),
        ("the app's database", &app.to_string()),
        ("the host's log", &logged),
        ("/metrics", &metrics),
    ] {
        for (what, secret) in [("API key", EXCHANGE_KEY), ("API secret", EXCHANGE_SECRET)] {
            assert!(!text.contains(secret), "the {what} is in {place}");
            assert!(
                !text.contains(&secret[10..30]),
                "part of the {what} is in {place}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_sync_replaces_the_holdings_in_one_transaction() {
    let t = Portfolio::on_postgres("");
    users(&t);
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(&s, "sync_portfolio", serde_json::json!({"user_id": 1})).await;
    assert_eq!(succeeded(&job)["assets"], 2);
    assert_eq!(holdings(&t), want(), "DOGE, no longer held, is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_signed_with_the_wrong_secret_is_refused_and_not_retried() {
    let t = Portfolio::new("");
    users(&t);
    // The exchange knows the key with another secret than the host signs with.
    t.exchange.set(
        EXCHANGE_KEY,
        account("another-secret", &[("BTC", "1", "0")]),
    );
    let s = services_of(&t).await;
    let _serve = serve(&t);
    let job = run(&s, "sync_portfolio", serde_json::json!({"user_id": 1})).await;
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(job.attempts.len(), 1, "a refusal is permanent");
    let message = job.attempts[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("400") && message.contains("Signature"),
        "{message}"
    );
    assert_eq!(holdings(&t)[0][0], "DOGE", "nothing changed");
}

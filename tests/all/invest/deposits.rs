//! Deposit monitoring on anvil with the test ERC-20: confirmations, the
//! cursor across a restart, a reorganisation, and `kill -9` mid-run.
//! Each run is a `deposits.monitor` job enqueued by the test and awaited,
//! so the chain's height at every run is the test's to choose.

use serde_json::{Value as Json, json};
use taskhost::services::Services;

use super::*;
use crate::support::anvil::{Anvil, CHAIN_ID};
use crate::support::{eventually, finished, request, signal, spawn_serve_logged, terminate};

/// One token in smallest units (the test token has 18 decimals).
const TOKEN: u128 = 1_000_000_000_000_000_000;

/// The invest app on a local chain: the test token deployed, users 101 and
/// 102 with deposit addresses, and one address that belongs to nobody.
struct OnChain {
    t: Invest,
    node: Anvil,
    token: String,
    funder: String,
    users: [String; 2],
    stranger: String,
}

impl OnChain {
    fn new(postgres: bool) -> OnChain {
        let node = Anvil::start();
        let accounts = node.accounts();
        let funder = accounts[0].clone();
        let token = node.deploy_test_token(&funder);
        let chain = format!(
            "[chains.bsc]\nrpc = [\"{}\"]\nchain_id = {CHAIN_ID}\nconfirmations = 12\n\
             # Small windows: a run reads its range in several eth_getLogs calls.\nlog_window = 4\n",
            node.url()
        );
        let t = Invest::with(
            postgres,
            "chains = [\"bsc\"]",
            &format!("usdt_contract = \"{token}\""),
            &chain,
        );
        let users = [accounts[1].clone(), accounts[2].clone()];
        t.db.exec(&format!(
            "INSERT INTO deposit_addresses (address, user_id) VALUES ('{}', 101), ('{}', 102)",
            users[0], users[1]
        ));
        OnChain {
            t,
            node,
            token,
            funder,
            users,
            stranger: accounts[3].clone(),
        }
    }

    fn send(&self, to: &str, value: u128) -> String {
        self.node.send_token(&self.token, &self.funder, to, value)
    }

    /// `n` transfers, one token and a little more each, alternately to
    /// the two users.
    fn send_many(&self, n: u128) {
        for i in 0..n {
            self.send(&self.users[(i % 2) as usize], TOKEN + i);
        }
    }

    /// One `deposits.monitor` run to its end; answers its report.
    async fn run(&self, s: &Services) -> Json {
        let id = s
            .enqueuer
            .enqueue(request("deposits.monitor", json!({})))
            .await
            .unwrap()
            .id;
        let job = finished(s.store.as_ref(), id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
        job.result.unwrap()
    }

    fn balance(&self, user: i64) -> String {
        self.t.db.value(&format!(
            "SELECT amount FROM balances WHERE user_id = {user}"
        ))
    }

    /// (id, status) of every recorded deposit, by id.
    fn deposits(&self) -> Vec<(String, String)> {
        self.t
            .db
            .rows("SELECT id, status FROM chain_deposits ORDER BY id")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    }

    fn status_of(&self, hash: &str) -> String {
        self.t.db.value(&format!(
            "SELECT status FROM chain_deposits WHERE tx_hash = '{hash}'"
        ))
    }

    fn cursor(&self) -> i64 {
        self.t.db.count("SELECT block FROM chain_cursors")
    }

    /// Audit rows of credits: (deposit id, count), by id.
    fn credits(&self) -> Vec<(String, i64)> {
        self.t
            .db
            .rows(
                "SELECT entity_id, count(*) FROM audit WHERE entity = 'deposit' \
                 AND to_status = 'credited' GROUP BY entity_id ORDER BY entity_id",
            )
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().unwrap()))
            .collect()
    }
}

/// What user `user` (0 or 1) got from [`OnChain::send_many`]`(n)`.
fn sent(n: u128, user: u128) -> u128 {
    (0..n).filter(|i| i % 2 == user).map(|i| TOKEN + i).sum()
}

fn credited(report: &Json) -> usize {
    report["credited"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_is_credited_once_at_twelve_confirmations_and_the_cursor_survives_a_restart() {
    credited_at_twelve(OnChain::new(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_deposit_is_credited_once_at_twelve_confirmations() {
    credited_at_twelve(OnChain::new(true)).await;
}

async fn credited_at_twelve(c: OnChain) {
    let s = services(&c.t.host).await;
    let serve = spawn_serve(&c.t.host);
    // Three transfers in one block: two deposits and one to a stranger.
    c.node.set_automine(false);
    let first = c.send(&c.users[0], 1_234 * TOKEN + TOKEN / 2);
    let second = c.send(&c.users[1], 7);
    let _ignored = c.send(&c.stranger, 99 * TOKEN);
    c.node.mine(1);
    c.node.set_automine(true);
    let block = c.node.block_number();

    let report = c.run(&s).await;
    assert_eq!(report["transfers"], json!(2), "{report}");
    assert_eq!(credited(&report), 0);
    assert_eq!(c.status_of(&first), "pending");
    assert_eq!(c.status_of(&second), "pending");
    assert_eq!(
        c.deposits().len(),
        2,
        "the stranger's transfer is no deposit"
    );

    c.node.mine(10); // 11 confirmations
    let report = c.run(&s).await;
    assert_eq!(credited(&report), 0, "{report}");
    assert_eq!(c.status_of(&first), "pending");
    assert_eq!(c.balance(101), "");

    c.node.mine(1); // 12 confirmations
    let report = c.run(&s).await;
    assert_eq!(credited(&report), 2, "{report}");
    assert_eq!(c.status_of(&first), "credited");
    assert_eq!(c.balance(101), "1234500000000000000000");
    assert_eq!(c.balance(102), "7");

    c.node.mine(1); // 13 confirmations
    let report = c.run(&s).await;
    assert_eq!(credited(&report), 0, "{report}");
    let cursor = c.cursor();
    assert_eq!(
        cursor,
        block as i64 + 1,
        "the cursor stops at the last block with 12 confirmations"
    );

    terminate(serve);
    let s = services(&c.t.host).await;
    let _serve = spawn_serve(&c.t.host);
    let third = c.send(&c.users[0], TOKEN);
    c.node.mine(11);
    let report = c.run(&s).await;
    assert_eq!(
        report["read"][0],
        json!(cursor + 1),
        "after the restart the run goes on from the stored cursor: {report}"
    );
    assert_eq!(
        report["credited"],
        json!([format!("{third}:0")]),
        "{report}"
    );
    assert_eq!(c.balance(101), "1235500000000000000000");
    assert_eq!(c.balance(102), "7");
    let credits = c.credits();
    assert_eq!(credits.len(), 3);
    assert!(
        credits.iter().all(|(_, n)| *n == 1),
        "one audit row per credit: {credits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_reorganised_off_the_chain_is_orphaned_and_never_credited() {
    orphaned_by_a_reorg(OnChain::new(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_deposit_reorganised_off_the_chain_is_orphaned() {
    orphaned_by_a_reorg(OnChain::new(true)).await;
}

async fn orphaned_by_a_reorg(c: OnChain) {
    let s = services(&c.t.host).await;
    let _serve = spawn_serve(&c.t.host);
    let kept = c.send(&c.users[0], 5 * TOKEN);
    let snapshot = c.node.snapshot();
    let gone = c.send(&c.users[1], 1_000 * TOKEN);
    c.node.mine(2);
    c.run(&s).await;
    assert_eq!(c.status_of(&gone), "pending");

    c.node.revert(&snapshot);
    assert!(
        c.node.receipt(&gone).is_null(),
        "the revert dropped the transfer"
    );
    c.node.mine(12);
    let report = c.run(&s).await;
    assert_eq!(report["orphaned"], json!([format!("{gone}:0")]), "{report}");
    assert_eq!(report["credited"], json!([format!("{kept}:0")]), "{report}");
    assert_eq!(c.status_of(&gone), "orphaned");

    c.node.mine(20);
    let report = c.run(&s).await;
    assert_eq!(credited(&report), 0, "{report}");
    assert_eq!(c.status_of(&gone), "orphaned");
    assert_eq!(c.balance(102), "", "user 102 was never credited");
    assert_eq!(c.balance(101), "5000000000000000000");
    let audit = c
        .t
        .db
        .count("SELECT count(*) FROM audit WHERE entity = 'deposit' AND to_status = 'orphaned'");
    assert_eq!(audit, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_during_a_deposit_run_credits_every_transfer_once_after_restart() {
    let c = OnChain::new(false);
    const N: u128 = 120;
    c.node.set_automine(false);
    c.send_many(N);
    c.node.mine(1);
    c.node.mine(11);
    c.node.set_automine(true);

    let s = services(&c.t.host).await;
    let serve = spawn_serve(&c.t.host);
    s.enqueuer
        .enqueue(request("deposits.monitor", json!({})))
        .await
        .unwrap();
    let at_kill = wait_until(LIMIT, "the run to credit its first deposits", || {
        let n =
            c.t.db
                .count("SELECT count(*) FROM chain_deposits WHERE status = 'credited'");
        (n > 0).then_some(n)
    });
    signal(&serve, "-KILL");
    let mut serve = serve;
    serve.wait().unwrap();
    let after_kill =
        c.t.db
            .count("SELECT count(*) FROM chain_deposits WHERE status = 'credited'");
    println!("killed with {at_kill}..{after_kill} of {N} deposits credited");
    assert!(
        (after_kill as u128) < N,
        "the host was killed mid-run ({after_kill} of {N} credited)"
    );

    let s = services(&c.t.host).await;
    let _serve = spawn_serve(&c.t.host);
    c.run(&s).await;
    eventually(LIMIT, "every deposit to be credited", || async {
        let n =
            c.t.db
                .count("SELECT count(*) FROM chain_deposits WHERE status = 'credited'");
        (n as u128 == N).then_some(())
    })
    .await;
    assert_eq!(c.balance(101), sent(N, 0).to_string());
    assert_eq!(c.balance(102), sent(N, 1).to_string());
    let credits = c.credits();
    assert_eq!(credits.len() as u128, N);
    assert!(credits.iter().all(|(_, n)| *n == 1), "{credits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_overlapping_runs_on_two_hosts_credit_each_deposit_once() {
    let c = OnChain::new(true);
    const N: u128 = 40;
    c.node.set_automine(false);
    c.send_many(N);
    c.node.mine(12);
    c.node.set_automine(true);
    let s = services(&c.t.host).await;
    let logs = [c.t.host.path().join("a.log"), c.t.host.path().join("b.log")];
    let _a = spawn_serve_logged(&c.t.host, &logs[0]);
    let _b = spawn_serve_logged(&c.t.host, &logs[1]);
    for log in &logs {
        wait_until(LIMIT, "both hosts to run", || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.contains("api listening").then_some(())
        });
    }
    // Six runs at once, spread over both hosts, racing for the same
    // deposits and for the same two balances.
    let runs = (0..6)
        .map(|_| request("deposits.monitor", json!({})))
        .collect();
    let ids = s.enqueuer.enqueue_batch(runs).await.unwrap();
    for enqueued in ids {
        let job = finished(s.store.as_ref(), enqueued.id).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.attempts);
    }
    // A credit that lost the balance's compare-and-set too often waits
    // for the next run.
    c.run(&s).await;
    let n =
        c.t.db
            .count("SELECT count(*) FROM chain_deposits WHERE status = 'credited'");
    assert_eq!(n as u128, N);
    assert_eq!(c.balance(101), sent(N, 0).to_string());
    assert_eq!(c.balance(102), sent(N, 1).to_string());
    let credits = c.credits();
    assert_eq!(credits.len() as u128, N);
    assert!(credits.iter().all(|(_, n)| *n == 1), "{credits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_retryable_and_a_missing_contract_setting_permanent_and_neither_writes() {
    let dead = format!(
        "[chains.bsc]\nrpc = [\"http://127.0.0.1:{}\"]\nretries = 0\n",
        crate::support::anvil::free_port()
    );
    let grant = "chains = [\"bsc\"]";
    let token = "usdt_contract = \"0x5fbdb2315678afecb367f032d93f642f64180aa3\"";
    for (settings, outcome, says) in [
        (token, OutcomeKind::Retryable, "cannot connect"),
        ("", OutcomeKind::Permanent, "usdt_contract"),
    ] {
        let t = Invest::with(false, grant, settings, &dead);
        t.db.exec("INSERT INTO deposit_addresses VALUES ('0x70997970c51812dc3a010c7d01b50e0d17dc79c8', 1)");
        let s = services(&t.host).await;
        let _serve = spawn_serve(&t.host);
        let mut run = request("deposits.monitor", json!({}));
        run.max_attempts = Some(1);
        let id = s.enqueuer.enqueue(run).await.unwrap().id;
        let job = finished(s.store.as_ref(), id).await;
        assert_eq!(job.status, JobStatus::Dead);
        let attempt = &job.attempts[0];
        assert_eq!(attempt.outcome, outcome, "{attempt:?}");
        let message = attempt.message.clone().unwrap_or_default();
        assert!(message.contains(says), "{message}");
        assert_eq!(t.db.count("SELECT count(*) FROM chain_cursors"), 0);
        assert_eq!(t.db.count("SELECT count(*) FROM chain_deposits"), 0);
    }
}

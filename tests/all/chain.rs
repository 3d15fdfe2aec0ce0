//! The `chain` capability against a real local EVM node (anvil, on
//! 127.0.0.1): native transfers, receipts, confirmations, balances, ERC-20
//! `Transfer` logs, raw JSON-RPC and its errors, grants, dead nodes and
//! retries, failover, chain-id checks and host-call accounting.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use taskhost::runtime::{Outcome, Runtime};

use crate::support::anvil::{self, Anvil, CHAIN_ID, hex_u128, transfer_call};
use crate::support::{TestHost, finished, request, run_job, services, start_workers};

const ETH: u128 = 1_000_000_000_000_000_000;

/// A host whose `chain_probe` may use chain `local` at `rpc` (TOML value).
fn host_with(rpc: &str, chain_extra: &str, rest: &str) -> TestHost {
    TestHost::new(&format!(
        "[chains.local]\nrpc = {rpc}\n{chain_extra}\n\
         [plugins.chain_probe]\nchains = [\"local\"]\n{rest}"
    ))
}

fn host_for(node: &Anvil, chain_extra: &str) -> TestHost {
    host_with(
        &format!("[{:?}]", node.url()),
        &format!("chain_id = {CHAIN_ID}\n{chain_extra}"),
        "",
    )
}

/// Runs a `chain_probe` handler; returns its `{"ok"}` or `{"err"}` answer.
async fn call(rt: &Runtime, handler: &str, payload: Json) -> Json {
    let report = run_job(rt, handler, payload).await;
    match report.outcome {
        Outcome::Success { result } => result,
        other => panic!("{handler}: {other:?}"),
    }
}

async fn ok(rt: &Runtime, handler: &str, payload: Json) -> Json {
    let answer = call(rt, handler, payload).await;
    answer
        .get("ok")
        .cloned()
        .unwrap_or_else(|| panic!("{handler}: expected ok, got {answer}"))
}

async fn err(rt: &Runtime, handler: &str, payload: Json) -> Json {
    let answer = call(rt, handler, payload).await;
    answer
        .get("err")
        .cloned()
        .unwrap_or_else(|| panic!("{handler}: expected an error, got {answer}"))
}

fn decimal(v: &Json) -> u128 {
    v.as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not a decimal string: {v}: {e}"))
}

async fn confirmations(rt: &Runtime, hash: &str) -> u64 {
    ok(
        rt,
        "chain.confirmations",
        json!({"chain": "local", "hash": hash}),
    )
    .await
    .as_u64()
    .unwrap()
}

#[tokio::test]
async fn a_native_transfer_is_read_back_and_gains_confirmations() {
    let node = Anvil::start();
    let host = host_for(&node, "");
    let rt = host.runtime().await;
    let accounts = node.accounts();
    let (alice, bob) = (&accounts[0], &accounts[1]);
    let balance = |who: &str| {
        let who = who.to_string();
        let rt = &rt;
        async move {
            decimal(
                &ok(
                    rt,
                    "chain.balance",
                    json!({"chain": "local", "address": who}),
                )
                .await,
            )
        }
    };
    let (alice_before, bob_before) = (balance(alice).await, balance(bob).await);
    assert_eq!(alice_before, node.balance(alice));
    assert_eq!(bob_before, 10_000 * ETH, "anvil prefunds 10000 ETH");

    // The transaction waits in the pool until we mine.
    node.set_automine(false);
    let hash =
        node.send(json!({"from": alice, "to": bob, "value": format!("0x{:x}", 3 * ETH / 2)}));
    let pending = ok(
        &rt,
        "chain.get_transaction",
        json!({"chain": "local", "hash": hash}),
    )
    .await;
    assert_eq!(pending["hash"], json!(hash));
    assert_eq!(pending["from"], json!(alice));
    assert_eq!(pending["to"], json!(bob));
    assert_eq!(pending["value"], json!("1500000000000000000"));
    assert_eq!(pending["block_number"], Json::Null);
    assert_eq!(
        ok(
            &rt,
            "chain.get_receipt",
            json!({"chain": "local", "hash": hash})
        )
        .await,
        Json::Null
    );
    assert_eq!(confirmations(&rt, &hash).await, 0);
    assert_eq!(
        ok(
            &rt,
            "chain.required_confirmations",
            json!({"chain": "local"})
        )
        .await,
        json!(12),
        "the default"
    );

    node.mine(1);
    let block = node.block_number();
    assert_eq!(
        ok(&rt, "chain.block_number", json!({"chain": "local"})).await,
        json!(block)
    );
    let receipt = ok(
        &rt,
        "chain.get_receipt",
        json!({"chain": "local", "hash": hash}),
    )
    .await;
    assert_eq!(receipt["transaction_hash"], json!(hash));
    assert_eq!(receipt["success"], json!(true));
    assert_eq!(receipt["block_number"], json!(block));
    assert_eq!(receipt["gas_used"], json!(21_000));
    assert_eq!(receipt["contract_address"], Json::Null);
    let mined = ok(
        &rt,
        "chain.get_transaction",
        json!({"chain": "local", "hash": hash}),
    )
    .await;
    assert_eq!(mined["block_number"], json!(block));
    assert_eq!(confirmations(&rt, &hash).await, 1);

    // Balances: bob gains exactly the value, alice pays value and gas.
    let raw = node.receipt(&hash);
    let fee = hex_u128(&raw["gasUsed"]) * hex_u128(&raw["effectiveGasPrice"]);
    assert_eq!(balance(bob).await, bob_before + 3 * ETH / 2);
    assert_eq!(balance(alice).await, alice_before - 3 * ETH / 2 - fee);

    node.mine(10);
    assert_eq!(confirmations(&rt, &hash).await, 11);
    let deposit = json!({"chain": "local", "hash": hash});
    match run_job(&rt, "chain.await_deposit", deposit.clone())
        .await
        .outcome
    {
        Outcome::Retryable { message, .. } => assert_eq!(message, "11 of 12 confirmations"),
        other => panic!("expected a retry at 11 confirmations: {other:?}"),
    }
    node.mine(1);
    assert_eq!(confirmations(&rt, &hash).await, 12);
    assert_eq!(
        run_job(&rt, "chain.await_deposit", deposit).await.outcome,
        Outcome::Success {
            result: json!({"confirmations": 12, "required": 12})
        }
    );
    node.mine(30);
    assert_eq!(confirmations(&rt, &hash).await, 42);

    // An unknown hash: no transaction, no receipt, no confirmations.
    let unknown = format!("0x{}", "ab".repeat(32));
    for handler in ["chain.get_transaction", "chain.get_receipt"] {
        assert_eq!(
            ok(&rt, handler, json!({"chain": "local", "hash": unknown})).await,
            Json::Null
        );
    }
    assert_eq!(confirmations(&rt, &unknown).await, 0);
}

#[tokio::test]
async fn erc20_transfer_logs_to_an_address_are_read_in_windows() {
    let node = Anvil::start();
    // A window of 3 blocks: the range below takes many eth_getLogs calls.
    let host = host_for(&node, "log_window = 3");
    let rt = host.runtime().await;
    let accounts = node.accounts();
    let (alice, bob, carol) = (&accounts[0], &accounts[1], &accounts[2]);

    let bytecode = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/erc20/TestToken.bin"),
    )
    .expect("the token's bytecode");
    let deploy = node.send(json!({"from": alice, "data": bytecode.trim(), "gas": "0x300000"}));
    let receipt = ok(
        &rt,
        "chain.get_receipt",
        json!({"chain": "local", "hash": deploy}),
    )
    .await;
    assert_eq!(receipt["success"], json!(true), "{receipt}");
    let token = receipt["contract_address"]
        .as_str()
        .expect("a contract address")
        .to_string();
    let start = node.block_number();

    let send = |to: &str, value: u128| {
        node.send(json!({"from": alice, "to": token, "data": transfer_call(to, value), "gas": "0x100000"}))
    };
    let first = send(bob, 1_000);
    node.mine(5);
    let _to_carol = send(carol, 7);
    node.mine(4);
    let second = send(bob, 250 * ETH);
    node.mine(2);
    let end = node.block_number();

    let transfers = |to: &str, from_block: u64, to_block: u64| {
        let payload = json!({"chain": "local", "token": token, "to": to, "from_block": from_block, "to_block": to_block});
        let rt = &rt;
        async move { ok(rt, "chain.erc20_transfers", payload).await }
    };
    let logs = transfers(bob, 0, end).await;
    let logs = logs.as_array().expect("a list");
    assert_eq!(logs.len(), 2, "{logs:?}");
    for (log, (hash, value)) in logs
        .iter()
        .zip([(&first, "1000"), (&second, "250000000000000000000")])
    {
        let receipt = node.receipt(hash);
        assert_eq!(log["token"], json!(token));
        assert_eq!(log["from"], json!(alice));
        assert_eq!(log["to"], json!(bob));
        assert_eq!(log["value"], json!(value));
        assert_eq!(log["transaction_hash"], json!(hash));
        assert_eq!(
            log["block_number"].as_u64(),
            Some(hex_u128(&receipt["blockNumber"]) as u64)
        );
        assert_eq!(log["log_index"], json!(0));
    }
    assert!(logs[0]["block_number"].as_u64() > Some(start));

    // Only the range asked for.
    let first_block = logs[0]["block_number"].as_u64().unwrap();
    assert_eq!(
        transfers(bob, first_block + 1, end)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(transfers(bob, 0, first_block - 1).await, json!([]));
    // Carol's one transfer; the mint to alice comes from the zero address.
    let carol_logs = transfers(carol, 0, end).await;
    assert_eq!(carol_logs.as_array().unwrap().len(), 1);
    assert_eq!(carol_logs[0]["value"], json!("7"));
    let mint = transfers(alice, 0, end).await;
    assert_eq!(mint[0]["from"], json!(format!("0x{}", "0".repeat(40))));
    assert_eq!(mint[0]["value"], json!("1000000000000000000000000"));

    // Malformed arguments are `invalid`, before any request.
    let e = err(
        &rt,
        "chain.erc20_transfers",
        json!({"chain": "local", "token": "0x12", "to": bob, "from_block": 0, "to_block": 1}),
    )
    .await;
    assert_eq!(e["kind"], json!("invalid"), "{e}");
    let e = err(
        &rt,
        "chain.erc20_transfers",
        json!({"chain": "local", "token": token, "to": bob, "from_block": 9, "to_block": 1}),
    )
    .await;
    assert_eq!(e["kind"], json!("invalid"), "{e}");
}

#[tokio::test]
async fn raw_rpc_returns_results_and_remote_errors() {
    let node = Anvil::start();
    let host = host_for(&node, "confirmations = 3");
    let rt = host.runtime().await;
    let rpc =
        |method: &str, params: Json| json!({"chain": "local", "method": method, "params": params});
    assert_eq!(
        ok(&rt, "chain.rpc", rpc("eth_chainId", json!([]))).await,
        json!(format!("0x{CHAIN_ID:x}"))
    );
    let accounts = node.accounts();
    let balance = ok(
        &rt,
        "chain.rpc",
        rpc("eth_getBalance", json!([accounts[0], "latest"])),
    )
    .await;
    assert_eq!(hex_u128(&balance), node.balance(&accounts[0]));
    // A plugin may drive the node itself (anvil's own methods included).
    ok(&rt, "chain.rpc", rpc("anvil_mine", json!(["0x5"]))).await;
    assert_eq!(node.block_number(), 5);

    // The node's own error comes back with its code and message.
    let e = err(&rt, "chain.rpc", rpc("eth_noSuchMethod", json!([]))).await;
    assert_eq!(e["kind"], json!("remote"), "{e}");
    assert_eq!(e["code"], json!(-32601), "{e}");
    let e = err(
        &rt,
        "chain.rpc",
        rpc("eth_getBalance", json!(["not an address"])),
    )
    .await;
    assert_eq!(e["kind"], json!("remote"), "{e}");
    assert!(e["message"].as_str().unwrap().len() > 3, "{e}");

    // Malformed calls never reach the node.
    let e = err(&rt, "chain.rpc", rpc("eth_blockNumber", json!("{not json"))).await;
    assert_eq!(e["kind"], json!("invalid"), "{e}");
    let e = err(&rt, "chain.rpc", rpc("eth_blockNumber", json!("42"))).await;
    assert_eq!(e["kind"], json!("invalid"), "{e}");
    let e = err(&rt, "chain.rpc", rpc("eth blockNumber", json!([]))).await;
    assert_eq!(e["kind"], json!("invalid"), "{e}");

    assert_eq!(
        ok(
            &rt,
            "chain.required_confirmations",
            json!({"chain": "local"})
        )
        .await,
        json!(3)
    );
}

#[tokio::test]
async fn a_plugin_without_the_grant_is_denied() {
    let node = Anvil::start();
    // `local` exists, but chain_probe is granted only `other`.
    let host = TestHost::new(&format!(
        "[chains.local]\nrpc = {:?}\n[chains.other]\nrpc = {:?}\n\
         [plugins.chain_probe]\nchains = [\"other\"]\n",
        node.url(),
        node.url()
    ));
    let rt = host.runtime().await;
    let hash = format!("0x{}", "11".repeat(32));
    let address = node.accounts()[0].clone();
    for chain in ["local", "nowhere"] {
        for (handler, payload) in [
            (
                "chain.rpc",
                json!({"chain": chain, "method": "eth_blockNumber"}),
            ),
            ("chain.block_number", json!({"chain": chain})),
            (
                "chain.get_transaction",
                json!({"chain": chain, "hash": hash}),
            ),
            ("chain.get_receipt", json!({"chain": chain, "hash": hash})),
            ("chain.confirmations", json!({"chain": chain, "hash": hash})),
            ("chain.required_confirmations", json!({"chain": chain})),
            ("chain.balance", json!({"chain": chain, "address": address})),
            (
                "chain.erc20_transfers",
                json!({"chain": chain, "token": address, "to": address, "from_block": 0, "to_block": 1}),
            ),
        ] {
            let e = err(&rt, handler, payload).await;
            assert_eq!(e["kind"], json!("denied"), "{handler} on {chain}: {e}");
            let message = e["message"].as_str().unwrap();
            assert!(
                message.contains("chain_probe") && message.contains(chain),
                "{message}"
            );
        }
    }
    // The granted chain works.
    assert_eq!(
        ok(&rt, "chain.block_number", json!({"chain": "other"})).await,
        json!(0)
    );
}

#[tokio::test]
async fn a_grant_of_an_unknown_chain_stops_the_start() {
    let host = TestHost::new("[plugins.chain_probe]\nchains = [\"mainnet\"]\n");
    let error = match Runtime::load(host.config()).await {
        Ok(_) => panic!("a grant of an undefined chain must not load"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("mainnet") && error.contains("[chains.mainnet]"),
        "{error}"
    );
}

#[tokio::test]
async fn a_dead_rpc_url_fails_clearly_after_the_bounded_retries() {
    let port = anvil::free_port();
    let host = host_with(
        &format!("\"http://user:hunter2@127.0.0.1:{port}/v3/SECRETKEY\""),
        "retries = 2\ntimeout = \"2s\"",
        "",
    );
    let rt = host.runtime().await;
    let started = Instant::now();
    let e = err(&rt, "chain.block_number", json!({"chain": "local"})).await;
    let elapsed = started.elapsed();
    assert_eq!(e["kind"], json!("failed"), "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("chain \"local\""), "{message}");
    assert!(message.contains("eth_blockNumber"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(
        message.contains(&format!("cannot connect to http://127.0.0.1:{port}/…")),
        "{message}"
    );
    assert!(
        !message.contains("SECRETKEY") && !message.contains("hunter2"),
        "the URL's secrets leak: {message}"
    );
    // Two pauses between the three rounds: 100 ms, then 200 ms.
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn the_next_url_is_tried_when_one_is_down() {
    let node = Anvil::start();
    let dead = format!("http://127.0.0.1:{}", anvil::free_port());
    let host = host_with(&format!("[{dead:?}, {:?}]", node.url()), "retries = 0", "");
    let rt = host.runtime().await;
    node.mine(7);
    assert_eq!(
        ok(&rt, "chain.block_number", json!({"chain": "local"})).await,
        json!(7)
    );
}

#[tokio::test]
async fn a_node_on_another_chain_is_refused() {
    let node = Anvil::start();
    let host = host_with(&format!("{:?}", node.url()), "chain_id = 1", "");
    let rt = host.runtime().await;
    for _ in 0..2 {
        let e = err(&rt, "chain.block_number", json!({"chain": "local"})).await;
        assert_eq!(e["kind"], json!("failed"), "{e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("chain id 31337") && message.contains("chain_id = 1"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn chain_calls_count_toward_the_host_call_cap() {
    let node = Anvil::start();
    let host = host_with(
        &format!("{:?}", node.url()),
        "",
        "[handlers.\"chain.await_deposit\"]\nhost_calls = 1\n",
    );
    let rt = host.runtime().await;
    node.mine(1);
    let hash =
        node.send(json!({"from": node.accounts()[0], "to": node.accounts()[1], "value": "0x1"}));
    // confirmations, then required-confirmations: the second call is over the cap.
    assert_eq!(
        run_job(
            &rt,
            "chain.await_deposit",
            json!({"chain": "local", "hash": hash})
        )
        .await
        .outcome,
        Outcome::HostCallLimit { limit: 1 }
    );
}

#[tokio::test]
async fn a_queued_job_reads_the_chain_through_the_workers() {
    let node = Anvil::start();
    let host = host_for(&node, "");
    let s = services(&host).await;
    let workers = start_workers(&s);
    let accounts = node.accounts();
    let hash = node.send(json!({"from": accounts[0], "to": accounts[2], "value": "0x2a"}));
    node.mine(11);
    let id = s
        .enqueuer
        .enqueue(request(
            "chain.await_deposit",
            json!({"chain": "local", "hash": hash}),
        ))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(
        job.result,
        Some(json!({"confirmations": 12, "required": 12})),
        "{job:?}"
    );
    workers.stop().await;
}

//! Drives the `chain` interface from the payload, so the tests can call
//! every function on any chain name and see exactly what the host answers.
//!
//! Every handler returns `{"ok": …}` or `{"err": {"kind": "denied" |
//! "invalid" | "failed" | "timeout" | "remote", "message": …}}` (a
//! `remote` error also carries its `code`); a host error is data here,
//! never a job failure.

use serde::Deserialize;
use serde_json::{Value as Json, json};
use taskhost_sdk::Job;
use taskhost_sdk::JobError;
use taskhost_sdk::bindings::taskhost::plugin::types::HostError;
use taskhost_sdk::chain::{self, Receipt, Transaction, TransferLog};

fn answer<T>(r: Result<T, HostError>, ok: impl FnOnce(T) -> Json) -> Result<Json, JobError> {
    Ok(match r {
        Ok(v) => json!({ "ok": ok(v) }),
        Err(HostError::Remote(r)) => {
            json!({ "err": { "kind": "remote", "code": r.code, "message": r.message } })
        }
        Err(e) => {
            let (kind, message) = match e {
                HostError::Denied(m) => ("denied", m),
                HostError::Invalid(m) => ("invalid", m),
                HostError::Failed(m) => ("failed", m),
                HostError::Timeout(m) => ("timeout", m),
                HostError::Remote(_) => unreachable!("handled above"),
            };
            json!({ "err": { "kind": kind, "message": message } })
        }
    })
}

fn transaction(t: Transaction) -> Json {
    json!({
        "hash": t.hash,
        "from": t.from,
        "to": t.to,
        "value": t.value,
        "block_number": t.block_number,
    })
}

fn receipt(r: Receipt) -> Json {
    json!({
        "transaction_hash": r.transaction_hash,
        "success": r.success,
        "block_number": r.block_number,
        "gas_used": r.gas_used,
        "contract_address": r.contract_address,
    })
}

fn transfer(t: TransferLog) -> Json {
    json!({
        "token": t.token,
        "from": t.from,
        "to": t.to,
        "value": t.value,
        "block_number": t.block_number,
        "transaction_hash": t.transaction_hash,
        "log_index": t.log_index,
    })
}

#[derive(Deserialize)]
struct Rpc {
    chain: String,
    method: String,
    #[serde(default = "no_params")]
    params: Json,
}

fn no_params() -> Json {
    json!([])
}

fn rpc(_job: &Job, c: Rpc) -> Result<Json, JobError> {
    // A string is passed through as is, so tests can send malformed JSON.
    let params = match c.params {
        Json::String(s) => s,
        other => other.to_string(),
    };
    answer(chain::rpc(&c.chain, &c.method, &params), |text| {
        serde_json::from_str(&text).unwrap_or(Json::String(text))
    })
}

#[derive(Deserialize)]
struct OnChain {
    chain: String,
}

fn block_number(_job: &Job, c: OnChain) -> Result<Json, JobError> {
    answer(chain::block_number(&c.chain), |n| json!(n))
}

fn required_confirmations(_job: &Job, c: OnChain) -> Result<Json, JobError> {
    answer(chain::required_confirmations(&c.chain), |n| json!(n))
}

#[derive(Deserialize)]
struct ByHash {
    chain: String,
    hash: String,
}

fn get_transaction(_job: &Job, c: ByHash) -> Result<Json, JobError> {
    answer(chain::get_transaction(&c.chain, &c.hash), |t| {
        t.map(transaction).unwrap_or(Json::Null)
    })
}

fn get_receipt(_job: &Job, c: ByHash) -> Result<Json, JobError> {
    answer(chain::get_receipt(&c.chain, &c.hash), |r| {
        r.map(receipt).unwrap_or(Json::Null)
    })
}

fn confirmations(_job: &Job, c: ByHash) -> Result<Json, JobError> {
    answer(chain::confirmations(&c.chain, &c.hash), |n| json!(n))
}

#[derive(Deserialize)]
struct Balance {
    chain: String,
    address: String,
}

fn balance(_job: &Job, c: Balance) -> Result<Json, JobError> {
    answer(chain::balance(&c.chain, &c.address), |b| json!(b))
}

#[derive(Deserialize)]
struct Transfers {
    chain: String,
    token: String,
    to: String,
    from_block: u64,
    to_block: u64,
}

fn erc20_transfers(_job: &Job, c: Transfers) -> Result<Json, JobError> {
    answer(
        chain::erc20_transfers(&c.chain, &c.token, &c.to, c.from_block, c.to_block),
        |logs| Json::Array(logs.into_iter().map(transfer).collect()),
    )
}

/// A deposit check as a real plugin would write it: confirmed once the
/// transaction has the chain's required confirmations, else retry later.
fn await_deposit(_job: &Job, c: ByHash) -> Result<Json, JobError> {
    let host = |e: HostError| JobError::retry(format!("{e:?}"));
    let have = chain::confirmations(&c.chain, &c.hash).map_err(host)?;
    let need = chain::required_confirmations(&c.chain).map_err(host)?;
    if have < need {
        return Err(JobError::retry_after(
            format!("{have} of {need} confirmations"),
            10,
        ));
    }
    Ok(json!({ "confirmations": have, "required": need }))
}

taskhost_sdk::plugin! {
    handler("chain.rpc", rpc).describe("Any JSON-RPC call from the payload; returns the result or the host error"),
    handler("chain.block_number", block_number).describe("The chain's latest block number, or the host error"),
    handler("chain.get_transaction", get_transaction).describe("A transaction by hash, or the host error"),
    handler("chain.get_receipt", get_receipt).describe("A transaction receipt by hash, or the host error"),
    handler("chain.confirmations", confirmations).describe("A transaction's confirmations, or the host error"),
    handler("chain.required_confirmations", required_confirmations).describe("The chain's configured confirmations, or the host error"),
    handler("chain.balance", balance).describe("An address's native balance, or the host error"),
    handler("chain.erc20_transfers", erc20_transfers).describe("ERC-20 Transfer logs to an address, or the host error"),
    handler("chain.await_deposit", await_deposit).describe("Succeeds once a transaction has the required confirmations"),
}

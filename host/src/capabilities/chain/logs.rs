//! ERC-20 `Transfer` logs to one address over a block range: `eth_getLogs`
//! in windows of at most `log_window` blocks, halving a window the node
//! refuses as too wide or too large.

use serde_json::{Value as Json, json};

use super::rpc::{RpcClient, RpcError};
use super::types;
use crate::capabilities::bindings::taskhost::plugin::chain::TransferLog;

/// `keccak256("Transfer(address,address,uint256)")`.
pub(crate) const TRANSFER_TOPIC: &str =
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// Whether a node's error says the query was too wide: each provider
/// words it differently.
fn too_wide(code: i64, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == -32005
        || [
            "range",
            "too many",
            "too large",
            "exceed",
            "limit",
            "10000",
            "response size",
            "timeout",
            "timed out",
        ]
        .iter()
        .any(|p| m.contains(p))
}

/// Reads every `Transfer(_, to, _)` log of `token` in `from..=to_block`.
/// `token` and `to` are lower-cased addresses.
pub(crate) async fn transfers(
    client: &RpcClient,
    window: u64,
    token: &str,
    to: &str,
    from_block: u64,
    to_block: u64,
) -> Result<Vec<TransferLog>, RpcError> {
    let mut found = Vec::new();
    let mut start = from_block;
    let max_window = window.max(1);
    let mut window = max_window;
    loop {
        let end = start.saturating_add(window - 1).min(to_block);
        let filter = json!([{
            "address": token,
            "fromBlock": types::hex_quantity(start),
            "toBlock": types::hex_quantity(end),
            "topics": [TRANSFER_TOPIC, Json::Null, types::address_topic(to)],
        }]);
        match client.call("eth_getLogs", &filter).await {
            Ok(logs) => {
                let logs = logs.as_array().ok_or_else(|| {
                    RpcError::Failed(format!("eth_getLogs: expected a list, got {logs}"))
                })?;
                for log in logs {
                    if let Some(t) = parse(log).map_err(|e| {
                        RpcError::Failed(format!("eth_getLogs: unreadable log: {e}"))
                    })? {
                        found.push(t);
                    }
                }
                if end >= to_block {
                    return Ok(found);
                }
                start = end + 1;
                // Widen again after a success, up to the configured window.
                window = window.saturating_mul(2).min(max_window);
            }
            Err(RpcError::Remote { code, message }) if window > 1 && too_wide(code, &message) => {
                tracing::debug!(
                    window,
                    code,
                    message,
                    "eth_getLogs refused; halving the window"
                );
                window /= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One log as a transfer; `None` for a removed log or one that is not an
/// ERC-20 `Transfer` (an ERC-721 `Transfer` has a fourth topic).
fn parse(log: &Json) -> Result<Option<TransferLog>, String> {
    if log.get("removed").and_then(Json::as_bool) == Some(true) {
        return Ok(None);
    }
    let topics = log
        .get("topics")
        .and_then(Json::as_array)
        .ok_or("no topics")?;
    if topics.len() != 3
        || topics[0].as_str().map(str::to_ascii_lowercase).as_deref() != Some(TRANSFER_TOPIC)
    {
        return Ok(None);
    }
    let data = log.get("data").and_then(Json::as_str).unwrap_or("0x");
    Ok(Some(TransferLog {
        token: types::text(log.get("address"), "address")?,
        from: types::topic_address(&topics[1], "topics[1]")?,
        to: types::topic_address(&topics[2], "topics[2]")?,
        value: types::hex_to_decimal(data).map_err(|e| format!("data: {e}"))?,
        block_number: types::quantity(
            log.get("blockNumber").ok_or("no blockNumber")?,
            "blockNumber",
        )?,
        transaction_hash: types::text(log.get("transactionHash"), "transactionHash")?,
        log_index: types::quantity(log.get("logIndex").ok_or("no logIndex")?, "logIndex")?,
    }))
}

//! TonAPI's `GET /v2/blockchain/accounts/{account}/transactions`: the
//! incoming transfers of a wallet, read as TonAPI v2 writes them
//! (`{"transactions": [{"hash", "success", "in_msg": {"msg_type",
//! "value", "decoded_op_name", "decoded_body": {"text"}}}]}`, values in
//! nanotons). The API key is a secret the host puts into the
//! `Authorization` header; this plugin never holds it.

use serde_json::Value;
use taskhost_sdk::{HostError, JobError, http};

use crate::settings;

/// One incoming transfer that arrived: its hash, nanotons and comment.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub hash: String,
    pub value_nano: i64,
    pub comment: String,
}

/// Why a wallet's transfers could not be read.
pub enum Failure {
    /// Worth another try later (429, 5xx, network): the job's error.
    Retry(JobError),
    /// TonAPI refused the request (a bad address: 4xx); no retry helps.
    Refused(String),
}

/// The latest incoming transfers of `wallet` (`tonapi_limit`, default 100).
pub fn transfers(wallet: &str) -> Result<Vec<Transfer>, Failure> {
    let base = settings::base_url("tonapi_url").map_err(Failure::Retry)?;
    let limit = settings::integer("tonapi_limit", 100).map_err(Failure::Retry)?;
    let request = http::Request {
        method: "GET".into(),
        url: format!(
            "{base}/v2/blockchain/accounts/{}/transactions?limit={limit}",
            settings::url_encode(wallet)
        ),
        headers: vec![
            ("authorization".into(), "Bearer {secret:tonapi_key}".into()),
            ("accept".into(), "application/json".into()),
        ],
        body: None,
        timeout_ms: None,
    };
    let reply = match http::send(&request) {
        Ok(r) => r,
        Err(e @ (HostError::Denied(_) | HostError::Invalid(_))) => {
            return Err(Failure::Retry(e.into()));
        }
        Err(e) => {
            return Err(Failure::Retry(JobError::retry(format!(
                "TonAPI unreachable: {}",
                crate::host_error(&e)
            ))));
        }
    };
    // TonAPI's errors are `{"error": "..."}`.
    let error = || {
        serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|b| b.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_default()
    };
    match reply.status {
        200..=299 => {}
        429 => {
            let note = format!("TonAPI rate-limited the request (429) {}", error());
            let after = reply
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok());
            return Err(Failure::Retry(match after {
                Some(s) => JobError::retry_after(note, s * 1000),
                None => JobError::retry(note),
            }));
        }
        401 | 403 => {
            return Err(Failure::Retry(JobError::permanent(format!(
                "TonAPI refused the API key ({}): check the tonapi_key secret",
                reply.status
            ))));
        }
        400..=499 => {
            return Err(Failure::Refused(format!(
                "TonAPI answered {} for wallet {wallet}: {}",
                reply.status,
                error()
            )));
        }
        status => {
            return Err(Failure::Retry(JobError::retry(format!(
                "TonAPI answered {status} {}",
                error()
            ))));
        }
    }
    let body: Value = serde_json::from_slice(&reply.body).map_err(|e| {
        Failure::Retry(JobError::retry(format!("TonAPI sent unreadable JSON: {e}")))
    })?;
    let list = body
        .get("transactions")
        .and_then(|t| t.as_array())
        .ok_or_else(|| {
            Failure::Retry(JobError::retry(
                "TonAPI's answer has no \"transactions\" list",
            ))
        })?;
    Ok(list.iter().filter_map(incoming).collect())
}

/// The incoming transfer a transaction carries, if it succeeded and has one.
fn incoming(tx: &Value) -> Option<Transfer> {
    if tx.get("success").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let msg = tx.get("in_msg")?;
    if msg.get("msg_type").and_then(Value::as_str) != Some("int_msg") {
        return None;
    }
    // An integer in TonAPI's JSON; never read through a float.
    let value_nano = match msg.get("value")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    let comment = msg
        .pointer("/decoded_body/text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some(Transfer {
        hash: tx.get("hash")?.as_str()?.to_string(),
        value_nano,
        comment,
    })
}

/// The first transfer carrying `memo` with at least `amount_nano`.
pub fn matching<'a>(
    transfers: &'a [Transfer],
    memo: &str,
    amount_nano: i64,
) -> Option<&'a Transfer> {
    transfers
        .iter()
        .find(|t| t.comment.trim() == memo && t.value_nano >= amount_nano)
}

//! Portfolio sync (seed 001's `sync_portfolio` / `sync_all_portfolios`):
//! a user's balances from the exchange's REST API into `holdings`.
//!
//! The exchange (Binance-style `GET /api/v3/account`) wants the API key in
//! `X-MBX-APIKEY` and the query signed with HMAC-SHA256 under the user's
//! API secret. Both are plugin secrets the user's row only *names*
//! (`users.exchange_key_ref`, `users.exchange_secret_ref`): the host puts
//! the key into the header (`{secret:NAME}`) and computes the signature
//! (`{hmac-sha256:NAME}`), so neither value passes through this plugin, its
//! results or its logs. A 429 (or Binance's 418) is retried after the
//! exchange's `Retry-After`; 5xx and network failures are retried by the
//! host's policy; a refused key is permanent.

use serde::{Deserialize, Serialize};
use serde_json::json;
use taskhost_sdk::db::{self, Statement, Value};
use taskhost_sdk::jobs::{self, EnqueueRequest};
use taskhost_sdk::{HostError, Job, JobError, http};

use crate::{DB, host_error, now_ms, settings};

/// Enqueues one `sync_portfolio` per user with exchange keys; the keys
/// carry this job's id, so a retried fan-out enqueues nothing twice.
pub fn all(job: &Job, _: serde_json::Value) -> Result<Vec<String>, JobError> {
    let rows = db::query(
        DB,
        "SELECT id FROM users WHERE exchange_key_ref IS NOT NULL AND exchange_secret_ref IS NOT NULL ORDER BY id",
        &[],
    )?;
    let mut ids = Vec::new();
    for row in &rows.rows {
        let Some(Value::Integer(user)) = row.first() else {
            return Err(JobError::permanent("users.id is not an integer"));
        };
        ids.push(jobs::enqueue(&EnqueueRequest {
            handler: "sync_portfolio".into(),
            payload: json!({ "user_id": user }).to_string(),
            queue: None,
            priority: None,
            delay_ms: None,
            idempotency_key: Some(format!("sync:{}:{user}", job.id)),
            max_attempts: None,
        })?);
    }
    Ok(ids)
}

#[derive(Deserialize)]
pub struct User {
    pub user_id: i64,
}

#[derive(Serialize)]
pub struct Synced {
    pub user_id: i64,
    /// Assets held (free or locked above zero).
    pub assets: usize,
}

#[derive(Deserialize)]
struct Account {
    balances: Vec<Balance>,
}

#[derive(Deserialize)]
struct Balance {
    asset: String,
    free: String,
    locked: String,
}

pub fn user(job: &Job, u: User) -> Result<Synced, JobError> {
    let rows = db::query(
        DB,
        "SELECT exchange_key_ref, exchange_secret_ref FROM users WHERE id = $1",
        &[Value::Integer(u.user_id)],
    )?;
    let (key, secret) = match rows.rows.first().map(Vec::as_slice) {
        Some([Value::Text(key), Value::Text(secret)]) => (key.clone(), secret.clone()),
        Some(_) => {
            return Err(JobError::permanent(format!(
                "user {} has no exchange keys",
                u.user_id
            )));
        }
        None => {
            return Err(JobError::permanent(format!(
                "user {} does not exist",
                u.user_id
            )));
        }
    };
    let base = settings::base_url("exchange_url")?;
    let window = settings::integer("exchange_recv_window_ms", 5000)?;
    // The exchange checks the request's own clock, not the tick's.
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let reply = http::send(&http::Request {
        method: "GET".into(),
        url: format!(
            "{base}/api/v3/account?omitZeroBalances=true&recvWindow={window}&timestamp={timestamp}\
             &signature={{hmac-sha256:{secret}}}"
        ),
        headers: vec![("x-mbx-apikey".into(), format!("{{secret:{key}}}"))],
        body: None,
        timeout_ms: Some(10_000),
    })
    .map_err(|e| match e {
        e @ (HostError::Denied(_) | HostError::Invalid(_)) => JobError::from(e),
        e => JobError::retry(format!("exchange unreachable: {}", host_error(&e))),
    })?;
    check(&reply)?;
    let account: Account = serde_json::from_slice(&reply.body).map_err(|e| {
        JobError::retry(format!("the exchange answered what is not an account: {e}"))
    })?;
    let held: Vec<&Balance> = account
        .balances
        .iter()
        .filter(|b| !is_zero(&b.free) || !is_zero(&b.locked))
        .collect();
    let now = now_ms(job);
    let mut statements = vec![Statement {
        sql: "DELETE FROM holdings WHERE user_id = $1".into(),
        params: vec![Value::Integer(u.user_id)],
    }];
    for b in &held {
        statements.push(Statement {
            sql: "INSERT INTO holdings (user_id, asset, free, locked, synced_at) VALUES ($1, $2, $3, $4, $5)"
                .into(),
            params: vec![
                Value::Integer(u.user_id),
                Value::Text(b.asset.clone()),
                Value::Text(b.free.clone()),
                Value::Text(b.locked.clone()),
                Value::Integer(now),
            ],
        });
    }
    statements.push(Statement {
        sql: "UPDATE users SET synced_at = $1 WHERE id = $2".into(),
        params: vec![Value::Integer(now), Value::Integer(u.user_id)],
    });
    db::transaction(DB, &statements)?;
    Ok(Synced {
        user_id: u.user_id,
        assets: held.len(),
    })
}

/// A decimal text that is zero ("0", "0.00000000").
fn is_zero(amount: &str) -> bool {
    amount.chars().all(|c| c == '0' || c == '.')
}

/// Turns a non-2xx answer into the job's error: 429/418 after the
/// exchange's `Retry-After` (seconds; 60 when it names none), 5xx
/// retryable, any other refusal permanent with the exchange's `msg`.
pub fn check(reply: &http::Response) -> Result<(), JobError> {
    if (200..300).contains(&reply.status) {
        return Ok(());
    }
    let msg = serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_default();
    let what = format!("the exchange answered {}: {msg}", reply.status);
    match reply.status {
        429 | 418 => {
            let secs = reply
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                .unwrap_or(60);
            Err(JobError::retry_after(what, secs * 1000))
        }
        500.. => Err(JobError::retry(what)),
        _ => Err(JobError::permanent(what)),
    }
}

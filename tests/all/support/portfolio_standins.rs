//! Stand-ins for the portfolio example's remotes, on the pattern (and the
//! machinery) of [`super::standins`]: an exchange's signed account
//! endpoint, the trading bots' control endpoints and a mail provider.
//! Scripted per key (an API key, a bot id, a recipient): answer, fail,
//! rate-limit with a back-off.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::standins::{Reply, Shared, Standin, json_reply};

/// A Binance-style exchange: `GET /api/v3/account?…&timestamp=…&signature=…`
/// with the API key in `X-MBX-APIKEY`; the signature must be the hex
/// HMAC-SHA256 of the query before `&signature=` under the key's secret.
/// What an API key holds is set with [`Standin::set`]`(key, `[`account`]`)`.
/// Errors as Binance writes them: `{"code", "msg"}`; a 429 carries
/// `Retry-After` (seconds). Each call is recorded under its API key, its
/// body the query's parameters but the signature.
pub fn exchange() -> Standin {
    exchange_at("127.0.0.1:0")
}

pub fn exchange_at(addr: &str) -> Standin {
    Standin::start(addr, "", |shared| {
        Router::new()
            .route("/api/v3/account", get(account_info))
            .with_state(shared)
    })
}

/// What one API key holds at the stand-in exchange: its signing secret and
/// balances `(asset, free, locked)`.
pub fn account(secret: &str, balances: &[(&str, &str, &str)]) -> Value {
    let balances: Vec<Value> = balances
        .iter()
        .map(|(asset, free, locked)| json!({"asset": asset, "free": free, "locked": locked}))
        .collect();
    json!({"secret": secret, "balances": balances})
}

fn binance_error(status: u16, code: i64, msg: &str) -> Response {
    json_reply(status, json!({"code": code, "msg": msg}))
}

async fn account_info(
    State(s): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let (signed, signature) = query.split_once("&signature=").unwrap_or((&query, ""));
    let params: HashMap<String, String> = signed
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = json!(params);
    let key = headers
        .get("x-mbx-apikey")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let held = s.state(&key);
    let Some(secret) = held.get("secret").and_then(Value::as_str) else {
        s.record("", &body, 401);
        return binance_error(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        );
    };
    let expected = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        signed.as_bytes(),
    );
    let hex: String = expected
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if signature != hex || !params.contains_key("timestamp") {
        s.record(&key, &body, 400);
        return binance_error(400, -1022, "Signature for this request is not valid.");
    }
    match s.next(&key) {
        Reply::RateLimit(secs) => {
            s.record(&key, &body, 429);
            let mut r = binance_error(
                429,
                -1003,
                "Too much request weight used; current limit is 1200 request weight per 1 MINUTE.",
            );
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Reply::Fail(code) => {
            s.record(&key, &body, code);
            binance_error(
                code,
                -1001,
                "Internal error; unable to process your request.",
            )
        }
        Reply::Refuse(code) => {
            s.record(&key, &body, code);
            binance_error(
                code,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            )
        }
        _ => {
            s.record(&key, &body, 200);
            json_reply(
                200,
                json!({
                    "makerCommission": 10, "takerCommission": 10,
                    "canTrade": true, "canWithdraw": true, "canDeposit": true,
                    "accountType": "SPOT",
                    "balances": held.get("balances").cloned().unwrap_or(json!([])),
                    "permissions": ["SPOT"],
                }),
            )
        }
    }
}

/// The trading bots' control endpoints, one path per bot:
/// `GET /bots/{id}/health` (scripted under the key `{id}`: `Ok` answers 200
/// `{"status": "ok"}`, `Fail(code)` that code) and `POST /bots/{id}/restart`
/// (always 200; each restart is recorded as done under `{id}`).
pub fn bots() -> Standin {
    bots_at("127.0.0.1:0")
}

pub fn bots_at(addr: &str) -> Standin {
    Standin::start(addr, "", |shared| {
        Router::new()
            .route("/bots/{id}/health", get(bot_health))
            .route("/bots/{id}/restart", post(bot_restart))
            .with_state(shared)
    })
}

async fn bot_health(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    match s.next(&id) {
        Reply::Fail(code) | Reply::Refuse(code) => {
            s.record(&id, &json!("health"), code);
            json_reply(code, json!({"status": "down"}))
        }
        _ => {
            s.record(&id, &json!("health"), 200);
            json_reply(200, json!({"status": "ok"}))
        }
    }
}

async fn bot_restart(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.record(&id, &json!("restart"), 200);
    s.did(&id, body);
    json_reply(200, json!({"status": "restarting"}))
}

/// A mail provider: `POST /v1/messages` with `Authorization: Bearer KEY`
/// and an `Idempotency-Key`, JSON `{from, to, subject, text}`; answers 202
/// `{"id"}`. A key it has seen is answered with the first message and not
/// sent again. Scripted by recipient; a 429 carries `Retry-After`.
pub fn mail(api_key: &str) -> Standin {
    mail_at("127.0.0.1:0", api_key)
}

pub fn mail_at(addr: &str, api_key: &str) -> Standin {
    Standin::start(addr, api_key, |shared| {
        Router::new()
            .route("/v1/messages", post(send_mail))
            .with_state(shared)
    })
}

async fn send_mail(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let bearer = format!("Bearer {}", s.credential);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        s.record("", &body, 401);
        return json_reply(401, json!({"errors": [{"message": "invalid API key"}]}));
    }
    let to = body["to"].as_str().unwrap_or_default().to_string();
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        s.record(&to, &body, 400);
        return json_reply(
            400,
            json!({"errors": [{"message": "Idempotency-Key required"}]}),
        );
    };
    match s.next(&to) {
        Reply::RateLimit(secs) => {
            s.record(&to, &body, 429);
            let mut r = json_reply(429, json!({"errors": [{"message": "too many requests"}]}));
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Reply::Fail(code) | Reply::Refuse(code) => {
            s.record(&to, &body, code);
            json_reply(code, json!({"errors": [{"message": "rejected"}]}))
        }
        _ => {
            let message = match s.done_for(key) {
                Some(first) => first,
                None => {
                    let message = json!({
                        "id": format!("msg_{}", key.replace(':', "_")),
                        "to": to, "subject": body["subject"], "text": body["text"],
                    });
                    s.did(key, message.clone());
                    message
                }
            };
            s.record(&to, &body, 202);
            json_reply(202, json!({"id": message["id"]}))
        }
    }
}

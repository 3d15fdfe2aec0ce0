//! Stand-ins for the remotes of the example apps: a payment provider, the
//! Telegram Bot API, TonAPI and a web service's health endpoint, on
//! 127.0.0.1, speaking their wire formats and scripted per key (a payment
//! id, a chat id, a wallet): answer, fail N times, time out after taking
//! the payment, rate-limit, refuse, add a transaction. Each serves from its
//! own thread, so a test may block while they answer.
//!
//! Self-contained (axum, tokio, serde_json), so the `invest-standins`
//! binary runs the same servers for the example.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How a stand-in answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Do the thing (charge, send) and answer 200.
    Ok,
    /// Answer this 5xx without doing anything.
    Fail(u16),
    /// Answer this 4xx: the provider declines, Telegram says 403 (bot
    /// blocked by the user) or 400 (chat not found).
    Refuse(u16),
    /// Answer 429, telling the client to come back in this many seconds.
    RateLimit(u64),
    /// Do the thing, then stall this long before answering (the client's
    /// timeout fires first: the answer is lost, the effect is not).
    TakeThenStall(Duration),
    /// Add this item to what the remote holds for the key (a transaction
    /// arriving on a TonAPI account), then answer as `Ok`.
    Add(Value),
}

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: SystemTime,
    /// The payment's idempotency key, or the notification's chat id.
    pub key: String,
    /// What the request carried: the JSON body.
    pub body: Value,
    /// The status answered (0 when the answer stalled).
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, VecDeque<Reply>>,
    calls: Vec<Call>,
    /// What was done (a charge, a sent message), by key, in order.
    done: Vec<(String, Value)>,
    /// What the remote holds, by key: a chat's member count, an account's
    /// transactions (oldest first).
    state: HashMap<String, Value>,
}

#[derive(Clone)]
pub(crate) struct Shared {
    inner: Arc<Mutex<Inner>>,
    /// The credential the stand-in accepts: the provider's API key or the bot token.
    pub(crate) credential: Arc<String>,
}

impl Shared {
    /// The next scripted reply for `key` (then `Ok` for ever).
    pub(crate) fn next(&self, key: &str) -> Reply {
        let mut inner = self.inner.lock().unwrap();
        inner
            .scripts
            .get_mut(key)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Reply::Ok)
    }

    /// What the remote holds for `key` (`Null` when nothing).
    pub(crate) fn state(&self, key: &str) -> Value {
        let inner = self.inner.lock().unwrap();
        inner.state.get(key).cloned().unwrap_or(Value::Null)
    }

    /// Appends `item` to the list the remote holds for `key`.
    fn add(&self, key: &str, item: Value) {
        let mut inner = self.inner.lock().unwrap();
        let list = inner
            .state
            .entry(key.to_string())
            .or_insert_with(|| json!([]));
        list.as_array_mut().expect("a list").push(item);
    }

    /// Records that the remote did something for `key` (sent, restarted).
    pub(crate) fn did(&self, key: &str, what: Value) {
        self.inner
            .lock()
            .unwrap()
            .done
            .push((key.to_string(), what));
    }

    /// What was done for `key` before, if anything (an idempotent replay).
    pub(crate) fn done_for(&self, key: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .done
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn record(&self, key: &str, body: &Value, status: u16) {
        self.inner.lock().unwrap().calls.push(Call {
            at: SystemTime::now(),
            key: key.to_string(),
            body: body.clone(),
            status,
        });
    }
}

/// A running stand-in: its base URL, its script and what it saw.
pub struct Standin {
    pub url: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Standin {
    pub(crate) fn start(addr: &str, credential: &str, routes: fn(Shared) -> Router) -> Standin {
        let listener = std::net::TcpListener::bind(addr).expect("stand-in binds");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            inner: Arc::default(),
            credential: Arc::new(credential.to_string()),
        };
        let app = routes(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Standin {
            url,
            shared,
            stop: Some(stop),
        }
    }

    /// Answers the next requests for `key` with `replies`, then `Ok`.
    pub fn script(&self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        self.shared
            .inner
            .lock()
            .unwrap()
            .scripts
            .entry(key.to_string())
            .or_default()
            .extend(replies);
    }

    /// Sets what the remote holds for `key` (a chat's member count).
    pub fn set(&self, key: &str, value: Value) {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.state.insert(key.to_string(), value);
    }

    /// Every request received, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.inner.lock().unwrap().calls.clone()
    }

    /// The requests for one key.
    pub fn calls_for(&self, key: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.key == key).collect()
    }

    /// What was done (charges taken, messages sent), by key, in order.
    pub fn done(&self) -> Vec<(String, Value)> {
        self.shared.inner.lock().unwrap().done.clone()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A payment provider: `POST /v1/charges` with `Authorization: Bearer KEY`
/// and an `Idempotency-Key`; a key it has charged before is answered with
/// the first charge and never charged again.
pub fn provider(api_key: &str) -> Standin {
    provider_at("127.0.0.1:0", api_key)
}

pub fn provider_at(addr: &str, api_key: &str) -> Standin {
    Standin::start(addr, api_key, |shared| {
        Router::new()
            .route("/v1/charges", post(charge))
            .with_state(shared)
    })
}

pub(crate) fn json_reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

async fn charge(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let bearer = format!("Bearer {}", s.credential);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        s.record("", &body, 401);
        return json_reply(401, json!({"error": {"type": "authentication_error"}}));
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        s.record("", &body, 400);
        return json_reply(
            400,
            json!({"error": {"type": "invalid_request_error", "message": "Idempotency-Key required"}}),
        );
    };
    let take = |s: &Shared| -> Value {
        let mut inner = s.inner.lock().unwrap();
        if let Some((_, charge)) = inner.done.iter().find(|(k, _)| *k == key) {
            return charge.clone();
        }
        let charge = json!({
            "id": format!("ch_{}", inner.done.len() + 1),
            "status": "succeeded",
            "payment_id": body.get("payment_id").cloned().unwrap_or(Value::Null),
            "amount": body.get("amount").cloned().unwrap_or(Value::Null),
        });
        inner.done.push((key.clone(), charge.clone()));
        charge
    };
    match s.next(&key) {
        Reply::Ok | Reply::Add(_) => {
            let charge = take(&s);
            s.record(&key, &body, 200);
            json_reply(200, charge)
        }
        Reply::Fail(code) => {
            s.record(&key, &body, code);
            json_reply(code, json!({"error": {"type": "api_error"}}))
        }
        Reply::Refuse(code) => {
            s.record(&key, &body, code);
            json_reply(
                code,
                json!({"error": {"type": "card_error", "message": "Your card was declined."}}),
            )
        }
        Reply::RateLimit(secs) => {
            s.record(&key, &body, 429);
            let mut r = json_reply(429, json!({"error": {"type": "rate_limit_error"}}));
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Reply::TakeThenStall(d) => {
            let charge = take(&s);
            s.record(&key, &body, 0);
            tokio::time::sleep(d).await;
            json_reply(200, charge)
        }
    }
}

/// The Telegram Bot API's `POST /bot<token>/sendMessage` and
/// `getChatMemberCount` (the count is what [`Standin::set`] put for the
/// chat; an unknown chat is 400 "chat not found"), answering as
/// Telegram does: `{"ok": true, "result": {…}}` or `{"ok": false,
/// "error_code", "description", "parameters": {"retry_after"}}`.
pub fn telegram(token: &str) -> Standin {
    telegram_at("127.0.0.1:0", token)
}

pub fn telegram_at(addr: &str, token: &str) -> Standin {
    Standin::start(addr, token, |shared| {
        Router::new()
            .route("/{bot}/sendMessage", post(send_message))
            .route("/{bot}/getChatMemberCount", post(get_chat_member_count))
            .with_state(shared)
    })
}

fn telegram_error(code: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    json_reply(code, body)
}

async fn send_message(State(s): State<Shared>, Path(bot): Path<String>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if bot.strip_prefix("bot") != Some(s.credential.as_str()) {
        s.record("", &body, 401);
        return telegram_error(401, "Unauthorized", None);
    }
    let chat = match body.get("chat_id") {
        Some(Value::String(c)) => c.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            s.record("", &body, 400);
            return telegram_error(400, "Bad Request: chat_id is empty", None);
        }
    };
    match s.next(&chat) {
        Reply::Ok | Reply::TakeThenStall(_) | Reply::Add(_) => {
            let message = {
                let mut inner = s.inner.lock().unwrap();
                let message = json!({
                    "message_id": inner.done.len() + 1,
                    "chat": {"id": chat},
                    "date": SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
                    "text": body.get("text").cloned().unwrap_or(Value::Null),
                });
                inner.done.push((chat.clone(), message.clone()));
                message
            };
            s.record(&chat, &body, 200);
            json_reply(200, json!({"ok": true, "result": message}))
        }
        Reply::RateLimit(secs) => {
            s.record(&chat, &body, 429);
            telegram_error(
                429,
                &format!("Too Many Requests: retry after {secs}"),
                Some(json!({"retry_after": secs})),
            )
        }
        Reply::Refuse(403) => {
            s.record(&chat, &body, 403);
            telegram_error(403, "Forbidden: bot was blocked by the user", None)
        }
        Reply::Refuse(code) => {
            s.record(&chat, &body, code);
            telegram_error(code, "Bad Request: chat not found", None)
        }
        Reply::Fail(code) => {
            s.record(&chat, &body, code);
            telegram_error(code, "Internal Server Error", None)
        }
    }
}

/// `getChatMemberCount` with a JSON body `{"chat_id"}`: `{"ok": true,
/// "result": <count>}`.
async fn get_chat_member_count(
    State(s): State<Shared>,
    Path(bot): Path<String>,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if bot.strip_prefix("bot") != Some(s.credential.as_str()) {
        s.record("", &body, 401);
        return telegram_error(401, "Unauthorized", None);
    }
    let chat = match body.get("chat_id") {
        Some(Value::String(c)) => c.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            s.record("", &body, 400);
            return telegram_error(400, "Bad Request: chat_id is empty", None);
        }
    };
    match s.next(&chat) {
        Reply::RateLimit(secs) => {
            s.record(&chat, &body, 429);
            telegram_error(
                429,
                &format!("Too Many Requests: retry after {secs}"),
                Some(json!({"retry_after": secs})),
            )
        }
        Reply::Fail(code) => {
            s.record(&chat, &body, code);
            telegram_error(code, "Internal Server Error", None)
        }
        Reply::Refuse(code) => {
            s.record(&chat, &body, code);
            telegram_error(code, "Bad Request: chat not found", None)
        }
        Reply::Ok | Reply::TakeThenStall(_) | Reply::Add(_) => match s.state(&chat) {
            Value::Number(count) => {
                s.record(&chat, &body, 200);
                json_reply(200, json!({"ok": true, "result": count}))
            }
            _ => {
                s.record(&chat, &body, 400);
                telegram_error(400, "Bad Request: chat not found", None)
            }
        },
    }
}

/// TonAPI v2's `GET /v2/blockchain/accounts/{account}/transactions` with
/// `Authorization: Bearer KEY`: `{"transactions": [...]}`, newest first, as
/// [`ton_transfer`] shapes them; errors as TonAPI writes them,
/// `{"error": "..."}`, a 429 with `Retry-After`. The key is the account.
pub fn tonapi(api_key: &str) -> Standin {
    tonapi_at("127.0.0.1:0", api_key)
}

pub fn tonapi_at(addr: &str, api_key: &str) -> Standin {
    Standin::start(addr, api_key, |shared| {
        Router::new()
            .route(
                "/v2/blockchain/accounts/{account}/transactions",
                get(transactions),
            )
            .with_state(shared)
    })
}

async fn transactions(
    State(s): State<Shared>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let body = json!(query);
    let bearer = format!("Bearer {}", s.credential);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        s.record("", &body, 401);
        return json_reply(401, json!({"error": "invalid token"}));
    }
    let ok = |s: &Shared| {
        let mut list = s.state(&account).as_array().cloned().unwrap_or_default();
        list.reverse();
        if let Some(limit) = query.get("limit").and_then(|l| l.parse().ok()) {
            list.truncate(limit);
        }
        s.record(&account, &body, 200);
        json_reply(200, json!({"transactions": list}))
    };
    match s.next(&account) {
        Reply::Ok | Reply::TakeThenStall(_) => ok(&s),
        Reply::Add(tx) => {
            s.add(&account, tx);
            ok(&s)
        }
        Reply::Fail(code) => {
            s.record(&account, &body, code);
            json_reply(code, json!({"error": "internal error"}))
        }
        Reply::Refuse(code) => {
            s.record(&account, &body, code);
            json_reply(code, json!({"error": "can't decode address"}))
        }
        Reply::RateLimit(secs) => {
            s.record(&account, &body, 429);
            let mut r = json_reply(429, json!({"error": "rate limit: free tier allows 1 rps"}));
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
    }
}

/// One incoming transfer to `account` as TonAPI v2 describes a
/// transaction: `in_msg.value` in nanotons (an integer), the comment in
/// `in_msg.decoded_body.text`.
pub fn ton_transfer(account: &str, hash: &str, value_nano: i64, comment: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "hash": hash,
        "lt": now * 1000,
        "account": {"address": account, "is_scam": false, "is_wallet": true},
        "success": true,
        "utime": now,
        "orig_status": "active",
        "end_status": "active",
        "total_fees": 2_500_000,
        "transaction_type": "TransOrd",
        "in_msg": {
            "msg_type": "int_msg",
            "created_lt": now * 1000 - 1,
            "ihr_disabled": true,
            "bounce": false,
            "bounced": false,
            "value": value_nano,
            "fwd_fee": 266_669,
            "ihr_fee": 0,
            "destination": {"address": account, "is_scam": false, "is_wallet": true},
            "source": {"address": "0:83dfd552e63729b472fcbcc8c45ebcc6691702558b68ec7527e1ba403a0f31a8", "is_scam": false, "is_wallet": true},
            "import_fee": 0,
            "created_at": now,
            "op_code": "0x00000000",
            "decoded_op_name": "text_comment",
            "decoded_body": {"text": comment}
        },
        "out_msgs": [],
        "block": "(0,8000000000000000,45000000)",
        "aborted": false,
        "destroyed": false
    })
}

/// A web service's `GET /health` (key `health`): `Ok` answers 200
/// `{"status": "ok"}`, `Fail(code)` that code.
pub fn web() -> Standin {
    web_at("127.0.0.1:0")
}

pub fn web_at(addr: &str) -> Standin {
    Standin::start(addr, "", |shared| {
        Router::new()
            .route("/health", get(health))
            .with_state(shared)
    })
}

async fn health(State(s): State<Shared>) -> Response {
    match s.next("health") {
        Reply::Fail(code) | Reply::Refuse(code) => {
            s.record("health", &Value::Null, code);
            json_reply(code, json!({"status": "down"}))
        }
        _ => {
            s.record("health", &Value::Null, 200);
            json_reply(200, json!({"status": "ok"}))
        }
    }
}

//! A small JSON-RPC 2.0 client over HTTP/1.1 (and TLS for `https`), one
//! connection per request, for the operator-configured node URLs of one
//! chain. Transient failures (connection errors, timeouts, HTTP 5xx and
//! 429, JSON-RPC "limit exceeded") are retried: each round tries every URL
//! in order, up to `retries + 1` rounds, with a doubling pause between
//! rounds. A JSON-RPC error answer is returned as [`RpcError::Remote`] and
//! never retried (except a rate limit). URLs appear in messages only as
//! [`crate::config::redact_rpc_url`] shows them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use url::Url;

use crate::config::{ChainSettings, redact_rpc_url};

/// The largest response body read from a node (a wide `eth_getLogs`).
const MAX_RESPONSE: usize = 32 << 20;
/// The pause before the second round; doubled each round, capped below.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// JSON-RPC codes providers use for "too many requests".
const RATE_LIMIT_CODES: [i64; 2] = [-32005, 429];

/// Why a request produced no result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RpcError {
    /// The node answered with a JSON-RPC error.
    Remote { code: i64, message: String },
    /// Every attempt failed; the message says how often and why.
    Failed(String),
    /// Every attempt failed and the last one timed out.
    Timeout(String),
}

/// One attempt's failure, and whether another attempt may help.
#[derive(Debug)]
enum Attempt {
    Transient(String),
    TimedOut(String),
    Fatal(RpcError),
}

struct Endpoint {
    url: Url,
    /// What messages show: the origin, never the path or userinfo.
    shown: String,
    authorization: Option<HeaderValue>,
}

pub(crate) struct RpcClient {
    endpoints: Vec<Endpoint>,
    timeout: Duration,
    retries: u32,
    tls: TlsConnector,
    next_id: AtomicU64,
}

impl RpcClient {
    pub fn new(settings: &ChainSettings, tls: TlsConnector) -> Result<RpcClient, String> {
        if settings.rpc.is_empty() {
            return Err("rpc needs at least one URL".into());
        }
        let endpoints = settings
            .rpc
            .iter()
            .map(|raw| endpoint(raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RpcClient {
            endpoints,
            timeout: settings.timeout,
            retries: settings.retries,
            tls,
            next_id: AtomicU64::new(1),
        })
    }

    /// Calls `method` and returns its `result`, retrying transient failures.
    pub async fn call(&self, method: &str, params: &Json) -> Result<Json, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = Bytes::from(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        let rounds = self.retries + 1;
        let mut backoff = FIRST_BACKOFF;
        let mut last = Attempt::Transient("no attempt made".into());
        let mut attempts = 0;
        for round in 0..rounds {
            if round > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            for endpoint in &self.endpoints {
                attempts += 1;
                let outcome =
                    tokio::time::timeout(self.timeout, self.attempt(endpoint, body.clone())).await;
                let attempt = match outcome {
                    Ok(Ok(answer)) => match decode(&answer, &endpoint.shown) {
                        Ok(result) => return Ok(result),
                        Err(a) => a,
                    },
                    Ok(Err(a)) => a,
                    Err(_) => Attempt::TimedOut(format!(
                        "{}: no answer within {}",
                        endpoint.shown,
                        crate::units::format_duration(self.timeout)
                    )),
                };
                match attempt {
                    Attempt::Fatal(e) => return Err(e),
                    other => {
                        // `method` is the plugin's own text (chain.rpc).
                        let method = crate::runtime::clip(method, 256);
                        tracing::debug!(%method, attempt = attempts, failure = ?other, "chain rpc attempt failed");
                        last = other;
                    }
                }
            }
        }
        let tried = if attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{attempts} attempts")
        };
        Err(match last {
            Attempt::TimedOut(why) => {
                RpcError::Timeout(format!("{method}: gave up after {tried}: {why}"))
            }
            Attempt::Transient(why) => {
                RpcError::Failed(format!("{method}: gave up after {tried}: {why}"))
            }
            Attempt::Fatal(e) => e,
        })
    }

    async fn attempt(&self, endpoint: &Endpoint, body: Bytes) -> Result<Answer, Attempt> {
        let url = &endpoint.url;
        let shown = &endpoint.shown;
        let host = url.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(80);
        let tcp = TcpStream::connect((bare, port))
            .await
            .map_err(|e| Attempt::Transient(format!("cannot connect to {shown}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if url.scheme() == "https" {
            let name = ServerName::try_from(bare.to_string()).map_err(|e| {
                Attempt::Fatal(RpcError::Failed(format!(
                    "{shown}: not a TLS server name: {e}"
                )))
            })?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| Attempt::Transient(format!("TLS with {shown} failed: {e}")))?;
            exchange(stream, endpoint, body).await
        } else {
            exchange(tcp, endpoint, body).await
        }
    }
}

fn endpoint(raw: &str) -> Result<Endpoint, String> {
    let shown = redact_rpc_url(raw);
    let url = Url::parse(raw).map_err(|e| format!("rpc URL {shown}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("rpc URL {shown}: the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("rpc URL {shown}: no host"));
    }
    let authorization = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let user = percent_decode(url.username());
        let password = percent_decode(url.password().unwrap_or(""));
        let mut value = HeaderValue::from_str(&format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ))
        .map_err(|_| format!("rpc URL {shown}: unusable credentials"))?;
        value.set_sensitive(true);
        Some(value)
    };
    Ok(Endpoint {
        url,
        shown,
        authorization,
    })
}

struct Answer {
    status: u16,
    body: Bytes,
}

/// Aborts the connection task when the exchange is over (or abandoned).
struct Connection(tokio::task::JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<S>(io: S, endpoint: &Endpoint, body: Bytes) -> Result<Answer, Attempt>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shown = &endpoint.shown;
    let failed = |what: &str, e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        Attempt::Transient(format!("{shown}: {what}: {text}"))
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed("handshake failed", &e))?;
    let _connection = Connection(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let url = &endpoint.url;
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let mut builder = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(if target.is_empty() { "/" } else { target })
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json");
    if let Some(auth) = &endpoint.authorization {
        builder = builder.header(header::AUTHORIZATION, auth.clone());
    }
    let request = builder.body(Full::new(body)).map_err(|_| {
        Attempt::Fatal(RpcError::Failed(format!(
            "{shown}: the URL path is not valid"
        )))
    })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed("request failed", &e))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Attempt::Fatal(RpcError::Failed(format!(
                    "{shown}: the response is larger than {} MiB",
                    MAX_RESPONSE >> 20
                )))
            } else {
                Attempt::Transient(format!("{shown}: reading the response failed: {e}"))
            }
        })?
        .to_bytes();
    Ok(Answer { status, body })
}

/// The `result` of a JSON-RPC answer, or what kind of failure it is.
fn decode(answer: &Answer, shown: &str) -> Result<Json, Attempt> {
    let parsed: Option<Json> = serde_json::from_slice(&answer.body).ok();
    let error = parsed
        .as_ref()
        .and_then(|j| j.get("error"))
        .filter(|e| !e.is_null());
    if let Some(error) = error {
        let code = error.get("code").and_then(Json::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("(no message)")
            .to_string();
        let message = match error.get("data") {
            Some(Json::String(d)) => format!("{message}: {d}"),
            _ => message,
        };
        if RATE_LIMIT_CODES.contains(&code) || answer.status == 429 {
            return Err(Attempt::Transient(format!(
                "{shown}: rate limited ({code}: {message})"
            )));
        }
        return Err(Attempt::Fatal(RpcError::Remote { code, message }));
    }
    match answer.status {
        200..=299 => {}
        429 => {
            return Err(Attempt::Transient(format!(
                "{shown}: HTTP 429 (rate limited)"
            )));
        }
        s @ 500..=599 => return Err(Attempt::Transient(format!("{shown}: HTTP {s}"))),
        s => {
            return Err(Attempt::Fatal(RpcError::Failed(format!(
                "{shown}: HTTP {s}{}",
                snippet(&answer.body)
            ))));
        }
    }
    match parsed {
        Some(Json::Object(mut o)) if o.contains_key("result") => {
            Ok(o.remove("result").unwrap_or(Json::Null))
        }
        _ => Err(Attempt::Fatal(RpcError::Failed(format!(
            "{shown}: not a JSON-RPC answer{}",
            snippet(&answer.body)
        )))),
    }
}

fn snippet(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(200).collect();
    format!(": {cut:?}")
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn answers_decode_by_kind() {
        let a = |status, body: &str| Answer {
            status,
            body: Bytes::from(body.to_string()),
        };
        assert_eq!(
            decode(&a(200, r#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"#), "x").unwrap(),
            json!("0x10")
        );
        match decode(
            &a(
                200,
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#,
            ),
            "x",
        ) {
            Err(Attempt::Fatal(RpcError::Remote { code, message })) => {
                assert_eq!((code, message.as_str()), (-32601, "nope"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&a(503, ""), "x"),
            Err(Attempt::Transient(_))
        ));
        assert!(matches!(
            decode(&a(429, ""), "x"),
            Err(Attempt::Transient(_))
        ));
        assert!(matches!(
            decode(
                &a(200, r#"{"error":{"code":-32005,"message":"slow down"}}"#),
                "x"
            ),
            Err(Attempt::Transient(_))
        ));
        assert!(matches!(
            decode(&a(404, "not here"), "x"),
            Err(Attempt::Fatal(RpcError::Failed(_)))
        ));
    }
}

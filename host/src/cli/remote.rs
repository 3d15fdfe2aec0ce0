//! The admin commands against a running host's HTTP API (`--url`, with the
//! token from `TASKHOST_TOKEN`), for hosts on other machines. Answers are
//! decoded into the same types the local commands print, so the output is
//! the same either way.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{Method, header};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::BadInput;

/// A host's API.
pub struct Remote {
    authority: String,
    token: Option<String>,
}

impl Remote {
    /// `url` is `http://host:port` (a path is ignored).
    pub fn new(url: &str, token: Option<String>) -> Result<Remote, BadInput> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| BadInput(format!("--url {url:?}: expected http://host:port")))?;
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() {
            return Err(BadInput(format!("--url {url:?}: no host")));
        }
        Ok(Remote { authority, token })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> anyhow::Result<T> {
        let body = (Bytes::from(body.to_string()), "application/json");
        self.call(Method::POST, path, Some(body)).await
    }

    /// POSTs raw bytes of `content_type` (a plugin component).
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> anyhow::Result<T> {
        self.call(Method::POST, path, Some((Bytes::from(body), content_type)))
            .await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> anyhow::Result<T> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            anyhow::anyhow!("{method} http://{}{path}: {what}: {e}", self.authority)
        };
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| failed("cannot connect", &e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed("handshake failed", &e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.authority);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Some((b, content_type)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                b
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| failed("bad request", &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed("request failed", &e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed("reading the answer", &e))?
            .to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            // A refusal (4xx) is the user's input: exit code 2, as locally.
            return Err(if status.is_client_error() {
                BadInput(message).into()
            } else {
                anyhow::anyhow!("{method} {path}: {status}: {message}")
            });
        }
        serde_json::from_slice(&body).map_err(|e| failed("unexpected answer", &e))
    }
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?a=b&c=d` from the pairs that are set.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

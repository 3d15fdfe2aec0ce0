//! `{hmac-sha256:NAME}` through the `http` capability, against a real
//! HTTP server on 127.0.0.1 that echoes what it received: the host signs
//! the query (before the signature parameter) or the query and body (for
//! a header), the plugin never holds the secret, and misplaced or unknown
//! references are refused.

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::routing::any;
use serde_json::{Value, json};
use taskhost::runtime::{Outcome, Runtime};

use crate::support::{TestHost, run_job};

const SECRET: &str = "hmac-signing-secret-Zq81vT";

/// Answers `{"query", "x_sig", "body"}`: what the request carried.
async fn echo(RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    axum::Json(json!({
        "query": query,
        "x_sig": headers.get("x-sig").map(|v| v.to_str().unwrap().to_string()),
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn host() -> (String, TestHost) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/sign", any(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let host = TestHost::new(&format!(
        "[plugins.http_probe]\nhttp = [\"{url}\"]\nsecrets = {{ api_secret = \"{SECRET}\" }}\n"
    ));
    (url, host)
}

fn hmac(message: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    ring::hmac::sign(&key, message.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn send(rt: &Runtime, request: Value) -> Value {
    let result = match run_job(rt, "http.send", request).await.outcome {
        Outcome::Success { result } => result,
        other => panic!("http.send did not succeed: {other:?}"),
    };
    assert!(
        !result.to_string().contains(SECRET),
        "the secret in {result}"
    );
    result
}

fn echoed(result: &Value) -> Value {
    serde_json::from_str(result["ok"]["body"].as_str().expect("a response")).unwrap()
}

#[tokio::test]
async fn the_host_signs_the_query_before_the_signature_parameter() {
    let (url, host) = host().await;
    let rt = host.runtime().await;
    let result = send(
        &rt,
        json!({"url": format!("{url}/sign?symbol=BTCUSDT&timestamp=1700000000000&signature={{hmac-sha256:api_secret}}")}),
    )
    .await;
    let seen = echoed(&result);
    let signed = "symbol=BTCUSDT&timestamp=1700000000000";
    assert_eq!(
        seen["query"],
        format!("{signed}&signature={}", hmac(signed))
    );
}

#[tokio::test]
async fn a_header_signature_covers_the_query_and_the_body() {
    let (url, host) = host().await;
    let rt = host.runtime().await;
    let result = send(
        &rt,
        json!({
            "method": "POST",
            "url": format!("{url}/sign?symbol=ETHUSDT"),
            "headers": [["x-sig", "{hmac-sha256:api_secret}"]],
            "body": "quantity=1&price=0.1",
        }),
    )
    .await;
    let seen = echoed(&result);
    assert_eq!(seen["x_sig"], hmac("symbol=ETHUSDTquantity=1&price=0.1"));
    assert_eq!(seen["body"], "quantity=1&price=0.1");
}

#[tokio::test]
async fn unknown_or_misplaced_signatures_are_refused() {
    let (url, host) = host().await;
    let rt = host.runtime().await;
    for (request, kind) in [
        (
            json!({"url": format!("{url}/sign?s={{hmac-sha256:nope}}")}),
            "denied",
        ),
        (
            json!({"url": format!("{url}/sign?s={{hmac-sha256:api_secret}}&t=1")}),
            "invalid",
        ),
        (
            json!({"url": format!("{url}/sign"), "method": "POST", "body": "{hmac-sha256:api_secret}"}),
            "invalid",
        ),
    ] {
        let result = send(&rt, request.clone()).await;
        assert_eq!(result["error"]["kind"], kind, "{request}: {result}");
    }
}

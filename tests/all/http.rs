//! The `http` and `config` capabilities against a real HTTP server started
//! here on 127.0.0.1. Every request in these tests goes to 127.0.0.0/8 or
//! is refused before any connection (and before any name lookup).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use taskhost::job::JobStatus;
use taskhost::runtime::{Outcome, Runtime};

use crate::support::{LogCollector, TestHost, finished, request, run_job, services, start_workers};

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts the test server on 127.0.0.1 (a free port) and returns its address.
async fn start_server() -> (SocketAddr, Server) {
    let server = Server::default();
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/redirect", any(redirect))
        .route("/slow", get(slow))
        .route("/endless", get(endless))
        .route("/{bot}/sendMessage", any(slow_bot))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, server)
}

fn record(server: &Server, method: &Method, path: &str, headers: &HeaderMap, body: &Bytes) {
    server.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: String::from_utf8_lossy(body).into(),
    });
}

/// 201 with what was received, and a header of its own.
async fn echo(
    State(server): State<Server>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&server, &method, "/echo", &headers, &body);
    let x_test = headers
        .get("x-test")
        .map(|v| v.to_str().unwrap().to_string());
    let payload = json!({
        "method": method.as_str(),
        "x_test": x_test,
        "body": String::from_utf8_lossy(&body),
    });
    (
        StatusCode::CREATED,
        [("x-echo", "yes"), ("content-type", "application/json")],
        payload.to_string(),
    )
        .into_response()
}

/// A redirect to `?to=…`, with the status `?status=…` (default 302).
async fn redirect(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let status = q
        .get("status")
        .map_or(302, |s| s.parse().unwrap())
        .try_into()
        .unwrap();
    let status = StatusCode::from_u16(status).unwrap();
    (status, [(header::LOCATION, q["to"].clone())]).into_response()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "finally"
}

/// Records the request, then takes its time (a bot API that hangs).
async fn slow_bot(
    State(server): State<Server>,
    Path(bot): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    record(
        &server,
        &method,
        &format!("/{bot}/sendMessage"),
        &headers,
        &body,
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    "finally"
}

/// A body that never ends.
async fn endless() -> Response {
    let chunk = Bytes::from(vec![b'x'; 16 << 10]);
    let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
    Response::new(Body::from_stream(stream))
}

/// `[plugins.http_probe]` granting `origins`, plus more lines of that table.
fn grants(origins: &[String], more: &str) -> String {
    format!("[plugins.http_probe]\nhttp = {origins:?}\n{more}\n")
}

/// Runs `http.send` and returns its JSON result.
async fn send(runtime: &Runtime, payload: Value) -> Value {
    match run_job(runtime, "http.send", payload).await.outcome {
        Outcome::Success { result } => result,
        other => panic!("http.send did not succeed: {other:?}"),
    }
}

/// The kind and message of a host error the probe returned.
fn host_error(result: &Value) -> (String, String) {
    let e = &result["error"];
    assert!(e.is_object(), "expected a host error, got {result}");
    (
        e["kind"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_granted_request_carries_method_headers_and_body() {
    let (addr, server) = start_server().await;
    let host = TestHost::new(&grants(&[format!("http://{addr}")], ""));
    let rt = host.runtime().await;
    let r = send(
        &rt,
        json!({
            "method": "PUT",
            "url": format!("http://{addr}/echo?x=1#fragment"),
            "headers": [["x-test", "hello"], ["content-type", "text/plain"]],
            "body": "the body",
        }),
    )
    .await;
    let ok = &r["ok"];
    assert_eq!(ok["status"], 201, "{r}");
    let headers: Vec<(String, String)> = serde_json::from_value(ok["headers"].clone()).unwrap();
    assert!(
        headers.contains(&("x-echo".into(), "yes".into())),
        "{headers:?}"
    );
    let body: Value = serde_json::from_str(ok["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"method": "PUT", "x_test": "hello", "body": "the body"})
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].body.as_str()),
        ("PUT", "the body")
    );
    assert!(
        seen[0].headers.contains(&("host".into(), addr.to_string())),
        "{:?}",
        seen[0].headers
    );
}

#[tokio::test]
async fn redirects_within_the_grants_are_followed() {
    let (addr, server) = start_server().await;
    let host = TestHost::new(&grants(&[format!("http://{addr}")], ""));
    let rt = host.runtime().await;
    // 303 turns a POST into a GET without a body.
    let r = send(
        &rt,
        json!({"method": "POST", "url": format!("http://{addr}/redirect?status=303&to=/echo"), "body": "b"}),
    )
    .await;
    assert_eq!(r["ok"]["status"], 201, "{r}");
    // 307 keeps the method and the body.
    let r = send(
        &rt,
        json!({"method": "POST", "url": format!("http://{addr}/redirect?status=307&to=http://{addr}/echo"), "body": "kept"}),
    )
    .await;
    assert_eq!(r["ok"]["status"], 201, "{r}");
    let seen = server.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.as_str(), s.body.as_str()))
            .collect::<Vec<_>>(),
        vec![("GET", ""), ("POST", "kept")]
    );
}

#[tokio::test]
async fn hosts_ports_and_redirect_targets_not_granted_are_denied() {
    let (addr, server) = start_server().await;
    let port = addr.port();
    let host = TestHost::new(&grants(&[format!("http://{addr}")], ""));
    let rt = host.runtime().await;
    let cases = [
        // A name nobody granted: refused before any lookup.
        (
            format!("http://not-granted.invalid:{port}/echo"),
            "not-granted.invalid",
        ),
        // The granted host on another port, another scheme, another loopback address.
        (
            format!("http://127.0.0.1:{}/echo", port.wrapping_add(1)),
            "127.0.0.1",
        ),
        (format!("https://{addr}/echo"), "https://127.0.0.1"),
        (format!("http://127.0.0.2:{port}/echo"), "127.0.0.2"),
        (format!("http://localhost:{port}/echo"), "localhost"),
        // Redirects to a host that is not granted.
        (
            format!("http://{addr}/redirect?to=http://127.0.0.2:{port}/echo"),
            "127.0.0.2",
        ),
        (
            format!("http://{addr}/redirect?to=http://localhost:{port}/echo"),
            "localhost",
        ),
    ];
    for (url, named) in cases {
        let r = send(&rt, json!({"url": url})).await;
        let (kind, message) = host_error(&r);
        assert_eq!(kind, "denied", "{url}: {message}");
        assert!(
            message.contains(named) && message.contains("http_probe"),
            "{url}: {message}"
        );
    }
    assert!(server.seen().is_empty(), "no denied request reached /echo");
    let counts = rt.capabilities().http.counts();
    assert_eq!(counts["http_probe"].denied, 7, "{counts:?}");
    // Refusals are in the job's log too.
    let report = run_job(
        &rt,
        "http.send",
        json!({"url": "http://not-granted.invalid/"}),
    )
    .await;
    assert!(report.log.contains("[DENIED]"), "{}", report.log);
    assert!(report.log.contains("not-granted.invalid"), "{}", report.log);
}

#[tokio::test]
async fn loopback_needs_an_exact_grant_even_for_a_granted_name() {
    let (addr, server) = start_server().await;
    let port = addr.port();
    // Any host on this port, but no host by its exact name.
    let host = TestHost::new(&grants(&[format!("http://*:{port}")], ""));
    let rt = host.runtime().await;
    for url in [
        format!("http://127.0.0.1:{port}/echo"),
        format!("http://127.0.0.2:{port}/echo"),
        format!("http://[::1]:{port}/echo"),
        // A name that resolves to loopback.
        format!("http://localhost:{port}/echo"),
    ] {
        let r = send(&rt, json!({"url": url})).await;
        let (kind, message) = host_error(&r);
        assert_eq!(kind, "denied", "{url}: {message}");
        assert!(message.contains("loopback"), "{url}: {message}");
    }
    assert!(server.seen().is_empty());

    // Granted by exact name, the same loopback name is reachable.
    let host = TestHost::new(&grants(&[format!("http://localhost:{port}")], ""));
    let rt = host.runtime().await;
    let r = send(&rt, json!({"url": format!("http://localhost:{port}/echo")})).await;
    assert_eq!(r["ok"]["status"], 201, "{r}");
}

#[tokio::test]
async fn a_slow_endpoint_hits_the_timeout() {
    let (addr, _server) = start_server().await;
    let host = TestHost::new(&format!(
        "[http]\ntimeout = \"400ms\"\n{}",
        grants(&[format!("http://{addr}")], "")
    ));
    let rt = host.runtime().await;
    // The request's own timeout …
    let started = Instant::now();
    let r = send(
        &rt,
        json!({"url": format!("http://{addr}/slow"), "timeout_ms": 200}),
    )
    .await;
    let (kind, message) = host_error(&r);
    assert_eq!(kind, "timeout", "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // … and the configured default.
    let started = Instant::now();
    let r = send(&rt, json!({"url": format!("http://{addr}/slow")})).await;
    assert_eq!(host_error(&r).0, "timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(rt.capabilities().http.counts()["http_probe"].timed_out, 2);
}

#[tokio::test]
async fn an_endless_body_hits_the_size_cap() {
    let (addr, _server) = start_server().await;
    let host = TestHost::new(&format!(
        "[http]\nmax_response = \"64KiB\"\n{}",
        grants(&[format!("http://{addr}")], "")
    ));
    let rt = host.runtime().await;
    let r = send(
        &rt,
        json!({"url": format!("http://{addr}/endless"), "timeout_ms": 5000}),
    )
    .await;
    let (kind, message) = host_error(&r);
    assert_eq!(kind, "failed", "{message}");
    assert!(message.contains("cap of 65536 bytes"), "{message}");
    // A body under the cap arrives whole.
    let r = send(
        &rt,
        json!({"url": format!("http://{addr}/echo"), "method": "POST", "body": "x".repeat(30_000)}),
    )
    .await;
    assert_eq!(r["ok"]["status"], 201, "{r}");
}

const TG_TOKEN: &str = "7301234567:AAH-secret_TelegramToken";
const API_KEY: &str = "key-9f8e7d6c5b4a-secret";

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TG_TOKEN, API_KEY, "AAH-secret", "9f8e7d6c5b4a"] {
        assert!(!text.contains(secret), "{what} holds a secret: {text}");
    }
}

#[tokio::test]
async fn secrets_are_substituted_but_never_leak_from_failing_requests() {
    let (logs, _guard) = LogCollector::start();

    let (addr, server) = start_server().await;
    // A port with nothing listening: connection refused.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let host = TestHost::new(&grants(
        &[format!("http://{addr}"), format!("http://{refused}")],
        &format!("secrets = {{ telegram_token = {TG_TOKEN:?}, api_key = {API_KEY:?} }}"),
    ));
    let s = services(&host).await;
    let workers = start_workers(&s);
    let job = |url: String, fail: bool| {
        let mut req = request(
            "http.send",
            json!({
                "method": "POST",
                "url": url,
                "headers": [["x-api-key", "{secret:api_key}"], ["authorization", "Bearer {secret:api_key}"]],
                "body": "{\"chat_id\": 42, \"text\": \"hi\"}",
                "timeout_ms": 300,
                "fail": fail,
            }),
        );
        req.max_attempts = Some(1);
        req
    };
    let path = "/bot{secret:telegram_token}/sendMessage";
    let mut ids = Vec::new();
    for (url, fail) in [
        (format!("http://{refused}{path}"), true),
        (format!("http://{addr}{path}"), true),
        (format!("http://{refused}{path}"), false),
        (format!("http://{addr}{path}"), false),
    ] {
        ids.push(s.enqueuer.enqueue(job(url, fail)).await.unwrap().id);
    }
    let mut kinds = Vec::new();
    for id in ids {
        let job = finished(s.store.as_ref(), id).await;
        let record = serde_json::to_string(&job).unwrap();
        assert_no_secret("the job record", &record);
        match job.status {
            JobStatus::Dead => {
                let message = job.attempts[0].message.clone().unwrap();
                assert!(message.contains("request failed"), "{message}");
                let log = job.log.clone().unwrap_or_default();
                assert!(
                    log.contains("request failed") && log.contains("stderr:"),
                    "{log}"
                );
                kinds.push(message);
            }
            JobStatus::Succeeded => {
                kinds.push(job.result.unwrap()["error"]["kind"].to_string());
            }
            other => panic!("unexpected status {other:?}: {record}"),
        }
    }
    assert!(
        kinds[0].contains("\\\"failed\\\"") || kinds[0].contains("\"failed\""),
        "{kinds:?}"
    );
    assert!(kinds[1].contains("timeout"), "{kinds:?}");
    assert_eq!(kinds[2], "\"failed\"");
    assert_eq!(kinds[3], "\"timeout\"");
    workers.stop().await;

    // The secrets did go out, to the granted server only.
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(s.path, format!("/bot{TG_TOKEN}/sendMessage"));
        assert!(s.headers.contains(&("x-api-key".into(), API_KEY.into())));
        assert!(
            s.headers
                .contains(&("authorization".into(), format!("Bearer {API_KEY}")))
        );
    }

    // Nor in the host's logs, its counters, or anywhere in its data files.
    let logs = logs.text();
    assert!(
        logs.contains("outbound HTTP failed"),
        "tracing was collected: {logs}"
    );
    assert_no_secret("the tracing log", &logs);
    let counts = s.runtime.capabilities().http.counts();
    assert_eq!(
        (counts["http_probe"].failed, counts["http_probe"].timed_out),
        (2, 2)
    );
    assert_no_secret("the counters", &format!("{counts:?}"));
    let metrics = taskhost::metrics::global().render(&taskhost::metrics::Gauges::default());
    assert!(metrics.contains("taskhost_jobs_failed_total"), "{metrics}");
    assert_no_secret("/metrics", &metrics);
    drop(s);
    for entry in std::fs::read_dir(host.path().join(".taskhost")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert_no_secret(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}

#[tokio::test]
async fn secrets_stay_out_of_results_even_when_the_server_echoes_them() {
    let (addr, server) = start_server().await;
    let host = TestHost::new(&grants(
        &[format!("http://{addr}")],
        &format!("secrets = {{ api_key = {API_KEY:?} }}"),
    ));
    let rt = host.runtime().await;
    let report = run_job(
        &rt,
        "http.send",
        json!({
            "method": "POST",
            "url": format!("http://{addr}/echo"),
            "headers": [["x-test", "{secret:api_key}"]],
            "body": "key={secret:api_key}",
        }),
    )
    .await;
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(result["ok"]["status"], 201);
    // The server got the value; the job's result shows it redacted.
    assert_eq!(server.seen()[0].body, format!("key={API_KEY}"));
    let body = result["ok"]["body"].as_str().unwrap();
    assert_no_secret("the result", &result.to_string());
    assert!(body.contains("key=[redacted]"), "{body}");
}

#[tokio::test]
async fn unknown_secrets_are_denied_and_secrets_may_not_pick_the_host() {
    let (addr, server) = start_server().await;
    let host = TestHost::new(&grants(
        &[format!("http://{addr}")],
        "secrets = { host = \"127.0.0.1\" }",
    ));
    let rt = host.runtime().await;
    let r = send(
        &rt,
        json!({"url": format!("http://{addr}/echo?k={{secret:nope}}")}),
    )
    .await;
    let (kind, message) = host_error(&r);
    assert_eq!(kind, "denied");
    assert!(message.contains("secret \"nope\""), "{message}");
    let r = send(
        &rt,
        json!({"url": format!("http://{addr}/echo"), "headers": [["x", "{secret:other}"]]}),
    )
    .await;
    assert_eq!(host_error(&r).0, "denied");
    let r = send(
        &rt,
        json!({"url": format!("http://{{secret:host}}:{}/echo", addr.port())}),
    )
    .await;
    let (kind, message) = host_error(&r);
    assert_eq!(kind, "invalid", "{message}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn config_get_returns_declared_keys_and_denies_others() {
    let host = TestHost::new(&grants(
        &[],
        "settings = { chat_id = \"1\", mode = \"html\" }\n\
         secrets = { token = \"file-token\", dir = \"env:CARGO_MANIFEST_DIR\" }",
    ));
    // Environment overrides reach settings and secrets alike.
    let env = vec![
        (
            "TASKHOST_PLUGINS__HTTP_PROBE__SETTINGS__CHAT_ID".to_string(),
            "4242".to_string(),
        ),
        (
            "TASKHOST_PLUGINS__HTTP_PROBE__SECRETS__TOKEN".to_string(),
            "env-token-value".to_string(),
        ),
    ];
    let config = taskhost::config::load(&host.config_path(), env).unwrap();
    let rt = Runtime::load(Arc::new(config)).await.unwrap();
    let get = |key: &'static str| {
        let rt = &rt;
        async move {
            match run_job(rt, "config.get", json!({"key": key})).await.outcome {
                Outcome::Success { result } => result,
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(get("chat_id").await, json!({"ok": "4242"}));
    assert_eq!(get("mode").await, json!({"ok": "html"}));
    // A secret reaches the plugin; in the job's result it is redacted, which
    // only happens to the exact value of one of the plugin's secrets.
    assert_eq!(get("token").await, json!({"ok": "[redacted]"}));
    assert_eq!(get("dir").await, json!({"ok": "[redacted]"}));
    for key in ["other", "TOKEN", ""] {
        let r = get(key).await;
        let (kind, message) = host_error(&r);
        assert_eq!(kind, "denied", "{key}: {message}");
        assert!(message.contains(&format!("{key:?}")), "{message}");
    }
    // Another plugin has no config at all.
    let report = run_job(&rt, "hello", json!({"name": "x"})).await;
    assert!(report.outcome.is_success());
}

#[tokio::test]
async fn https_speaks_tls_and_refuses_a_plain_server() {
    let (addr, server) = start_server().await;
    let host = TestHost::new(&grants(&[format!("https://{addr}")], ""));
    let rt = host.runtime().await;
    let r = send(&rt, json!({"url": format!("https://{addr}/echo")})).await;
    let (kind, message) = host_error(&r);
    assert_eq!(kind, "failed", "{message}");
    assert!(message.contains("TLS"), "{message}");
    assert!(server.seen().is_empty());
}

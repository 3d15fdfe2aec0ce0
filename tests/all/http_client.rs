//! Test fixtures for the HTTP API: a `taskhost serve` process whose API
//! address is read from its log, and a minimal HTTP/1.1 client (one request
//! per connection), so the tests talk to the real server over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{TestHost, taskhost_bin};

/// A running `taskhost serve` with its API address.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every line the host has written to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `serve` (the config must set `[api] listen = "127.0.0.1:0"`)
    /// and waits for the line that names the bound address.
    pub fn start(host: &TestHost) -> Server {
        Server::start_with_env(host, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(host: &TestHost, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(taskhost_bin())
            .arg("--config")
            .arg(host.config_path())
            .arg("serve")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("taskhost serve starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve exited before its API listened")
                .unwrap();
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("api listening on http://").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Server { child, addr, log }
    }

    /// The lines logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        request(&self.addr, "GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        request(
            &self.addr,
            "POST",
            path,
            token,
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Response {
        request(&self.addr, "DELETE", path, token, None)
    }

    /// SIGTERM, and the process must exit 0.
    pub fn stop(mut self) {
        crate::support::signal(&self.child, "-TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit status {status:?}");
    }
}

impl Drop for Server {
    /// A test that fails midway must not leave its host running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    raw(addr, method, path, token, body, "application/json")
}

/// Like [`request`] with a chosen content type.
pub fn raw(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    content_type: &str,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    with_headers(addr, method, path, &headers, body, content_type)
}

/// Like [`raw`] with any extra request headers (a `Cookie`, say).
pub fn with_headers(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    content_type: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        // A server may answer (413) and close before reading a large body.
        let _ = stream.write_all(b);
    }
    parse(&read_answer(&mut stream))
}

/// Reads an answer up to the end of its `Content-Length` body, or to the
/// close of the connection when it has none (some servers, chromedriver
/// among them, keep the connection open despite `Connection: close`).
fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= head_end + 4 + n) {
                return raw;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// The Python tools the API tests run, pinned: Schemathesis (the API
/// against its own schema) and openapi-spec-validator (the schema itself).
const PYTHON_TOOLS: [(&str, &str); 2] = [
    ("schemathesis", "4.32.5"),
    ("openapi-spec-validator", "0.9.0"),
];

/// A command of the pinned Python tools, from a virtualenv under `target/`
/// that this installs once from PyPI.
pub fn python_tool(command: &str) -> std::path::PathBuf {
    let wanted: Vec<String> = PYTHON_TOOLS
        .iter()
        .map(|(p, v)| format!("{p}=={v}"))
        .collect();
    let ready = format!(
        "import importlib.metadata as m; assert all(m.version(p) == v for p, v in {:?})",
        PYTHON_TOOLS
    );
    let install: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let venv = crate::support::python::venv("st-venv", &ready, &install);
    crate::support::python::bin(&venv, command)
}

/// The `st` command of Schemathesis.
pub fn schemathesis() -> std::path::PathBuf {
    python_tool("st")
}

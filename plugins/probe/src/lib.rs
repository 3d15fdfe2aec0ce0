//! Handlers that misbehave on purpose, so the tests can prove the sandbox
//! holds: endless loops, runaway memory, deep recursion, panics, state that
//! must not survive a job, floods of host calls, and escape attempts.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use taskhost_sdk::{Job, JobError, log};

/// Burns CPU until the fuel budget or the deadline stops it.
fn spin(_job: &Job, _: Value) -> Result<u64, JobError> {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x == 0 {
            return Ok(x);
        }
    }
}

#[derive(Deserialize)]
struct Grow {
    /// Mebibytes to allocate and touch, one at a time.
    mib: usize,
}

/// Allocates (and touches) memory one MiB at a time.
fn grow(_job: &Job, p: Grow) -> Result<usize, JobError> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for i in 0..p.mib {
        blocks.push(vec![i as u8; 1 << 20]);
    }
    Ok(blocks.iter().map(|b| b.len()).sum())
}

#[inline(never)]
fn descend(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Not a tail call: the addition happens after the recursive call returns.
    descend(std::hint::black_box(n - 1)).wrapping_add(std::hint::black_box(n))
}

#[derive(Deserialize)]
struct Recurse {
    depth: u64,
}

/// Recurses `depth` frames deep.
fn recurse(_job: &Job, p: Recurse) -> Result<u64, JobError> {
    Ok(descend(p.depth))
}

fn panic(_job: &Job, _: Value) -> Result<Value, JobError> {
    panic!("the probe panicked on purpose");
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns 1 in a fresh instance; more would mean state leaked between jobs.
fn counter(_job: &Job, _: Value) -> Result<u64, JobError> {
    Ok(COUNTER.fetch_add(1, Ordering::SeqCst) + 1)
}

#[derive(Deserialize)]
struct Calls {
    calls: u64,
}

/// Makes `calls` host calls (log lines).
fn log_flood(_job: &Job, p: Calls) -> Result<u64, JobError> {
    for i in 0..p.calls {
        log::debug(&format!("call {i}"));
    }
    Ok(p.calls)
}

#[derive(Deserialize)]
struct Print {
    bytes: usize,
}

/// Writes `bytes` bytes to stdout and one line to stderr.
fn chatter(_job: &Job, p: Print) -> Result<usize, JobError> {
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n";
    let mut written = 0;
    while written < p.bytes {
        let n = line.len().min(p.bytes - written);
        print!("{}", &line[..n]);
        written += n;
    }
    eprintln!("chatter done");
    log::info("chatter logged");
    Ok(written)
}

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

/// Sleeps on the WASI clock: a host call that waits without burning fuel.
fn sleep(_job: &Job, p: Sleep) -> Result<u64, JobError> {
    std::thread::sleep(std::time::Duration::from_millis(p.ms));
    Ok(p.ms)
}

/// Tries to reach the file system, the environment and the network, and
/// reports what it got. In the sandbox every probe must come back empty.
fn escape(_job: &Job, _: Value) -> Result<Value, JobError> {
    let files: Vec<String> = ["/etc/passwd", "/", ".", "/proc/self/environ"]
        .iter()
        .filter_map(|p| std::fs::read(p).ok().map(|_| p.to_string()))
        .collect();
    let dirs: Vec<String> = ["/", "."]
        .iter()
        .filter_map(|p| std::fs::read_dir(p).ok().map(|_| p.to_string()))
        .collect();
    let created = std::fs::write("escape.txt", b"x").is_ok();
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let tcp = std::net::TcpStream::connect("127.0.0.1:1").map_err(|e| e.kind().to_string());
    let lookup = std::net::ToSocketAddrs::to_socket_addrs("localhost:80").map(|a| a.count());
    let listen = std::net::TcpListener::bind("127.0.0.1:0").is_ok();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").is_ok();
    Ok(json!({
        "files": files,
        "dirs": dirs,
        "created": created,
        "env": env,
        "args": args,
        "tcp_connected": tcp.is_ok(),
        "lookup": lookup.is_ok(),
        "listen": listen,
        "udp": udp,
        "clock_ok": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).is_ok(),
    }))
}

#[derive(Deserialize)]
struct Outcome {
    /// `ok`, `retry`, `retry-after` or `permanent`.
    kind: String,
    #[serde(default)]
    retry_after_ms: u64,
}

/// Ends the way its payload says: for retry and DLQ tests.
fn outcome(job: &Job, p: Outcome) -> Result<Value, JobError> {
    match p.kind.as_str() {
        "ok" => Ok(json!({"attempt": job.attempt})),
        "retry" => Err(JobError::retry(format!(
            "attempt {} asked for a retry",
            job.attempt
        ))),
        "retry-after" => Err(JobError::retry_after("come back later", p.retry_after_ms)),
        _ => Err(JobError::permanent(format!(
            "permanent failure on attempt {}",
            job.attempt
        ))),
    }
}

/// Calls every capability once and reports each answer; with no grants,
/// every one of them must be `denied`.
fn capabilities(_job: &Job, _: Value) -> Result<Value, JobError> {
    use taskhost_sdk::{chain, config, db, http, jobs};
    let show =
        |r: Result<String, taskhost_sdk::bindings::taskhost::plugin::types::HostError>| match r {
            Ok(v) => json!({"ok": v}),
            Err(e) => json!({"err": format!("{e:?}")}),
        };
    let db = db::query("app", "SELECT 1", &[]).map(|r| format!("{} rows", r.rows.len()));
    let http = http::send(&http::Request {
        method: "GET".into(),
        url: "http://127.0.0.1:9/".into(),
        headers: vec![],
        body: None,
        timeout_ms: None,
    })
    .map(|r| r.status.to_string());
    let chain = chain::block_number("local").map(|n| n.to_string());
    let config = config::get("token");
    let jobs = jobs::enqueue(&jobs::EnqueueRequest {
        handler: "hello".into(),
        payload: "{\"name\":\"fan\"}".into(),
        queue: None,
        priority: None,
        delay_ms: None,
        idempotency_key: None,
        max_attempts: None,
    });
    Ok(json!({
        "db": show(db),
        "http": show(http),
        "chain": show(chain),
        "config": show(config),
        "jobs": show(jobs),
    }))
}

#[derive(Deserialize)]
struct Fanout {
    count: u32,
    handler: String,
    payload: Value,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    /// `critical`, `high`, `normal` or `low`.
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
    /// Report each call's answer instead of failing on the first error.
    #[serde(default)]
    report: bool,
}

/// Enqueues `count` jobs of `handler` through the `jobs` interface; with
/// `report`, returns every call's answer (`{"ok": id}` or `{"err": …}`).
fn fanout(job: &Job, p: Fanout) -> Result<Value, JobError> {
    use taskhost_sdk::jobs::{self, Priority};
    let priority = match p.priority.as_deref() {
        None => None,
        Some("critical") => Some(Priority::Critical),
        Some("high") => Some(Priority::High),
        Some("normal") => Some(Priority::Normal),
        Some("low") => Some(Priority::Low),
        Some(other) => return Err(JobError::permanent(format!("no priority {other:?}"))),
    };
    let answers = (0..p.count).map(|i| {
        jobs::enqueue(&jobs::EnqueueRequest {
            handler: p.handler.clone(),
            payload: p.payload.to_string(),
            queue: p.queue.clone(),
            priority,
            delay_ms: p.delay_ms,
            // Idempotent across retries of this job: the same children.
            idempotency_key: Some(format!("{}:{i}", job.id)),
            max_attempts: p.max_attempts,
        })
    });
    if p.report {
        return Ok(Value::Array(
            answers
                .map(|a| match a {
                    Ok(id) => json!({ "ok": id }),
                    Err(e) => json!({ "err": format!("{e:?}") }),
                })
                .collect(),
        ));
    }
    let ids = answers
        .enumerate()
        .map(|(i, a)| a.map_err(|e| JobError::retry(format!("enqueue {i} failed: {e:?}"))))
        .collect::<Result<Vec<String>, JobError>>()?;
    Ok(json!(ids))
}

#[derive(Deserialize)]
struct StartBatch {
    handler: String,
    items: Vec<Value>,
    #[serde(default)]
    on_complete: Option<String>,
    #[serde(default)]
    on_success: Option<String>,
}

/// Starts a batch through the `jobs` interface (WIT 0.1.1); returns its id.
fn start_batch(_job: &Job, p: StartBatch) -> Result<Value, JobError> {
    fn callback(handler: &Option<String>) -> Option<taskhost_sdk::Callback<'_>> {
        handler.as_deref().map(|h| taskhost_sdk::Callback {
            handler: h,
            payload: json!({"from": "probe"}),
        })
    }
    let id = taskhost_sdk::start_batch(
        &p.handler,
        &p.items,
        callback(&p.on_complete),
        callback(&p.on_success),
    )?;
    Ok(json!({ "batch": id }))
}

#[derive(Deserialize)]
struct StartChain {
    /// `[handler, payload]` pairs, in order.
    steps: Vec<(String, Value)>,
}

/// Starts a chain through the `jobs` interface (WIT 0.1.2); returns its id.
fn start_chain(_job: &Job, p: StartChain) -> Result<Value, JobError> {
    let steps: Vec<(&str, Value)> = p
        .steps
        .iter()
        .map(|(h, payload)| (h.as_str(), payload.clone()))
        .collect();
    Ok(json!({ "chain": taskhost_sdk::start_chain(&steps)? }))
}

#[derive(Deserialize)]
struct Deny {
    /// The config key asked for (repeated `repeat` times).
    key: String,
    #[serde(default = "one")]
    repeat: usize,
    calls: u32,
}

fn one() -> usize {
    1
}

/// Asks `calls` times for a config key it is not granted: a flood of
/// refusals that each carry the plugin's own (maybe huge) text.
fn deny_flood(_job: &Job, p: Deny) -> Result<u32, JobError> {
    let key = p.key.repeat(p.repeat);
    let refused = (0..p.calls)
        .filter(|_| taskhost_sdk::config::get(&key).is_err())
        .count();
    Ok(refused as u32)
}

#[derive(Deserialize)]
struct Big {
    bytes: usize,
    /// `result`, `retry`, `permanent` or `panic`.
    how: String,
}

/// Ends with a result or a message of `bytes` bytes.
fn big(_job: &Job, p: Big) -> Result<String, JobError> {
    let text = "x".repeat(p.bytes);
    match p.how.as_str() {
        "result" => Ok(text),
        "retry" => Err(JobError::retry(text)),
        "permanent" => Err(JobError::permanent(text)),
        _ => panic!("{text}"),
    }
}

/// Reports a panic over and over without dying: only the first report
/// may be free.
fn panic_flood(_job: &Job, _: Value) -> Result<(), JobError> {
    loop {
        taskhost_sdk::bindings::taskhost::plugin::log::report_panic("again");
    }
}

/// Tries to forge host lines in its own job log, through `log` and stdout.
fn forge(_job: &Job, _: Value) -> Result<(), JobError> {
    log::info("harmless\n[DENIED] plugin \"probe\" is not granted anything (forged by log)");
    println!("[DENIED] plugin \"probe\" is not granted anything (forged on stdout)");
    Ok(())
}

taskhost_sdk::plugin! {
    handler("probe.fanout", fanout).describe("Enqueues jobs of another handler"),
    handler("probe.batch", start_batch).describe("Starts a batch of another handler's jobs"),
    handler("probe.chain", start_chain).describe("Starts a chain of other handlers' jobs"),
    handler("probe.spin", spin).describe("Loops forever"),
    handler("probe.greedy", spin)
        .describe("Loops forever, declaring itself unlimited")
        .fuel(0)
        .timeout_ms(1_000_000_000_000)
        .max_attempts(u32::MAX),
    handler("probe.deny-flood", deny_flood).describe("Asks for an ungranted config key many times"),
    handler("probe.big", big).describe("Returns or fails with a message of a given size"),
    handler("probe.forge", forge).describe("Tries to forge host lines in its log"),
    handler("probe.panic-flood", panic_flood).describe("Reports panics in a loop"),
    handler("probe.grow", grow).describe("Allocates memory a MiB at a time"),
    handler("probe.recurse", recurse).describe("Recurses to a given depth"),
    handler("probe.panic", panic).describe("Panics"),
    handler("probe.counter", counter).describe("Counts its calls in a global"),
    handler("probe.log-flood", log_flood).describe("Makes many host calls"),
    handler("probe.chatter", chatter).describe("Writes to stdout and stderr"),
    handler("probe.sleep", sleep).describe("Sleeps on the WASI clock"),
    handler("probe.escape", escape).describe("Tries to leave the sandbox"),
    handler("probe.outcome", outcome).describe("Succeeds or fails as told"),
    handler("probe.capabilities", capabilities).describe("Calls every host interface"),
}

//! Plugins in Python and JavaScript, built from `wit/` alone: the same
//! outcomes, capabilities and sandbox limits as a Rust plugin. Every check
//! runs once per language, through the language's test plugin (`py_probe`,
//! `js_probe`), which carries its `hello` plugin's handlers too.

use std::time::Duration;

use serde_json::json;
use taskhost::runtime::Outcome;

use crate::support::polyglot;
use crate::support::run_job;

/// One language's plugins: its handler prefix and its plugin's name.
#[derive(Clone, Copy, Debug)]
struct Lang {
    /// `py` or `js`: the hello handler is `py.hello`, the probes `py-probe.*`.
    prefix: &'static str,
    /// What the language's own message for an error looks like.
    error_name: &'static str,
    /// A line of the language's stack trace of the failing helper.
    trace_line: &'static str,
}

const PY: Lang = Lang {
    prefix: "py",
    error_name: "ZeroDivisionError: division by zero",
    trace_line: "in _ratio",
};
const JS: Lang = Lang {
    prefix: "js",
    error_name: "TypeError",
    trace_line: "ratio@",
};

impl Lang {
    fn hello(self) -> String {
        format!("{}.hello", self.prefix)
    }

    fn probe(self, name: &str) -> String {
        format!("{}-probe.{name}", self.prefix)
    }

    fn plugin(self) -> String {
        format!("{}_probe", self.prefix)
    }
}

async fn hello_greets_and_refuses_an_empty_name(lang: Lang) {
    let (_host, runtime) = polyglot::runtime("").await;
    let report = run_job(&runtime, &lang.hello(), json!({"name": "Ada"})).await;
    assert_eq!(
        report.outcome,
        Outcome::Success {
            result: json!({"greeting": "Hello, Ada!", "attempt": 1})
        }
    );
    let report = run_job(&runtime, &lang.hello(), json!({"name": " "})).await;
    assert_eq!(
        report.outcome,
        Outcome::Permanent {
            message: "name must not be empty".into()
        }
    );
}

#[tokio::test]
async fn python_hello_greets_and_refuses_an_empty_name() {
    hello_greets_and_refuses_an_empty_name(PY).await;
}

#[tokio::test]
async fn javascript_hello_greets_and_refuses_an_empty_name() {
    hello_greets_and_refuses_an_empty_name(JS).await;
}

async fn outcomes_map_to_the_hosts(lang: Lang) {
    let (_host, runtime) = polyglot::runtime("").await;
    let outcome = |kind: &str| {
        let payload = json!({"kind": kind, "retry_after_ms": 2500});
        let runtime = &runtime;
        async move {
            run_job(runtime, &lang.probe("outcome"), payload)
                .await
                .outcome
        }
    };
    assert_eq!(
        outcome("ok").await,
        Outcome::Success {
            result: json!({"attempt": 1})
        }
    );
    assert_eq!(
        outcome("retry").await,
        Outcome::Retryable {
            message: "attempt 1 asked for a retry".into(),
            retry_after: None
        }
    );
    assert_eq!(
        outcome("retry-after").await,
        Outcome::Retryable {
            message: "come back later".into(),
            retry_after: Some(Duration::from_millis(2500))
        }
    );
    assert_eq!(
        outcome("permanent").await,
        Outcome::Permanent {
            message: "permanent failure on attempt 1".into()
        }
    );
}

#[tokio::test]
async fn python_retryable_retry_after_and_permanent_are_the_hosts_outcomes() {
    outcomes_map_to_the_hosts(PY).await;
}

#[tokio::test]
async fn javascript_retryable_retry_after_and_permanent_are_the_hosts_outcomes() {
    outcomes_map_to_the_hosts(JS).await;
}

async fn an_uncaught_exception_is_a_trap_with_the_languages_trace(lang: Lang) {
    let (_host, runtime) = polyglot::runtime("").await;
    let report = run_job(&runtime, &lang.probe("boom"), json!({"n": 1})).await;
    let Outcome::Trap {
        message,
        plugin,
        handler,
    } = report.outcome
    else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!((plugin, handler), (lang.plugin(), lang.probe("boom")));
    assert!(message.contains(lang.error_name), "{message}");
    assert!(message.contains(lang.trace_line), "{message}");
    assert!(report.log.contains("about to"), "{}", report.log);
    // The instance is gone with its job; the next job is fine.
    let report = run_job(&runtime, &lang.hello(), json!({"name": "again"})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
}

#[tokio::test]
async fn python_uncaught_exception_is_a_trap_carrying_the_traceback() {
    an_uncaught_exception_is_a_trap_with_the_languages_trace(PY).await;
}

#[tokio::test]
async fn javascript_uncaught_exception_is_a_trap_carrying_the_stack() {
    an_uncaught_exception_is_a_trap_with_the_languages_trace(JS).await;
}

/// A local HTTP server answering every request `200 pong`; its address.
async fn pong_server() -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(|| async { "pong" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn every_capability_works_through_its_grant_and_is_denied_without(lang: Lang) {
    // Without grants: each one refused, naming the plugin.
    let (_host, runtime) = polyglot::runtime("").await;
    let report = run_job(&runtime, &lang.probe("capabilities"), json!({})).await;
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    for cap in [
        "db",
        "http",
        "chain",
        "config",
        "jobs",
        "batch",
        "job_chain",
    ] {
        let err = result[cap]["err"]
            .as_str()
            .unwrap_or_else(|| panic!("{cap} was not refused: {result}"));
        assert!(
            err.to_lowercase().starts_with("denied")
                && err.contains(&format!("plugin \"{}\"", lang.plugin())),
            "{cap}: {err}"
        );
    }

    // With each granted: each one answers.
    let node = crate::support::anvil::Anvil::start();
    let pong = pong_server().await;
    let host = polyglot::host(&format!(
        "[databases.app]\nsqlite = \"app.db\"\n\
         [chains.local]\nrpc = {rpc:?}\n\
         [plugins.{plugin}]\ndatabases = {{ app = \"write\" }}\nhttp = [\"http://{pong}\"]\n\
         chains = [\"local\"]\nsettings = {{ token = \"t-42\" }}\njobs = [\"{hello}\"]\n",
        rpc = node.url(),
        plugin = lang.plugin(),
        hello = lang.hello(),
    ))
    .await;
    let s = crate::support::services(&host).await;
    let url = format!("http://{pong}/ping");
    let report = run_job(
        &s.runtime,
        &lang.probe("capabilities"),
        json!({ "url": url }),
    )
    .await;
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(result["db"], json!({"ok": "1 rows"}), "{result}");
    assert_eq!(result["http"], json!({"ok": "200"}), "{result}");
    assert_eq!(
        result["chain"],
        json!({"ok": node.block_number().to_string()}),
        "{result}"
    );
    assert_eq!(result["config"], json!({"ok": "t-42"}), "{result}");
    let id = result["jobs"]["ok"].as_str().expect("jobs enqueued");
    let job = s.store.get(id.parse().unwrap()).await.unwrap();
    assert_eq!(job.handler, lang.hello());
    // jobs.start-batch (WIT 0.1.1) through the language's SDK.
    let id = result["batch"]["ok"].as_str().expect("batch started");
    let batch = s.store.get_batch(id.parse().unwrap()).await.unwrap();
    let hello = lang.hello();
    assert_eq!((batch.handler.as_str(), batch.total), (hello.as_str(), 2));
    assert_eq!(batch.on_complete.map(|c| c.handler), Some(hello.clone()));
    // jobs.start-chain (WIT 0.1.2): its first step is waiting.
    let id = result["job_chain"]["ok"].as_str().expect("chain started");
    let chain = s.store.get_chain(id.parse().unwrap()).await.unwrap();
    let steps: Vec<_> = chain
        .steps
        .iter()
        .map(|s| (s.handler.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [(hello.as_str(), "pending"), (hello.as_str(), "waiting")]
    );
}

#[tokio::test]
async fn python_every_capability_works_through_its_grant_and_is_denied_without() {
    every_capability_works_through_its_grant_and_is_denied_without(PY).await;
}

#[tokio::test]
async fn javascript_every_capability_works_through_its_grant_and_is_denied_without() {
    every_capability_works_through_its_grant_and_is_denied_without(JS).await;
}

async fn a_loop_stops_by_fuel_and_by_the_deadline(lang: Lang) {
    let spin = lang.probe("spin");
    let (_host, runtime) = polyglot::runtime(&format!(
        "[handlers.\"{spin}\"]\nfuel = 200_000_000\ntimeout = \"60s\"\n"
    ))
    .await;
    let report = run_job(&runtime, &spin, json!({})).await;
    let Outcome::OutOfFuel { fuel_used } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(fuel_used <= 200_000_000, "used {fuel_used}");
    assert!(fuel_used > 150_000_000, "stopped too early: {fuel_used}");
    let report = run_job(&runtime, &lang.hello(), json!({"name": "after fuel"})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);

    let (_host, runtime) = polyglot::runtime(&format!(
        "[handlers.\"{spin}\"]\nfuel = 0\ntimeout = \"500ms\"\n"
    ))
    .await;
    let report = run_job(&runtime, &spin, json!({})).await;
    assert_eq!(
        report.outcome,
        Outcome::DeadlineExceeded {
            timeout: Duration::from_millis(500)
        }
    );
    assert!(
        report.duration >= Duration::from_millis(500) && report.duration < Duration::from_secs(5),
        "{:?}",
        report.duration
    );
    let report = run_job(&runtime, &lang.hello(), json!({"name": "after deadline"})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
}

#[tokio::test]
async fn python_a_loop_stops_by_fuel_and_by_the_deadline() {
    a_loop_stops_by_fuel_and_by_the_deadline(PY).await;
}

#[tokio::test]
async fn javascript_a_loop_stops_by_fuel_and_by_the_deadline() {
    a_loop_stops_by_fuel_and_by_the_deadline(JS).await;
}

async fn runaway_memory_hits_the_cap(lang: Lang) {
    let grow = lang.probe("grow");
    let (_host, runtime) =
        polyglot::runtime(&format!("[handlers.\"{grow}\"]\nmemory = \"96MiB\"\n")).await;
    let report = run_job(&runtime, &grow, json!({"mib": 512})).await;
    assert_eq!(
        report.outcome,
        Outcome::MemoryLimit {
            limit_bytes: 96 << 20
        }
    );
    // Under the cap the same handler is fine, and so is the next job.
    let report = run_job(&runtime, &grow, json!({"mib": 8})).await;
    assert_eq!(
        report.outcome,
        Outcome::Success {
            result: json!(8 << 20)
        }
    );
    let report = run_job(&runtime, &lang.hello(), json!({"name": "after growth"})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);

    // A cap below the component's memory image (Python 13.25 MiB,
    // JavaScript 9 MiB; see the README's floors) stops every job before it
    // starts, as a memory-limit outcome, not a bare trap.
    let hello = lang.hello();
    let (_host, runtime) =
        polyglot::runtime(&format!("[handlers.\"{hello}\"]\nmemory = \"8MiB\"\n")).await;
    let report = run_job(&runtime, &hello, json!({"name": "cramped"})).await;
    assert_eq!(
        report.outcome,
        Outcome::MemoryLimit {
            limit_bytes: 8 << 20
        }
    );
}

#[tokio::test]
async fn python_runaway_memory_hits_the_cap() {
    runaway_memory_hits_the_cap(PY).await;
}

#[tokio::test]
async fn javascript_runaway_memory_hits_the_cap() {
    runaway_memory_hits_the_cap(JS).await;
}

async fn a_full_pool_of_instances_fits(lang: Lang) {
    // A Python component instantiates 14 core modules, a JavaScript one 4
    // (a Rust one 3): the pool must hold `pool_size` instances of the
    // largest, or jobs beyond some count trap on instantiation instead of
    // running. Each spinning job holds its instance until its deadline.
    const POOL: usize = 16;
    let spin = lang.probe("spin");
    polyglot::warm().await;
    let host = crate::support::TestHost::with_host_table(
        &format!("{}pool_size = {POOL}\n", polyglot::host_table()),
        &format!("[handlers.\"{spin}\"]\nfuel = 0\ntimeout = \"1s\"\n"),
    );
    let runtime = host.runtime().await;
    let jobs = (0..POOL).map(|_| run_job(&runtime, &spin, json!({})));
    for report in futures_util::future::join_all(jobs).await {
        assert_eq!(
            report.outcome,
            Outcome::DeadlineExceeded {
                timeout: Duration::from_secs(1)
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_a_full_pool_of_instances_fits() {
    a_full_pool_of_instances_fits(PY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_a_full_pool_of_instances_fits() {
    a_full_pool_of_instances_fits(JS).await;
}

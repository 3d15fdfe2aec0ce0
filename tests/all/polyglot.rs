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

//! Write taskhost job handlers as plain Rust functions over serde types.
//!
//! ```ignore
//! use serde::Deserialize;
//! use taskhost_sdk::{Job, JobError};
//!
//! #[derive(Deserialize)]
//! struct Greet { name: String }
//!
//! fn hello(_job: &Job, greet: Greet) -> Result<String, JobError> {
//!     Ok(format!("Hello, {}!", greet.name))
//! }
//!
//! taskhost_sdk::plugin! {
//!     handler("hello", hello).describe("Greets the name in its payload"),
//! }
//! ```
//!
//! The payload is decoded into the handler's argument type (a payload that
//! does not decode is a permanent error: retrying cannot fix it), and the
//! return value is encoded as the job's JSON result. A panic inside a handler
//! reaches the host as the job's trap message.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The generated bindings of the `taskhost:plugin` world. Host interfaces
/// live under `bindings::taskhost::plugin::{log, db, http, chain, config, jobs}`.
#[allow(clippy::too_many_arguments)] // generated: one argument per WIT parameter
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "taskhost_sdk::bindings",
    });
}

pub use bindings::taskhost::plugin::types::{
    HandlerInfo, HostError, JobContext as Job, JobError, RemoteError, RetryableError,
};

/// A failed host call as a job error, so `?` works on `db`, `http`, `chain`
/// and `jobs` calls in a handler. A call the config denies, or one whose
/// arguments are malformed, fails the same way every time: permanent. A
/// call that failed, timed out or met a remote error may work next time:
/// retryable.
impl From<HostError> for JobError {
    fn from(e: HostError) -> JobError {
        match e {
            HostError::Denied(m) => JobError::permanent(format!("denied: {m}")),
            HostError::Invalid(m) => JobError::permanent(format!("invalid: {m}")),
            HostError::Failed(m) => JobError::retry(format!("failed: {m}")),
            HostError::Timeout(m) => JobError::retry(format!("timed out: {m}")),
            HostError::Remote(r) => {
                JobError::retry(format!("remote error {}: {}", r.code, r.message))
            }
        }
    }
}
pub use bindings::taskhost::plugin::{chain, config, db, http, jobs};

/// A batch callback: the handler, and its payload (a JSON object; the host
/// adds the batch id under `batch`).
pub struct Callback<'a> {
    pub handler: &'a str,
    pub payload: serde_json::Value,
}

/// Starts a batch through `jobs` (WIT 0.1.1): one job of `handler` per
/// item, each item serialised as its payload; `on_complete` is enqueued
/// once every job has finished, `on_success` once every job succeeded.
/// Returns the batch id. The plugin needs the `jobs` grant of every handler
/// involved, and each job and callback counts as one enqueue of the run.
pub fn start_batch<T: Serialize>(
    handler: &str,
    items: &[T],
    on_complete: Option<Callback<'_>>,
    on_success: Option<Callback<'_>>,
) -> Result<String, JobError> {
    let items = items
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JobError::permanent(format!("a batch item does not encode: {e}")))?;
    let callback = |cb: Option<Callback<'_>>| {
        cb.map(|cb| jobs::BatchCallback {
            handler: cb.handler.to_owned(),
            payload: cb.payload.to_string(),
            queue: None,
            priority: None,
            max_attempts: None,
        })
    };
    Ok(jobs::start_batch(&jobs::BatchRequest {
        handler: handler.to_owned(),
        items,
        queue: None,
        priority: None,
        max_attempts: None,
        on_complete: callback(on_complete),
        on_success: callback(on_success),
    })?)
}

/// Starts a chain through `jobs` (WIT 0.1.2): `(handler, payload)` steps
/// run one after another, each enqueued once the one before succeeded,
/// with that one's result under `previous` in its payload (a JSON object).
/// Returns the chain id. The plugin needs the `jobs` grant of every
/// step's handler, and each step counts as one enqueue of the run.
pub fn start_chain(steps: &[(&str, serde_json::Value)]) -> Result<String, JobError> {
    let steps: Vec<jobs::ChainStep> = steps
        .iter()
        .map(|(handler, payload)| jobs::ChainStep {
            handler: (*handler).to_owned(),
            payload: payload.to_string(),
            queue: None,
            priority: None,
            max_attempts: None,
        })
        .collect();
    Ok(jobs::start_chain(&steps)?)
}

/// Logging into the job's captured log.
pub mod log {
    use crate::bindings::taskhost::plugin::log::{Level, log};

    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

impl JobError {
    /// A failure that a later attempt may cure.
    pub fn retry(message: impl Into<String>) -> Self {
        JobError::Retryable(RetryableError {
            message: message.into(),
            retry_after_ms: None,
        })
    }

    /// A failure that a later attempt may cure, but not before `ms` milliseconds.
    pub fn retry_after(message: impl Into<String>, ms: u64) -> Self {
        JobError::Retryable(RetryableError {
            message: message.into(),
            retry_after_ms: Some(ms),
        })
    }

    /// A failure no retry can cure: the job goes to the dead-letter queue.
    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent(message.into())
    }
}

type Runner = Box<dyn Fn(&Job, &str) -> Result<String, JobError>>;

/// One handler of a plugin: its description and its type-erased entry point.
pub struct Handler {
    info: HandlerInfo,
    run: Runner,
}

/// Wraps a typed handler function. Its payload type `P` is decoded from the
/// job's JSON payload and its result `R` encoded as the job's JSON result.
pub fn handler<P, R>(name: &str, f: fn(&Job, P) -> Result<R, JobError>) -> Handler
where
    P: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    let handler_name = name.to_string();
    Handler {
        info: HandlerInfo {
            name: name.to_string(),
            description: String::new(),
            max_attempts: None,
            fuel: None,
            timeout_ms: None,
        },
        run: Box::new(move |job, payload| {
            let input: P = serde_json::from_str(payload).map_err(|e| {
                JobError::permanent(format!("{handler_name}: payload does not decode: {e}"))
            })?;
            let output = f(job, input)?;
            serde_json::to_string(&output).map_err(|e| {
                JobError::permanent(format!("{handler_name}: result does not encode: {e}"))
            })
        }),
    }
}

impl Handler {
    pub fn describe(mut self, description: &str) -> Self {
        self.info.description = description.to_string();
        self
    }
    /// Default attempt budget (the host config may override it).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.info.max_attempts = Some(n);
        self
    }
    /// Default fuel budget (the host config may override it).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.info.fuel = Some(fuel);
        self
    }
    /// Default wall-clock deadline (the host config may override it).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.info.timeout_ms = Some(ms);
        self
    }
}

/// Describes every handler; called by the `handlers` export.
#[doc(hidden)]
pub fn describe(handlers: Vec<Handler>) -> Vec<HandlerInfo> {
    handlers.into_iter().map(|h| h.info).collect()
}

/// Runs the handler the job names; called by the `run` export.
#[doc(hidden)]
pub fn dispatch(handlers: Vec<Handler>, job: Job, payload: String) -> Result<String, JobError> {
    // Rust on wasm32 aborts on panic, so the message would be lost with the
    // instance: hand it to the host before the abort turns into a trap.
    std::panic::set_hook(Box::new(|info| {
        bindings::taskhost::plugin::log::report_panic(&info.to_string());
    }));
    match handlers.iter().find(|h| h.info.name == job.handler) {
        Some(h) => (h.run)(&job, &payload),
        None => Err(JobError::permanent(format!(
            "this plugin has no handler named {:?}",
            job.handler
        ))),
    }
}

/// Declares the plugin's handlers and exports them to the host.
#[macro_export]
macro_rules! plugin {
    ($($handler:expr),+ $(,)?) => {
        struct __TaskhostPlugin;

        fn __taskhost_handlers() -> ::std::vec::Vec<$crate::Handler> {
            use $crate::handler;
            ::std::vec![$($handler),+]
        }

        impl $crate::bindings::Guest for __TaskhostPlugin {
            fn handlers() -> ::std::vec::Vec<$crate::HandlerInfo> {
                $crate::describe(__taskhost_handlers())
            }
            fn run(
                ctx: $crate::Job,
                payload: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, $crate::JobError> {
                $crate::dispatch(__taskhost_handlers(), ctx, payload)
            }
        }

        $crate::bindings::export!(__TaskhostPlugin with_types_in $crate::bindings);
    };
}

//! taskhost: a job host whose handlers are sandboxed WebAssembly components.
//!
//! The host owns the queue, the scheduler, retries and the dead-letter
//! queue; plugins (`.wasm` components built against `wit/`) do the work and
//! reach the outside world only through the capabilities the config grants.

pub mod api;
pub mod bench;
pub mod capabilities;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deploy;
pub mod enqueue;
pub mod job;
pub mod metrics;
pub mod presence;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod services;
pub mod stats;
pub mod store;
pub mod unique;
pub mod units;
pub mod worker;

/// The text a panic carried, for the logs and outcomes of the tasks that
/// turn a panic into an answer instead of dying of it.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

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
pub mod enqueue;
pub mod job;
pub mod metrics;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod services;
pub mod stats;
pub mod store;
pub mod units;
pub mod worker;

//! Benchmarks behind `taskhost bench …`: they print the figures the issues
//! name. Run them from a release build (`cargo xtask host bench …`).

pub mod languages;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod workers;

//! End-to-end tests: real plugins, real files, real processes. One test
//! binary with a module per topic, so wasmtime is linked once.

mod support;

mod api;
mod batches;
mod chain;
mod cli;
mod clients;
mod clock;
mod dashboard;
mod flow_limits;

mod db;
mod db_isolation;
mod db_maintenance;
mod hostile;
mod hostile_api;
mod hot_reload;
mod http;
mod http_client;
mod http_signing;
mod invest;
mod job_chains;
mod logs;
mod plugin_crates;
mod plugin_deploy;
mod polyglot;
mod portfolio;
mod redis;
mod registry;
mod sandbox;
mod scheduler;
mod serve;
mod store;
mod telegram_bot;
mod terminate;
mod unique;
mod workers;

//! `config`: plugin settings and secrets. None are declared yet, so every
//! key is denied.

use super::HostError;
use super::bindings::taskhost::plugin::config::Host;
use crate::runtime::JobState;

impl Host for JobState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        Ok(Err(super::denied(self, format_args!("config key {key:?}"))))
    }
}

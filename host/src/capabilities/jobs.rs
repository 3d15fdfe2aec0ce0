//! `jobs`: fan-out. Without a store attached (a one-off `taskhost run`) the
//! plugin is denied.

use super::HostError;
use super::bindings::taskhost::plugin::jobs::{EnqueueRequest, Host};
use crate::runtime::JobState;

impl Host for JobState {
    async fn enqueue(
        &mut self,
        request: EnqueueRequest,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        Ok(Err(super::denied(
            self,
            format_args!("enqueueing jobs (handler {:?})", request.handler),
        )))
    }
}

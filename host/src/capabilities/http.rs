//! `http`: outbound requests. No grants exist yet, so every call is denied.

use super::HostError;
use super::bindings::taskhost::plugin::http::{Host, Request, Response};
use crate::runtime::JobState;

impl Host for JobState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HostError>> {
        self.charge_host_call()?;
        // Name the host only: the path or query may carry secrets.
        let host = request
            .url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .map(|authority| {
                authority
                    .rsplit('@')
                    .next()
                    .unwrap_or(authority)
                    .to_string()
            })
            .unwrap_or_else(|| "an unparseable URL".to_string());
        Ok(Err(super::denied(
            self,
            format_args!("outbound HTTP to {host:?}"),
        )))
    }
}

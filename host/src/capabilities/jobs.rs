//! `jobs`: fan-out. A plugin may enqueue the handlers its
//! `[plugins.NAME] jobs = [...]` grant lists, through the same validation
//! as any other enqueue. Without a store (a one-off `taskhost run`) or
//! without the grant, it is denied.

use super::HostError;
use super::bindings::taskhost::plugin::jobs::{EnqueueRequest, Host, Priority as WitPriority};
use crate::enqueue::{EnqueueError, EnqueueRequest as Request};
use crate::job::Priority;
use crate::runtime::JobState;

impl Host for JobState {
    async fn enqueue(
        &mut self,
        request: EnqueueRequest,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        let services = self.services().clone();
        let Some(enqueuer) = services
            .enqueuer
            .filter(|_| services.grants.may_enqueue(&request.handler))
        else {
            return Ok(Err(super::denied(
                self,
                format_args!("enqueueing jobs of handler {:?}", request.handler),
            )));
        };
        let payload = match serde_json::from_str(&request.payload) {
            Ok(v) => v,
            Err(e) => return Ok(Err(HostError::Invalid(format!("payload is not JSON: {e}")))),
        };
        let req = Request {
            handler: request.handler,
            payload,
            queue: request.queue,
            priority: request.priority.map(|p| match p {
                WitPriority::Critical => Priority::Critical,
                WitPriority::High => Priority::High,
                WitPriority::Normal => Priority::Normal,
                WitPriority::Low => Priority::Low,
            }),
            delay: request.delay_ms.map(std::time::Duration::from_millis),
            run_at: None,
            idempotency_key: request.idempotency_key,
            max_attempts: request.max_attempts,
        };
        Ok(match enqueuer.enqueue(req).await {
            Ok(enqueued) => Ok(enqueued.id.to_string()),
            Err(EnqueueError::Store(e)) => Err(HostError::Failed(e.to_string())),
            Err(e) => Err(HostError::Invalid(e.to_string())),
        })
    }
}

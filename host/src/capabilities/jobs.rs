//! `jobs`: fan-out. A plugin may enqueue the handlers its
//! `[plugins.NAME] jobs = [...]` grant lists, through the same validation
//! as any other enqueue. Without a store (a one-off `taskhost run`) or
//! without the grant, it is denied. The grant also bounds the queues
//! (`jobs_queues`, default: only the default queue) and the priority
//! (`jobs_max_priority`, default `normal`) a call may ask for; one run may
//! enqueue at most `jobs_per_run` (default `[limits] max_enqueues`) jobs
//! and ask for at most `[limits] max_attempts` attempts for each.

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
        let priority = request.priority.map(|p| match p {
            WitPriority::Critical => Priority::Critical,
            WitPriority::High => Priority::High,
            WitPriority::Normal => Priority::Normal,
            WitPriority::Low => Priority::Low,
        });
        if !services.grants.may_use_queue(request.queue.as_deref()) {
            let queue = request
                .queue
                .as_deref()
                .unwrap_or(crate::job::DEFAULT_QUEUE);
            return Ok(Err(super::denied(
                self,
                format_args!("enqueueing jobs on queue {queue:?}"),
            )));
        }
        if let Some(p) = priority.filter(|&p| !services.grants.may_use_priority(p)) {
            return Ok(Err(super::denied(
                self,
                format_args!("enqueueing jobs at priority {p}"),
            )));
        }
        let cap = self.limits().enqueues;
        if !self.charge_enqueue() {
            return Ok(Err(super::denied(
                self,
                format_args!(
                    "more than {cap} enqueues in one run (jobs_per_run, default [limits] max_enqueues)"
                ),
            )));
        }
        let max = self.limits().max_attempts;
        if let Some(n) = request.max_attempts.filter(|&n| n > max) {
            return Ok(Err(HostError::Invalid(format!(
                "max-attempts {n} is over the host's cap of {max} ([limits] max_attempts)"
            ))));
        }
        let payload = match serde_json::from_str(&request.payload) {
            Ok(v) => v,
            Err(e) => return Ok(Err(HostError::Invalid(format!("payload is not JSON: {e}")))),
        };
        let req = Request {
            handler: request.handler,
            payload,
            queue: request.queue,
            priority,
            delay: request.delay_ms.map(std::time::Duration::from_millis),
            run_at: None,
            idempotency_key: request.idempotency_key,
            max_attempts: request.max_attempts,
            // The WIT has no unique key (yet): a unique handler's job from
            // a plugin is unique under its payload.
            unique_key: None,
        };
        Ok(match enqueuer.enqueue(req).await {
            Ok(enqueued) => Ok(enqueued.id.to_string()),
            Err(EnqueueError::Store(e)) => Err(HostError::Failed(e.to_string())),
            Err(e) => Err(HostError::Invalid(e.to_string())),
        })
    }
}

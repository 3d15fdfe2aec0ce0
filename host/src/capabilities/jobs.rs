//! `jobs`: fan-out. A plugin may enqueue the handlers its
//! `[plugins.NAME] jobs = [...]` grant lists, through the same validation
//! as any other enqueue. Without a store (a one-off `taskhost run`) or
//! without the grant, it is denied. The grant also bounds the queues
//! (`jobs_queues`, default: only the default queue) and the priority
//! (`jobs_max_priority`, default `normal`) a call may ask for; one run may
//! enqueue at most `jobs_per_run` (default `[limits] max_enqueues`) jobs
//! and ask for at most `[limits] max_attempts` attempts for each.
//!
//! `start-batch` (WIT 0.1.1) and `start-chain` (0.1.2) are sets of such
//! enqueues: every job, step and callback needs the grants an enqueue of
//! it would, and counts as one enqueue against the run's limit; anything
//! refused refuses the whole before anything is written.

use super::HostError;
use super::bindings::taskhost::plugin::jobs::{
    BatchCallback, BatchRequest, ChainStep, EnqueueRequest, Host, Priority as WitPriority,
};
use crate::enqueue::{BatchRequest as Batch, EnqueueError, EnqueueRequest as Request};
use crate::job::Priority;
use crate::runtime::JobState;
use crate::store::StoreError;

impl Host for JobState {
    async fn enqueue(
        &mut self,
        request: EnqueueRequest,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        let priority = priority(request.priority);
        if let Some(e) = self.refusal(
            &request.handler,
            request.queue.as_deref(),
            priority,
            request.max_attempts,
        ) {
            return Ok(Err(e));
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
            // The WIT has no retry policy: the handler's applies.
            retry: None,
            // The WIT has no unique key (yet): a unique handler's job from
            // a plugin is unique under its payload.
            unique_key: None,
        };
        let Some(enqueuer) = self.services().enqueuer.clone() else {
            return Ok(Err(super::denied(self, format_args!("enqueueing jobs"))));
        };
        Ok(match enqueuer.enqueue(req).await {
            Ok(enqueued) => Ok(enqueued.id.to_string()),
            Err(EnqueueError::Store(e)) => Err(HostError::Failed(e.to_string())),
            Err(e) => Err(HostError::Invalid(e.to_string())),
        })
    }

    async fn start_batch(
        &mut self,
        request: BatchRequest,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        self.start_batch_checked(request).await
    }

    async fn start_chain(
        &mut self,
        steps: Vec<ChainStep>,
    ) -> wasmtime::Result<Result<String, HostError>> {
        self.charge_host_call()?;
        self.start_chain_checked(steps).await
    }
}

fn priority(p: Option<WitPriority>) -> Option<Priority> {
    p.map(|p| match p {
        WitPriority::Critical => Priority::Critical,
        WitPriority::High => Priority::High,
        WitPriority::Normal => Priority::Normal,
        WitPriority::Low => Priority::Low,
    })
}

/// A JSON argument, or why it is not one (naming it).
fn json(what: String, text: &str) -> Result<serde_json::Value, HostError> {
    serde_json::from_str(text).map_err(|e| HostError::Invalid(format!("{what} is not JSON: {e}")))
}

impl JobState {
    /// Why this run may not enqueue `n` jobs of `handler` on `queue` at
    /// `priority` with `max_attempts`, if it may not (the grants and caps
    /// of [`Host::enqueue`]).
    fn refusal(
        &mut self,
        handler: &str,
        queue: Option<&str>,
        priority: Option<Priority>,
        max_attempts: Option<u32>,
    ) -> Option<HostError> {
        let services = self.services().clone();
        if services.enqueuer.is_none() || !services.grants.may_enqueue(handler) {
            return Some(super::denied(
                self,
                format_args!("enqueueing jobs of handler {handler:?}"),
            ));
        }
        if !services.grants.may_use_queue(queue) {
            let queue = queue.unwrap_or(crate::job::DEFAULT_QUEUE);
            return Some(super::denied(
                self,
                format_args!("enqueueing jobs on queue {queue:?}"),
            ));
        }
        if let Some(p) = priority.filter(|&p| !services.grants.may_use_priority(p)) {
            return Some(super::denied(
                self,
                format_args!("enqueueing jobs at priority {p}"),
            ));
        }
        let max = self.limits().max_attempts;
        if let Some(n) = max_attempts.filter(|&n| n > max) {
            return Some(HostError::Invalid(format!(
                "max-attempts {n} is over the host's cap of {max} ([limits] max_attempts)"
            )));
        }
        None
    }

    async fn start_batch_checked(
        &mut self,
        request: BatchRequest,
    ) -> wasmtime::Result<Result<String, HostError>> {
        let callbacks = [&request.on_complete, &request.on_success];
        let checks = std::iter::once((
            &request.handler,
            request.queue.as_deref(),
            request.priority,
            request.max_attempts,
        ))
        .chain(
            callbacks
                .iter()
                .filter_map(|c| c.as_ref())
                .map(|c| (&c.handler, c.queue.as_deref(), c.priority, c.max_attempts)),
        )
        .map(|(h, q, p, m)| (h.clone(), q.map(str::to_owned), priority(p), m))
        .collect::<Vec<_>>();
        for (handler, queue, priority, max_attempts) in checks {
            if let Some(e) = self.refusal(&handler, queue.as_deref(), priority, max_attempts) {
                return Ok(Err(e));
            }
        }
        let jobs =
            request.items.len() as u64 + callbacks.iter().filter(|c| c.is_some()).count() as u64;
        let cap = self.limits().enqueues;
        if !self.charge_enqueues(jobs) {
            return Ok(Err(super::denied(
                self,
                format_args!(
                    "a batch of {jobs} jobs over the {cap} enqueues one run may make (jobs_per_run, default [limits] max_enqueues)"
                ),
            )));
        }
        let mut items = Vec::with_capacity(request.items.len());
        for (i, item) in request.items.iter().enumerate() {
            match json(format!("items[{i}]"), item) {
                Ok(v) => items.push(v),
                Err(e) => return Ok(Err(e)),
            }
        }
        let callback = |name: &str, cb: Option<BatchCallback>| -> Result<_, HostError> {
            cb.map(|cb| {
                Ok(Request {
                    payload: json(format!("{name} payload"), &cb.payload)?,
                    handler: cb.handler,
                    queue: cb.queue,
                    priority: priority(cb.priority),
                    max_attempts: cb.max_attempts,
                    ..Request::default()
                })
            })
            .transpose()
        };
        let on_complete = match callback("on-complete", request.on_complete) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let on_success = match callback("on-success", request.on_success) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let batch = Batch {
            handler: request.handler,
            items,
            queue: request.queue,
            priority: priority(request.priority),
            max_attempts: request.max_attempts,
            retry: None,
            chunk: None,
            on_complete,
            on_success,
            idempotency_key: None,
        };
        let Some(enqueuer) = self.services().enqueuer.clone() else {
            return Ok(Err(super::denied(self, format_args!("starting batches"))));
        };
        Ok(match enqueuer.start_batch(batch).await {
            Ok(started) => Ok(started.batch.id.to_string()),
            Err((_, EnqueueError::Store(e))) => Err(HostError::Failed(e.to_string())),
            Err((at, e)) => Err(HostError::Invalid(match at {
                Some(at) => format!("{at}: {e}"),
                None => e.to_string(),
            })),
        })
    }

    async fn start_chain_checked(
        &mut self,
        steps: Vec<ChainStep>,
    ) -> wasmtime::Result<Result<String, HostError>> {
        for s in &steps {
            let p = priority(s.priority);
            if let Some(e) = self.refusal(&s.handler, s.queue.as_deref(), p, s.max_attempts) {
                return Ok(Err(e));
            }
        }
        let n = steps.len() as u64;
        let mut reqs = Vec::with_capacity(steps.len());
        for (i, s) in steps.into_iter().enumerate() {
            let payload = match json(format!("steps[{i}] payload"), &s.payload) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            reqs.push(Request {
                handler: s.handler,
                payload,
                queue: s.queue,
                priority: priority(s.priority),
                max_attempts: s.max_attempts,
                ..Request::default()
            });
        }
        let cap = self.limits().enqueues;
        if !self.charge_enqueues(n) {
            return Ok(Err(super::denied(
                self,
                format_args!(
                    "a chain of {n} steps over the {cap} enqueues one run may make (jobs_per_run, default [limits] max_enqueues)"
                ),
            )));
        }
        let Some(enqueuer) = self.services().enqueuer.clone() else {
            return Ok(Err(super::denied(self, format_args!("starting chains"))));
        };
        Ok(match enqueuer.enqueue_chain(reqs).await {
            Ok(chain) => Ok(chain.id.to_string()),
            Err((_, EnqueueError::Store(e))) if !matches!(e, StoreError::Invalid(_)) => {
                Err(HostError::Failed(e.to_string()))
            }
            Err((at, e)) => Err(HostError::Invalid(match at {
                Some(i) => format!("steps[{i}]: {e}"),
                None => e.to_string(),
            })),
        })
    }
}

//! The one way jobs enter the store: from the CLI, the HTTP API, a plugin's
//! `jobs` call and the scheduler alike, with the same validation, so that a
//! refused request changes nothing wherever it came from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::clock::Clock;
use crate::config::Config;
use crate::job::{MAX_NAME_LEN, MAX_RUN_AHEAD, NewJob, Priority};
use crate::metrics::JobEvent;
use crate::runtime::Registry;
use crate::store::{Enqueued, Store, StoreError};
use crate::worker::retry::{RetryError, RetryPolicy};

/// A request to run a job.
#[derive(Debug, Clone, Default)]
pub struct EnqueueRequest {
    pub handler: String,
    pub payload: Value,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    /// Run no earlier than this long from now.
    pub delay: Option<Duration>,
    /// Run no earlier than this instant (exclusive with `delay`).
    pub run_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// Overrides the attempt budget of the job's retry policy.
    pub max_attempts: Option<u32>,
    /// The job's own retry policy, instead of its handler's.
    pub retry: Option<crate::config::RetrySettings>,
    /// For a handler with `unique = "while-active"`: the key it is unique
    /// under (default: its payload). Refused for other handlers.
    pub unique_key: Option<String>,
}

impl EnqueueRequest {
    /// The queue the job goes to: the one named, else the default.
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or(crate::job::DEFAULT_QUEUE)
    }
}

/// Why an enqueue was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("unknown handler {handler:?}{}", did_you_mean(.near))]
    UnknownHandler { handler: String, near: Vec<String> },
    #[error("payload of {size} bytes is over the {max}-byte limit")]
    PayloadTooLarge { size: usize, max: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn too_far(what: std::fmt::Arguments<'_>) -> EnqueueError {
    EnqueueError::Invalid(format!(
        "{what} is too far in the future: a job may be set to run at most {} ahead",
        crate::units::format_duration(MAX_RUN_AHEAD)
    ))
}

fn did_you_mean(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {})", near.join(", "))
    }
}

/// Validates requests against the loaded handlers and writes them.
pub struct Enqueuer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Replaced whole when the plugins change ([`Enqueuer::refresh`]).
    known: std::sync::RwLock<Arc<Known>>,
    max_payload: u64,
}

/// The handlers jobs may be enqueued for, with their retry policies.
struct Known {
    policies: BTreeMap<String, RetryPolicy>,
    handler_names: Vec<String>,
    /// Handlers with a uniqueness policy.
    unique: std::collections::BTreeSet<String>,
}

impl Enqueuer {
    /// Resolves every loaded handler's retry policy (refusing a bad one,
    /// naming the handler) and binds the store.
    pub fn new(
        config: &Config,
        registry: &Registry,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Enqueuer, RetryError> {
        Ok(Enqueuer {
            store,
            clock,
            known: std::sync::RwLock::new(Arc::new(Known::resolve(config, registry)?)),
            max_payload: config.workers.max_payload,
        })
    }

    /// Takes the handler set of a changed handler table. A handler whose
    /// policy does not resolve keeps the old set and answers why.
    pub fn refresh(&self, config: &Config, registry: &Registry) -> Result<(), RetryError> {
        let known = Arc::new(Known::resolve(config, registry)?);
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = known;
        Ok(())
    }

    fn known(&self) -> Arc<Known> {
        self.known.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Known {
    fn resolve(config: &Config, registry: &Registry) -> Result<Known, RetryError> {
        let mut policies = BTreeMap::new();
        for h in registry.handlers() {
            let own = config.handlers.get(&h.name);
            let mut settings = own
                .and_then(|o| o.retry.clone())
                .unwrap_or_else(|| config.retry.clone());
            if let Some(n) = own.and_then(|o| o.max_attempts).or(h.defaults.max_attempts) {
                settings.max_attempts = settings.max_attempts.or(Some(n));
            }
            let policy =
                RetryPolicy::from_settings(&settings).map_err(|RetryError::Invalid(m)| {
                    RetryError::Invalid(format!("handler {:?}: {m}", h.name))
                })?;
            policies.insert(h.name.clone(), policy);
        }
        Ok(Known {
            policies,
            handler_names: registry.handler_names(),
            unique: config
                .handlers
                .iter()
                .filter(|(_, h)| h.unique.is_some())
                .map(|(name, _)| name.clone())
                .collect(),
        })
    }
}

impl Enqueuer {
    /// The retry policy of a loaded handler.
    pub fn policy(&self, handler: &str) -> Option<RetryPolicy> {
        self.known().policies.get(handler).cloned()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn knows(&self, handler: &str) -> bool {
        self.known().policies.contains_key(handler)
    }

    /// Checks a request and turns it into the job to store.
    pub fn prepare(&self, req: EnqueueRequest) -> Result<NewJob, EnqueueError> {
        // Sizes first: nothing below (the lookup, "did you mean") may cost
        // more than the request's own size allows.
        if req.handler.len() > MAX_NAME_LEN {
            return Err(EnqueueError::Invalid(format!(
                "handler name {:?}… is {} bytes long; the limit is {MAX_NAME_LEN}",
                &req.handler[..req.handler.floor_char_boundary(32)],
                req.handler.len()
            )));
        }
        let known = self.known();
        let Some(policy) = known.policies.get(&req.handler) else {
            let near = near_matches(&known.handler_names, &req.handler);
            return Err(EnqueueError::UnknownHandler {
                handler: req.handler,
                near,
            });
        };
        let size = serde_json::to_vec(&req.payload)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size as u64 > self.max_payload {
            return Err(EnqueueError::PayloadTooLarge {
                size,
                max: self.max_payload,
            });
        }
        let now = self.clock.now();
        let run_at = match (req.delay, req.run_at) {
            (Some(_), Some(_)) => {
                return Err(EnqueueError::Invalid(
                    "give a delay or a run-at time, not both".into(),
                ));
            }
            (Some(d), None) if d > MAX_RUN_AHEAD => {
                return Err(too_far(format_args!(
                    "a delay of {}",
                    crate::units::format_duration(d)
                )));
            }
            (Some(d), None) => Some(crate::clock::after(now, d)),
            (None, Some(at)) if at > crate::clock::after(now, MAX_RUN_AHEAD) => {
                return Err(too_far(format_args!("run-at {}", at.to_rfc3339())));
            }
            (None, at) => at,
        };
        let unique_key = if known.unique.contains(&req.handler) {
            Some(
                req.unique_key
                    .unwrap_or_else(|| crate::unique::payload_key(&req.payload)),
            )
        } else if req.unique_key.is_some() {
            return Err(EnqueueError::Invalid(format!(
                "unique_key given, but handler {:?} is not unique (set [handlers.\"{}\"] unique = \"while-active\")",
                req.handler, req.handler
            )));
        } else {
            None
        };
        let own = req
            .retry
            .as_ref()
            .map(RetryPolicy::from_settings)
            .transpose()
            .map_err(|e| EnqueueError::Invalid(e.to_string()))?;
        let mut job = NewJob::new(req.handler, req.payload)
            .priority(req.priority.unwrap_or(Priority::Normal))
            .max_attempts(policy.max_attempts());
        if let Some(own) = own {
            job = job.retry(own);
        }
        if let Some(n) = req.max_attempts {
            job = job.max_attempts(n);
        }
        if let Some(q) = req.queue {
            job = job.queue(q);
        }
        if let Some(at) = run_at {
            job = job.run_at(at);
        }
        if let Some(k) = req.idempotency_key {
            job = job.idempotency_key(k);
        }
        job.unique_key = unique_key;
        job.validate().map_err(EnqueueError::Invalid)?;
        Ok(job)
    }

    pub async fn enqueue(&self, req: EnqueueRequest) -> Result<Enqueued, EnqueueError> {
        let job = self.prepare(req)?;
        let handler = job.handler.clone();
        let (queue, delayed) = (job.queue.clone(), job.run_at);
        let enqueued = self.store.enqueue(job).await?;
        if enqueued.created {
            crate::metrics::global().job(JobEvent::Enqueued, &handler, 1);
            tracing::info!(target: "taskhost::jobs", job = %enqueued.id, handler = %handler,
                queue = %queue, run_at = ?delayed, "job enqueued");
        }
        Ok(enqueued)
    }

    /// All or nothing: one bad item refuses the batch, and the error says
    /// which (0-based index).
    pub async fn enqueue_batch(
        &self,
        reqs: Vec<EnqueueRequest>,
    ) -> Result<Vec<Enqueued>, (Option<usize>, EnqueueError)> {
        let mut jobs = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.into_iter().enumerate() {
            jobs.push(self.prepare(req).map_err(|e| (Some(i), e))?);
        }
        let handlers: Vec<String> = jobs.iter().map(|j| j.handler.clone()).collect();
        let enqueued = self
            .store
            .enqueue_batch(jobs)
            .await
            .map_err(|e| (None, e.into()))?;
        for (e, handler) in enqueued.iter().zip(&handlers) {
            if e.created {
                crate::metrics::global().job(JobEvent::Enqueued, handler, 1);
            }
        }
        tracing::info!(target: "taskhost::jobs",
            created = enqueued.iter().filter(|e| e.created).count(), total = enqueued.len(),
            "batch enqueued");
        Ok(enqueued)
    }
}

impl Enqueuer {
    /// Checks every step like an enqueue (known handler, payload size,
    /// attempts from the handler's policy) and makes the chain; one bad
    /// step refuses it and the error says which (0-based index). A unique
    /// handler's step is not unique: the chain decides when it runs.
    pub async fn enqueue_chain(
        &self,
        reqs: Vec<EnqueueRequest>,
    ) -> Result<crate::store::chain::Chain, (Option<usize>, EnqueueError)> {
        let mut steps = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.into_iter().enumerate() {
            let mut job = self.prepare(req).map_err(|e| (Some(i), e))?;
            job.unique_key = None;
            steps.push(job);
        }
        let chain = self
            .store
            .enqueue_chain(steps)
            .await
            .map_err(|e| (None, e.into()))?;
        if let Some(first) = chain.steps.first() {
            crate::metrics::global().job(JobEvent::Enqueued, &first.handler, 1);
        }
        tracing::info!(target: "taskhost::jobs", chain = %chain.id, steps = chain.steps.len(),
            "chain enqueued");
        Ok(chain)
    }
}

/// A request to run one handler over many items: a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchRequest {
    pub handler: String,
    /// One job per item, the item its payload.
    pub items: Vec<Value>,
    pub queue: Option<String>,
    pub priority: Option<Priority>,
    /// Overrides the attempt budget of the jobs' retry policy.
    pub max_attempts: Option<u32>,
    /// The jobs' own retry policy, instead of their handler's.
    pub retry: Option<crate::config::RetrySettings>,
    /// Jobs per atomic chunk (default [`crate::store::batch::DEFAULT_CHUNK`]).
    pub chunk: Option<usize>,
    /// Enqueued once when every job has finished.
    pub on_complete: Option<EnqueueRequest>,
    /// Enqueued once when every job has succeeded.
    pub on_success: Option<EnqueueRequest>,
    /// Makes the start safe to repeat (see [`crate::store::batch::NewBatch`]).
    pub idempotency_key: Option<String>,
}

impl Enqueuer {
    /// Checks every item like an enqueue (known handler, payload size,
    /// attempts from the handler's policy) and each callback, then makes
    /// the batch; anything bad refuses it before anything is written, and
    /// the error names where (`items[3]`, `on_success`). Batch jobs and
    /// callbacks are never unique: the batch decides when they run.
    pub async fn start_batch(
        &self,
        req: BatchRequest,
    ) -> Result<crate::store::batch::StartedBatch, (Option<String>, EnqueueError)> {
        use crate::store::batch::{DEFAULT_CHUNK, MAX_JOBS, NewBatch};
        if req.items.is_empty() || req.items.len() > MAX_JOBS {
            return Err((
                None,
                EnqueueError::Invalid(format!(
                    "a batch has 1 to {MAX_JOBS} items, not {}",
                    req.items.len()
                )),
            ));
        }
        // Checked once here, so a bad policy is named as the batch's own.
        if let Some(r) = &req.retry {
            RetryPolicy::from_settings(r)
                .map_err(|e| (None, EnqueueError::Invalid(e.to_string())))?;
        }
        let asked = req
            .idempotency_key
            .as_ref()
            .map(|_| batch_request_hash(&req));
        let one = |payload: Value| EnqueueRequest {
            handler: req.handler.clone(),
            payload,
            queue: req.queue.clone(),
            priority: req.priority,
            max_attempts: req.max_attempts,
            retry: req.retry.clone(),
            ..EnqueueRequest::default()
        };
        let mut items = Vec::with_capacity(req.items.len());
        let mut first = None;
        for (i, item) in req.items.into_iter().enumerate() {
            let job = self
                .prepare(one(item))
                .map_err(|e| (Some(format!("items[{i}]")), e))?;
            items.push(job.payload);
            first.get_or_insert((job.queue, job.priority, job.max_attempts, job.retry));
        }
        let callback = |name: &str, cb: Option<EnqueueRequest>| {
            cb.map(|cb| {
                let mut job = self.prepare(cb).map_err(|e| (Some(name.to_owned()), e))?;
                job.unique_key = None;
                Ok(job)
            })
            .transpose()
        };
        let on_complete = callback("on_complete", req.on_complete)?;
        let on_success = callback("on_success", req.on_success)?;
        let (queue, priority, max_attempts, retry) = first.expect("a batch has items");
        let batch = NewBatch {
            handler: req.handler.clone(),
            queue,
            priority,
            max_attempts,
            retry,
            items,
            chunk: req.chunk.unwrap_or(DEFAULT_CHUNK),
            on_complete,
            on_success,
            idempotency_key: req.idempotency_key,
            asked,
        };
        let started = self
            .store
            .start_batch(batch)
            .await
            .map_err(|e| (None, e.into()))?;
        if started.created {
            crate::metrics::global().job(JobEvent::Enqueued, &req.handler, started.batch.total);
            tracing::info!(target: "taskhost::jobs", batch = %started.batch.id,
                handler = %req.handler, jobs = started.batch.total, "batch started");
        } else {
            tracing::info!(target: "taskhost::jobs", batch = %started.batch.id,
                handler = %req.handler, jobs = started.batch.enqueued,
                "batch start repeated under its idempotency key");
        }
        Ok(started)
    }
}

/// What a batch start asked for, hashed over the fields the caller gave
/// (not the defaults filled in, which a config change may move between a
/// start and its repeat): the key's repeat must ask the same.
fn batch_request_hash(req: &BatchRequest) -> String {
    let job = |r: &EnqueueRequest| {
        serde_json::json!({
            "handler": r.handler, "payload": r.payload, "queue": r.queue,
            "priority": r.priority.map(Priority::as_str), "max_attempts": r.max_attempts,
            "retry": r.retry,
        })
    };
    let settings = serde_json::json!({
        "handler": req.handler, "queue": req.queue,
        "priority": req.priority.map(Priority::as_str), "max_attempts": req.max_attempts,
        "retry": req.retry,
        "on_complete": req.on_complete.as_ref().map(job),
        "on_success": req.on_success.as_ref().map(job),
    });
    let items: Vec<String> = req.items.iter().map(Value::to_string).collect();
    crate::store::batch::request_hash(&settings, items.iter().map(String::as_str))
}

/// Handler names close to `name`, for "did you mean" answers. Names longer
/// than a handler name may be get no suggestions, and candidates whose
/// length alone puts them out of reach are skipped, so the cost stays
/// bounded by `MAX_NAME_LEN²` per loaded handler whatever a client sends.
pub fn near_matches(names: &[String], name: &str) -> Vec<String> {
    if name.len() > MAX_NAME_LEN {
        return Vec::new();
    }
    let lower = name.to_lowercase();
    let reach = 3.max(name.len() / 3);
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|h| {
            if h.contains(name) || name.contains(h.as_str()) {
                return Some((0, h));
            }
            if h.len().abs_diff(name.len()) > reach {
                return None;
            }
            let d = edit_distance(&h.to_lowercase(), &lower);
            (d <= reach).then_some((d, h))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, h)| h.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_start_is_hashed_over_what_the_caller_gave() {
        let req = |items: Vec<Value>, max_attempts: Option<u32>| BatchRequest {
            handler: "h".into(),
            items,
            max_attempts,
            on_complete: Some(EnqueueRequest {
                handler: "done".into(),
                ..EnqueueRequest::default()
            }),
            ..BatchRequest::default()
        };
        let one = batch_request_hash(&req(vec![Value::from(1)], None));
        assert_eq!(one, batch_request_hash(&req(vec![Value::from(1)], None)));
        assert_ne!(one, batch_request_hash(&req(vec![Value::from(2)], None)));
        assert_ne!(one, batch_request_hash(&req(vec![Value::from(1)], Some(3))));
        let mut chunked = req(vec![Value::from(1)], None);
        chunked.chunk = Some(7);
        assert_eq!(
            one,
            batch_request_hash(&chunked),
            "the chunk size is not asked-for work"
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("hello", "hello"), 0);
        assert_eq!(edit_distance("hello", "helo"), 1);
        assert_eq!(edit_distance("hello", "jello"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn near_matches_suggest_close_names_only() {
        let names = vec![
            "hello".to_string(),
            "probe.sleep".to_string(),
            "payments.retry".to_string(),
        ];
        assert_eq!(near_matches(&names, "helo"), vec!["hello".to_string()]);
        assert_eq!(
            near_matches(&names, "probe.slep"),
            vec!["probe.sleep".to_string()]
        );
        assert!(near_matches(&names, "zzzzzzzz").is_empty());
    }
}

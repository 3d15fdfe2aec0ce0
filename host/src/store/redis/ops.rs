//! The [`Store`] trait on Redis: each method is one script call (or one
//! bounded script call per step for the bulk actions) plus decoding.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use tokio::sync::watch;

use super::codec::{self, array, int, text};
use super::scripts::{ADMIN, ENQUEUE, HOLDER, LEASE, LIST, MISC, READ, REAP, SWEEP, TICK};
use super::{REAP_STEP, RedisStore, refusal};
use crate::job::{Job, JobId, JobStatus, NewJob, OutcomeKind, RunReport, check_queue_name};
use crate::store::{
    Counts, Enqueued, FailAction, HandlerLimit, HostRecord, Lease, LeaseRequest, LeaseToken,
    LimitState, ListQuery, Page, PluginRelease, PluginReleases, QueueInfo, Schedule, Store,
    StoreError, StoreResult, SweepReport, Termination,
};

/// The most jobs one lease call may take (as the embedded store).
const MAX_LEASE_BATCH: u32 = 1000;

/// Ids one list call may look at before answering with a cursor.
pub(super) const LIST_BUDGET: u32 = 20_000;

/// Jobs (or keys, or ticks) one sweep or bulk step touches: small enough
/// that no call holds Redis for long.
const STEP: u32 = 1000;

fn valid_queue(queue: &str) -> StoreResult<()> {
    check_queue_name(queue).map_err(StoreError::Invalid)
}

impl RedisStore {
    async fn enqueue_all(&self, jobs: &[NewJob]) -> StoreResult<Vec<Enqueued>> {
        let mut args = vec![
            codec::span(self.config.idempotency_ttl).to_string(),
            jobs.len().to_string(),
        ];
        for job in jobs {
            args.extend(codec::job_args(JobId::generate(), job)?);
        }
        let reply = self.run(&ENQUEUE, &args).await?;
        let done = array(&reply)?
            .chunks(2)
            .map(|pair| {
                Ok(Enqueued {
                    id: text(&pair[0])?.parse().map_err(StoreError::backend)?,
                    created: int(&pair[1])? == 1,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        if done.iter().any(|e| e.created) {
            self.signals.apply(b"w");
        }
        Ok(done)
    }

    /// Runs a holder script for `token`; answers the state it left.
    async fn holder(
        &self,
        token: &LeaseToken,
        mode: &str,
        rest: Vec<String>,
    ) -> StoreResult<String> {
        let mut args = vec![
            mode.to_owned(),
            token.job.to_string(),
            token.fence.to_string(),
        ];
        args.extend(rest);
        let reply = self.run(&HOLDER, &args).await?;
        let reply = array(&reply)?;
        refusal(reply, token.job, "finish its run")?;
        text(&reply[1])
    }

    /// Runs one bulk admin action to its end, a bounded step a call.
    async fn bulk(&self, mode: &str, queue: Option<&str>) -> StoreResult<u64> {
        let (mut total, mut cursor) = (0u64, String::new());
        loop {
            let args = [
                mode.to_owned(),
                queue.unwrap_or_default().to_owned(),
                cursor,
                STEP.to_string(),
            ];
            let reply = self.run(&ADMIN, &args).await?;
            let reply = array(&reply)?;
            total += int(&reply[0])? as u64;
            cursor = text(&reply[1])?;
            if cursor.is_empty() {
                return Ok(total);
            }
        }
    }

    async fn misc(&self, args: &[String]) -> StoreResult<redis::Value> {
        self.run(&MISC, args).await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued> {
        job.validate().map_err(StoreError::Invalid)?;
        Ok(self.enqueue_all(std::slice::from_ref(&job)).await?[0])
    }

    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        for (i, job) in jobs.iter().enumerate() {
            job.validate()
                .map_err(|e| StoreError::Invalid(format!("job {i} of the batch: {e}")))?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.enqueue_all(&jobs).await
    }

    async fn lease(&self, req: &LeaseRequest) -> StoreResult<Vec<Lease>> {
        if req.max == 0 || req.max > MAX_LEASE_BATCH {
            return Err(StoreError::Invalid(format!(
                "lease max of {} is out of range 1..={MAX_LEASE_BATCH}",
                req.max
            )));
        }
        if req.lease_for.is_zero() {
            return Err(StoreError::Invalid(format!(
                "lease duration for worker {:?} must be positive",
                req.worker
            )));
        }
        if req.worker.trim().is_empty() {
            return Err(StoreError::Invalid(
                "lease worker id must not be empty".into(),
            ));
        }
        if req.queues.is_empty() || req.handlers.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![
            req.worker.clone(),
            codec::span(req.lease_for).to_string(),
            req.lease_for.as_millis().to_string(),
            req.max.to_string(),
            REAP_STEP.to_string(),
            req.queues.len().to_string(),
        ];
        args.extend(req.queues.iter().cloned());
        args.push(req.handlers.len().to_string());
        args.extend(req.handlers.iter().cloned());
        let limits: Vec<HandlerLimit> = req
            .limits
            .iter()
            .filter(|l| req.handlers.contains(&l.handler))
            .cloned()
            .collect();
        args.extend(super::limits::args(&limits));
        args.extend((0..req.max).map(|_| rand::random::<u64>().to_string()));
        let reply = self.run(&LEASE, &args).await?;
        let reply = array(&reply)?;
        let now = int(&reply[0])?;
        let expires_at = codec::time(int(&reply[1])?)?;
        reply[2..]
            .iter()
            .map(|hash| {
                let fields = codec::fields(hash)?;
                let job = codec::job(&fields, now)?;
                let fence = fields
                    .get("fence")
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(|| StoreError::backend("leased job without a fence"))?;
                Ok(Lease {
                    token: LeaseToken { job: job.id, fence },
                    expires_at,
                    job,
                })
            })
            .collect()
    }

    async fn renew(&self, token: &LeaseToken, lease_for: Duration) -> StoreResult<DateTime<Utc>> {
        if lease_for.is_zero() {
            return Err(StoreError::Invalid(format!(
                "lease renewal for job {} must extend by a positive duration",
                token.job
            )));
        }
        let rest = vec![
            codec::span(lease_for).to_string(),
            lease_for.as_millis().to_string(),
        ];
        let expires = self.holder(token, "renew", rest).await?;
        codec::opt_time(&expires)?.ok_or_else(|| StoreError::backend("renew without expiry"))
    }

    async fn complete(
        &self,
        token: &LeaseToken,
        result: Json,
        report: RunReport,
    ) -> StoreResult<()> {
        if report.outcome != OutcomeKind::Succeeded {
            return Err(StoreError::Invalid(format!(
                "complete of job {} reports outcome {}; use fail for unsuccessful runs",
                token.job, report.outcome
            )));
        }
        let args = [
            token.job.to_string(),
            token.fence.to_string(),
            codec::attempt_tail(&report)?,
            serde_json::to_string(&result)?,
            if report.log.is_some() { "1" } else { "0" }.to_owned(),
            report.log.clone().unwrap_or_default(),
        ];
        // Gathered with the completions that arrive meanwhile into one call.
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.runner.check_open()?;
        self.completions
            .send(super::completer::Completion {
                job: token.job,
                args,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn fail(
        &self,
        token: &LeaseToken,
        action: FailAction,
        report: RunReport,
    ) -> StoreResult<JobStatus> {
        if matches!(
            report.outcome,
            OutcomeKind::Succeeded | OutcomeKind::LeaseExpired
        ) {
            return Err(StoreError::Invalid(format!(
                "fail of job {} reports outcome {}, which is not a failure a worker can report",
                token.job, report.outcome
            )));
        }
        if (report.outcome == OutcomeKind::Cancelled) != (action == FailAction::Cancel) {
            return Err(StoreError::Invalid(format!(
                "fail of job {}: outcome cancelled goes with the cancel action, and only it",
                token.job
            )));
        }
        let at = match action {
            FailAction::Retry { at } => codec::micros(at).to_string(),
            FailAction::Dead => String::new(),
            FailAction::Cancel => "cancel".to_owned(),
        };
        let rest = vec![
            codec::attempt_tail(&report)?,
            at,
            if report.log.is_some() { "1" } else { "0" }.to_owned(),
            report.log.clone().unwrap_or_default(),
        ];
        let status: JobStatus = self
            .holder(token, "fail", rest)
            .await?
            .parse()
            .map_err(StoreError::backend)?;
        self.signals.apply(if status == JobStatus::Retrying {
            b"we"
        } else {
            b"e"
        });
        Ok(status)
    }

    async fn release(&self, token: &LeaseToken) -> StoreResult<()> {
        self.holder(token, "release", Vec::new()).await?;
        self.signals.apply(b"w");
        Ok(())
    }

    async fn reap_expired(&self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let n = int(&self.run(&REAP, &[REAP_STEP.to_string()]).await?)? as u64;
            total += n;
            if n < u64::from(REAP_STEP) {
                break;
            }
        }
        if total > 0 {
            crate::metrics::global().lease_expired(total);
            self.signals.apply(b"we");
        }
        Ok(total)
    }

    async fn cancel(&self, id: JobId) -> StoreResult<()> {
        let reply = self.run(&ADMIN, &["cancel".into(), id.to_string()]).await?;
        refusal(array(&reply)?, id, "cancel it")?;
        self.signals.apply(b"e");
        Ok(())
    }

    async fn enqueue_chain(&self, steps: Vec<NewJob>) -> StoreResult<crate::store::chain::Chain> {
        self.create_chain(steps).await
    }

    async fn get_chain(&self, id: JobId) -> StoreResult<crate::store::chain::Chain> {
        self.read_chain(id).await
    }

    async fn start_batch(
        &self,
        batch: crate::store::batch::NewBatch,
    ) -> StoreResult<crate::store::batch::StartedBatch> {
        self.create_batch(batch).await
    }

    async fn get_batch(&self, id: JobId) -> StoreResult<crate::store::batch::Batch> {
        self.read_batch(id).await
    }

    async fn cancel_batch(&self, id: JobId) -> StoreResult<crate::store::batch::Batch> {
        self.stop_batch(id).await
    }

    async fn terminate(&self, id: JobId) -> StoreResult<Termination> {
        self.request_termination(id).await
    }

    async fn termination_requested(&self, jobs: &[JobId]) -> StoreResult<Vec<JobId>> {
        self.ask_terminations(jobs).await
    }

    async fn get(&self, id: JobId) -> StoreResult<Job> {
        let reply = self.run(&READ, &["get".into(), id.to_string()]).await?;
        let reply = array(&reply)?;
        let fields = codec::fields(&reply[1])?;
        if fields.is_empty() {
            return Err(StoreError::NotFound(id));
        }
        codec::job(&fields, int(&reply[0])?)
    }

    async fn find_by_idempotency_key(
        &self,
        handler: &str,
        key: &str,
    ) -> StoreResult<Option<JobId>> {
        let scoped = crate::store::scoped_idempotency_key(handler, key);
        let reply = self.run(&READ, &["key".into(), scoped]).await?;
        match text(&reply)?.as_str() {
            "" => Ok(None),
            id => Ok(Some(id.parse().map_err(StoreError::backend)?)),
        }
    }

    async fn list(&self, q: &ListQuery) -> StoreResult<Page> {
        let args = [
            q.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            q.queue.clone().unwrap_or_default(),
            q.handler.clone().unwrap_or_default(),
            q.schedule.clone().unwrap_or_default(),
            q.after.map(|a| a.to_string()).unwrap_or_default(),
            q.effective_limit().to_string(),
            LIST_BUDGET.to_string(),
        ];
        let reply = self.run(&LIST, &args).await?;
        let reply = array(&reply)?;
        let now = int(&reply[0])?;
        let next = match text(&reply[1])?.as_str() {
            "" => None,
            id => Some(id.parse().map_err(StoreError::backend)?),
        };
        let jobs = reply[2..]
            .iter()
            .map(|h| codec::job(&codec::fields(h)?, now))
            .collect::<StoreResult<_>>()?;
        Ok(Page { jobs, next })
    }

    async fn counts(&self) -> StoreResult<Counts> {
        self.read_counts().await
    }

    async fn next_due_at(
        &self,
        queues: &[String],
        handlers: &[String],
    ) -> StoreResult<Option<DateTime<Utc>>> {
        if queues.is_empty() || handlers.is_empty() {
            return Ok(None);
        }
        let mut args = vec!["next".to_owned(), queues.len().to_string()];
        args.extend(queues.iter().cloned());
        args.push(handlers.len().to_string());
        args.extend(handlers.iter().cloned());
        let reply = self.run(&READ, &args).await?;
        let reply = array(&reply)?;
        let now = int(&reply[2])?;
        let times = [text(&reply[0])?, text(&reply[1])?];
        let earliest = times.iter().filter_map(|t| t.parse::<i64>().ok()).min();
        earliest.map(|at| self.to_host_time(at, now)).transpose()
    }

    async fn limit_states(&self, limits: &[HandlerLimit]) -> StoreResult<Vec<LimitState>> {
        self.read_limits(limits).await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.signals.work.subscribe()
    }

    fn job_ends(&self) -> watch::Receiver<u64> {
        self.signals.ends.subscribe()
    }

    async fn dlq_retry(&self, id: JobId) -> StoreResult<()> {
        let reply = self
            .run(&ADMIN, &["dlq_retry".into(), id.to_string()])
            .await?;
        refusal(array(&reply)?, id, "retry it from the DLQ")?;
        self.signals.apply(b"w");
        Ok(())
    }

    async fn dlq_retry_all(&self, queue: Option<&str>) -> StoreResult<u64> {
        let n = self.bulk("dlq_retry_all", queue).await?;
        if n > 0 {
            self.signals.apply(b"w");
        }
        Ok(n)
    }

    async fn dlq_purge(&self, queue: Option<&str>) -> StoreResult<u64> {
        self.bulk("dlq_purge", queue).await
    }

    async fn purge_queue(&self, queue: &str) -> StoreResult<u64> {
        valid_queue(queue)?;
        self.bulk("purge", Some(queue)).await
    }

    async fn pause_queue(&self, queue: &str) -> StoreResult<()> {
        valid_queue(queue)?;
        self.run(&ADMIN, &["pause".into(), queue.into(), "1".into()])
            .await?;
        Ok(())
    }

    async fn resume_queue(&self, queue: &str) -> StoreResult<()> {
        valid_queue(queue)?;
        self.run(&ADMIN, &["pause".into(), queue.into(), "0".into()])
            .await?;
        self.signals.apply(b"w");
        Ok(())
    }

    async fn queues(&self) -> StoreResult<Vec<QueueInfo>> {
        self.read_queues().await
    }

    async fn host_seen(&self, host: &HostRecord) -> StoreResult<()> {
        let args = [
            "host_seen".to_owned(),
            host.id.clone(),
            serde_json::to_string(host)?,
            codec::micros(host.seen_at).to_string(),
        ];
        self.misc(&args).await.map(drop)
    }

    async fn host_gone(&self, id: &str) -> StoreResult<()> {
        self.misc(&["host_gone".into(), id.into()]).await.map(drop)
    }

    async fn hosts(&self, since: DateTime<Utc>) -> StoreResult<Vec<HostRecord>> {
        self.read_hosts(since).await
    }

    async fn sweep(&self) -> StoreResult<SweepReport> {
        let mut total = SweepReport::default();
        let args = [
            codec::span(self.config.finished_retention).to_string(),
            codec::span(self.config.tick_retention).to_string(),
            STEP.to_string(),
        ];
        loop {
            let reply = self.run(&SWEEP, &args).await?;
            let n: Vec<u64> = array(&reply)?
                .iter()
                .map(|v| int(v).map(|n| n as u64))
                .collect::<StoreResult<_>>()?;
            total.jobs += n[0];
            total.idempotency_keys += n[1];
            total.ticks += n[2];
            total.chains += n[3];
            total.batches += n[4];
            if n.iter().all(|&k| k < u64::from(STEP)) {
                return Ok(total);
            }
        }
    }

    async fn check_writable(&self) -> StoreResult<()> {
        self.misc(&["probe".into()]).await?;
        let last = self.runner.last_failure.lock().ok().and_then(|l| l.clone());
        match last {
            Some((at, why)) if at.elapsed() < super::FAILURE_WINDOW => Err(StoreError::backend(
                format!("{}s ago: {why}", at.elapsed().as_secs()),
            )),
            _ => Ok(()),
        }
    }

    async fn claim_sweep(&self, every: Duration) -> StoreResult<bool> {
        let reply = self
            .misc(&["claim_sweep".into(), codec::span(every).to_string()])
            .await?;
        Ok(int(&reply)? == 1)
    }

    async fn claim_tick(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        job: NewJob,
    ) -> StoreResult<Option<JobId>> {
        if schedule.trim().is_empty() {
            return Err(StoreError::Invalid(
                "schedule name must not be empty".into(),
            ));
        }
        job.validate().map_err(StoreError::Invalid)?;
        let mut args = vec![
            codec::span(self.config.idempotency_ttl).to_string(),
            schedule.to_owned(),
            codec::micros(tick).to_string(),
        ];
        args.extend(codec::job_args(JobId::generate(), &job)?);
        let reply = self.run(&TICK, &args).await?;
        match text(&reply)?.as_str() {
            "" => Ok(None),
            id => {
                self.signals.apply(b"w");
                Ok(Some(id.parse().map_err(StoreError::backend)?))
            }
        }
    }

    async fn active_schedule_job(&self, schedule: &str) -> StoreResult<Option<JobId>> {
        let reply = self.run(&READ, &["active".into(), schedule.into()]).await?;
        match text(&reply)?.as_str() {
            "" => Ok(None),
            id => Ok(Some(id.parse().map_err(StoreError::backend)?)),
        }
    }

    async fn upsert_schedule(&self, schedule: &Schedule) -> StoreResult<()> {
        schedule.validate()?;
        let stored = Schedule {
            last_tick: None,
            ..schedule.clone()
        };
        let args = [
            "schedule_upsert".to_owned(),
            schedule.name.clone(),
            serde_json::to_string(&stored)?,
            if schedule.enabled { "1" } else { "0" }.to_owned(),
        ];
        self.misc(&args).await.map(drop)
    }

    async fn get_schedule(&self, name: &str) -> StoreResult<Schedule> {
        self.read_schedule(name).await
    }

    async fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        self.read_schedules().await
    }

    async fn delete_schedule(&self, name: &str) -> StoreResult<()> {
        let reply = self.misc(&["schedule_delete".into(), name.into()]).await?;
        match text(&reply)?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::ScheduleNotFound(name.to_owned())),
        }
    }

    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> StoreResult<()> {
        let flag = if enabled { "1" } else { "0" };
        let reply = self
            .misc(&["schedule_enabled".into(), name.into(), flag.into()])
            .await?;
        match text(&reply)?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::ScheduleNotFound(name.to_owned())),
        }
    }

    async fn put_plugin(
        &self,
        name: &str,
        digest: &str,
        bytes: Vec<u8>,
    ) -> StoreResult<PluginRelease> {
        self.deploy_plugin(name, digest, bytes).await
    }

    async fn plugin_blob(&self, digest: &str) -> StoreResult<Option<Vec<u8>>> {
        self.stored_plugin(digest).await
    }

    async fn plugin_generation(&self) -> StoreResult<u64> {
        self.stored_plugin_generation().await
    }

    async fn plugin_releases(&self) -> StoreResult<PluginReleases> {
        self.stored_plugin_releases().await
    }

    async fn rollback_plugin(&self, name: &str) -> StoreResult<PluginRelease> {
        self.roll_back_plugin(name).await
    }

    async fn close(&self) -> StoreResult<()> {
        self.runner.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        Ok(())
    }
}

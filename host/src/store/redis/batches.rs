//! Batches on Redis: one script call per chunk of jobs (the first also
//! makes the batch); the holder, complete, reap, cancel and DLQ scripts
//! count each job's end and fire the callbacks (`common.lua`).

use super::RedisStore;
use super::codec::{self, array, opt_time, text};
use super::scripts::BATCH;
use crate::job::JobId;
use crate::store::batch::{self, Added, Batch, Counters, NewBatch, StartedBatch, StoredBatch};
use crate::store::{StoreError, StoreResult};

impl RedisStore {
    /// [`Store::start_batch`](crate::store::Store::start_batch).
    pub(super) async fn create_batch(&self, batch: NewBatch) -> StoreResult<StartedBatch> {
        let prepared = batch::prepare(&batch).map_err(StoreError::Invalid)?;
        let head = serde_json::to_string(&prepared.head)?;
        let (id, created, jobs) = batch::write(prepared, |id, stored, first, chunk| {
            let head = first.then(|| head.clone());
            async move {
                self.add_chunk(id, head.as_deref(), stored.key.as_deref(), chunk)
                    .await
            }
        })
        .await?;
        Ok(StartedBatch {
            batch: self.read_batch(id).await?,
            jobs,
            created,
        })
    }

    /// Writes one chunk of batch `id`'s jobs, the first (with the head's
    /// JSON) also making the batch and binding its `key` (see `batch.lua`).
    pub(super) async fn add_chunk(
        &self,
        id: JobId,
        head: Option<&str>,
        key: Option<&str>,
        chunk: Vec<(JobId, String)>,
    ) -> StoreResult<Added> {
        let mut args = Vec::with_capacity(5 + chunk.len() * 2);
        args.extend([
            "add".to_owned(),
            id.to_string(),
            head.unwrap_or_default().to_owned(),
            codec::span(self.config.idempotency_ttl).to_string(),
            chunk.len().to_string(),
        ]);
        for (job, payload) in chunk {
            args.push(job.to_string());
            args.push(payload);
        }
        let reply = self.run(&BATCH, &args).await?;
        let reply = array(&reply)?;
        let id_at = |i: usize| -> StoreResult<JobId> {
            text(&reply[i])?.parse().map_err(StoreError::backend)
        };
        match text(&reply[0])?.as_str() {
            "ok" => {
                self.signals.apply(b"w");
                Ok(Added::Written)
            }
            "bound" => {
                let count = |i: usize| -> StoreResult<u64> {
                    text(&reply[i])?
                        .parse()
                        .map_err(|e| StoreError::backend(format!("batch count: {e}")))
                };
                Ok(Added::BoundTo {
                    batch: id_at(1)?,
                    written: count(2)?,
                    total: count(3)?,
                })
            }
            "closed" => Ok(Added::Closed),
            "reused" => Err(batch::key_reused(key.unwrap_or_default(), id_at(1)?)),
            _ => Err(StoreError::BatchNotFound(id)),
        }
    }

    /// [`Store::cancel_batch`](crate::store::Store::cancel_batch).
    pub(super) async fn stop_batch(&self, id: JobId) -> StoreResult<Batch> {
        let reply = self
            .run(&BATCH, &["cancel".to_owned(), id.to_string()])
            .await?;
        if text(&array(&reply)?[0])? == "nf" {
            return Err(StoreError::BatchNotFound(id));
        }
        self.signals.apply(b"we");
        self.read_batch(id).await
    }

    /// [`Store::get_batch`](crate::store::Store::get_batch).
    pub(super) async fn read_batch(&self, id: JobId) -> StoreResult<Batch> {
        let reply = self
            .run(&BATCH, &["get".to_owned(), id.to_string()])
            .await?;
        let f = array(&reply)?;
        if f.len() < 11 {
            return Err(StoreError::BatchNotFound(id));
        }
        let head: StoredBatch = serde_json::from_str(&text(&f[0])?)?;
        let n = |i: usize| -> StoreResult<u64> { Ok(text(&f[i])?.parse().unwrap_or(0)) };
        let counters = Counters {
            total: n(1)?,
            enqueued: n(2)?,
            succeeded: n(3)?,
            dead: n(4)?,
            cancelled: n(5)?,
            complete_fired: text(&f[6])? == "1",
            success_fired: text(&f[7])? == "1",
            running: n(10)?,
        };
        let created = opt_time(&text(&f[8])?)?
            .ok_or_else(|| StoreError::backend("batch without a creation time"))?;
        let finished = opt_time(&text(&f[9])?)?;
        batch::view(id, &head, &counters, created, finished).map_err(StoreError::backend)
    }
}

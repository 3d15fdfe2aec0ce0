//! Chains on Redis: one script makes a chain with its first step; the
//! holder, reap, cancel and DLQ scripts move it on (`common.lua`).

use super::RedisStore;
use super::codec::{array, text};
use super::scripts::CHAIN;
use crate::job::{JobId, NewJob};
use crate::store::chain::{self, Chain, ChainStatus, StoredStep};
use crate::store::{StoreError, StoreResult};

impl RedisStore {
    /// [`Store::enqueue_chain`](crate::store::Store::enqueue_chain).
    pub(super) async fn create_chain(&self, steps: Vec<NewJob>) -> StoreResult<Chain> {
        let steps = chain::stored_steps(&steps).map_err(StoreError::Invalid)?;
        let id = JobId::generate();
        let args = vec![
            "create".to_owned(),
            id.to_string(),
            serde_json::to_string(&steps)?,
        ];
        self.run(&CHAIN, &args).await?;
        self.signals.apply(b"w");
        self.read_chain(id).await
    }

    /// [`Store::get_chain`](crate::store::Store::get_chain).
    pub(super) async fn read_chain(&self, id: JobId) -> StoreResult<Chain> {
        let reply = self
            .run(&CHAIN, &["get".to_owned(), id.to_string()])
            .await?;
        let reply = array(&reply)?;
        if reply.len() < 4 {
            return Err(StoreError::ChainNotFound(id));
        }
        let status = text(&reply[0])?;
        let status = ChainStatus::parse(&status)
            .ok_or_else(|| StoreError::backend(format!("chain status {status:?}")))?;
        let steps: Vec<StoredStep> = serde_json::from_str(&text(&reply[1])?)?;
        let statuses = reply[4..]
            .iter()
            .map(|v| Ok(text(v)?.parse().ok()))
            .collect::<StoreResult<Vec<_>>>()?;
        let time = |v| -> StoreResult<_> { super::codec::opt_time(&text(v)?) };
        Ok(Chain {
            id,
            status,
            created_at: time(&reply[2])?
                .ok_or_else(|| StoreError::backend("chain without a creation time"))?,
            finished_at: time(&reply[3])?,
            steps: chain::step_views(&steps, &statuses, status).map_err(StoreError::backend)?,
        })
    }
}

//! Terminating jobs on Redis: one script cancels a waiting job or records
//! the request on a running one, and answers which running jobs have one.

use super::codec::{array, text};
use super::scripts::TERMINATE;
use super::{RedisStore, refusal};
use crate::job::JobId;
use crate::store::{StoreError, StoreResult, Termination};

/// Ids one question carries.
const ASK_STEP: usize = 1000;

impl RedisStore {
    /// [`Store::terminate`](crate::store::Store::terminate).
    pub(super) async fn request_termination(&self, id: JobId) -> StoreResult<Termination> {
        let reply = self
            .run(&TERMINATE, &["request".into(), id.to_string()])
            .await?;
        let reply = array(&reply)?;
        match reply.first().map(text).transpose()?.as_deref() {
            Some("cancelled") => {
                self.signals.apply(b"e");
                Ok(Termination::Cancelled)
            }
            Some("requested") => {
                self.signals.apply(b"w");
                Ok(Termination::Requested)
            }
            _ => {
                refusal(reply, id, "terminate it")?;
                Err(StoreError::backend(
                    "unexpected answer to a terminate request",
                ))
            }
        }
    }

    /// [`Store::termination_requested`](crate::store::Store::termination_requested).
    pub(super) async fn ask_terminations(&self, jobs: &[JobId]) -> StoreResult<Vec<JobId>> {
        let mut found = Vec::new();
        for chunk in jobs.chunks(ASK_STEP) {
            let mut args = vec!["ask".to_owned()];
            args.extend(chunk.iter().map(JobId::to_string));
            let reply = self.run(&TERMINATE, &args).await?;
            for id in array(&reply)? {
                found.push(text(id)?.parse().map_err(StoreError::backend)?);
            }
        }
        Ok(found)
    }
}

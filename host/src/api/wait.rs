//! Long-polls (`…/wait?timeout=30s`): how long one may hold a request, and
//! the loop that re-reads a record on each commit that ends a job, so the
//! answer goes out within a millisecond or two of the end it waits for.

use std::future::Future;
use std::time::Duration;

use super::error::ApiError;
use crate::store::{Store, StoreResult};

/// Longest a `wait` may hold the request.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The hold a `timeout` query asks for: 30 s by default, at most
/// [`MAX_WAIT`].
pub fn hold(timeout: Option<&str>) -> Result<Duration, ApiError> {
    Ok(match timeout {
        Some(t) => crate::schedule::parse_duration(t)
            .map_err(|e| ApiError::bad_request(format!("timeout: {e}")))?,
        None => Duration::from_secs(30),
    }
    .min(MAX_WAIT))
}

/// Reads with `read` until `done` holds for what it read or `hold` has
/// passed; answers the last read. Woken by [`Store::job_ends`], not a
/// timer (a tick may be about another job: it just reads again).
pub async fn until<T, F, Fut>(
    store: &dyn Store,
    hold: Duration,
    mut read: F,
    done: impl Fn(&T) -> bool,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let deadline = tokio::time::Instant::now() + hold;
    let mut ends = store.job_ends();
    loop {
        // Mark what was seen before reading, so an end in between wakes us.
        ends.borrow_and_update();
        let value = read().await?;
        if done(&value) || tokio::time::Instant::now() >= deadline {
            return Ok(value);
        }
        tokio::select! {
            _ = ends.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

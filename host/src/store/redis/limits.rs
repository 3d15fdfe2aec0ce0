//! Flow limits on Redis (see [`crate::store::limits`]): a handler's running
//! jobs are the intersection of the running index and its handler index
//! (`ZINTERCARD`, Redis 7), its booked next start a field of `limits`. The
//! lease script reads and books them; this module encodes the limits for
//! the scripts and reads where each handler stands.

use super::RedisStore;
use super::codec::{array, int, text};
use super::scripts::READ;
use crate::store::{HandlerLimit, LimitState, StoreResult};

/// The limits as script arguments: their number, then per limit the
/// handler, the interval (µs, 0: none) and the concurrency (0: none).
pub(super) fn args(limits: &[HandlerLimit]) -> Vec<String> {
    let mut args = vec![limits.len().to_string()];
    for limit in limits {
        args.push(limit.handler.clone());
        args.push(limit.interval_micros().to_string());
        args.push(limit.concurrency.map_or(0, |n| n.get()).to_string());
    }
    args
}

impl RedisStore {
    pub(super) async fn read_limits(
        &self,
        limits: &[HandlerLimit],
    ) -> StoreResult<Vec<LimitState>> {
        if limits.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = vec!["limits".to_owned()];
        call.extend(args(limits));
        let reply = self.run(&READ, &call).await?;
        let reply = array(&reply)?;
        let now = int(&reply[0])?;
        limits
            .iter()
            .zip(reply[1..].chunks(3))
            .map(|(limit, state)| {
                let next = text(&state[1])?;
                Ok(LimitState {
                    handler: limit.handler.clone(),
                    running: int(&state[0])? as u64,
                    next_start: match next.parse::<i64>() {
                        Ok(at) => Some(self.to_host_time(at, now)?),
                        Err(_) => None,
                    },
                    held: int(&state[2])? == 1,
                })
            })
            .collect()
    }
}

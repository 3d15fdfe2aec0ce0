//! The reads of the Redis store that are plain commands (no store time):
//! queues, hosts, schedules; and the counts, which need it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::RedisStore;
use super::codec::{self, array, int, text};
use super::scripts::READ;
use crate::job::JobStatus;
use crate::store::{CountRow, Counts, HostRecord, QueueInfo, Schedule, StoreError, StoreResult};

impl RedisStore {
    /// Counts by queue × priority × status, with due scheduled jobs moved to
    /// pending (counted by the store's time, as the embedded store does).
    pub(super) async fn read_counts(&self) -> StoreResult<Counts> {
        let reply = self.run(&READ, &["counts".into()]).await?;
        let reply = array(&reply)?;
        let mut cells = BTreeMap::new();
        for pair in array(&reply[1])?.chunks(2) {
            let n = int(&pair[1])?;
            if n > 0 {
                cells.insert(codec::count_cell(&text(&pair[0])?)?, n as u64);
            }
        }
        for due in array(&reply[2])?.chunks(3) {
            let queue = text(&due[0])?;
            let rank = int(&due[1])? as u8;
            let priority = crate::job::Priority::from_rank(rank)
                .ok_or_else(|| StoreError::backend(format!("priority {rank}")))?;
            let n = int(&due[2])? as u64;
            let scheduled = (queue.clone(), priority, JobStatus::Scheduled);
            if let Some(c) = cells.get_mut(&scheduled) {
                *c = c.saturating_sub(n);
            }
            *cells
                .entry((queue, priority, JobStatus::Pending))
                .or_default() += n;
        }
        let rows = cells
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((queue, priority, status), count)| CountRow {
                queue,
                priority,
                status,
                count,
            })
            .collect();
        Ok(Counts { rows })
    }

    /// Every queue that held a job or was paused, by name.
    pub(super) async fn read_queues(&self) -> StoreResult<Vec<QueueInfo>> {
        let names: Vec<String> = self
            .query(redis::cmd("SMEMBERS").arg(self.key("queues")))
            .await?;
        let paused: BTreeMap<String, String> = self
            .query(redis::cmd("HGETALL").arg(self.key("paused")))
            .await?;
        let mut all: BTreeMap<String, bool> = names.into_iter().map(|n| (n, false)).collect();
        for (name, flag) in paused {
            all.insert(name, flag == "1");
        }
        Ok(all
            .into_iter()
            .map(|(name, paused)| QueueInfo { name, paused })
            .collect())
    }

    /// Hosts seen at or after `since`, newest heartbeat first.
    pub(super) async fn read_hosts(&self, since: DateTime<Utc>) -> StoreResult<Vec<HostRecord>> {
        let ids: Vec<String> = self
            .query(
                redis::cmd("ZREVRANGEBYSCORE")
                    .arg(self.key("hosts_seen"))
                    .arg("+inf")
                    .arg(codec::micros(since)),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<String>> = self
            .query(redis::cmd("HMGET").arg(self.key("hosts")).arg(&ids))
            .await?;
        records
            .into_iter()
            .flatten()
            .map(|r| Ok(serde_json::from_str(&r)?))
            .collect()
    }

    /// One schedule with its last tick and enabled flag, in one read.
    pub(super) async fn read_schedule(&self, name: &str) -> StoreResult<Schedule> {
        let (json, last, off): (Option<String>, Option<String>, bool) = self
            .query(
                redis::cmd("EVAL")
                    .arg(
                        "return {redis.call('HGET', KEYS[1], ARGV[1]), \
                         redis.call('HGET', KEYS[2], ARGV[1]), redis.call('HEXISTS', KEYS[3], ARGV[1])}",
                    )
                    .arg(3)
                    .arg(self.key("schedules"))
                    .arg(self.key("sched_last"))
                    .arg(self.key("sched_off"))
                    .arg(name),
            )
            .await?;
        let json = json.ok_or_else(|| StoreError::ScheduleNotFound(name.to_owned()))?;
        self.schedule_from(&json, last.as_ref(), off)
    }

    /// All schedules by name.
    pub(super) async fn read_schedules(&self) -> StoreResult<Vec<Schedule>> {
        let all: BTreeMap<String, String> = self
            .query(redis::cmd("HGETALL").arg(self.key("schedules")))
            .await?;
        let last: BTreeMap<String, String> = self
            .query(redis::cmd("HGETALL").arg(self.key("sched_last")))
            .await?;
        let off: BTreeMap<String, String> = self
            .query(redis::cmd("HGETALL").arg(self.key("sched_off")))
            .await?;
        all.iter()
            .map(|(name, json)| self.schedule_from(json, last.get(name), off.contains_key(name)))
            .collect()
    }

    /// A schedule as stored, with the flag and last tick kept beside it.
    fn schedule_from(&self, json: &str, last: Option<&String>, off: bool) -> StoreResult<Schedule> {
        let mut s: Schedule = serde_json::from_str(json)?;
        s.enabled = !off;
        s.last_tick = match last {
            Some(t) => codec::opt_time(t)?,
            None => None,
        };
        Ok(s)
    }
}

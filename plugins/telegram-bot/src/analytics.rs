//! Channel analytics: the subscriber count from the Bot API
//! (`getChatMemberCount`), the active subscribers estimated at a share of
//! it (45 % as the seed says, `active_share_percent`), and the post price
//! from them by the formula in the settings:
//!
//! `price_nano = price_base_nano + active_subscribers * price_per_1000_active_nano / 1000`
//!
//! in integer nanotons (rounded down).

use serde::{Deserialize, Serialize};
use serde_json::json;
use taskhost_sdk::db::{self, Value};
use taskhost_sdk::{Job, JobError, log};

use crate::telegram::{self, Failure};
use crate::{DB, now_ms, settings};

/// One channel (the seed's on-demand form) or, without `channel_id`, every
/// channel not updated within `analytics_fresh_seconds` (the schedule's).
#[derive(Deserialize, Default)]
pub struct Analytics {
    pub channel_id: Option<String>,
    /// Update even if the figures are fresh.
    #[serde(default)]
    pub force_update: bool,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    500
}

/// The new figures of one channel.
#[derive(Serialize)]
pub struct Figures {
    pub channel_id: String,
    pub subscribers: i64,
    pub active_subscribers: i64,
    pub price_nano: i64,
}

#[derive(Serialize, Default)]
pub struct Report {
    pub updated: Vec<Figures>,
    /// Channels skipped as fresh.
    pub fresh: usize,
    /// Channels Telegram refused (not found, bot not a member), with why.
    pub errors: Vec<String>,
}

/// The formula's settings, read once per run.
struct Formula {
    share_percent: i64,
    base_nano: i64,
    per_1000_active_nano: i64,
}

impl Formula {
    fn load() -> Result<Formula, JobError> {
        Ok(Formula {
            share_percent: settings::integer("active_share_percent", 45)?,
            base_nano: settings::integer("price_base_nano", 0)?,
            per_1000_active_nano: settings::integer("price_per_1000_active_nano", 0)?,
        })
    }

    fn figures(&self, channel_id: &str, subscribers: i64) -> Result<Figures, JobError> {
        let overflow = || JobError::permanent(format!("channel {channel_id}: the price overflows"));
        let active = subscribers
            .checked_mul(self.share_percent)
            .ok_or_else(overflow)?
            / 100;
        let price = active
            .checked_mul(self.per_1000_active_nano)
            .ok_or_else(overflow)?
            / 1000;
        Ok(Figures {
            channel_id: channel_id.to_string(),
            subscribers,
            active_subscribers: active,
            price_nano: self.base_nano.checked_add(price).ok_or_else(overflow)?,
        })
    }
}

pub fn run(job: &Job, a: Analytics) -> Result<Report, JobError> {
    let formula = Formula::load()?;
    let now = now_ms(job);
    let fresh_after = now - settings::integer("analytics_fresh_seconds", 6 * 3600)? * 1000;
    let mut report = Report::default();
    let channels: Vec<String> = match &a.channel_id {
        Some(id) if id.trim().is_empty() => {
            return Err(JobError::permanent("channel_id must not be empty"));
        }
        Some(id) => {
            if !a.force_update {
                let rows = db::query(
                    DB,
                    "SELECT updated_at FROM channels WHERE id = $1 AND updated_at > $2",
                    &[Value::Text(id.clone()), Value::Integer(fresh_after)],
                )?;
                if !rows.rows.is_empty() {
                    report.fresh = 1;
                    return Ok(report);
                }
            }
            vec![id.clone()]
        }
        None => {
            let cutoff = if a.force_update {
                i64::MAX
            } else {
                fresh_after
            };
            let rows = db::query(
                DB,
                "SELECT id FROM channels WHERE updated_at <= $1 ORDER BY updated_at, id LIMIT $2",
                &[Value::Integer(cutoff), Value::Integer(a.limit.into())],
            )?;
            rows.rows
                .iter()
                .filter_map(|r| match r.first() {
                    Some(Value::Text(t)) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        }
    };
    for channel in channels {
        let count = match telegram::call("getChatMemberCount", &json!({ "chat_id": channel })) {
            Ok(result) => result.as_i64().ok_or_else(|| {
                JobError::retry(format!(
                    "getChatMemberCount for {channel} returned {result}, not a count"
                ))
            })?,
            Err(Failure::Refused(code, description)) if a.channel_id.is_none() => {
                let note = format!("Telegram refused {channel}: {code} {description}");
                log::warn(&note);
                db::execute(
                    DB,
                    "UPDATE channels SET last_error = $1 WHERE id = $2",
                    &[Value::Text(note.clone()), Value::Text(channel.clone())],
                )?;
                report.errors.push(note);
                continue;
            }
            Err(f) => return Err(f.into()),
        };
        let figures = formula.figures(&channel, count)?;
        db::execute(
            DB,
            "INSERT INTO channels (id, subscribers, active_subscribers, price_nano, updated_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (id) DO UPDATE SET \
             subscribers = excluded.subscribers, active_subscribers = excluded.active_subscribers, \
             price_nano = excluded.price_nano, updated_at = excluded.updated_at, last_error = NULL",
            &[
                Value::Text(channel.clone()),
                Value::Integer(figures.subscribers),
                Value::Integer(figures.active_subscribers),
                Value::Integer(figures.price_nano),
                Value::Integer(now),
            ],
        )?;
        report.updated.push(figures);
    }
    Ok(report)
}

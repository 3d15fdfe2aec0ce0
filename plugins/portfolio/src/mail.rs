//! The daily summary mail (seed 001's `send_daily_summary_emails`): each
//! user with `daily_summary = 1` gets one mail a day listing their
//! wallets' balances, through the mail provider's HTTP API
//! (`POST <mail_url>/v1/messages`, `Authorization: Bearer` the secret
//! `mail_api_key`, which the host puts in).
//!
//! Once per user and day: a user already in `summary_emails` for the day is
//! skipped, and each request carries `Idempotency-Key: summary:<user>:<day>`,
//! so a mail sent whose record was lost (the job died in between) is not
//! sent again by the provider. The day is the job's enqueue day (UTC),
//! which its retries keep. A 429 waits for the provider's `Retry-After`.

use serde::Serialize;
use serde_json::json;
use taskhost_sdk::db::{self, Value};
use taskhost_sdk::{Job, JobError, http};

use crate::time::DAY_MS;
use crate::{DB, settings, sync};

#[derive(Serialize, Default)]
pub struct Sent {
    pub day: i64,
    pub sent: Vec<i64>,
    /// Users who already had today's mail.
    pub already: Vec<i64>,
}

pub fn daily(job: &Job, _: serde_json::Value) -> Result<Sent, JobError> {
    let base = settings::base_url("mail_url")?;
    let from = settings::required("mail_from")?;
    let day = job.enqueued_at as i64 / DAY_MS;
    let users = db::query(
        DB,
        "SELECT u.id, u.email, s.day FROM users u \
         LEFT JOIN summary_emails s ON s.user_id = u.id AND s.day = $1 \
         WHERE u.daily_summary = 1 ORDER BY u.id",
        &[Value::Integer(day)],
    )?;
    let mut out = Sent {
        day,
        ..Default::default()
    };
    for row in &users.rows {
        let (Some(Value::Integer(user)), Some(Value::Text(email))) = (row.first(), row.get(1))
        else {
            return Err(JobError::permanent(
                "users.id and users.email must be an integer and a text",
            ));
        };
        if !matches!(row.get(2), Some(Value::Null) | None) {
            out.already.push(*user);
            continue;
        }
        let text = summary(*user)?;
        let reply = http::send(&http::Request {
            method: "POST".into(),
            url: format!("{base}/v1/messages"),
            headers: vec![
                ("authorization".into(), "Bearer {secret:mail_api_key}".into()),
                ("content-type".into(), "application/json".into()),
                ("idempotency-key".into(), format!("summary:{user}:{day}")),
            ],
            body: Some(
                json!({ "from": from, "to": email, "subject": "Your daily portfolio summary", "text": text })
                    .to_string()
                    .into_bytes(),
            ),
            timeout_ms: Some(10_000),
        })?;
        sync::check(&reply).map_err(|e| match e {
            JobError::Permanent(m) => JobError::permanent(format!("mail to user {user}: {m}")),
            e => e,
        })?;
        let id = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(String::from))
            .unwrap_or_default();
        db::execute(
            DB,
            "INSERT INTO summary_emails (user_id, day, message_id, sent_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, day) DO NOTHING",
            &[
                Value::Integer(*user),
                Value::Integer(day),
                Value::Text(id),
                Value::Integer(crate::now_ms(job)),
            ],
        )?;
        out.sent.push(*user);
    }
    Ok(out)
}

/// One line per wallet and asset: "Main: BTC 150000000".
fn summary(user: i64) -> Result<String, JobError> {
    let rows = db::query(
        DB,
        "SELECT w.name, b.asset, b.amount FROM wallets w JOIN wallet_balances b ON b.wallet_id = w.id \
         WHERE w.user_id = $1 ORDER BY w.name, b.asset",
        &[Value::Integer(user)],
    )?;
    let mut lines = vec!["Your balances today:".to_string()];
    for row in &rows.rows {
        let cell = |i: usize| match row.get(i) {
            Some(Value::Text(t)) => t.clone(),
            Some(Value::Integer(n)) => n.to_string(),
            Some(Value::Real(f)) => f.to_string(),
            _ => String::new(),
        };
        lines.push(format!("{}: {} {}", cell(0), cell(1), cell(2)));
    }
    Ok(lines.join("\n"))
}

//! Payment retry: the sweep, and one retry of one payment at the provider.
//!
//! The provider is called with the payment id as its `Idempotency-Key`, so
//! a retry after a lost answer (the provider took the payment, the answer
//! timed out) is answered with the first charge instead of paying twice.

use serde::Serialize;
use serde_json::json;
use taskhost_sdk::db::Value;
use taskhost_sdk::{HostError, Job, JobError, config, http};

use crate::rows::{self, Change, Kind, Row, SweepReport};
use crate::{Sweep, Target};

const PAYMENTS: Kind = Kind {
    table: "payments",
    entity: "payment",
    handler: "payment.retry",
};

/// Enqueues one `payment.retry` job per failed payment due for retry.
pub fn sweep(job: &Job, p: Sweep) -> Result<SweepReport, JobError> {
    rows::sweep(job, &PAYMENTS, p.limit)
}

/// What a retry did with the payment.
#[derive(Serialize)]
pub struct Paid {
    pub id: String,
    pub status: &'static str,
    pub provider_ref: Option<String>,
}

/// Charges one payment at the provider and records how it went.
pub fn retry(job: &Job, target: Target) -> Result<Paid, JobError> {
    let id = target.id;
    let row = rows::load(&PAYMENTS, &id, &["amount", "currency", "user_id"])?;
    if row.status == "completed" {
        return Ok(Paid {
            id,
            status: "completed",
            provider_ref: None,
        });
    }
    if row.status == "failed_permanent" {
        return Err(JobError::permanent(format!(
            "payment {id} was refused for good by the provider"
        )));
    }
    let provider = config::get("provider_url")?;
    let field = |i: usize| row.fields.get(i).and_then(rows::text).unwrap_or_default();
    let body = json!({
        "payment_id": id,
        "amount": field(0),
        "currency": field(1),
        "user_id": field(2),
    });
    let request = http::Request {
        method: "POST".into(),
        url: format!("{}/v1/charges", provider.trim_end_matches('/')),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                "authorization".into(),
                "Bearer {secret:provider_api_key}".into(),
            ),
            ("idempotency-key".into(), id.clone()),
        ],
        body: Some(body.to_string().into_bytes()),
        timeout_ms: None,
    };
    match http::send(&request) {
        Ok(r) if (200..300).contains(&r.status) => {
            let reference = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|b| b.get("id").and_then(|v| v.as_str()).map(String::from));
            let sets = vec![(
                "provider_ref",
                reference.clone().map_or(Value::Null, Value::Text),
            )];
            let note = format!("provider answered {}", r.status);
            change(job, &id, &row, "completed", sets, note)?;
            Ok(Paid {
                id,
                status: "completed",
                provider_ref: reference,
            })
        }
        Ok(r) if r.status == 429 => {
            let after =
                header(&r.headers, "retry-after").and_then(|v| v.trim().parse::<u64>().ok());
            let note = format!("provider rate-limited the charge (429, Retry-After {after:?})");
            rows::failed_attempt(&PAYMENTS, job, &id, &row, &note)?;
            Err(match after {
                Some(s) => JobError::retry_after(note, s * 1000),
                None => JobError::retry(note),
            })
        }
        Ok(r) if (400..500).contains(&r.status) => {
            let note = format!(
                "provider refused the charge: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            change(job, &id, &row, "failed_permanent", vec![], note.clone())?;
            Err(JobError::permanent(note))
        }
        Ok(r) => {
            let note = format!("provider answered {}", r.status);
            rows::failed_attempt(&PAYMENTS, job, &id, &row, &note)?;
            Err(JobError::retry(note))
        }
        Err(e @ (HostError::Denied(_) | HostError::Invalid(_))) => Err(e.into()),
        Err(e) => {
            let note = format!("provider unreachable: {}", rows::host_error(&e));
            rows::failed_attempt(&PAYMENTS, job, &id, &row, &note)?;
            Err(JobError::retry(note))
        }
    }
}

/// A header's value by case-insensitive name.
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn change(
    job: &Job,
    id: &str,
    row: &Row,
    to: &str,
    sets: Vec<(&str, Value)>,
    note: String,
) -> Result<(), JobError> {
    rows::transition(&PAYMENTS, job, id, row, Change { to, sets, note })
}

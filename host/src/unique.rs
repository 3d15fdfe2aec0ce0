//! Unique jobs: a handler configured `unique = "while-active"` has at most
//! one waiting or running job per unique key; an enqueue while one is
//! active adds nothing and answers that job's id. The key is the caller's
//! `unique_key`, or else derived from the payload, so "one `sync_portfolio`
//! per user" is `unique_key = user id`, and identical payloads are one job.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A handler's uniqueness policy (`[handlers."name"] unique = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UniquePolicy {
    /// While a job with the same key is scheduled, pending, running or
    /// retrying, a new one is refused and the active one's id answered.
    WhileActive,
}

/// The key a job is unique under when the caller gives none: `payload:`
/// and the SHA-256 of the payload's canonical JSON (object members sorted
/// at every level), so the same payload written in another member order is
/// the same key, and a large payload makes a short key.
pub fn payload_key(payload: &Value) -> String {
    let mut text = String::new();
    canonical(payload, &mut text);
    format!("payload:{:x}", Sha256::digest(text.as_bytes()))
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn payload_keys_ignore_member_order_and_tell_payloads_apart() {
        let a = payload_key(&json!({"user": 1, "deep": {"x": [1, {"b": 2, "a": 1}], "y": null}}));
        let b = payload_key(&json!({"deep": {"y": null, "x": [1, {"a": 1, "b": 2}]}, "user": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            payload_key(&json!({"user": 2, "deep": {"x": [1, {"b": 2, "a": 1}], "y": null}}))
        );
        assert_ne!(payload_key(&json!([1, 2])), payload_key(&json!([2, 1])));
        assert!(a.starts_with("payload:") && a.len() == "payload:".len() + 64);
    }

    #[test]
    fn the_policy_is_spelled_while_active() {
        #[derive(Deserialize)]
        struct H {
            unique: UniquePolicy,
        }
        let h: H = toml::from_str("unique = \"while-active\"").unwrap();
        assert_eq!(h.unique, UniquePolicy::WhileActive);
        assert!(toml::from_str::<H>("unique = \"always\"").is_err());
    }
}

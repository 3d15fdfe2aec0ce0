//! The plugin's settings (`[plugins.telegram_bot] settings`): required
//! ones, and whole numbers with a default when the config leaves them out.

use taskhost_sdk::{HostError, JobError, config};

/// A setting the job cannot run without; missing is permanent (no retry
/// adds it to the config).
pub fn required(key: &str) -> Result<String, JobError> {
    config::get(key).map_err(|e| match e {
        HostError::Denied(_) => JobError::permanent(format!(
            "setting {key:?} is missing from [plugins.telegram_bot] settings"
        )),
        e => e.into(),
    })
}

/// A whole-number setting, `default` when the config does not declare it;
/// a value that is not a whole number is permanent, naming key and value.
pub fn integer(key: &str, default: i64) -> Result<i64, JobError> {
    match config::get(key) {
        Ok(text) => text.trim().parse().map_err(|_| {
            JobError::permanent(format!(
                "setting {key:?} must be a whole number, got {text:?}"
            ))
        }),
        Err(HostError::Denied(_)) => Ok(default),
        Err(e) => Err(e.into()),
    }
}

/// A base URL setting without its trailing slash.
pub fn base_url(key: &str) -> Result<String, JobError> {
    Ok(required(key)?.trim_end_matches('/').to_string())
}

/// Percent-encodes a value for a URL path segment or query value.
pub fn url_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

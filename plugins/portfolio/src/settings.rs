//! The plugin's settings (`[plugins.portfolio.settings]`): required ones,
//! whole numbers and switches with a default when the config leaves them
//! out. A value of the wrong shape is permanent, naming key and value.

use taskhost_sdk::{HostError, JobError, config};

fn get(key: &str) -> Result<Option<String>, JobError> {
    match config::get(key) {
        Ok(text) => Ok(Some(text)),
        Err(HostError::Denied(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A setting the job cannot run without.
pub fn required(key: &str) -> Result<String, JobError> {
    get(key)?.ok_or_else(|| {
        JobError::permanent(format!(
            "setting {key:?} is missing from [plugins.portfolio.settings]"
        ))
    })
}

/// A base URL setting without its trailing slash.
pub fn base_url(key: &str) -> Result<String, JobError> {
    Ok(required(key)?.trim_end_matches('/').to_string())
}

pub fn integer(key: &str, default: i64) -> Result<i64, JobError> {
    match get(key)? {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            JobError::permanent(format!(
                "setting {key:?} must be a whole number, got {text:?}"
            ))
        }),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), as the seed's `.env` writes them.
pub fn switch(key: &str, default: bool) -> Result<bool, JobError> {
    match get(key)? {
        None => Ok(default),
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(JobError::permanent(format!(
                "setting {key:?} must be true or false, got {text:?}"
            ))),
        },
    }
}

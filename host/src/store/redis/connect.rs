//! Where the Redis store connects: the URL with credentials from the
//! config, the form of it that may be shown (never the password), and the
//! connections themselves.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::tls::RedisTls;
use crate::store::{StoreError, StoreResult};

/// How long one command may take before it fails. No command here blocks
/// (waiters use their own pub/sub connection), so only a stalled server
/// reaches it; the redis-rs default (half a second) would fail a large
/// batch on a busy machine.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            u.to_string()
        }
        // Not a URL: show only what precedes any credentials.
        Err(_) => match url.split_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => url.to_owned(),
        },
    }
}

/// The URL to connect with: `url` plus the configured username and
/// password. `rediss://` connects through rustls.
pub(super) fn connection_url(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> StoreResult<String> {
    let shown = redact(url);
    let mut u = url::Url::parse(url)
        .map_err(|e| StoreError::Invalid(format!("Redis URL {shown} is not a URL: {e}")))?;
    match u.scheme() {
        "redis" | "rediss" | "redis+unix" | "unix" => {}
        other => {
            return Err(StoreError::Invalid(format!(
                "Redis URL {shown} has scheme {other:?}; expected redis://host:port/db"
            )));
        }
    }
    if let Some(user) = username {
        u.set_username(user).map_err(|()| {
            StoreError::Invalid(format!("Redis URL {shown} cannot carry a username"))
        })?;
    }
    if let Some(pass) = password {
        u.set_password(Some(pass)).map_err(|()| {
            StoreError::Invalid(format!("Redis URL {shown} cannot carry a password"))
        })?;
    }
    Ok(u.to_string())
}

/// `e` as a message naming the redacted URL; an untrusted TLS certificate
/// or a missing client certificate says so in words, with what to do.
fn connect_error(shown: &str, e: &redis::RedisError) -> StoreError {
    let text = e.to_string();
    if text.contains("invalid peer certificate") {
        return StoreError::backend(format!(
            "cannot connect to Redis at {shown}: the server's TLS certificate was not trusted \
             ({text}); trust the CA that signed it with [store] tls_ca = \"ca.pem\""
        ));
    }
    if text.contains("CertificateRequired") {
        return StoreError::backend(format!(
            "cannot connect to Redis at {shown}: the server wants a client certificate \
             ({text}); give one with [store] tls_cert and tls_key"
        ));
    }
    // The error text never holds the URL; name the redacted one.
    StoreError::backend(format!("cannot connect to Redis at {shown}: {text}"))
}

/// Opens the client and its command connection. Connects once plainly
/// first, so a wrong address, password or certificate fails at once with
/// the real reason instead of after the manager's reconnect attempts.
pub(super) async fn connect(
    url: &str,
    tls: &RedisTls,
) -> StoreResult<(redis::Client, ConnectionManager)> {
    let shown = redact(url);
    let fail = |e: redis::RedisError| connect_error(&shown, &e);
    let client = super::tls::client(url, tls)?;
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| {
            StoreError::backend(format!(
                "cannot connect to Redis at {shown}: no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?;
    let mut probe = probe.map_err(fail)?;
    redis::cmd("PING")
        .query_async::<()>(&mut probe)
        .await
        .map_err(fail)?;
    drop(probe);
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_max_delay(Duration::from_secs(2));
    let manager = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(fail)?;
    Ok((client, manager))
}

/// Whether an error means the connection broke (the call may be retried
/// once the manager has reconnected), rather than a refusal by Redis.
pub(super) fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal() || e.is_timeout()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let shown = redact("redis://app:s3cret@db.internal:6380/2");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal:6380"), "{shown}");
        assert!(!redact("not a url:s3cret@x").contains("s3cret"));
        let options = super::super::RedisOptions {
            password: Some("hunter2".into()),
            ..super::super::RedisOptions::new("redis://app:s3cret@db.internal:6380/2")
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("s3cret")
                && !shown.contains("hunter2")
                && shown.contains("db.internal"),
            "{shown}"
        );
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        let err = connection_url("http://u:pw@h:6379", None, None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("http://u@h:6379") && !text.contains("pw"),
            "{text}"
        );
        assert!(connection_url("rediss://h:1/0", None, None).is_ok());
        let url = connection_url("redis://h:1/0", Some("app"), Some("p w")).unwrap();
        assert_eq!(url, "redis://app:p%20w@h:1/0");
    }
}

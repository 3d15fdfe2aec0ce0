//! `[databases.NAME]`: the SQL databases the `db` capability reaches (the
//! grants live in `[plugins.NAME] databases = { NAME = "read" | "write" }`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::units::serde_units;

/// One named database: a SQLite file or a PostgreSQL server.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// A SQLite file, relative to the config file's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<PathBuf>,
    /// A PostgreSQL connection URL (`postgres://user:password@host:port/db`)
    /// used for `write` grants.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted"
    )]
    pub postgres: Option<String>,
    /// The URL `read` grants connect with. Its role must hold only SELECT
    /// privileges: that role, not the SQL, is what keeps a reader from
    /// writing. Required when any plugin has a `read` grant.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_redacted"
    )]
    pub postgres_readonly: Option<String>,
    /// How long one call (a query, an execute, a whole transaction) may run.
    #[serde(with = "serde_units::duration")]
    pub statement_timeout: Duration,
    /// The most rows one query may return; more is an error, not a truncation.
    pub max_rows: u64,
    /// The most bytes of values one SQLite query may return (and the
    /// largest string or blob a statement may build), e.g. `"16MiB"`; more
    /// is an error, so a query cannot make the host hold far more than the
    /// guest could ever receive.
    #[serde(with = "serde_units::size")]
    pub max_bytes: u64,
    /// Connections per pool (SQLite and PostgreSQL keep one pool for readers
    /// and one for writers), shared by every job.
    pub pool_size: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            sqlite: None,
            postgres: None,
            postgres_readonly: None,
            statement_timeout: Duration::from_secs(5),
            max_rows: 10_000,
            max_bytes: 16 << 20,
            pool_size: 8,
        }
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("sqlite", &self.sqlite)
            .field("postgres", &self.postgres.as_deref().map(redact_url))
            .field(
                "postgres_readonly",
                &self.postgres_readonly.as_deref().map(redact_url),
            )
            .field("statement_timeout", &self.statement_timeout)
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// What a plugin may do with one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbAccess {
    /// Queries through a connection the database itself keeps read-only.
    Read,
    /// Queries, executes and transactions.
    Write,
}

/// A connection string with its password replaced by `***`, for logs,
/// errors and config dumps. Handles URLs and `key=value` strings.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => authority.to_string(),
            },
            None => authority.to_string(),
        };
        // A password may also travel as a query parameter.
        let tail = redact_password_param(tail);
        format!("{scheme}://{authority}{tail}")
    } else {
        redact_password_param(url)
    }
}

fn redact_password_param(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match lower.find("password=") {
        Some(i) => {
            let start = i + "password=".len();
            let end = text[start..]
                .find(['&', ' '])
                .map_or(text.len(), |j| start + j);
            format!("{}***{}", &text[..start], &text[end..])
        }
        None => text.to_string(),
    }
}

fn serialize_redacted<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&redact_url(url)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("postgres://app:s3cret@127.0.0.1:5432/app"),
            "postgres://app:***@127.0.0.1:5432/app"
        );
        assert_eq!(
            redact_url("postgres://app@127.0.0.1/app?password=s3cret&x=1"),
            "postgres://app@127.0.0.1/app?password=***&x=1"
        );
        assert_eq!(
            redact_url("host=127.0.0.1 user=app password=s3cret dbname=app"),
            "host=127.0.0.1 user=app password=*** dbname=app"
        );
        let settings = DatabaseSettings {
            postgres: Some("postgres://app:s3cret@h/db".into()),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn grants_parse_from_toml() {
        #[derive(Deserialize)]
        struct T {
            databases: std::collections::BTreeMap<String, DbAccess>,
        }
        let t: T = toml::from_str("databases = { app = \"write\", reports = \"read\" }").unwrap();
        assert_eq!(t.databases["app"], DbAccess::Write);
        assert_eq!(t.databases["reports"], DbAccess::Read);
        assert!(toml::from_str::<T>("databases = { app = \"admin\" }").is_err());
    }
}

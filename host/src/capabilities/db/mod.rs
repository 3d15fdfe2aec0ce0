//! `db`: SQL on the databases `[databases.NAME]` names, for the plugins
//! whose `[plugins.NAME] databases = { NAME = "read" | "write" }` grants
//! them. No grant: `denied`, logged and counted.
//!
//! A `read` grant is enforced by the database, never by reading the SQL:
//! SQLite files are opened with `SQLITE_OPEN_READ_ONLY`, PostgreSQL is
//! reached through `postgres_readonly`, a role that holds only SELECT
//! privileges. SQLite connections handed to plugins cannot `ATTACH` other
//! files (the limit is 0 and the authorizer refuses it) nor load extensions,
//! so the host's own store stays out of reach.
//!
//! A `maintenance` grant (`[plugins.NAME] maintenance = ["app"]`) allows
//! `VACUUM` and `ANALYZE` through `db.execute`, and nothing else; without
//! it they are `denied` (see [`maintenance`]).
//!
//! Every call is charged to the job's host-call budget, runs under the
//! database's `statement_timeout`, returns at most `max_rows` rows, and
//! runs in a `db` span that carries the job id. A statement that fails is a
//! `failed` value for the plugin, never a trap.

mod maintenance;
mod postgres;
mod sqlite;
mod value;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::Instrument;

use super::HostError;
use super::bindings::taskhost::plugin::db::{Host, Rows, Statement, Value};
use crate::config::{Config, DatabaseSettings, DbAccess};
use crate::runtime::JobState;

/// What one call asks of a database.
pub(crate) enum Op {
    Query {
        sql: String,
        params: Vec<Value>,
    },
    Execute {
        sql: String,
        params: Vec<Value>,
    },
    Transaction {
        statements: Vec<Statement>,
    },
    /// `VACUUM` or `ANALYZE`, checked by [`maintenance::classify`]; runs
    /// outside any transaction.
    Maintenance {
        sql: String,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Query { .. } => "query",
            Op::Execute { .. } => "execute",
            Op::Transaction { .. } => "transaction",
            Op::Maintenance { .. } => "maintenance",
        }
    }
}

/// What a call returns, by [`Op`].
pub(crate) enum OpResult {
    Rows(Rows),
    Affected(u64),
    AffectedEach(Vec<u64>),
}

/// The limits one database's calls run under.
#[derive(Debug, Clone)]
pub(crate) struct CallLimits {
    pub db: String,
    pub timeout: Duration,
    pub max_rows: u64,
    /// The most bytes of values one query may return (SQLite).
    pub max_bytes: u64,
}

impl CallLimits {
    pub fn timeout_error(&self) -> HostError {
        HostError::Timeout(format!(
            "database {:?}: the call exceeded the statement timeout of {}",
            self.db,
            crate::units::format_duration(self.timeout)
        ))
    }

    pub fn too_many_bytes(&self) -> HostError {
        HostError::Failed(format!(
            "database {:?}: more than {} bytes (max_bytes) in one value or in one query's result; \
             select fewer or smaller values, or page through the result",
            self.db, self.max_bytes
        ))
    }

    pub fn too_many_rows(&self) -> HostError {
        HostError::Failed(format!(
            "database {:?}: the query returned more than {} rows (max_rows); \
             add a LIMIT or page through the result",
            self.db, self.max_rows
        ))
    }
}

/// What a value costs the host to hold: its payload, or 8 for a number.
pub(crate) fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(t) => t.len() as u64,
        Value::Blob(b) => b.len() as u64,
    }
}

enum Backend {
    Sqlite(sqlite::SqliteDb),
    Postgres(postgres::PostgresDb),
}

struct Database {
    limits: CallLimits,
    backend: Backend,
}

impl Database {
    async fn run(&self, access: DbAccess, op: Op) -> Result<OpResult, HostError> {
        match &self.backend {
            Backend::Sqlite(db) => db.run(access, op, &self.limits).await,
            Backend::Postgres(db) => db.run(access, op, &self.limits).await,
        }
    }
}

/// Counters over every plugin's `db` calls.
#[derive(Debug, Default)]
pub struct DbCounters {
    pub calls: AtomicU64,
    pub denied: AtomicU64,
    pub failed: AtomicU64,
}

/// The configured databases and their pools, shared by every job.
#[derive(Default)]
pub struct Databases {
    by_name: BTreeMap<String, Arc<Database>>,
    counters: DbCounters,
}

impl Databases {
    /// Opens (lazily) every configured database and checks every grant:
    /// a grant of an unknown database, a read grant of a missing SQLite
    /// file or of a PostgreSQL database without `postgres_readonly`, and
    /// a SQLite file that is the host's own store are errors.
    pub fn from_config(config: &Config) -> Result<Databases, String> {
        for (plugin, grants) in &config.plugins {
            for db in grants.databases.keys().chain(&grants.maintenance) {
                if !config.databases.contains_key(db) {
                    return Err(format!(
                        "[plugins.{plugin}] grants database {db:?}, which no [databases.{db}] table defines"
                    ));
                }
            }
        }
        let access = |name: &str| -> Vec<DbAccess> {
            config
                .plugins
                .values()
                .filter_map(|g| g.databases.get(name).copied())
                .collect()
        };
        // A SQLite file some plugin may write is created first, so that a
        // read grant of the same file (under another name) finds it.
        for (name, settings) in &config.databases {
            if let (Some(path), None) = (&settings.sqlite, &settings.postgres)
                && access(name).contains(&DbAccess::Write)
            {
                sqlite::create_missing(&config.resolve(path), &config.store_path())
                    .map_err(|e| format!("[databases.{name}]: {e}"))?;
            }
        }
        let mut by_name = BTreeMap::new();
        for (name, settings) in &config.databases {
            let access = access(name);
            let database = open(config, name, settings, &access)
                .map_err(|e| format!("[databases.{name}]: {e}"))?;
            by_name.insert(name.clone(), Arc::new(database));
        }
        Ok(Databases {
            by_name,
            counters: DbCounters::default(),
        })
    }

    pub fn counters(&self) -> &DbCounters {
        &self.counters
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

fn open(
    config: &Config,
    name: &str,
    settings: &DatabaseSettings,
    access: &[DbAccess],
) -> Result<Database, String> {
    if settings.pool_size == 0 {
        return Err("pool_size must be at least 1".into());
    }
    if settings.max_rows == 0 {
        return Err("max_rows must be at least 1".into());
    }
    if settings.max_bytes == 0 {
        return Err("max_bytes must be at least 1".into());
    }
    if settings.statement_timeout.is_zero() {
        return Err("statement_timeout must be positive".into());
    }
    let limits = CallLimits {
        db: name.to_string(),
        timeout: settings.statement_timeout,
        max_rows: settings.max_rows,
        max_bytes: settings.max_bytes,
    };
    let backend = match (&settings.sqlite, &settings.postgres) {
        (Some(path), None) => {
            if settings.postgres_readonly.is_some() {
                return Err("postgres_readonly belongs with postgres, not sqlite".into());
            }
            Backend::Sqlite(sqlite::SqliteDb::open(
                &config.resolve(path),
                &config.store_path(),
                settings.pool_size,
                settings.max_bytes,
                access,
            )?)
        }
        (None, Some(url)) => Backend::Postgres(postgres::PostgresDb::open(
            url,
            settings.postgres_readonly.as_deref(),
            settings,
            access,
        )?),
        (Some(_), Some(_)) => return Err("set either sqlite or postgres, not both".into()),
        (None, None) => {
            return Err(
                "say where the database is: sqlite = \"file.db\" or postgres = \"postgres://…\""
                    .into(),
            );
        }
    };
    Ok(Database { limits, backend })
}

impl JobState {
    /// Charges the call, then finds the database and the plugin's access
    /// to it; a plugin without a grant is refused (logged and counted).
    fn db_for(
        &mut self,
        db: &str,
        op: &Op,
    ) -> wasmtime::Result<Result<(Arc<Database>, DbAccess), HostError>> {
        self.charge_host_call()?;
        let services = self.services();
        let shared = &services.shared.db;
        shared.counters.calls.fetch_add(1, Ordering::Relaxed);
        let found = match op {
            // Maintenance runs on the writing connection, under its own grant.
            Op::Maintenance { .. } => services
                .grants
                .maintenance
                .iter()
                .any(|m| m == db)
                .then(|| Some((shared.by_name.get(db)?.clone(), DbAccess::Write)))
                .flatten(),
            _ => services
                .grants
                .databases
                .get(db)
                .and_then(|access| Some((shared.by_name.get(db)?.clone(), *access))),
        };
        Ok(match found {
            Some(found) => Ok(found),
            None => {
                shared.counters.denied.fetch_add(1, Ordering::Relaxed);
                let what = match op {
                    Op::Maintenance { sql } => format!(
                        "maintenance ({}) on database {db:?}: it needs `maintenance = [{db:?}]` in its grants",
                        sql
                    ),
                    _ => format!("database {db:?} (for {})", op.name()),
                };
                let denied = super::denied(self, format_args!("{what}"));
                Err(denied)
            }
        })
    }

    async fn db_call(
        &mut self,
        db: String,
        op: Op,
    ) -> wasmtime::Result<Result<OpResult, HostError>> {
        let op = match maintenance_op(op) {
            Ok(op) => op,
            Err(e) => {
                self.charge_host_call()?;
                return Ok(Err(e));
            }
        };
        let (database, access) = match self.db_for(&db, &op)? {
            Ok(found) => found,
            Err(e) => return Ok(Err(e)),
        };
        let span = tracing::info_span!(
            "db",
            job_id = %self.identity().job_id,
            plugin = %self.plugin(),
            db = %db,
            op = op.name(),
            access = ?access,
        );
        let result = database.run(access, op).instrument(span.clone()).await;
        if let Err(e) = &result {
            self.services()
                .shared
                .db
                .counters
                .failed
                .fetch_add(1, Ordering::Relaxed);
            // The error may quote the plugin's SQL: redacted and cut.
            let error = super::plugin_text(self, &format!("{e:?}"));
            span.in_scope(|| tracing::debug!(error, "db call failed"));
        }
        Ok(result)
    }
}

/// Turns a `db.execute` of `VACUUM` or `ANALYZE` into [`Op::Maintenance`];
/// such a statement anywhere else, or one outside the grammar, is `invalid`.
fn maintenance_op(op: Op) -> Result<Op, HostError> {
    let misplaced = |m: maintenance::Maintenance| {
        HostError::Invalid(format!(
            "{} runs alone through db.execute (it cannot run in a query or a transaction)",
            m.command
        ))
    };
    match op {
        Op::Execute { sql, params } => match maintenance::classify(&sql) {
            None => Ok(Op::Execute { sql, params }),
            Some(Err(why)) => Err(HostError::Invalid(why)),
            Some(Ok(_)) if !params.is_empty() => Err(HostError::Invalid(
                "VACUUM and ANALYZE take no parameters".into(),
            )),
            Some(Ok(m)) => Ok(Op::Maintenance { sql: m.sql }),
        },
        Op::Query { sql, params } => match maintenance::classify(&sql) {
            None => Ok(Op::Query { sql, params }),
            Some(Err(why)) => Err(HostError::Invalid(why)),
            Some(Ok(m)) => Err(misplaced(m)),
        },
        Op::Transaction { statements } => {
            for s in &statements {
                match maintenance::classify(&s.sql) {
                    None => {}
                    Some(Err(why)) => return Err(HostError::Invalid(why)),
                    Some(Ok(m)) => return Err(misplaced(m)),
                }
            }
            Ok(Op::Transaction { statements })
        }
        op @ Op::Maintenance { .. } => Ok(op),
    }
}

/// Puts `text` before an error's message.
pub(crate) fn prefix(e: HostError, text: &str) -> HostError {
    match e {
        HostError::Failed(m) => HostError::Failed(format!("{text}{m}")),
        HostError::Invalid(m) => HostError::Invalid(format!("{text}{m}")),
        HostError::Timeout(m) => HostError::Timeout(format!("{text}{m}")),
        HostError::Denied(m) => HostError::Denied(format!("{text}{m}")),
        other => other,
    }
}

/// A backend answered with the wrong shape (a host bug, reported rather than panicked on).
fn mismatch() -> HostError {
    HostError::Failed("internal error: the database answered with the wrong kind of result".into())
}

impl Host for JobState {
    async fn query(
        &mut self,
        db: String,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, HostError>> {
        Ok(self
            .db_call(db, Op::Query { sql, params })
            .await?
            .and_then(|r| match r {
                OpResult::Rows(rows) => Ok(rows),
                _ => Err(mismatch()),
            }))
    }

    async fn execute(
        &mut self,
        db: String,
        sql: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        Ok(self
            .db_call(db, Op::Execute { sql, params })
            .await?
            .and_then(|r| match r {
                OpResult::Affected(n) => Ok(n),
                _ => Err(mismatch()),
            }))
    }

    async fn transaction(
        &mut self,
        db: String,
        statements: Vec<Statement>,
    ) -> wasmtime::Result<Result<Vec<u64>, HostError>> {
        Ok(self
            .db_call(db, Op::Transaction { statements })
            .await?
            .and_then(|r| match r {
                OpResult::AffectedEach(n) => Ok(n),
                _ => Err(mismatch()),
            }))
    }
}

#[cfg(test)]
mod tests;

//! SQLite files through rusqlite, on blocking threads.
//!
//! Two pools per file: writers open it read-write, readers open it with
//! `SQLITE_OPEN_READ_ONLY`, so the file itself refuses a reader's write.
//! Every connection handed to plugins has `SQLITE_LIMIT_ATTACHED = 0`,
//! defensive mode on, untrusted schema, and an authorizer that refuses
//! `ATTACH`/`DETACH`, `load_extension()`, transaction control (the host
//! brackets `transaction` itself, and a connection goes back to the pool
//! with no transaction open) and every `PRAGMA` but a few that only read
//! the schema or check the file ([`ALLOWED_PRAGMAS`]): a setting such as
//! `query_only`, `cache_size` or `temp_store` would outlive the job on a
//! pooled connection, and `temp_store_directory` changes the whole process.
//!
//! `ANALYZE` is refused by the authorizer too, and `VACUUM` fails for want
//! of an attachable database; a call the `maintenance` grant allows runs
//! the checked statement with both lifted for its duration.
//!
//! A query returns at most `max_bytes` of values, and `SQLITE_LIMIT_LENGTH`
//! keeps any one string or blob under the same cap, so SQLite itself never
//! builds a huge value in host memory (`zeroblob(300000000)`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::Semaphore;

use super::{CallLimits, Op, OpResult, prefix};
use crate::capabilities::HostError;
use crate::capabilities::bindings::taskhost::plugin::db::{Rows, Value};
use crate::config::DbAccess;

/// One SQLite file and its reader and writer pools.
pub(crate) struct SqliteDb {
    readers: Arc<Pool>,
    writers: Arc<Pool>,
}

impl SqliteDb {
    /// Checks the file (and creates it when a plugin may write it).
    pub fn open(
        path: &Path,
        store: &Path,
        pool_size: u32,
        max_bytes: u64,
        access: &[DbAccess],
    ) -> Result<SqliteDb, String> {
        if same_file(path, store) {
            return Err(format!(
                "sqlite file {} is the host's own store; plugins may never reach it",
                path.display()
            ));
        }
        if !path.exists() && !access.is_empty() {
            return Err(format!(
                "sqlite file {} does not exist, and a read-only grant cannot create it",
                path.display()
            ));
        }
        let pool = |flags| {
            Arc::new(Pool {
                path: path.to_path_buf(),
                flags: flags | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(pool_size as usize)),
                max_length: max_bytes.min(i32::MAX as u64) as i32,
            })
        };
        Ok(SqliteDb {
            readers: pool(OpenFlags::SQLITE_OPEN_READ_ONLY),
            writers: pool(OpenFlags::SQLITE_OPEN_READ_WRITE),
        })
    }

    pub async fn run(
        &self,
        access: DbAccess,
        op: Op,
        limits: &CallLimits,
    ) -> Result<OpResult, HostError> {
        let pool = match access {
            DbAccess::Read => &self.readers,
            DbAccess::Write => &self.writers,
        };
        let permit = tokio::time::timeout(limits.timeout, pool.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                HostError::Timeout(format!(
                    "database {:?}: no connection became free within the statement timeout",
                    limits.db
                ))
            })?
            .map_err(|_| HostError::Failed("the connection pool is closed".into()))?;
        let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let pool = pool.clone();
                let db = limits.db.clone();
                let busy = limits.timeout;
                tokio::task::spawn_blocking(move || pool.connect(busy))
                    .await
                    .map_err(|e| HostError::Failed(format!("opening the connection failed: {e}")))?
                    .map_err(|e| HostError::Failed(format!("database {db:?}: cannot open: {e}")))?
            }
        };
        let interrupt = conn.conn.get_interrupt_handle();
        // Held while the connection is in use; the timer interrupts only
        // while `finished` is false, so it can never hit the next user.
        let finished = Arc::new(Mutex::new(false));
        let task = {
            let (pool, finished, limits) = (pool.clone(), finished.clone(), limits.clone());
            // The task owns the connection: if the job is dropped mid-call,
            // the statement still ends (or is interrupted) and the
            // connection still returns to the pool, clean.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut conn = conn;
                let result = conn.run(op, &limits);
                let mut done = finished.lock().unwrap_or_else(|p| p.into_inner());
                *done = true;
                drop(done);
                if conn.conn.is_autocommit() {
                    pool.idle
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(conn);
                } // else: a transaction could not be closed; drop the connection.
                result
            })
        };
        tokio::pin!(task);
        let joined = tokio::select! {
            biased;
            joined = &mut task => joined,
            _ = tokio::time::sleep(limits.timeout) => {
                if !*finished.lock().unwrap_or_else(|p| p.into_inner()) {
                    interrupt.interrupt();
                }
                task.await
            }
        };
        joined.map_err(|e| HostError::Failed(format!("the database call failed: {e}")))?
    }
}

/// Creates the file of a database some plugin may write, if it is missing.
pub(crate) fn create_missing(path: &Path, store: &Path) -> Result<(), String> {
    if path.exists() || same_file(path, store) {
        return Ok(()); // `SqliteDb::open` refuses the store itself
    }
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map(drop)
    .map_err(|e| format!("cannot create sqlite file {}: {e}", path.display()))
}

/// Whether two paths name one file: by device and inode when both exist
/// (a hard link or a bind mount of the store is still the store), by
/// canonical path otherwise.
fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return (ma.dev(), ma.ino()) == (mb.dev(), mb.ino());
    }
    let canon = |p: &Path| -> Option<PathBuf> {
        match p.canonicalize() {
            Ok(c) => Some(c),
            // Not created yet: compare through its folder.
            Err(_) => Some(p.parent()?.canonicalize().ok()?.join(p.file_name()?)),
        }
    };
    match (canon(a), canon(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

struct Pool {
    path: PathBuf,
    flags: OpenFlags,
    idle: Mutex<Vec<PluginConn>>,
    permits: Arc<Semaphore>,
    /// `SQLITE_LIMIT_LENGTH`: the largest string or blob a statement may build.
    max_length: i32,
}

impl Pool {
    fn connect(&self, busy: std::time::Duration) -> rusqlite::Result<PluginConn> {
        let conn = Connection::open_with_flags(&self.path, self.flags)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, self.max_length)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
        conn.busy_timeout(busy)?;
        let guard = Arc::new(Guard::default());
        let hook = guard.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| hook.authorize(ctx)));
        Ok(PluginConn { conn, guard })
    }
}

/// The pragmas plugin SQL may run: they read the schema or check the file,
/// and change nothing that outlives the statement.
pub const ALLOWED_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "data_version",
    "page_count",
    "freelist_count",
    // Stored in the file itself (setting it needs a write grant), so it
    // outlives the job by design, for a plugin's own schema migrations.
    "user_version",
];

/// What the authorizer refuses while plugin SQL is being prepared, and why.
#[derive(Default)]
struct Guard {
    plugin_sql: AtomicBool,
    refused: Mutex<Option<&'static str>>,
}

impl Guard {
    fn authorize(&self, ctx: AuthContext<'_>) -> Authorization {
        if !self.plugin_sql.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        let refused = match ctx.action {
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
                "ATTACH and DETACH are not allowed: a plugin reaches only the databases it is granted"
            }
            AuthAction::Transaction { .. } => {
                "BEGIN, COMMIT and ROLLBACK are not allowed: use db.transaction, which runs its statements atomically"
            }
            AuthAction::Analyze { .. } => {
                "ANALYZE needs a maintenance grant: maintenance = [\"db\"] in the plugin's grants"
            }
            AuthAction::Function { function_name }
                if function_name.eq_ignore_ascii_case("load_extension") =>
            {
                "load_extension() is not allowed"
            }
            AuthAction::Pragma { pragma_name, .. }
                if !ALLOWED_PRAGMAS
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
            {
                "this PRAGMA is not allowed: its setting would outlive the job on a shared connection \
                 (allowed: table_info, table_xinfo, table_list, index_list, index_info, index_xinfo, \
                 foreign_key_list, foreign_key_check, integrity_check, quick_check, data_version, \
                 page_count, freelist_count, user_version)"
            }
            _ => return Authorization::Allow,
        };
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(refused);
        Authorization::Deny
    }
}

struct PluginConn {
    conn: Connection,
    guard: Arc<Guard>,
}

impl PluginConn {
    fn run(&mut self, op: Op, limits: &CallLimits) -> Result<OpResult, HostError> {
        let result = match op {
            Op::Query { sql, params } => self.query(&sql, &params, limits).map(OpResult::Rows),
            Op::Execute { sql, params } => self
                .execute(&sql, &params)
                .map(OpResult::Affected)
                .map_err(|e| self.error(e, limits)),
            Op::Transaction { statements } => self.transaction(&statements, limits),
            Op::Maintenance { sql } => self
                .maintain(&sql)
                .map(OpResult::Affected)
                .map_err(|e| self.error(e, limits)),
        };
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    /// Prepares plugin SQL with the authorizer armed.
    fn prepare(&self, sql: &str, params: &[Value]) -> Result<rusqlite::Statement<'_>, SqlError> {
        self.guard.plugin_sql.store(true, Ordering::Relaxed);
        let prepared = self.conn.prepare(sql);
        self.guard.plugin_sql.store(false, Ordering::Relaxed);
        let mut stmt = prepared?;
        bind_params(&mut stmt, params)?;
        Ok(stmt)
    }

    fn query(&self, sql: &str, params: &[Value], limits: &CallLimits) -> Result<Rows, HostError> {
        let read = || -> Result<Rows, SqlError> {
            let mut stmt = self.prepare(sql, params)?;
            let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
            let mut rows = Vec::new();
            let mut bytes = 0u64;
            let mut cursor = stmt.raw_query();
            while let Some(row) = cursor.next()? {
                if rows.len() as u64 >= limits.max_rows {
                    return Err(SqlError::TooManyRows);
                }
                let mut values = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    let value = row.get_ref(i)?;
                    // Counted before it is copied out of SQLite.
                    bytes += match value {
                        ValueRef::Text(b) | ValueRef::Blob(b) => b.len() as u64,
                        _ => 8,
                    };
                    if bytes > limits.max_bytes {
                        return Err(SqlError::TooManyBytes);
                    }
                    values.push(from_sql(value));
                }
                rows.push(values);
            }
            Ok(Rows { columns, rows })
        };
        read().map_err(|e| self.error(e, limits))
    }

    /// Runs a statement [`super::maintenance::classify`] allowed: VACUUM
    /// attaches its temporary copy, so one attachment is allowed while it
    /// runs; the authorizer is not armed (the statement is the host's
    /// normalised text, not the plugin's).
    fn maintain(&self, sql: &str) -> Result<u64, SqlError> {
        self.conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 1)?;
        let result = self.conn.execute_batch(sql);
        self.conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        result?;
        Ok(0)
    }

    /// Runs one statement to its end (rows it returns are discarded) and
    /// counts the rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        let mut stmt = self.prepare(sql, params)?;
        let before = self.conn.total_changes();
        let mut cursor = stmt.raw_query();
        while cursor.next()?.is_some() {}
        drop(cursor);
        Ok(if self.conn.total_changes() == before {
            0
        } else {
            self.conn.changes()
        })
    }

    fn transaction(
        &self,
        statements: &[crate::capabilities::bindings::taskhost::plugin::db::Statement],
        limits: &CallLimits,
    ) -> Result<OpResult, HostError> {
        // IMMEDIATE takes the write lock up front (waiting up to the busy
        // timeout) instead of failing half-way; a read-only file needs none.
        let begin = if self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        self.conn
            .execute_batch(begin)
            .map_err(|e| self.error(SqlError::Sqlite(e), limits))?;
        let mut counts = Vec::with_capacity(statements.len());
        for (i, s) in statements.iter().enumerate() {
            match self.execute(&s.sql, &s.params) {
                Ok(n) => counts.push(n),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(prefix(
                        self.error(e, limits),
                        &format!(
                            "statement {} of {} failed, nothing was committed: ",
                            i + 1,
                            statements.len()
                        ),
                    ));
                }
            }
        }
        self.conn.execute_batch("COMMIT").map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            prefix(
                self.error(SqlError::Sqlite(e), limits),
                "commit failed, nothing was committed: ",
            )
        })?;
        Ok(OpResult::AffectedEach(counts))
    }

    /// Turns an error into what the plugin sees, naming a refusal's reason.
    fn error(&self, e: SqlError, limits: &CallLimits) -> HostError {
        let refused = self
            .guard
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match e {
            SqlError::TooManyRows => limits.too_many_rows(),
            SqlError::TooManyBytes => limits.too_many_bytes(),
            SqlError::Invalid(m) => HostError::Invalid(m),
            SqlError::Sqlite(e) => {
                if let Some(reason) = refused {
                    return HostError::Denied(reason.to_string());
                }
                match e.sqlite_error_code() {
                    Some(ErrorCode::OperationInterrupted) => limits.timeout_error(),
                    // A string or blob over SQLITE_LIMIT_LENGTH (max_bytes).
                    Some(ErrorCode::TooBig) => limits.too_many_bytes(),
                    _ => match e {
                        rusqlite::Error::InvalidParameterCount(..)
                        | rusqlite::Error::InvalidParameterName(_)
                        | rusqlite::Error::MultipleStatement => HostError::Invalid(e.to_string()),
                        _ => HostError::Failed(e.to_string()),
                    },
                }
            }
        }
    }
}

#[derive(Debug)]
enum SqlError {
    Sqlite(rusqlite::Error),
    Invalid(String),
    TooManyRows,
    TooManyBytes,
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> Self {
        SqlError::Sqlite(e)
    }
}

/// Binds `$N` (and `?N`) from the N-th parameter, as PostgreSQL does.
/// SQLite numbers a statement's slots by where each name first appears, so
/// `WHERE a = $2 AND b = $1` has `$2` in slot 1: binding by slot would
/// silently swap the values, and the same plugin SQL would mean one thing on
/// SQLite and another on PostgreSQL. A bare `?` keeps its slot.
fn bind_params(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> Result<(), SqlError> {
    let slots = stmt.parameter_count();
    let mut numbers = Vec::with_capacity(slots);
    for slot in 1..=slots {
        numbers.push(match stmt.parameter_name(slot) {
            None => slot,
            Some(name) => parameter_number(name).ok_or_else(|| {
                SqlError::Invalid(format!(
                    "parameter {name} is not numbered; write $1, $2, … as on PostgreSQL"
                ))
            })?,
        });
    }
    let expected = numbers.iter().copied().max().unwrap_or(0);
    if expected != params.len() {
        return Err(SqlError::Invalid(format!(
            "the statement takes {expected} parameter(s), {} given",
            params.len()
        )));
    }
    for (slot, number) in numbers.into_iter().enumerate() {
        stmt.raw_bind_parameter(slot + 1, to_sql(&params[number - 1]))?;
    }
    Ok(())
}

/// The N of a `$N` or `?N` parameter name; `None` for `:name`, `@name`,
/// `$name` and `$0`.
fn parameter_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('$').or_else(|| name.strip_prefix('?'))?;
    digits.parse().ok().filter(|n| *n >= 1)
}

fn to_sql(v: &Value) -> ToSqlOutput<'_> {
    match v {
        Value::Null => ToSqlOutput::Owned(SqlValue::Null),
        Value::Integer(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
        Value::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
        Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one row `sql` returns, its values as text.
    fn select(sql: &str, params: &[Value]) -> Result<Vec<String>, SqlError> {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare(sql)?;
        bind_params(&mut stmt, params)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let row = rows.next()?.expect("one row");
        Ok((0..columns)
            .map(|i| match from_sql(row.get_ref(i).unwrap()) {
                Value::Text(s) => s,
                other => panic!("{sql}: column {i} is {other:?}"),
            })
            .collect())
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    #[test]
    fn numbered_parameters_bind_by_number_not_by_first_appearance() {
        let got = select("SELECT $2, $1, $2", &[text("a"), text("b")]).unwrap();
        assert_eq!(got, ["b", "a", "b"]);
        let got = select("SELECT ?2, ?1", &[text("a"), text("b")]).unwrap();
        assert_eq!(got, ["b", "a"]);
        // A bare `?` keeps its place.
        let got = select("SELECT ?, ?", &[text("a"), text("b")]).unwrap();
        assert_eq!(got, ["a", "b"]);
    }

    #[test]
    fn the_highest_number_is_how_many_parameters_a_statement_takes() {
        let got = select("SELECT $3", &[text("a"), text("b"), text("c")]).unwrap();
        assert_eq!(got, ["c"]);
        let err = |sql: &str, params: &[Value]| match select(sql, params) {
            Err(SqlError::Invalid(e)) => e,
            other => panic!("{sql}: {other:?}"),
        };
        let e = err("SELECT $2, $1", &[text("a")]);
        assert!(e.contains("takes 2 parameter(s), 1 given"), "{e}");
        let e = err("SELECT :name", &[text("a")]);
        assert!(e.contains(":name") && e.contains("$1"), "{e}");
    }
}

//! PostgreSQL through tokio-postgres and a deadpool pool per role.
//!
//! `write` grants use the `postgres` URL; `read` grants use
//! `postgres_readonly`, whose role must hold only SELECT privileges. That
//! role is the enforcement: a plugin can `COMMIT` out of the host's
//! `BEGIN READ ONLY` and `SET default_transaction_read_only = off`, but it
//! cannot give its role privileges it lacks. The read-only transaction and
//! session default stay on as a second fence.
//!
//! A maintenance call (`VACUUM`, `ANALYZE`, checked by the grammar in
//! `maintenance`) runs on a writing connection outside any transaction
//! (VACUUM cannot run inside one), under the connection's statement
//! timeout. Every other call runs in a host `BEGIN … COMMIT` (or `ROLLBACK` on error) with
//! `SET LOCAL statement_timeout`, and the whole call has a wall-clock
//! timeout too: past it the query is cancelled and the connection dropped.
//! A connection goes back to the pool only when the call ended cleanly;
//! the pool resets session state (`RESET ALL`, `DISCARD TEMP`, …) before
//! handing it out again, so nothing a job set leaks into another job.

use std::ops::Not;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use futures_util::TryStreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::value::{Cell, Param};
use super::{CallLimits, Op, OpResult, prefix};
use crate::capabilities::HostError;
use crate::capabilities::bindings::taskhost::plugin::db::{Rows, Statement, Value};
use crate::config::{DatabaseSettings, DbAccess, redact_url};

/// How much longer than `statement_timeout` the host waits before it
/// cancels the query itself (the server's own timeout normally fires first).
const GRACE: Duration = Duration::from_millis(250);

pub(crate) struct PostgresDb {
    writers: Pool,
    readers: Option<Pool>,
}

impl PostgresDb {
    pub fn open(
        url: &str,
        readonly: Option<&str>,
        settings: &DatabaseSettings,
        access: &[DbAccess],
    ) -> Result<PostgresDb, String> {
        if readonly == Some(url) {
            return Err(
                "postgres_readonly is the same URL as postgres; it must connect as a role that \
                 holds only SELECT privileges"
                    .into(),
            );
        }
        if readonly.is_none() && access.contains(&DbAccess::Read) {
            return Err(
                "a plugin has a read grant, but postgres_readonly is not set: read-only access \
                 to PostgreSQL goes through a role that holds only SELECT privileges \
                 (postgres_readonly = \"postgres://reader@host/db\")"
                    .into(),
            );
        }
        Ok(PostgresDb {
            writers: pool(url, false, settings).map_err(|e| format!("postgres: {e}"))?,
            readers: readonly
                .map(|url| pool(url, true, settings))
                .transpose()
                .map_err(|e| format!("postgres_readonly: {e}"))?,
        })
    }

    pub async fn run(
        &self,
        access: DbAccess,
        op: Op,
        limits: &CallLimits,
    ) -> Result<OpResult, HostError> {
        let pool = match access {
            DbAccess::Write => &self.writers,
            DbAccess::Read => self.readers.as_ref().ok_or_else(|| {
                HostError::Denied(format!(
                    "database {:?} has no postgres_readonly connection",
                    limits.db
                ))
            })?,
        };
        let object = pool.get().await.map_err(|e| pool_error(e, limits))?;
        let mut checkout = Checkout {
            object: Some(object),
            clean: false,
        };
        let client: &Client = checkout.client();
        let cancel = client.cancel_token();
        let work = run_op(client, access, op, limits);
        match tokio::time::timeout(limits.timeout + GRACE, work).await {
            Ok((result, clean)) => {
                checkout.clean = clean;
                result
            }
            Err(_elapsed) => {
                // The plugin may have lifted the server-side timeout: cancel
                // the query, and the checkout drops the connection.
                tokio::spawn(async move {
                    let _ = cancel.cancel_query(NoTls).await;
                });
                Err(limits.timeout_error())
            }
        }
    }
}

fn pool(url: &str, read_only: bool, settings: &DatabaseSettings) -> Result<Pool, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("{}: {e}", redact_url(url)))?;
    let timeout_ms = settings.statement_timeout.as_millis();
    let mut options = config.get_options().unwrap_or("").to_string();
    options.push_str(&format!(" -c statement_timeout={timeout_ms}"));
    if read_only {
        options.push_str(" -c default_transaction_read_only=on");
    }
    config.options(options.trim());
    if config.get_application_name().is_none() {
        config.application_name("taskhost");
    }
    config.connect_timeout(settings.statement_timeout);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Clean,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size as usize)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(settings.statement_timeout))
        .create_timeout(Some(settings.statement_timeout))
        .recycle_timeout(Some(settings.statement_timeout))
        .build()
        .map_err(|e| e.to_string())
}

/// A pooled connection that returns to the pool only if the call ended
/// cleanly (no transaction left open); otherwise it is closed.
struct Checkout {
    object: Option<Object>,
    clean: bool,
}

impl Checkout {
    fn client(&self) -> &Client {
        self.object.as_ref().expect("present until drop")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.clean
            && let Some(object) = self.object.take()
        {
            drop(Object::take(object));
        }
    }
}

/// Runs one call in a host transaction; `bool` says whether the
/// connection is clean (idle, no transaction open) afterwards.
async fn run_op(
    client: &Client,
    access: DbAccess,
    op: Op,
    limits: &CallLimits,
) -> (Result<OpResult, HostError>, bool) {
    if let Op::Maintenance { sql } = op {
        return match client.batch_execute(&sql).await {
            Ok(()) => (Ok(OpResult::Affected(0)), true),
            Err(e) => (Err(pg_error(e, limits)), client.is_closed().not()),
        };
    }
    let begin = match access {
        DbAccess::Read => "BEGIN READ ONLY",
        DbAccess::Write => "BEGIN",
    };
    let begin = format!(
        "{begin}; SET LOCAL statement_timeout = {}",
        limits.timeout.as_millis()
    );
    if let Err(e) = client.batch_execute(&begin).await {
        return (Err(pg_error(e, limits)), false);
    }
    let result = match op {
        Op::Query { sql, params } => query(client, &sql, &params, limits)
            .await
            .map(OpResult::Rows),
        Op::Execute { sql, params } => execute(client, &sql, &params, limits)
            .await
            .map(OpResult::Affected),
        Op::Transaction { statements } => transaction(client, &statements, limits)
            .await
            .map(OpResult::AffectedEach),
        Op::Maintenance { .. } => Err(super::mismatch()),
    };
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match client.batch_execute(end).await {
        Ok(()) => (result, true),
        Err(e) => {
            let e = pg_error(e, limits);
            let result = match result {
                Ok(_) => Err(prefix(e, "commit failed, nothing was committed: ")),
                Err(first) => Err(first),
            };
            (result, false)
        }
    }
}

async fn prepare(
    client: &Client,
    sql: &str,
    params: &[Value],
    limits: &CallLimits,
) -> Result<tokio_postgres::Statement, HostError> {
    let stmt = client.prepare(sql).await.map_err(|e| pg_error(e, limits))?;
    let expected = stmt.params().len();
    if expected != params.len() {
        return Err(HostError::Invalid(format!(
            "the statement takes {expected} parameter(s), {} given",
            params.len()
        )));
    }
    Ok(stmt)
}

async fn query(
    client: &Client,
    sql: &str,
    params: &[Value],
    limits: &CallLimits,
) -> Result<Rows, HostError> {
    let stmt = prepare(client, sql, params, limits).await?;
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let stream = client
        .query_raw(&stmt, params.iter().map(Param))
        .await
        .map_err(|e| pg_error(e, limits))?;
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = stream.try_next().await.map_err(|e| pg_error(e, limits))? {
        if rows.len() as u64 >= limits.max_rows {
            return Err(limits.too_many_rows());
        }
        let mut values = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let Cell(v) = row
                .try_get::<_, Cell>(i)
                .map_err(|e| HostError::Failed(format!("column {name:?}: {}", error_chain(&e))))?;
            bytes += super::value_bytes(&v);
            if bytes > limits.max_bytes {
                return Err(limits.too_many_bytes());
            }
            values.push(v);
        }
        rows.push(values);
    }
    Ok(Rows { columns, rows })
}

async fn execute(
    client: &Client,
    sql: &str,
    params: &[Value],
    limits: &CallLimits,
) -> Result<u64, HostError> {
    let stmt = prepare(client, sql, params, limits).await?;
    client
        .execute_raw(&stmt, params.iter().map(Param))
        .await
        .map_err(|e| pg_error(e, limits))
}

async fn transaction(
    client: &Client,
    statements: &[Statement],
    limits: &CallLimits,
) -> Result<Vec<u64>, HostError> {
    let mut counts = Vec::with_capacity(statements.len());
    for (i, s) in statements.iter().enumerate() {
        match execute(client, &s.sql, &s.params, limits).await {
            Ok(n) => counts.push(n),
            Err(e) => {
                return Err(prefix(
                    e,
                    &format!(
                        "statement {} of {} failed, nothing was committed: ",
                        i + 1,
                        statements.len()
                    ),
                ));
            }
        }
    }
    Ok(counts)
}

fn pool_error(e: PoolError, limits: &CallLimits) -> HostError {
    match e {
        PoolError::Timeout(_) => HostError::Timeout(format!(
            "database {:?}: no connection within the statement timeout",
            limits.db
        )),
        PoolError::Backend(e) => prefix(
            pg_error(e, limits),
            &format!("database {:?}: cannot connect: ", limits.db),
        ),
        other => HostError::Failed(format!("database {:?}: {other}", limits.db)),
    }
}

fn pg_error(e: tokio_postgres::Error, limits: &CallLimits) -> HostError {
    if e.code() == Some(&SqlState::QUERY_CANCELED) {
        return limits.timeout_error();
    }
    if let Some(db) = e.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return HostError::Failed(text);
    }
    let text = error_chain(&e);
    if text.starts_with("error serializing parameter") {
        HostError::Invalid(text)
    } else {
        HostError::Failed(text)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

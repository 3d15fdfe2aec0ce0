//! Drives the `db` interface from the payload, so the tests can try any
//! SQL against any database name and see exactly what the host answers.
//!
//! Values travel as JSON: `null`, an integer, a float (`1.0`), a string,
//! or `{"blob": [bytes]}`. Every handler returns `{"ok": …}` or
//! `{"err": {"kind": "denied" | "invalid" | "failed" | "timeout" | "remote",
//! "message": …}}`; a host error is data here, never a job failure.

use serde::Deserialize;
use serde_json::{Value as Json, json};
use taskhost_sdk::Job;
use taskhost_sdk::JobError;
use taskhost_sdk::bindings::taskhost::plugin::types::HostError;
use taskhost_sdk::db::{self, Statement, Value};

fn to_value(j: &Json) -> Result<Value, JobError> {
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(*b as i64),
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Integer(i),
            _ => Value::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(o) => match o.get("blob").and_then(Json::as_array) {
            Some(bytes) => Value::Blob(
                bytes
                    .iter()
                    .map(|b| b.as_u64().map(|b| b as u8))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| JobError::permanent("a blob is a list of bytes"))?,
            ),
            None => return Err(JobError::permanent(format!("not a db value: {j}"))),
        },
        Json::Array(_) => return Err(JobError::permanent(format!("not a db value: {j}"))),
    })
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Blob(b) => json!({ "blob": b }),
    }
}

fn params(p: &[Json]) -> Result<Vec<Value>, JobError> {
    p.iter().map(to_value).collect()
}

fn answer<T>(r: Result<T, HostError>, ok: impl FnOnce(T) -> Json) -> Json {
    match r {
        Ok(v) => json!({ "ok": ok(v) }),
        Err(e) => {
            let (kind, message) = match e {
                HostError::Denied(m) => ("denied", m),
                HostError::Invalid(m) => ("invalid", m),
                HostError::Failed(m) => ("failed", m),
                HostError::Timeout(m) => ("timeout", m),
                HostError::Remote(r) => ("remote", r.message),
            };
            json!({ "err": { "kind": kind, "message": message } })
        }
    }
}

#[derive(Deserialize)]
struct Call {
    db: String,
    sql: String,
    #[serde(default)]
    params: Vec<Json>,
}

fn query(_job: &Job, c: Call) -> Result<Json, JobError> {
    let r = db::query(&c.db, &c.sql, &params(&c.params)?);
    Ok(answer(r, |rows| {
        json!({
            "columns": rows.columns,
            "rows": rows.rows.iter().map(|r| r.iter().map(to_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
        })
    }))
}

fn execute(_job: &Job, c: Call) -> Result<Json, JobError> {
    let r = db::execute(&c.db, &c.sql, &params(&c.params)?);
    Ok(answer(r, |n| json!(n)))
}

#[derive(Deserialize)]
struct Tx {
    db: String,
    statements: Vec<Stmt>,
}

#[derive(Deserialize)]
struct Stmt {
    sql: String,
    #[serde(default)]
    params: Vec<Json>,
}

fn transaction(_job: &Job, t: Tx) -> Result<Json, JobError> {
    let statements = t
        .statements
        .iter()
        .map(|s| {
            Ok(Statement {
                sql: s.sql.clone(),
                params: params(&s.params)?,
            })
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    let r = db::transaction(&t.db, &statements);
    Ok(answer(r, |n| json!(n)))
}

#[derive(Deserialize)]
struct Steps {
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Step {
    Query(Call),
    Execute(Call),
    Transaction(Tx),
}

/// Several calls in one job (each answered in order): what a plugin that
/// tries to escape step by step would do.
fn steps(job: &Job, s: Steps) -> Result<Json, JobError> {
    s.steps
        .into_iter()
        .map(|step| match step {
            Step::Query(c) => query(job, c),
            Step::Execute(c) => execute(job, c),
            Step::Transaction(t) => transaction(job, t),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}

taskhost_sdk::plugin! {
    handler("db.query", query).describe("Runs a query from the payload; returns rows or the host error"),
    handler("db.execute", execute).describe("Runs a statement from the payload; returns rows affected or the host error"),
    handler("db.transaction", transaction).describe("Runs statements atomically; returns rows affected each or the host error"),
    handler("db.steps", steps).describe("Runs several db calls in order; returns each answer"),
}

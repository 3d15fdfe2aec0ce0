//! The `db` capability against a real SQLite file and a real PostgreSQL
//! server: typed round trips, grants (none, read, write), read-only
//! enforced by the database itself, no way out to other files, atomic
//! transactions, row cap and statement timeout, host-call accounting.
//! The `db-probe` plugin runs whatever SQL the payload carries.

use serde_json::{Value, json};
use taskhost::runtime::{Outcome, Runtime};

use crate::support::postgres::{PgDatabase, postgres};
use crate::support::{TestHost, run_job};

/// Runs a `db-probe` handler; the job itself must succeed (host errors
/// come back as data).
pub(crate) async fn call(runtime: &Runtime, handler: &str, payload: Value) -> Value {
    let report = run_job(runtime, handler, payload.clone()).await;
    match report.outcome {
        Outcome::Success { result } => result,
        other => panic!(
            "{handler} {payload}: job did not succeed: {other:?}\nlog: {}",
            report.log
        ),
    }
}

pub(crate) fn ok(answer: &Value) -> &Value {
    answer
        .get("ok")
        .unwrap_or_else(|| panic!("expected success, got {answer}"))
}

/// `(kind, message)` of a host error.
pub(crate) fn err(answer: &Value) -> (String, String) {
    let e = answer
        .get("err")
        .unwrap_or_else(|| panic!("expected an error, got {answer}"));
    (
        e["kind"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

pub(crate) async fn query(rt: &Runtime, db: &str, sql: &str, params: Value) -> Value {
    call(
        rt,
        "db.query",
        json!({"db": db, "sql": sql, "params": params}),
    )
    .await
}

pub(crate) async fn execute(rt: &Runtime, db: &str, sql: &str, params: Value) -> Value {
    call(
        rt,
        "db.execute",
        json!({"db": db, "sql": sql, "params": params}),
    )
    .await
}

async fn transaction(rt: &Runtime, db: &str, statements: Value) -> Value {
    call(
        rt,
        "db.transaction",
        json!({"db": db, "statements": statements}),
    )
    .await
}

async fn count(rt: &Runtime, db: &str, table: &str) -> i64 {
    let a = query(
        rt,
        db,
        &format!("SELECT count(*) AS n FROM {table}"),
        json!([]),
    )
    .await;
    ok(&a)["rows"][0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("count: {a}"))
}

/// Config for the probe with a writer (`app`) and a reader (`app_ro`) of
/// the same database, and one database it is not granted (`other`).
pub(crate) fn sqlite_host(extra_db_settings: &str) -> TestHost {
    TestHost::new(&format!(
        r#"
[databases.app]
sqlite = "app.db"
{extra_db_settings}

[databases.app_ro]
sqlite = "app.db"
{extra_db_settings}

[databases.other]
sqlite = "other.db"

[plugins.db_probe]
databases = {{ app = "write", app_ro = "read" }}
"#
    ))
}

fn postgres_host(pg: &PgDatabase, extra_db_settings: &str) -> TestHost {
    TestHost::new(&format!(
        r#"
[databases.app]
postgres = "{url}"
{extra_db_settings}

[databases.app_ro]
postgres = "{url}"
postgres_readonly = "{ro}"
{extra_db_settings}

[databases.other]
postgres = "{url}"

[plugins.db_probe]
databases = {{ app = "write", app_ro = "read" }}
"#,
        url = pg.url,
        ro = pg.readonly_url,
    ))
}

// ---------------------------------------------------------------- shared scenarios

/// Every value type goes in as a parameter and comes back with its type,
/// through execute, transaction and query.
async fn round_trip_every_value_type(rt: &Runtime, create: &str) {
    assert_eq!(ok(&execute(rt, "app", create, json!([])).await), &json!(0));
    let insert = "INSERT INTO vals (id, i, r, s, b, n) VALUES ($1, $2, $3, $4, $5, $6)";
    let row1 = json!([1, 42, 1.5, "héllo ✓", {"blob": [0, 1, 254, 255]}, null]);
    let row2 = json!([2, i64::MIN, -2.25e-10, "", {"blob": []}, null]);
    let row3 = json!([3, i64::MAX, 1e300, "it's \"quoted\"", {"blob": [10]}, null]);
    assert_eq!(
        ok(&execute(rt, "app", insert, row1.clone()).await),
        &json!(1)
    );
    let tx = transaction(
        rt,
        "app",
        json!([
            {"sql": insert, "params": row2},
            {"sql": insert, "params": row3},
            {"sql": "UPDATE vals SET s = s WHERE id >= $1", "params": [2]},
        ]),
    )
    .await;
    assert_eq!(ok(&tx), &json!([1, 1, 2]));
    let rows = query(
        rt,
        "app",
        "SELECT id, i, r, s, b, n FROM vals WHERE id >= $1 ORDER BY id",
        json!([1]),
    )
    .await;
    let rows = ok(&rows);
    assert_eq!(rows["columns"], json!(["id", "i", "r", "s", "b", "n"]));
    assert_eq!(rows["rows"], json!([row1, row2, row3]));
    // Types survive, not just their JSON look: a real stays a real.
    assert!(rows["rows"][0][2].is_f64() && rows["rows"][0][1].is_i64());
    // `$N` is the N-th parameter wherever it first appears in the text
    // (SQLite numbers its slots by first appearance; bound by slot, this
    // would look for id 42).
    let by_number = query(
        rt,
        "app",
        "SELECT s FROM vals WHERE id = $2 AND i = $1",
        json!([42, 1]),
    )
    .await;
    assert_eq!(ok(&by_number)["rows"], json!([["héllo ✓"]]));
    // The row-returning `query` with no rows still names its columns.
    let none = query(rt, "app", "SELECT id, s FROM vals WHERE id < 0", json!([])).await;
    assert_eq!(ok(&none), &json!({"columns": ["id", "s"], "rows": []}));
}

/// A failing statement in a transaction rolls back all of it; a statement
/// error is a `failed` value, not a trap.
async fn failing_statement_rolls_back(rt: &Runtime, create: &str) {
    ok(&execute(rt, "app", create, json!([])).await);
    let tx = transaction(
        rt,
        "app",
        json!([
            {"sql": "INSERT INTO items (id, name) VALUES ($1, $2)", "params": [1, "one"]},
            {"sql": "INSERT INTO items (id, name) VALUES ($1, $2)", "params": [2, "two"]},
            {"sql": "INSERT INTO items (id, name) VALUES ($1, $2)", "params": [1, "duplicate"]},
        ]),
    )
    .await;
    let (kind, message) = err(&tx);
    assert_eq!(kind, "failed", "{message}");
    assert!(
        message.contains("statement 3 of 3") && message.contains("nothing was committed"),
        "{message}"
    );
    assert_eq!(count(rt, "app", "items").await, 0);

    let bad = transaction(
        rt,
        "app",
        json!([
            {"sql": "INSERT INTO items (id, name) VALUES ($1, $2)", "params": [1, "one"]},
            {"sql": "INSERT INTO no_such_table VALUES (1)"},
        ]),
    )
    .await;
    assert_eq!(err(&bad).0, "failed");
    assert_eq!(count(rt, "app", "items").await, 0);

    let syntax = execute(rt, "app", "INSERT INTO items VALUS (1)", json!([])).await;
    assert_eq!(err(&syntax).0, "failed");
    let params = execute(rt, "app", "INSERT INTO items (id) VALUES ($1)", json!([])).await;
    let (kind, message) = err(&params);
    assert_eq!(kind, "invalid", "{message}");
    assert!(message.contains("1 parameter(s), 0 given"), "{message}");

    // And a good transaction commits all of it.
    let good = transaction(
        rt,
        "app",
        json!([
            {"sql": "INSERT INTO items (id, name) VALUES ($1, $2)", "params": [1, "one"]},
            {"sql": "INSERT INTO items (id, name) VALUES ($1, $2)", "params": [2, "two"]},
        ]),
    )
    .await;
    assert_eq!(ok(&good), &json!([1, 1]));
    assert_eq!(count(rt, "app", "items").await, 2);
}

/// No grant: `denied`, naming the plugin and the database; logged.
async fn no_grant_is_denied(rt: &Runtime) {
    for db in ["other", "nowhere"] {
        let report = run_job(
            rt,
            "db.query",
            json!({"db": db, "sql": "SELECT 1", "params": []}),
        )
        .await;
        let Outcome::Success { result } = &report.outcome else {
            panic!("{:?}", report.outcome)
        };
        let (kind, message) = err(result);
        assert_eq!(kind, "denied", "{message}");
        assert!(
            message.contains("plugin \"db_probe\"")
                && message.contains(&format!("database \"{db}\"")),
            "{message}"
        );
        assert!(report.log.contains(&message), "not logged: {}", report.log);
        let tx = transaction(rt, db, json!([{"sql": "SELECT 1"}])).await;
        assert_eq!(err(&tx).0, "denied");
    }
}

async fn row_cap_is_a_clear_error(rt: &Runtime, series: &str) {
    let five = query(rt, "app", &series.replace("{n}", "5"), json!([])).await;
    assert_eq!(ok(&five)["rows"].as_array().unwrap().len(), 5);
    let six = query(rt, "app", &series.replace("{n}", "6"), json!([])).await;
    let (kind, message) = err(&six);
    assert_eq!(kind, "failed", "{message}");
    assert!(
        message.contains("more than 5 rows") && message.contains("max_rows"),
        "{message}"
    );
}

async fn statement_timeout_is_a_clear_error(rt: &Runtime, slow: &str) {
    let started = std::time::Instant::now();
    let slow = query(rt, "app", slow, json!([])).await;
    let (kind, message) = err(&slow);
    assert_eq!(kind, "timeout", "{message}");
    assert!(message.contains("statement timeout of 300ms"), "{message}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The pool is fine afterwards.
    let fast = query(rt, "app", "SELECT 1 AS one", json!([])).await;
    assert_eq!(ok(&fast)["rows"], json!([[1]]));
}

// ---------------------------------------------------------------- SQLite

const SQLITE_VALS: &str =
    "CREATE TABLE vals (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)";
const SQLITE_ITEMS: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)";

#[tokio::test]
async fn sqlite_round_trips_every_value_type() {
    let host = sqlite_host("");
    let rt = host.runtime().await;
    round_trip_every_value_type(&rt, SQLITE_VALS).await;
    // The file on disk holds what the plugin wrote.
    let conn = rusqlite_free_check(&host.path().join("app.db"));
    assert!(conn.contains("vals"), "{conn}");
}

/// The file exists and is a SQLite database (its header), without linking
/// another SQLite into the tests.
fn rusqlite_free_check(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).expect("the database file exists");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn sqlite_failing_statement_in_a_transaction_rolls_back_all_of_it() {
    let host = sqlite_host("");
    let rt = host.runtime().await;
    failing_statement_rolls_back(&rt, SQLITE_ITEMS).await;
}

#[tokio::test]
async fn sqlite_without_a_grant_is_denied() {
    let host = sqlite_host("");
    let rt = host.runtime().await;
    no_grant_is_denied(&rt).await;
}

#[tokio::test]
async fn sqlite_read_grant_cannot_write_the_file_refuses() {
    let host = sqlite_host("");
    let rt = host.runtime().await;
    ok(&execute(&rt, "app", SQLITE_ITEMS, json!([])).await);
    ok(&execute(&rt, "app", "INSERT INTO items VALUES (1, 'one')", json!([])).await);

    // Reading works.
    let rows = query(&rt, "app_ro", "SELECT name FROM items", json!([])).await;
    assert_eq!(ok(&rows)["rows"], json!([["one"]]));
    // Every way of writing is refused by SQLite itself (a read-only open).
    let attempts = [
        "INSERT INTO items VALUES (2, 'two')",
        "UPDATE items SET name = 'changed'",
        "DELETE FROM items",
        "CREATE TABLE sneaky (x)",
        "DROP TABLE items",
    ];
    for sql in attempts {
        let (kind, message) = err(&execute(&rt, "app_ro", sql, json!([])).await);
        assert_eq!(kind, "failed", "{sql}: {message}");
        assert!(message.contains("readonly database"), "{sql}: {message}");
    }
    // Lifting SQLite's own query_only switch changes nothing: the file
    // was opened read-only.
    let steps = call(
        &rt,
        "db.steps",
        json!({"steps": [
            {"op": "execute", "db": "app_ro", "sql": "PRAGMA query_only = 0"},
            {"op": "execute", "db": "app_ro", "sql": "INSERT INTO items VALUES (3, 'three')"},
        ]}),
    )
    .await;
    assert!(err(&steps[1]).1.contains("readonly database"), "{steps}");
    let tx = transaction(
        &rt,
        "app_ro",
        json!([{"sql": "INSERT INTO items VALUES (4, 'four')"}]),
    )
    .await;
    assert!(err(&tx).1.contains("readonly database"), "{tx}");
    assert_eq!(count(&rt, "app", "items").await, 1);
}

#[tokio::test]
async fn sqlite_attach_and_extensions_are_refused() {
    let host = sqlite_host("");
    let rt = host.runtime().await;
    let outside = host.path().join("outside.db");
    let store = host.path().join(".taskhost").join("taskhost.db");
    for target in [&outside, &store] {
        for db in ["app", "app_ro"] {
            let sql = format!("ATTACH DATABASE '{}' AS outside", target.display());
            let (kind, message) = err(&execute(&rt, db, &sql, json!([])).await);
            assert_eq!(kind, "denied", "{message}");
            assert!(message.contains("ATTACH"), "{message}");
            let tx = transaction(&rt, db, json!([{"sql": sql}])).await;
            assert!(err(&tx).1.contains("ATTACH"), "{tx}");
        }
    }
    assert!(!outside.exists(), "ATTACH created a file");
    // VACUUM INTO writes a copy to any path, through an attach of its own.
    for db in ["app", "app_ro"] {
        let sql = format!("VACUUM INTO '{}'", outside.display());
        let vacuum = execute(&rt, db, &sql, json!([])).await;
        let (kind, message) = err(&vacuum);
        assert!(
            kind == "denied" || kind == "failed" || kind == "invalid",
            "{kind}: {message}"
        );
        assert!(!outside.exists(), "VACUUM INTO wrote {}", outside.display());
    }
    let ext = query(
        &rt,
        "app",
        "SELECT load_extension('/tmp/nothing')",
        json!([]),
    )
    .await;
    assert!(err(&ext).1.contains("load_extension"), "{ext}");
    // A plugin cannot hold a transaction open across calls or jobs.
    let begin = execute(&rt, "app", "BEGIN", json!([])).await;
    assert!(err(&begin).1.contains("db.transaction"), "{begin}");
}

#[tokio::test]
async fn sqlite_row_cap_and_statement_timeout_are_clear_errors() {
    let host = sqlite_host("statement_timeout = \"300ms\"\nmax_rows = 5");
    let rt = host.runtime().await;
    row_cap_is_a_clear_error(
        &rt,
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) SELECT x FROM s",
    )
    .await;
    statement_timeout_is_a_clear_error(
        &rt,
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 10000000000) SELECT count(*) FROM s",
    )
    .await;
}

#[tokio::test]
async fn every_db_call_counts_toward_the_host_call_cap() {
    let host = TestHost::new(
        r#"
[limits]
host_calls = 3

[databases.app]
sqlite = "app.db"

[plugins.db_probe]
databases = { app = "write" }
"#,
    );
    let rt = host.runtime().await;
    let step = json!({"op": "query", "db": "app", "sql": "SELECT 1"});
    let three = call(&rt, "db.steps", json!({"steps": [step, step, step]})).await;
    assert_eq!(three.as_array().unwrap().len(), 3);
    // A denied call counts too.
    let denied = json!({"op": "query", "db": "nowhere", "sql": "SELECT 1"});
    let report = run_job(
        &rt,
        "db.steps",
        json!({"steps": [step, denied, step, step]}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::HostCallLimit { limit: 3 });
}

/// What a host with these `[databases]` and grants says at start.
async fn start_error(extra: &str) -> String {
    let host = TestHost::new(extra);
    match Runtime::load(host.config()).await {
        Ok(_) => panic!("the runtime started with:\n{extra}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_database_config_is_refused_at_start() {
    let e = start_error("[plugins.db_probe]\ndatabases = { ghost = \"read\" }\n").await;
    assert!(
        e.contains("ghost") && e.contains("[databases.ghost]"),
        "{e}"
    );

    let e = start_error(
        "[databases.app]\nsqlite = \"missing.db\"\n[plugins.db_probe]\ndatabases = { app = \"read\" }\n",
    )
    .await;
    assert!(
        e.contains("missing.db") && e.contains("does not exist"),
        "{e}"
    );

    let e = start_error(
        "[databases.app]\nsqlite = \".taskhost/taskhost.db\"\n[plugins.db_probe]\ndatabases = { app = \"write\" }\n",
    )
    .await;
    assert!(e.contains("host's own store"), "{e}");

    let e = start_error("[databases.app]\npool_size = 2\n").await;
    assert!(e.contains("sqlite = ") && e.contains("postgres = "), "{e}");

    let e = start_error(
        "[databases.app]\npostgres = \"postgres://app:s3cret@127.0.0.1:1/app\"\n[plugins.db_probe]\ndatabases = { app = \"read\" }\n",
    )
    .await;
    assert!(e.contains("postgres_readonly"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");

    let e = start_error("[databases.app]\nsqlite = \"a.db\"\nmax_rows = 0\n").await;
    assert!(e.contains("max_rows"), "{e}");
}

// ---------------------------------------------------------------- PostgreSQL

const PG_VALS: &str =
    "CREATE TABLE vals (id int4 PRIMARY KEY, i int8, r float8, s text, b bytea, n text)";
const PG_ITEMS: &str = "CREATE TABLE items (id int4 PRIMARY KEY, name text NOT NULL)";

#[tokio::test]
async fn postgres_round_trips_every_value_type() {
    let pg = postgres().new_database();
    let host = postgres_host(&pg, "");
    let rt = host.runtime().await;
    round_trip_every_value_type(&rt, PG_VALS).await;

    // Other server types come back as the nearest value, and text-format
    // parameters bind to whatever type the statement needs.
    let rows = query(
        &rt,
        "app",
        "SELECT true AS t, 7::int2 AS small, 2.5::float4 AS f, 123.4500::numeric AS amount, \
                -0.001::numeric AS tiny, 'NaN'::numeric AS nan, \
                '2025-01-31 09:00:00.25+00'::timestamptz AS at, '2025-01-31'::date AS day, \
                'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '{\"a\": 1}'::jsonb AS doc, \
                $1::timestamptz AS bound_time, $2::numeric AS bound_amount, $3::bool AS bound_flag",
        json!(["2025-01-31T09:00:00Z", 10.5, 1]),
    )
    .await;
    assert_eq!(
        ok(&rows)["rows"][0],
        json!([
            1,
            7,
            2.5,
            "123.4500",
            "-0.001",
            "NaN",
            "2025-01-31T09:00:00.250Z",
            "2025-01-31",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{\"a\": 1}",
            "2025-01-31T09:00:00Z",
            "10.5",
            1
        ])
    );
    // A type with no value mapping says how to get it.
    let interval = query(&rt, "app", "SELECT '1 day'::interval AS span", json!([])).await;
    let (kind, message) = err(&interval);
    assert_eq!(kind, "failed");
    assert!(message.contains("::text"), "{message}");
}

#[tokio::test]
async fn postgres_failing_statement_in_a_transaction_rolls_back_all_of_it() {
    let pg = postgres().new_database();
    let host = postgres_host(&pg, "");
    let rt = host.runtime().await;
    failing_statement_rolls_back(&rt, PG_ITEMS).await;
    assert_eq!(pg.psql("SELECT count(*) FROM items"), "2");
}

#[tokio::test]
async fn postgres_without_a_grant_is_denied() {
    let pg = postgres().new_database();
    let host = postgres_host(&pg, "");
    let rt = host.runtime().await;
    no_grant_is_denied(&rt).await;
}

#[tokio::test]
async fn postgres_read_grant_cannot_write_even_after_leaving_the_read_only_transaction() {
    let pg = postgres().new_database();
    let host = postgres_host(&pg, "");
    let rt = host.runtime().await;
    ok(&execute(&rt, "app", PG_ITEMS, json!([])).await);
    ok(&execute(&rt, "app", "INSERT INTO items VALUES (1, 'one')", json!([])).await);

    let rows = query(&rt, "app_ro", "SELECT name FROM items", json!([])).await;
    assert_eq!(ok(&rows)["rows"], json!([["one"]]));

    let insert = "INSERT INTO items VALUES (2, 'escaped')";
    // As one string (the extended protocol takes one statement) …
    let one = execute(
        &rt,
        "app_ro",
        &format!("COMMIT; SET default_transaction_read_only = off; {insert}"),
        json!([]),
    )
    .await;
    assert_eq!(err(&one).0, "failed", "{one}");
    // … as separate calls in one job …
    let steps = call(
        &rt,
        "db.steps",
        json!({"steps": [
            {"op": "execute", "db": "app_ro", "sql": "COMMIT"},
            {"op": "execute", "db": "app_ro", "sql": "SET default_transaction_read_only = off"},
            {"op": "execute", "db": "app_ro", "sql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"},
            {"op": "execute", "db": "app_ro", "sql": insert},
        ]}),
    )
    .await;
    let (kind, message) = err(&steps[3]);
    assert_eq!(kind, "failed", "{steps}");
    // … and inside one transaction call: the role may not write, whatever
    // the transaction says.
    let tx = transaction(
        &rt,
        "app_ro",
        json!([
            {"sql": "COMMIT"},
            {"sql": "SET default_transaction_read_only = off"},
            {"sql": "BEGIN READ WRITE"},
            {"sql": insert},
        ]),
    )
    .await;
    let (tx_kind, tx_message) = err(&tx);
    assert_eq!(tx_kind, "failed", "{tx}");
    assert!(
        tx_message.contains("permission denied for table items"),
        "{tx_message}"
    );
    assert!(
        message.contains("permission denied") || message.contains("read-only transaction"),
        "{message}"
    );
    for sql in [
        "UPDATE items SET name = 'changed'",
        "DELETE FROM items",
        "CREATE TABLE sneaky (x int)",
        "CREATE TEMP TABLE sneaky (x int)",
    ] {
        let attempt = transaction(
            &rt,
            "app_ro",
            json!([{"sql": "COMMIT"}, {"sql": "SET default_transaction_read_only = off"}, {"sql": sql}]),
        )
        .await;
        let (kind, message) = err(&attempt);
        assert_eq!(kind, "failed", "{sql}: {message}");
        assert!(message.contains("permission denied"), "{sql}: {message}");
    }
    assert_eq!(pg.psql("SELECT string_agg(name, ',') FROM items"), "one");
}

#[tokio::test]
async fn postgres_row_cap_and_statement_timeout_are_clear_errors() {
    let pg = postgres().new_database();
    let host = postgres_host(&pg, "statement_timeout = \"300ms\"\nmax_rows = 5");
    let rt = host.runtime().await;
    row_cap_is_a_clear_error(&rt, "SELECT x FROM generate_series(1, {n}) AS x").await;
    statement_timeout_is_a_clear_error(&rt, "SELECT pg_sleep(10)").await;
    // Lifting the server's timeout does not lift the host's.
    let steps = call(
        &rt,
        "db.steps",
        json!({"steps": [
            {"op": "transaction", "db": "app", "statements": [
                {"sql": "COMMIT"},
                {"sql": "SET statement_timeout = 0"},
                {"sql": "SELECT pg_sleep(10)"},
            ]},
            {"op": "query", "db": "app", "sql": "SELECT current_setting('statement_timeout') AS t"},
        ]}),
    )
    .await;
    assert_eq!(err(&steps[0]).0, "timeout", "{steps}");
    // The next call still runs under the timeout.
    assert_eq!(ok(&steps[1])["rows"], json!([["300ms"]]), "{steps}");
}

#[tokio::test]
async fn postgres_session_state_does_not_leak_between_jobs() {
    let pg = postgres().new_database();
    let host = postgres_host(&pg, "pool_size = 1");
    let rt = host.runtime().await;
    ok(&execute(&rt, "app", "SET search_path = nowhere", json!([])).await);
    ok(&execute(&rt, "app", "CREATE TEMP TABLE scratch (x int)", json!([])).await);
    let path = query(
        &rt,
        "app",
        "SELECT current_setting('search_path') AS p",
        json!([]),
    )
    .await;
    assert_eq!(ok(&path)["rows"], json!([["\"$user\", public"]]));
    let scratch = query(&rt, "app", "SELECT * FROM scratch", json!([])).await;
    assert_eq!(err(&scratch).0, "failed", "{scratch}");
}

use std::path::Path;

use super::*;

fn config(text: &str, dir: &Path) -> Config {
    crate::config::parse(
        text,
        Path::new("t.toml"),
        dir,
        Vec::<(String, String)>::new(),
    )
    .expect("config parses")
}

fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    match Databases::from_config(&config(text, dir.path())) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn no_databases_is_fine_and_denies_everything() {
    let dir = tempfile::tempdir().unwrap();
    let dbs = Databases::from_config(&config("", dir.path())).unwrap();
    assert_eq!(dbs.names().count(), 0);
}

#[test]
fn a_write_grant_creates_the_file_and_a_read_grant_of_it_then_opens() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[databases.reports]
sqlite = "shared.db"
[databases.z_writer]
sqlite = "shared.db"
[plugins.p]
databases = { reports = "read", z_writer = "write" }
"#;
    let dbs = Databases::from_config(&config(text, dir.path())).unwrap();
    assert!(dir.path().join("shared.db").exists());
    assert_eq!(dbs.names().collect::<Vec<_>>(), ["reports", "z_writer"]);
}

#[test]
fn bad_settings_are_named() {
    let e = refused("[plugins.p]\ndatabases = { app = \"write\" }\n");
    assert!(e.contains("[plugins.p]") && e.contains("\"app\""), "{e}");
    let e = refused("[databases.app]\nsqlite = \"a.db\"\npostgres = \"postgres://h/db\"\n");
    assert!(e.contains("not both"), "{e}");
    let e = refused("[databases.app]\nsqlite = \"a.db\"\npool_size = 0\n");
    assert!(e.contains("[databases.app]: pool_size"), "{e}");
    let e = refused("[databases.app]\nsqlite = \"a.db\"\nstatement_timeout = \"0s\"\n");
    assert!(e.contains("statement_timeout"), "{e}");
    let e =
        refused("[databases.app]\nsqlite = \"a.db\"\npostgres_readonly = \"postgres://r@h/db\"\n");
    assert!(e.contains("postgres_readonly"), "{e}");
    let e = refused(
        "[databases.app]\npostgres = \"postgres://w:pw@h/db\"\npostgres_readonly = \"postgres://w:pw@h/db\"\n",
    );
    assert!(e.contains("same URL") && !e.contains("pw@"), "{e}");
    let e = refused("[databases.app]\npostgres = \"postgres://w:pw@h:notaport/db\"\n");
    assert!(e.contains("postgres") && !e.contains(":pw@"), "{e}");
}

#[test]
fn unknown_keys_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = crate::config::parse(
        "[databases.app]\nsqlite = \"a.db\"\nreadonly = true\n",
        Path::new("t.toml"),
        dir.path(),
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("readonly"), "{e}");
}

#[test]
fn a_maintenance_grant_of_an_unknown_database_is_named() {
    let e = refused("[plugins.p]\nmaintenance = [\"trading\"]\n");
    assert!(
        e.contains("[plugins.p]") && e.contains("\"trading\""),
        "{e}"
    );
}

/// A SQLite file with one table and rows, and the backend over it.
fn sqlite_db(dir: &Path) -> (sqlite::SqliteDb, CallLimits) {
    let path = dir.join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE trades (id INTEGER PRIMARY KEY, note TEXT);
             INSERT INTO trades (note) SELECT 'x' FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3);",
        )
        .unwrap();
    let db = sqlite::SqliteDb::open(&path, &dir.join("store.db"), 2, 1 << 20, &[DbAccess::Write])
        .unwrap();
    let limits = CallLimits {
        db: "app".into(),
        timeout: Duration::from_secs(10),
        max_rows: 100,
        max_bytes: 1 << 20,
    };
    (db, limits)
}

fn execute(sql: &str) -> Op {
    Op::Execute {
        sql: sql.into(),
        params: vec![],
    }
}

#[tokio::test]
async fn on_sqlite_vacuum_and_analyze_run_as_maintenance_and_not_as_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, limits) = sqlite_db(dir.path());
    // A write grant's connection: the file itself refuses both.
    for sql in ["VACUUM", "ANALYZE"] {
        let e = match db.run(DbAccess::Write, execute(sql), &limits).await {
            Ok(_) => panic!("{sql} ran without the maintenance grant"),
            Err(e) => format!("{e:?}"),
        };
        assert!(!e.is_empty(), "{sql}: {e}");
    }
    // As maintenance (what `db_call` makes of them under the grant).
    for sql in ["VACUUM", "ANALYZE trades"] {
        let op = maintenance_op(execute(sql)).unwrap();
        assert!(matches!(op, Op::Maintenance { .. }), "{sql}");
        db.run(DbAccess::Write, op, &limits)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    let stats: i64 = rusqlite::Connection::open(dir.path().join("app.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_stat1", [], |r| r.get(0))
        .unwrap();
    assert!(stats >= 1, "ANALYZE wrote its statistics");
    // The connection went back to the pool without its attachment: an
    // ATTACH from plugin SQL is still refused.
    let e = match db
        .run(DbAccess::Write, execute("ATTACH 'other.db' AS o"), &limits)
        .await
    {
        Ok(_) => panic!("ATTACH ran"),
        Err(e) => format!("{e:?}"),
    };
    assert!(e.contains("ATTACH"), "{e}");
}

#[test]
fn maintenance_statements_outside_db_execute_or_the_grammar_are_invalid() {
    let invalid = |op: Op| match maintenance_op(op) {
        Err(HostError::Invalid(m)) => m,
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("accepted"),
    };
    let m = invalid(Op::Query {
        sql: "ANALYZE".into(),
        params: vec![],
    });
    assert!(m.contains("db.execute"), "{m}");
    let m = invalid(Op::Transaction {
        statements: vec![Statement {
            sql: "VACUUM".into(),
            params: vec![],
        }],
    });
    assert!(m.contains("db.execute"), "{m}");
    let m = invalid(execute("VACUUM INTO '/tmp/x.db'"));
    assert!(m.contains("VACUUM"), "{m}");
    let m = invalid(Op::Execute {
        sql: "ANALYZE".into(),
        params: vec![Value::Integer(1)],
    });
    assert!(m.contains("parameters"), "{m}");
    assert!(matches!(
        maintenance_op(execute("DELETE FROM trades")),
        Ok(Op::Execute { .. })
    ));
}

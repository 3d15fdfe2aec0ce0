//! An example app's own database in a test: a SQLite file or a fresh
//! PostgreSQL database with the app's `schema.sql` applied, and plain SQL
//! on it (test-made, literal values) to set rows up and read them back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::postgres::{self, PgDatabase};

pub enum AppDb {
    Sqlite(PathBuf),
    Postgres(PgDatabase),
}

impl AppDb {
    /// A SQLite file at `path` with `schema` applied.
    pub fn sqlite(path: &Path, schema: &str) -> AppDb {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(schema)
            .expect("schema.sql applies to SQLite");
        AppDb::Sqlite(path.to_path_buf())
    }

    /// A fresh database of the shared PostgreSQL cluster with `schema`
    /// applied, its tables writable by [`postgres::WRITER`].
    pub fn postgres(schema: &str) -> AppDb {
        let pg = postgres::postgres().new_database();
        pg.psql(schema);
        pg.psql(&format!(
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {}",
            postgres::WRITER
        ));
        AppDb::Postgres(pg)
    }

    /// The `[databases.NAME]` line that points a host at this database.
    pub fn config_line(&self) -> String {
        match self {
            AppDb::Sqlite(path) => format!("sqlite = {:?}", path.display().to_string()),
            AppDb::Postgres(pg) => format!("postgres = \"{}\"", pg.url),
        }
    }

    /// Runs SQL on the database.
    pub fn exec(&self, sql: &str) {
        match self {
            AppDb::Sqlite(path) => {
                let db = rusqlite::Connection::open(path).unwrap();
                db.busy_timeout(Duration::from_secs(10)).unwrap();
                db.execute_batch(sql).unwrap();
            }
            AppDb::Postgres(pg) => {
                pg.psql(sql);
            }
        }
    }

    /// A query's rows, every value as text (NULL as "").
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self {
            AppDb::Sqlite(path) => {
                use rusqlite::types::ValueRef;
                let db = rusqlite::Connection::open(path).unwrap();
                db.busy_timeout(Duration::from_secs(10)).unwrap();
                let mut q = db.prepare(sql).unwrap();
                let n = q.column_count();
                q.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                ValueRef::Null => String::new(),
                                ValueRef::Integer(v) => v.to_string(),
                                ValueRef::Real(v) => v.to_string(),
                                ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                                ValueRef::Blob(_) => "<blob>".into(),
                            })
                        })
                        .collect()
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            AppDb::Postgres(pg) => pg
                .psql(sql)
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.split('|').map(String::from).collect())
                .collect(),
        }
    }

    /// The one value a query returns ("" for none).
    pub fn value(&self, sql: &str) -> String {
        self.rows(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_default()
    }

    pub fn count(&self, sql: &str) -> i64 {
        let v = self.value(sql);
        v.parse()
            .unwrap_or_else(|_| panic!("{sql} gave {v:?}, not a number"))
    }
}

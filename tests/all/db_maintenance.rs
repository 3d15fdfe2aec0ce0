//! The `db` capability's `maintenance` grant with the `db-probe` plugin,
//! on a real SQLite file and a real PostgreSQL database: `VACUUM` and
//! `ANALYZE` run under it, and only through `db.execute`; a write grant
//! alone gets `denied`; anything beyond the two statements is `invalid`.

use serde_json::json;
use taskhost::runtime::Runtime;

use crate::db::{err, execute, ok, query};
use crate::support::TestHost;
use crate::support::postgres::postgres;

/// `app` is granted write and maintenance, `other` write only.
fn host(app: &str, other: &str) -> TestHost {
    TestHost::new(&format!(
        r#"
[databases.app]
{app}

[databases.other]
{other}

[plugins.db_probe]
databases = {{ app = "write", other = "write" }}
maintenance = ["app"]
"#
    ))
}

async fn scenario(rt: &Runtime) {
    for db in ["app", "other"] {
        let made = execute(rt, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)", json!([])).await;
        ok(&made);
    }
    for sql in ["VACUUM", "ANALYZE", "analyze t;", "/* weekly */ VACUUM"] {
        let done = execute(rt, "app", sql, json!([])).await;
        ok(&done);
        let (kind, message) = err(&execute(rt, "other", sql, json!([])).await);
        assert_eq!(kind, "denied", "{sql}: {message}");
        assert!(
            message.contains("maintenance") && message.contains("\"other\""),
            "{message}"
        );
    }
    let (kind, message) = err(&query(rt, "app", "ANALYZE", json!([])).await);
    assert_eq!(kind, "invalid", "{message}");
    assert!(message.contains("db.execute"), "{message}");
    for sql in ["VACUUM FULL", "VACUUM; DELETE FROM t", "ANALYZE t, u"] {
        let (kind, message) = err(&execute(rt, "app", sql, json!([])).await);
        assert_eq!(kind, "invalid", "{sql}: {message}");
    }
}

#[tokio::test]
async fn on_sqlite_vacuum_and_analyze_need_the_maintenance_grant() {
    let h = host("sqlite = \"app.db\"", "sqlite = \"other.db\"");
    let rt = h.runtime().await;
    scenario(&rt).await;
    let outside = h.path().join("copy.db");
    let sql = format!("VACUUM INTO '{}'", outside.display());
    let (kind, _) = err(&execute(&rt, "app", &sql, json!([])).await);
    assert_eq!(kind, "invalid");
    assert!(!outside.exists(), "VACUUM INTO wrote a copy");
    // ANALYZE made SQLite's statistics table.
    let stats = query(
        &rt,
        "app",
        "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
        json!([]),
    )
    .await;
    assert_eq!(ok(&stats)["rows"][0][0], 1, "{stats}");
}

#[tokio::test]
async fn on_postgres_vacuum_and_analyze_need_the_maintenance_grant() {
    let (app, other) = (postgres().new_database(), postgres().new_database());
    let h = host(
        &format!("postgres = \"{}\"", app.url),
        &format!("postgres = \"{}\"", other.url),
    );
    let rt = h.runtime().await;
    scenario(&rt).await;
}

//! Plugin SQL cannot reach past its own statement: no `PRAGMA` that would
//! outlive the job on a pooled connection (or change the whole process),
//! no way to the host's store through another name for its file, and no
//! query that makes the host hold more than `max_bytes`.

use serde_json::json;
use taskhost::runtime::Runtime;

use crate::db::{err, execute, ok, query, sqlite_host};
use crate::support::{TestHost, assert_hello_works};

#[tokio::test]
async fn sqlite_pragmas_that_change_a_connection_are_refused() {
    // One connection per pool: every call shares it, so a setting that got
    // through would be seen by the next call.
    let host = sqlite_host("pool_size = 1");
    let rt = host.runtime().await;
    ok(&execute(
        &rt,
        "app",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
        json!([]),
    )
    .await);
    for sql in [
        "PRAGMA query_only = 1",
        "PRAGMA cache_size = 1",
        "PRAGMA temp_store = memory",
        "PRAGMA temp_store_directory = '/tmp'",
        "PRAGMA foreign_keys = ON",
        "PRAGMA journal_mode = OFF",
        "PRAGMA cache_size",
    ] {
        for db in ["app", "app_ro"] {
            let (kind, message) = err(&execute(&rt, db, sql, json!([])).await);
            assert_eq!(kind, "denied", "{sql}: {message}");
            assert!(message.contains("PRAGMA"), "{sql}: {message}");
        }
    }
    // Writing still works: no query_only was left behind.
    ok(&execute(&rt, "app", "INSERT INTO items VALUES (1, 'one')", json!([])).await);
    // Reading the schema is allowed.
    let info = query(&rt, "app_ro", "PRAGMA table_info(items)", json!([])).await;
    assert_eq!(ok(&info)["rows"].as_array().unwrap().len(), 2, "{info}");
    assert_hello_works(&rt).await;
}

#[tokio::test]
async fn a_hard_link_to_the_store_is_the_store() {
    let host = TestHost::new(
        "[databases.app]\nsqlite = \"innocent.db\"\n[plugins.db_probe]\ndatabases = { app = \"write\" }\n",
    );
    let data = host.path().join(".taskhost");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("taskhost.db"), b"").unwrap();
    std::fs::hard_link(data.join("taskhost.db"), host.path().join("innocent.db")).unwrap();
    let e = match Runtime::load(host.config()).await {
        Ok(_) => panic!("a hard link to the store was granted to a plugin"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("innocent.db") && e.contains("host's own store"),
        "{e}"
    );
}

#[tokio::test]
async fn a_query_cannot_make_the_host_hold_more_than_max_bytes() {
    let host = sqlite_host("max_bytes = \"1MiB\"");
    let rt = host.runtime().await;
    // One huge value: SQLite refuses to build it at all.
    let (kind, message) = err(&query(&rt, "app", "SELECT zeroblob(300000000)", json!([])).await);
    assert_eq!(kind, "failed", "{message}");
    assert!(message.contains("max_bytes"), "{message}");
    // Many values under the cap each, over it together.
    let many = "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 100) \
                SELECT zeroblob(100000) FROM s";
    let (kind, message) = err(&query(&rt, "app_ro", many, json!([])).await);
    assert_eq!(kind, "failed", "{message}");
    assert!(message.contains("more than 1048576 bytes"), "{message}");
    // Under the cap, the same query answers.
    let few = many.replace("x < 100", "x < 5");
    let rows = query(&rt, "app", &few, json!([])).await;
    assert_eq!(ok(&rows)["rows"].as_array().unwrap().len(), 5);
    assert_hello_works(&rt).await;
}

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

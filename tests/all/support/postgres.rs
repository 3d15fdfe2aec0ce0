//! A throwaway PostgreSQL cluster for the tests, started once per test
//! binary: `initdb` and `pg_ctl` from the Debian server packages (`.ci/run`
//! installs them) in a temp folder, on a free 127.0.0.1 port. When the
//! server binaries are missing the tests fail, they do not skip. A
//! watchdog process stops the cluster and removes its folder once the
//! test binary has exited.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The role that owns every test database (and may write it).
pub const WRITER: &str = "taskhost_rw";
/// The role that may only read: SELECT on the tables, nothing else.
pub const READER: &str = "taskhost_ro";

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    as_postgres_user: bool,
    next: AtomicU32,
}

/// One fresh database of the shared cluster.
pub struct PgDatabase {
    pub name: String,
    /// Connects as [`WRITER`].
    pub url: String,
    /// Connects as [`READER`].
    pub readonly_url: String,
    port: u16,
    bin: PathBuf,
}

/// The cluster, started on first use.
pub fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

fn server_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("TASKHOST_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: \
             install them (`apt-get install -y postgresql`, as .ci/run does) or set TASKHOST_TEST_PG_BIN"
        ),
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Postgres {
    fn start() -> Postgres {
        let bin = server_bin();
        // initdb and the server refuse to run as root.
        let as_postgres_user = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("taskhost-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if as_postgres_user {
            run(
                Command::new("chown").args(["postgres:postgres"]).arg(&dir),
                "chown the cluster folder",
            );
        }
        let data = dir.join("data");
        let mut pg = Postgres {
            port: 0,
            bin,
            as_postgres_user,
            next: AtomicU32::new(0),
        };
        run(
            pg.server_cmd("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .args(["--locale=C"]),
            "initdb",
        );
        // Another process may take the port between our probe and the
        // server's bind: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let status = pg
                .server_cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                    dir.display()
                ))
                .arg("start")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("pg_ctl starts");
            if status.success() {
                pg.port = port;
                break;
            }
            last_error = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        }
        assert!(pg.port != 0, "PostgreSQL did not start:\n{last_error}");
        pg.watch(&data, &dir);
        pg.psql(
            "postgres",
            &format!("CREATE ROLE {WRITER} LOGIN; CREATE ROLE {READER} LOGIN;"),
        );
        pg
    }

    /// A server binary, run as the `postgres` user when we are root.
    fn server_cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Stops the cluster and removes its folder once this process is gone.
    #[allow(
        clippy::zombie_processes,
        reason = "the watchdog must outlive the test binary, which therefore never waits for it"
    )]
    fn watch(&self, data: &Path, dir: &Path) {
        let stop = format!(
            "{}{} stop -m immediate -D '{}'",
            if self.as_postgres_user {
                "runuser -u postgres -- "
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            data.display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cluster watchdog starts");
    }

    /// Runs SQL as the superuser; returns psql's unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, self.port, "postgres", db, sql)
    }

    /// A new database owned by [`WRITER`], whose tables [`READER`] may
    /// only SELECT (default privileges), and that nobody else may reach.
    pub fn new_database(&self) -> PgDatabase {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::SeqCst)
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER {WRITER}"),
        );
        self.psql(
            &name,
            &format!(
                "REVOKE ALL ON DATABASE {name} FROM PUBLIC;
                 GRANT CONNECT ON DATABASE {name} TO {READER};
                 GRANT USAGE ON SCHEMA public TO {READER};
                 ALTER DEFAULT PRIVILEGES FOR ROLE {WRITER} IN SCHEMA public GRANT SELECT ON TABLES TO {READER};"
            ),
        );
        PgDatabase {
            url: format!("postgres://{WRITER}@127.0.0.1:{}/{name}", self.port),
            readonly_url: format!("postgres://{READER}@127.0.0.1:{}/{name}", self.port),
            name,
            port: self.port,
            bin: self.bin.clone(),
        }
    }
}

impl PgDatabase {
    /// Runs SQL as the superuser in this database.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.bin, self.port, "postgres", &self.name, sql)
    }
}

fn psql(bin: &Path, port: u16, user: &str, db: &str, sql: &str) -> String {
    run(
        Command::new(bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &port.to_string(), "-U", user, "-d", db, "-c", sql]),
        &format!("psql {sql:?}"),
    )
    .trim()
    .to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

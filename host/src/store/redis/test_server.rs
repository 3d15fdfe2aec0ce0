//! A throwaway `redis-server` for tests (the host's unit tests and the
//! end-to-end suite): a free port on 127.0.0.1, no persistence, its files
//! in a temporary folder, stopped when dropped. Not used by `serve`.
//! [`RedisServer::start_tls`] serves TLS only, with a CA and server
//! certificate made for it by the `openssl` command.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running `redis-server`.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// The certificate files when the server speaks TLS only.
    tls: Option<Certificates>,
    _dir: TempDir,
}

/// How long a server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

impl RedisServer {
    /// Starts a server with no password.
    pub fn start() -> std::io::Result<RedisServer> {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (such as
    /// `["--requirepass", "pw"]`). Tries a few ports, since a free port
    /// found here may be taken before the server binds it.
    pub fn start_with(extra: &[&str]) -> std::io::Result<RedisServer> {
        Self::start_inner(extra, false)
    }

    /// Starts a server that speaks only TLS (`rediss://`), its certificate
    /// (for 127.0.0.1 and localhost) signed by a CA made for it alone:
    /// [`RedisServer::tls_ca`] is that CA's file. Clients need a
    /// certificate of their own ([`RedisServer::tls_client`], from the
    /// same CA) when `check_clients`.
    pub fn start_tls(check_clients: bool) -> std::io::Result<RedisServer> {
        let tls = if check_clients {
            Tls::CheckClients
        } else {
            Tls::Server
        };
        let mut last = None;
        for _ in 0..5 {
            match Self::try_start(&[], false, None, tls) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    fn start_inner(extra: &[&str], die_with_thread: bool) -> std::io::Result<RedisServer> {
        let mut last = None;
        for _ in 0..5 {
            match Self::try_start(extra, die_with_thread, None, Tls::No) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    /// Starts a server on a given port (say, the port of one just killed,
    /// to play a restart).
    pub fn start_on(port: u16) -> std::io::Result<RedisServer> {
        Self::try_start(&[], false, Some(port), Tls::No)
    }

    fn try_start(
        extra: &[&str],
        die_with_thread: bool,
        port: Option<u16>,
        tls: Tls,
    ) -> std::io::Result<RedisServer> {
        let port = match port {
            Some(port) => port,
            None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let dir = tempfile::tempdir()?;
        let mut command = Command::new("redis-server");
        if die_with_thread {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of ours.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let tls = if tls == Tls::No {
            command.args(["--port", &port.to_string()]);
            None
        } else {
            let files = make_certificates(dir.path())?;
            let check = if tls == Tls::CheckClients {
                "yes"
            } else {
                "no"
            };
            command
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", check]);
            Some(files)
        };
        let mut child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start redis-server (install Debian's redis-server package): {e}"
                    ),
                )
            })?;
        // Ready when it says so: read its log, not a timer.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !ready && line.contains("Ready to accept connections") {
                    ready = true;
                    let _ = tx.send(Ok(()));
                } else if !ready && line.contains("# ") && line.contains("rror") {
                    let _ = tx.send(Err(line));
                    return;
                }
                // Keep draining so the server never blocks on a full pipe.
            }
        });
        let started = Instant::now();
        match rx.recv_timeout(READY_WITHIN) {
            Ok(Ok(())) => Ok(RedisServer {
                child,
                port,
                tls,
                _dir: dir,
            }),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match outcome {
                    Ok(Err(line)) => line,
                    _ => format!("not ready after {:?}", started.elapsed()),
                };
                Err(std::io::Error::other(format!(
                    "redis-server on port {port}: {why}"
                )))
            }
        }
    }

    /// One server for the whole test process, started on first use. Its
    /// process is killed when the test process ends (the kernel does it:
    /// the server is started from a thread that lives as long as the
    /// process, with a parent-death signal).
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(Self::start_inner(&[], true));
                // This thread's end would signal the server: never end.
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .expect("server thread answers")
                .expect("start the shared redis-server")
        })
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A client certificate and its key, signed by the same CA, for a TLS
    /// server that checks clients.
    pub fn tls_client(&self) -> Option<(&Path, &Path)> {
        self.tls
            .as_ref()
            .map(|t| (t.client_cert.as_path(), t.client_key.as_path()))
    }

    /// Stops the server at once (a crash, as far as clients can tell).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a server speaks TLS, and checks its clients' certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    No,
    Server,
    CheckClients,
}

/// The files of a TLS server, and of a client it accepts.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

const P256: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// Makes a throwaway CA and a server and a client certificate it signs
/// (P-256 keys, valid two days; the server's for 127.0.0.1 and localhost)
/// in `dir`.
fn make_certificates(dir: &Path) -> std::io::Result<Certificates> {
    let files = Certificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    let ca_key = dir.join("ca.key");
    openssl(|c| {
        c.args(["req", "-x509", "-nodes", "-days", "2"])
            .args(P256)
            .args(["-subj", "/CN=taskhost test CA", "-keyout"])
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.ca)
    })?;
    let sign = |name: &str, ext: &str, serial: &str, cert: &Path, key: &Path| {
        let (csr, ext_file) = (
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.ext")),
        );
        std::fs::write(
            &ext_file,
            format!("{ext}\nbasicConstraints = critical, CA:FALSE\n"),
        )?;
        openssl(|c| {
            c.args(["req", "-nodes"])
                .args(P256)
                .args(["-subj", &format!("/CN={name}"), "-keyout"])
                .arg(key)
                .arg("-out")
                .arg(&csr)
        })?;
        openssl(|c| {
            c.args(["x509", "-req", "-days", "2", "-set_serial", serial, "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&files.ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&ext_file)
                .arg("-out")
                .arg(cert)
        })
    };
    sign(
        "server",
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth",
        "2",
        &files.cert,
        &files.key,
    )?;
    sign(
        "client",
        "extendedKeyUsage = clientAuth",
        "3",
        &files.client_cert,
        &files.client_key,
    )?;
    Ok(files)
}

/// Runs `openssl` with the arguments `args` adds; its output on failure.
fn openssl(args: impl FnOnce(&mut Command) -> &mut Command) -> std::io::Result<()> {
    let mut command = Command::new("openssl");
    let out = args(&mut command).output().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot run openssl (install Debian's openssl package): {e}"),
        )
    })?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

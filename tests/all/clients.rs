//! The client libraries in `clients/` against a real `taskhost serve`: the
//! Python package's pytest suite (from a virtualenv under `target/`) and
//! the TypeScript package's `node --test` suite. The host gives the seed
//! apps' handler names through `decl_probe` (each succeeds with its
//! payload), and the suites reach it through `TASKHOST_URL` and
//! `TASKHOST_TOKEN`.

use std::process::{Command, Output};

use crate::api::{ADMIN, READ, config};
use crate::http_client::Server;
use crate::support::{TestHost, python, repo_root};

/// The handler names the seed's code samples (and the client tests) use.
const APP_HANDLERS: &[&str] = &[
    "send_welcome_email",
    "request_review",
    "generate_daily_report",
    "cleanup_sessions",
    "health_check",
    "validate_order",
    "process_payment",
    "send_confirmation",
    "send_newsletter_email",
    "my_task",
    "cleanup",
    "send_email",
    "fraud_alert",
    "send_reminder",
    "report_done",
    "batch_item",
];

/// A host serving `default` (the `parked` queue has no workers, so its
/// jobs stay waiting), with the app handlers and `hello` (which fails for
/// an empty name), and its API address.
fn app_host() -> (TestHost, Server) {
    let extra = format!(
        "[workers]\nqueues = {{ default = 4 }}\nmax_payload = \"4KiB\"\n\
         [scheduler]\nrefresh = \"200ms\"\n\
         [plugins.decl_probe]\nsettings = {{ declare = \"list:{}\" }}\n",
        APP_HANDLERS.join(",")
    );
    let host = TestHost::new(&config("max_batch = 200", &extra));
    let server = Server::start(&host);
    (host, server)
}

/// Runs a client suite with the host's address and tokens in its
/// environment; fails with its output unless it exited 0.
fn run_suite(mut command: Command, server: &Server, what: &str) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .env("TASKHOST_URL", format!("http://{}", server.addr))
        .env("TASKHOST_TOKEN", ADMIN)
        .env("TASKHOST_READ_TOKEN", READ)
        .output()
        .unwrap_or_else(|e| panic!("cannot start the {what} suite: {e}"));
    let out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    assert!(status.success(), "{what} suite failed ({status}):\n{out}");
    out
}

/// The last number `pattern` reads from a line of `out` (0 if none does).
fn count(out: &str, pattern: impl Fn(&str) -> Option<u32>) -> u32 {
    out.lines().filter_map(pattern).next_back().unwrap_or(0)
}

#[test]
fn python_client_suite_passes_against_a_real_host() {
    let package = repo_root().join("clients").join("python");
    let ready = format!(
        "import taskhost_client, httpx, pytest, fastapi, mypy; \
         assert taskhost_client.__file__.startswith({:?})",
        package.join("src").display().to_string()
    );
    let editable = format!("{}[test]", package.display());
    let venv = python::venv("clients-venv", &ready, &["-e", &editable]);
    let (_host, server) = app_host();
    let mut pytest = Command::new(python::bin(&venv, "python"));
    pytest
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-rfEs", "tests"])
        .current_dir(&package)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_suite(pytest, &server, "Python client");
    // pytest's last line: `==== 26 passed in 3.1s ====`.
    let summary = out
        .lines()
        .rfind(|line| line.starts_with('=') && line.contains(" in "))
        .unwrap_or_else(|| panic!("no pytest summary line:\n{out}"));
    let passed = count(summary, |line| {
        let at = line.find(" passed")?;
        line[..at]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    assert!(passed > 0, "pytest ran no tests:\n{out}");
    for word in ["failed", "skipped", "error", "xfail", "deselected"] {
        assert!(!summary.contains(word), "pytest summary has {word}:\n{out}");
    }
    eprintln!("Python client: {passed} tests passed");
}

#[test]
fn typescript_client_suite_passes_against_a_real_host() {
    let package = repo_root().join("clients").join("typescript");
    let tsc = package.join("node_modules").join(".bin").join("tsc");
    if !tsc.exists() {
        // The dev dependencies (TypeScript, Node's types), pinned by the
        // lock file, into the package's own node_modules (git-ignored).
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&package)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci failed in {}", package.display());
    }
    let built = Command::new(&tsc)
        .args(["-p", "."])
        .current_dir(&package)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", tsc.display()));
    assert!(
        built.status.success(),
        "tsc failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let (_host, server) = app_host();
    let mut node = Command::new("node");
    node.args(["--test", "dist/test/jobs.test.js"])
        .current_dir(&package);
    let out = run_suite(node, &server, "TypeScript client");
    let tally = |word: &str| {
        let prefix = format!("# {word} ");
        count(&out, |line| line.strip_prefix(&prefix)?.trim().parse().ok())
    };
    let passed = tally("pass");
    assert!(passed > 0, "node --test ran no tests:\n{out}");
    assert_eq!(tally("fail"), 0, "{out}");
    assert_eq!(tally("skipped"), 0, "{out}");
    assert_eq!(tally("todo"), 0, "{out}");
    eprintln!("TypeScript client: {passed} tests passed");
}

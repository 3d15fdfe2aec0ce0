//! The `taskhost` command as a user runs it.

use crate::support::{TestHost, stderr, stdout};

#[test]
fn run_prints_result_outcome_fuel_and_duration() {
    let host = TestHost::new("");
    let out = host.run_cli(&["run", "hello", "--payload", r#"{"name":"CLI"}"#]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(r#"result:   {"attempt":1,"greeting":"Hello, CLI!"}"#),
        "{text}"
    );
    assert!(text.contains("outcome:  success"), "{text}");
    assert!(text.contains("fuel:"), "{text}");
    assert!(text.contains("duration:"), "{text}");
}

#[test]
fn run_with_json_prints_the_report() {
    let host = TestHost::new("");
    let out = host.run_cli(&["run", "hello", "--payload", r#"{"name":"J"}"#, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["outcome"]["kind"], "success");
    assert_eq!(report["outcome"]["result"]["greeting"], "Hello, J!");
}

#[test]
fn run_refuses_bad_input_with_exit_code_2() {
    let host = TestHost::new("");
    let out = host.run_cli(&["run", "hello", "--payload", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--payload is not valid JSON"),
        "{}",
        stderr(&out)
    );

    let out = host.run_cli(&["run", "helo", "--payload", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown handler \"helo\" (did you mean hello)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failing_job_exits_1_with_its_outcome() {
    let host = TestHost::new("");
    let out = host.run_cli(&[
        "run",
        "probe.outcome",
        "--payload",
        r#"{"kind":"permanent"}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("outcome:  permanent"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn plugin_list_shows_every_handler() {
    let host = TestHost::new("");
    let out = host.run_cli(&["plugin", "list"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for handler in ["hello", "probe.spin", "probe.counter"] {
        assert!(text.contains(handler), "{handler} missing from:\n{text}");
    }
}

#[test]
fn plugin_check_accepts_a_plugin_and_refuses_a_core_module() {
    let host = TestHost::new("");
    let hello = crate::support::plugin_dir().join("hello.wasm");
    let out = host.run_cli(&["plugin", "check", hello.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Greets the name"), "{}", stdout(&out));

    let core = host.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = host.run_cli(&["plugin", "check", core.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(core.to_str().unwrap()) && stderr(&out).contains("not a component"),
        "names the file given, not a copy: {}",
        stderr(&out)
    );
    // A file not named `.wasm` is checked all the same, not skipped.
    let text = host.path().join("notes.txt");
    std::fs::write(&text, b"just text").unwrap();
    let out = host.run_cli(&["plugin", "check", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(text.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_config_with_an_unknown_key_names_file_and_line() {
    let host = TestHost::new("[limits]\ntimeout = \"1s\"\nfule = 3\n");
    let out = host.run_cli(&["plugin", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("taskhost.toml") && err.contains("fule") && err.contains("line"),
        "{err}"
    );
}

#[test]
fn schedule_next_prints_fire_times_and_refuses_bad_expressions() {
    let host = TestHost::new("");
    let out = host.run_cli(&[
        "schedule",
        "next",
        "30 4 * * 1-5",
        "--count",
        "3",
        "--from",
        "2026-11-27T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 2026-11-27 is a Friday: then Monday and Tuesday.
    assert_eq!(
        stdout(&out),
        "2026-11-27T04:30:00+00:00\n2026-11-30T04:30:00+00:00\n2026-12-01T04:30:00+00:00\n"
    );

    let out = host.run_cli(&[
        "schedule",
        "next",
        "0 9 * * *",
        "--count",
        "1",
        "--from",
        "2026-03-29T00:00:00Z",
        "--tz",
        "Europe/Berlin",
    ]);
    assert_eq!(stdout(&out), "2026-03-29T09:00:00+02:00\n");

    for (expr, message) in [
        ("61 * * * *", "minute"),
        ("* * *", "expected 5 or 6 fields"),
        ("*/0 * * * *", "step must be positive"),
    ] {
        let out = host.run_cli(&["schedule", "next", expr]);
        assert_eq!(out.status.code(), Some(2), "{expr}");
        assert!(stderr(&out).contains(message), "{expr}: {}", stderr(&out));
    }
    let out = host.run_cli(&["schedule", "next", "0 9 * * *", "--tz", "Mars/Olympus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Mars/Olympus"), "{}", stderr(&out));
}

#[test]
fn a_taken_api_address_names_the_setting_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = TestHost::new(&format!(
        "[api]\nlisten = \"{}\"\n",
        taken.local_addr().unwrap()
    ));
    let out = host.run_cli(&["serve"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("[api] listen") && err.contains("TASKHOST_API__LISTEN"),
        "{err}"
    );
}

#[test]
fn token_new_refuses_an_unknown_scope_and_prints_no_token() {
    let host = TestHost::new("");
    let out = host.run_cli(&["token", "new", "--scopes", "read,bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(r#"unknown scope "bogus" (expected enqueue, read, admin)"#),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "", "no token printed");
    let out = host.run_cli(&["token", "new", "--scopes", "admin"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains(r#"scopes = ["admin"]"#),
        "{}",
        stdout(&out)
    );
}

#[test]
fn without_a_config_the_host_says_what_it_uses_and_warns_of_an_empty_plugin_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let out = std::process::Command::new(crate::support::taskhost_bin())
        .args(["plugin", "list"])
        .current_dir(dir.path())
        .env_remove("TASKHOST_CONFIG")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("no config file (--config, TASKHOST_CONFIG or ./taskhost.toml)"),
        "{err}"
    );
    assert!(
        err.contains("plugins from") && err.contains("store"),
        "{err}"
    );
    assert!(err.contains("holds no .wasm file"), "{err}");
}

#[test]
fn the_example_config_loads_hello_and_no_test_probe() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let out = std::process::Command::new(crate::support::taskhost_bin())
        .arg("--config")
        .arg(root.join("examples").join("taskhost.toml"))
        .args(["plugin", "list"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("hello"), "{text}");
    assert!(!text.contains("probe"), "{text}");
}

#[test]
fn config_sections_naming_nothing_loaded_are_warned_with_the_near_name() {
    let host = TestHost::new(
        "[plugins.db-probe]\ndatabases = {}\n\n[plugins.hellp]\n\n[handlers.helo]\ntimeout = \"1s\"\n",
    );
    let out = host.run_cli(&["plugin", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("[plugins.db-probe] names no loaded plugin")
            && err.contains("write [plugins.db_probe]"),
        "{err}"
    );
    assert!(
        err.contains("[plugins.hellp] names no loaded plugin")
            && err.contains("did you mean hello?"),
        "{err}"
    );
    assert!(
        err.contains(r#"[handlers."helo"] names no loaded handler"#)
            && err.contains("did you mean hello?"),
        "{err}"
    );
}

#[test]
fn taskhost_url_in_the_environment_does_not_break_local_commands() {
    let host = TestHost::new("");
    let run = |env_url: bool, flag: bool| {
        let mut cmd = std::process::Command::new(crate::support::taskhost_bin());
        cmd.arg("--config").arg(host.config_path());
        if flag {
            cmd.args(["--url", "http://127.0.0.1:9"]);
        }
        cmd.args(["run", "hello", "--payload", r#"{"name":"env"}"#]);
        if env_url {
            cmd.env("TASKHOST_URL", "http://127.0.0.1:9");
        }
        cmd.output().unwrap()
    };
    let out = run(true, false);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(false, true);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--url works with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_container_config_loads_and_the_unit_runs_serve_on_its_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let deploy = root.join("deploy");
    let config = taskhost::config::load(&deploy.join("docker.toml"), std::iter::empty())
        .expect("deploy/docker.toml is a valid config");
    assert_eq!(
        config.plugin_dir(),
        std::path::Path::new("/opt/taskhost/plugins")
    );
    let unit = std::fs::read_to_string(deploy.join("taskhost.service")).unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/local/bin/taskhost --config /etc/taskhost/taskhost.toml serve"
        ),
        "{unit}"
    );
    // The stop timeout leaves room for the default shutdown grace.
    let grace = taskhost::config::WorkerSettings::default()
        .shutdown_grace
        .as_secs();
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stop > grace,
        "TimeoutStopSec={stop} must exceed the {grace}s grace"
    );
}

#[test]
fn config_and_plugin_problems_exit_2_like_any_bad_input() {
    let host = TestHost::with_host_table("plugins = \"/nonexistent/plugins\"\n", "");
    for args in [
        &["enqueue", "hello", "--payload", "{}"][..],
        &["run", "hello", "--payload", "{}"],
        &["serve"],
    ] {
        let out = host.run_cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("/nonexistent/plugins"),
            "{}",
            stderr(&out)
        );
    }
}

//! Loading plugins: what is refused (naming the file), the compiled cache,
//! and the deny-by-default capabilities.

use serde_json::json;
use taskhost::runtime::{Outcome, Runtime, RuntimeError};

use crate::support::{TestHost, assert_hello_works, plugin_dir, run_job};

/// A host whose plugin folder holds the given files.
fn host_with_files(files: &[(&str, &[u8])]) -> TestHost {
    host_with_files_and(files, "")
}

/// A host whose plugin folder holds the given files, with `extra` config.
fn host_with_files_and(files: &[(&str, &[u8])], extra: &str) -> TestHost {
    let plugins = tempfile::tempdir().unwrap().keep();
    for (name, bytes) in files {
        std::fs::write(plugins.join(name), bytes).unwrap();
    }
    TestHost::with_host_table(
        &format!(
            "plugins = {:?}\ncache = \"cache\"\n",
            plugins.display().to_string()
        ),
        extra,
    )
}

async fn load_error(host: &TestHost) -> String {
    match Runtime::load(host.config()).await {
        Ok(_) => panic!("the plugin folder should have been refused"),
        Err(e @ RuntimeError::Plugins(_)) => e.to_string(),
        Err(e) => panic!("refused for the wrong reason: {e}"),
    }
}

fn hello_bytes() -> Vec<u8> {
    std::fs::read(plugin_dir().join("hello.wasm")).unwrap()
}

#[tokio::test]
async fn hello_runs_through_the_library() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "hello", json!({"name": "Ada"})).await;
    assert_eq!(
        report.outcome,
        Outcome::Success {
            result: json!({"greeting": "Hello, Ada!", "attempt": 1})
        }
    );
    assert!(report.fuel_used > 0);
}

#[tokio::test]
async fn a_corrupt_file_is_refused_by_name() {
    let mut bytes = hello_bytes();
    bytes.truncate(bytes.len() / 2);
    let host = host_with_files(&[("broken.wasm", &bytes)]);
    let msg = load_error(&host).await;
    assert!(
        msg.contains("broken.wasm") && msg.contains("cannot compile"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused_by_name() {
    let host = host_with_files(&[("notes.wasm", b"these are my notes")]);
    let msg = load_error(&host).await;
    assert!(
        msg.contains("notes.wasm") && msg.contains("not a WebAssembly file"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_core_module_is_refused_by_name() {
    // The smallest valid core module: magic and version 1.
    let host = host_with_files(&[("core.wasm", b"\0asm\x01\0\0\0")]);
    let msg = load_error(&host).await;
    assert!(
        msg.contains("core.wasm") && msg.contains("not a component"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_by_name() {
    // The smallest valid component: it exports nothing, so no `run`.
    let host = host_with_files(&[("empty.wasm", b"\0asm\x0d\0\x01\0")]);
    let msg = load_error(&host).await;
    assert!(
        msg.contains("empty.wasm") && msg.contains("does not implement the taskhost:plugin"),
        "{msg}"
    );
}

#[tokio::test]
async fn two_plugins_with_the_same_handler_are_refused() {
    let bytes = hello_bytes();
    let host = host_with_files(&[("a.wasm", &bytes), ("b.wasm", &bytes)]);
    let msg = load_error(&host).await;
    assert!(
        msg.contains("b.wasm")
            && msg.contains("\"hello\" is already provided by")
            && msg.contains("a.wasm"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_second_start_loads_from_the_cache_and_other_engine_settings_do_not() {
    let bytes = hello_bytes();
    let host = host_with_files(&[("hello.wasm", &bytes)]);
    let first = host.runtime().await.registry().stats();
    assert_eq!((first.plugins, first.compiled, first.from_cache), (1, 1, 0));
    let second = host.runtime().await.registry().stats();
    assert_eq!(
        (second.plugins, second.compiled, second.from_cache),
        (1, 0, 1)
    );

    // Same folder, same cache, other code generation: the cached file must not be used.
    let mut config = (*host.config()).clone();
    config.host.opt_level = taskhost::config::OptLevel::None;
    let other = Runtime::load(std::sync::Arc::new(config)).await.unwrap();
    assert_eq!(
        (
            other.registry().stats().compiled,
            other.registry().stats().from_cache
        ),
        (1, 0)
    );
    // And the original settings still find their own entry.
    let again = host.runtime().await.registry().stats();
    assert_eq!(again.from_cache, 1);
}

#[tokio::test]
async fn a_corrupt_cache_entry_is_recompiled() {
    let bytes = hello_bytes();
    let host = host_with_files(&[("hello.wasm", &bytes)]);
    host.runtime().await;
    let cache = host.path().join("cache");
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let runtime = host.runtime().await;
    assert_eq!(runtime.registry().stats().compiled, 1);
    let report = run_job(&runtime, "hello", json!({"name": "x"})).await;
    assert!(report.outcome.is_success(), "{:?}", report.outcome);
}

/// The cache file of the plugin named `plugin` (its file stem) in `runtime`.
fn cache_file(host: &TestHost, runtime: &Runtime, plugin: &str) -> std::path::PathBuf {
    let digest = &runtime
        .registry()
        .plugin(plugin)
        .expect("the plugin is loaded")
        .digest
        .clone();
    std::fs::read_dir(host.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(digest.as_str())
        })
        .expect("a cache file for the plugin")
}

#[tokio::test]
async fn a_cache_file_copied_over_another_plugins_name_is_not_run() {
    let (hello, probe) = (
        hello_bytes(),
        std::fs::read(plugin_dir().join("probe.wasm")).unwrap(),
    );
    let host = host_with_files(&[("hello.wasm", &hello), ("probe.wasm", &probe)]);
    let first = host.runtime().await;
    std::fs::copy(
        cache_file(&host, &first, "probe"),
        cache_file(&host, &first, "hello"),
    )
    .unwrap();
    let runtime = host.runtime().await;
    let stats = runtime.registry().stats();
    assert_eq!((stats.compiled, stats.from_cache), (1, 1));
    assert_hello_works(&runtime).await;
}

#[tokio::test]
async fn garbage_machine_code_in_the_cache_is_compiled_again_not_run() {
    let hello = hello_bytes();
    let host = host_with_files(&[("hello.wasm", &hello)]);
    let first = host.runtime().await;
    // Keep the file's headers (so it still deserializes) and overwrite the
    // middle, where the machine code is, with invalid instructions.
    let path = cache_file(&host, &first, "hello");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    let end = (mid + 64 * 1024).min(bytes.len() - 64);
    bytes[mid..end].fill(0x06);
    std::fs::write(&path, &bytes).unwrap();
    let runtime = host.runtime().await;
    assert_eq!(runtime.registry().stats().compiled, 1);
    assert_hello_works(&runtime).await;
    // The entry written again verifies on the next start.
    assert_eq!(host.runtime().await.registry().stats().from_cache, 1);
}

#[tokio::test]
async fn a_cache_folder_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let host = host_with_files(&[("hello.wasm", &hello_bytes())]);
    let cache = host.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = match Runtime::load(host.config()).await {
        Ok(_) => panic!("a world-writable cache folder was used"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&cache.display().to_string()) && e.contains("writable by everyone"),
        "{e}"
    );
    // Made private, it is used; a new folder is created private.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_hello_works(&host.runtime().await).await;
    let fresh = host_with_files(&[("hello.wasm", &hello_bytes())]);
    fresh.runtime().await;
    let mode = std::fs::metadata(fresh.path().join("cache"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[tokio::test]
async fn bad_handler_declarations_are_refused_by_name() {
    let bytes = std::fs::read(plugin_dir().join("decl_probe.wasm")).unwrap();
    for (mode, expected) in [
        ("many", "200000 handlers declared, at most 1000"),
        ("long-name", "bytes long, at most 128"),
        ("nul", "control character"),
        ("newline", "control character"),
        ("duplicate", "\"decl.twice\" is declared twice"),
        ("empty-name", "a handler name is empty"),
        (
            "long-description",
            "description of handler \"decl.described\"",
        ),
    ] {
        let host = host_with_files_and(
            &[("decl_probe.wasm", &bytes)],
            &format!("[plugins.decl_probe]\nsettings = {{ declare = {mode:?} }}\n"),
        );
        let msg = load_error(&host).await;
        assert!(
            msg.contains("decl_probe.wasm") && msg.contains(expected),
            "{mode}: {msg}"
        );
        // A 20 MB name is quoted cut, and a newline escaped: one line.
        assert!(
            msg.len() < 1000 && msg.lines().count() == 2,
            "{mode}: {msg}"
        );
    }
    // Declared well, the same plugin loads.
    let host = host_with_files(&[("decl_probe.wasm", &bytes)]);
    let runtime = host.runtime().await;
    assert!(runtime.registry().handler("decl.ok").is_some());
}

#[tokio::test]
async fn every_capability_is_denied_without_a_grant() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let report = run_job(&runtime, "probe.capabilities", json!({})).await;
    let Outcome::Success { result } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    for cap in ["db", "http", "chain", "config", "jobs"] {
        let err = result[cap]["err"]
            .as_str()
            .unwrap_or_else(|| panic!("{cap} was not refused: {result}"));
        assert!(
            err.starts_with("HostError::Denied(") && err.contains("plugin \\\"probe\\\""),
            "{cap}: {err}"
        );
    }
    assert!(
        result["db"]["err"]
            .as_str()
            .unwrap()
            .contains("database \\\"app\\\""),
        "{result}"
    );
    assert!(
        result["http"]["err"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{result}"
    );
}

#[tokio::test]
async fn unknown_handler_is_an_error_not_an_outcome() {
    let host = TestHost::new("");
    let runtime = host.runtime().await;
    let err = runtime
        .run(taskhost::runtime::JobInput::adhoc("helo", "{}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"helo\""), "{err}");
    assert_eq!(
        runtime.registry().near_matches("helo"),
        vec!["hello".to_string()]
    );
}

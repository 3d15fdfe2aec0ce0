//! The Python and JavaScript plugins (built by the build script into their
//! own folder), and a host that loads them.
//!
//! Each of these components holds an interpreter, and Cranelift takes far
//! longer to compile one than all Rust plugins together. So the tests
//! compile each once per process into the shared cache
//! ([`super::shared_cache_dir`]) before any host of theirs loads it: hosts
//! created side by side would otherwise each compile the same component at
//! once. They compile with `opt_level = "none"` (the host's knob), which
//! compiles several times faster; the compiled code keys the cache with
//! the engine's settings, so it never mixes with optimised code.

use std::path::PathBuf;
use std::sync::Arc;

use taskhost::runtime::Runtime;

use super::TestHost;

/// The folder the build script built the Python and JavaScript plugins into.
pub fn polyglot_dir() -> PathBuf {
    PathBuf::from(env!("TASKHOST_POLYGLOT_DIR"))
}

/// The `[host]` table of a polyglot test host: its plugins, the shared
/// cache and unoptimised compilation.
pub fn host_table() -> String {
    format!(
        "plugins = {:?}\ncache = {:?}\nopt_level = \"none\"\n",
        polyglot_dir().display().to_string(),
        super::shared_cache_dir().display().to_string()
    )
}

/// A host loading the Python and JavaScript plugins, with `extra` config;
/// its compiled components come from the cache, warmed once per process.
pub async fn host(extra: &str) -> TestHost {
    warm().await;
    TestHost::with_host_table(&host_table(), extra)
}

/// A runtime of [`host`], ready to run jobs.
pub async fn runtime(extra: &str) -> (TestHost, Runtime) {
    let host = host(extra).await;
    let runtime = host.runtime().await;
    (host, runtime)
}

/// Compiles the polyglot components into the shared cache once per
/// process; every other caller waits for that instead of compiling too.
pub async fn warm() {
    static WARM: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    WARM.get_or_init(|| async {
        let host = TestHost::with_host_table(&host_table(), "");
        let config: Arc<_> = host.config();
        Runtime::load(config)
            .await
            .expect("the polyglot plugins load");
    })
    .await;
}

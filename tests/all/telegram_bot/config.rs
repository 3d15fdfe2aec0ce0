//! The shipped example config: it loads, the plugin provides every handler
//! it schedules, and the schedules are the seed's.

use super::*;
use crate::support::{stdout, taskhost_bin};

#[test]
fn the_shipped_config_has_the_seeds_schedules() {
    let data = tempfile::tempdir().unwrap();
    let taskhost = |args: &[&str]| {
        let mut c = std::process::Command::new(taskhost_bin());
        c.arg("--config")
            .arg(example("taskhost.toml"))
            .args(args)
            .env_remove("TASKHOST_CONFIG")
            .env("TASKHOST_HOST__PLUGINS", crate::support::plugin_dir())
            .env("TASKHOST_HOST__CACHE", crate::support::shared_cache_dir())
            .env("TASKHOST_HOST__DATA", data.path())
            .env("TASKHOST_API__LISTEN", "127.0.0.1:0")
            .env(
                "TASKHOST_DATABASES__BOT__SQLITE",
                data.path().join("bot.db"),
            )
            .env("TONAPI_KEY", "k")
            .env("TELEGRAM_BOT_TOKEN", "t");
        c
    };
    let seed = [
        ("payment-monitor", "every 30s", "payment_monitor"),
        ("channel-analytics", "every 6h", "channel_analytics"),
        ("reward-processor", "every 5m", "reward_processor"),
        ("database-cleanup", "@daily", "database_cleanup"),
        ("health-checker", "every 15m", "health_checker"),
    ];
    // `serve` refuses a schedule whose handler no plugin provides, and
    // syncs the config's schedules into the store at start.
    let serve = taskhost(&["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let serve = crate::support::ServeProcess(serve);
    let text = wait_until(LIMIT, "the seed's schedules to be listed", || {
        let out = taskhost(&["schedule", "list"]).output().unwrap();
        let text = stdout(&out);
        (out.status.success() && seed.iter().all(|(name, ..)| text.contains(name))).then_some(text)
    });
    crate::support::terminate(serve);
    for (name, expr, handler) in seed {
        let line = text.lines().find(|l| l.contains(name)).unwrap();
        assert!(line.contains(expr) && line.contains(handler), "{line}");
    }

    let config = taskhost::config::load(&example("taskhost.toml"), Vec::<(String, String)>::new())
        .expect("the shipped config loads");
    assert_eq!(config.schedules.len(), seed.len());
    for s in &config.schedules {
        assert_eq!(
            s.overlap,
            taskhost::store::OverlapPolicy::Skip,
            "{}: a slow run must not pile up",
            s.name
        );
    }
    // The seed's on-demand tasks are handlers of the plugin too.
    let out = taskhost(&["plugin", "list"]).output().unwrap();
    let plugins = stdout(&out);
    for handler in [
        "payment_verification",
        "reward_distribution",
        "channel_analytics",
        "health_alert",
    ] {
        assert!(plugins.contains(handler), "{handler} in {plugins}");
    }
}

//! The shipped example config: it loads, the plugin provides every handler
//! it schedules, and `taskhost schedule list` shows both seeds' tables.

use super::*;
use crate::support::{stdout, taskhost_bin};

#[test]
fn the_shipped_config_has_both_seeds_schedules() {
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
                "TASKHOST_DATABASES__APP__SQLITE",
                data.path().join("app.db"),
            )
            .env("EXCHANGE_KEY_1", "k")
            .env("EXCHANGE_SECRET_1", "s")
            .env("MAIL_API_KEY", "m");
        c
    };
    // (name, expression, handler, priority): seed 003's crons, seed 001's table.
    let seeds = [
        (
            "hourly-snapshots",
            "5 * * * *",
            "create_hourly_snapshots",
            "normal",
        ),
        (
            "daily-snapshots",
            "15 0 * * *",
            "create_daily_snapshots",
            "normal",
        ),
        (
            "weekly-snapshots",
            "0 1 * * 0",
            "create_weekly_snapshots",
            "normal",
        ),
        (
            "monthly-snapshots",
            "0 2 1 * *",
            "create_monthly_snapshots",
            "normal",
        ),
        (
            "cleanup-old-snapshots",
            "0 3 * * *",
            "cleanup_old_snapshots",
            "normal",
        ),
        (
            "portfolio-sync",
            "every 5m",
            "sync_all_portfolios",
            "normal",
        ),
        ("bot-health-check", "every 2m", "bot_health_check", "high"),
        ("data-cleanup", "0 3 * * *", "cleanup_data", "low"),
        ("database-vacuum", "0 4 * * 0", "vacuum_database", "low"),
        (
            "daily-summary",
            "0 8 * * *",
            "send_daily_summary_emails",
            "normal",
        ),
    ];
    // `serve` refuses a schedule whose handler no plugin provides, and
    // syncs the config's schedules into the store at start.
    let serve = taskhost(&["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let serve = crate::support::ServeProcess(serve);
    let listed = wait_until(LIMIT, "both seeds' schedules to be listed", || {
        let out = taskhost(&["schedule", "list", "--json"]).output().unwrap();
        let list: serde_json::Value = serde_json::from_str(&stdout(&out)).ok()?;
        let list = list.as_array()?.clone();
        (out.status.success() && list.len() == seeds.len()).then_some(list)
    });
    crate::support::terminate(serve);
    for (name, expr, handler, priority) in seeds {
        let s = &listed
            .iter()
            .find(|s| s["schedule"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {listed:?}"))["schedule"];
        assert_eq!(s["spec"], expr, "{name}");
        assert_eq!(s["handler"], handler, "{name}");
        assert_eq!(s["priority"], priority, "{name}");
        assert_eq!(s["timezone"], "UTC", "{name}");
        assert_eq!(s["overlap"], "skip", "{name}: a slow run must not pile up");
    }

    // The seeds' on-demand tasks are handlers of the plugin too.
    let out = taskhost(&["plugin", "list"]).output().unwrap();
    let plugins = stdout(&out);
    for handler in [
        "recalculate_wallet_balances",
        "recalculate_all_wallets",
        "sync_portfolio",
        "restart_unhealthy_bots",
    ] {
        assert!(plugins.contains(handler), "{handler} in {plugins}");
    }
}

//! Two hosts sweeping at once, and the shipped example config.

use super::*;

/// Two slots per host, so the sweeps spread over both hosts.
const TWO_SLOTS: &str = "[workers]\nqueues = { default = 2 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sweeping_at_once_send_each_payment_and_notification_once() {
    each_sent_once_by_two_hosts(Invest::new(TWO_SLOTS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_two_hosts_sweeping_at_once_send_each_payment_and_notification_once() {
    each_sent_once_by_two_hosts(Invest::on_postgres(TWO_SLOTS)).await;
}

async fn each_sent_once_by_two_hosts(t: Invest) {
    const N: usize = 20;
    for i in 0..N {
        t.failed_payment(&format!("p-{i}"));
        t.failed_notification(&format!("m-{i}"), &format!("{}", 9000 + i));
    }
    let s = services(&t.host).await;
    let logs = [t.host.path().join("a.log"), t.host.path().join("b.log")];
    let _a = spawn_serve_logged(&t.host, &logs[0]);
    let _b = spawn_serve_logged(&t.host, &logs[1]);
    for log in &logs {
        wait_until(LIMIT, "both hosts to run", || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.contains("api listening").then_some(())
        });
    }
    // Besides the schedules (whose ticks one host fires), sweeps enqueued
    // by hand, so several run at once on both hosts and race for the rows.
    let sweeps = (0..4)
        .flat_map(|_| ["payment.sweep", "notification.sweep"])
        .map(|h| crate::support::request(h, serde_json::json!({})))
        .collect();
    s.enqueuer.enqueue_batch(sweeps).await.unwrap();
    wait_until(LIMIT, "every row to be done", || {
        let left = t.db.count(
            "SELECT (SELECT count(*) FROM payments WHERE status <> 'completed') + (SELECT count(*) FROM notifications WHERE status <> 'delivered')",
        );
        (left == 0).then_some(())
    });
    assert_eq!(
        jobs_of(s.store.as_ref(), "payment.retry").await.len(),
        N,
        "each payment enqueued once"
    );
    assert_eq!(
        jobs_of(s.store.as_ref(), "notification.retry").await.len(),
        N
    );
    assert_eq!(t.provider.calls().len(), N, "each payment sent once");
    assert_eq!(t.telegram.calls().len(), N, "each notification sent once");
    let claims = t.db.count("SELECT count(*) FROM audit WHERE attempt = 0");
    assert_eq!(claims, 2 * N as i64, "each row claimed once");
    let mut sweeps = jobs_of(s.store.as_ref(), "payment.sweep").await;
    sweeps.extend(jobs_of(s.store.as_ref(), "notification.sweep").await);
    let hosts: std::collections::BTreeSet<String> = sweeps
        .into_iter()
        .flat_map(|j| j.attempts.into_iter().map(|a| a.host))
        .collect();
    println!("sweeps ran on {} host(s): {hosts:?}", hosts.len());
}

#[test]
fn the_shipped_config_loads_and_lists_the_seed_schedules() {
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
                "TASKHOST_DATABASES__INVEST__SQLITE",
                data.path().join("invest.db"),
            )
            .env("PROVIDER_API_KEY", "k")
            .env("TELEGRAM_BOT_TOKEN", "t");
        c
    };
    // `serve` syncs the config's schedules into the store at start.
    let serve = taskhost(&["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let serve = crate::support::ServeProcess(serve);
    let text = wait_until(LIMIT, "the seed's schedules to be listed", || {
        let out = taskhost(&["schedule", "list"]).output().unwrap();
        let text = stdout(&out);
        (out.status.success()
            && [
                "notification-retry",
                "payment-retry",
                "deposit-monitoring",
                "daily-rewards",
            ]
            .iter()
            .all(|name| text.contains(name)))
        .then_some(text)
    });
    crate::support::terminate(serve);
    for (name, expr, handler) in [
        ("payment-retry", "every 1m", "payment.sweep"),
        ("notification-retry", "every 1m", "notification.sweep"),
        ("deposit-monitoring", "every 1m", "deposits.monitor"),
        ("daily-rewards", "0 0 * * *", "rewards.daily"),
    ] {
        let line = text.lines().find(|l| l.contains(name)).unwrap();
        assert!(line.contains(expr) && line.contains(handler), "{line}");
    }

    // The seed's limits, as the host reads them.
    let config = taskhost::config::load(&example("taskhost.toml"), Vec::<(String, String)>::new())
        .expect("the shipped config loads");
    let h = |name: &str| config.handlers[name].clone();
    for name in [
        "payment.sweep",
        "payment.retry",
        "notification.sweep",
        "notification.retry",
        "deposits.monitor",
    ] {
        assert_eq!(h(name).timeout, Some(Duration::from_secs(300)), "{name}");
    }
    for name in ["rewards.daily", "rewards.batch"] {
        assert_eq!(h(name).timeout, Some(Duration::from_secs(600)), "{name}");
    }
    let schedule = |name: &str| {
        config
            .schedules
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .clone()
    };
    let rewards = schedule("daily-rewards");
    assert_eq!(rewards.timezone.as_deref(), Some("UTC"));
    assert_eq!(
        taskhost::scheduler::missed_text::name(rewards.missed),
        "catch-up-once",
        "a host down at midnight pays the missed day when back"
    );
    for name in ["deposit-monitoring", "daily-rewards"] {
        assert_eq!(
            schedule(name).overlap,
            taskhost::store::OverlapPolicy::Skip,
            "{name}"
        );
    }
    assert_eq!(config.chains["bsc"].confirmations, 12);
    let minutes = |m: &[u64]| {
        m.iter()
            .map(|m| Duration::from_secs(60 * m))
            .collect::<Vec<_>>()
    };
    let delays = |name: &str| h(name).retry.and_then(|r| r.delays).unwrap();
    assert_eq!(delays("payment.retry"), minutes(&[1, 2, 4, 8, 16]));
    assert_eq!(delays("notification.retry"), minutes(&[1, 5, 15, 60, 120]));
    assert_eq!(h("notification.retry").rate.unwrap().to_string(), "30/s");
}

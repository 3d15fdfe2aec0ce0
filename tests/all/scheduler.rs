//! Schedules fire once per tick across real host processes, and are
//! managed at runtime from the CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use taskhost::store::ListQuery;

use crate::support::{TestHost, services, spawn_serve, stderr, stdout, terminate};

/// The tick (run-at) of every job a schedule enqueued, counted.
async fn ticks(host: &TestHost, handler: &str) -> BTreeMap<chrono::DateTime<chrono::Utc>, usize> {
    let s = services(host).await;
    let mut ticks = BTreeMap::new();
    let mut after = None;
    loop {
        let page = s
            .store
            .list(&ListQuery {
                handler: Some(handler.into()),
                after,
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        for job in &page.jobs {
            *ticks.entry(job.run_at).or_insert(0) += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break ticks,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_fire_each_tick_once_and_survive_losing_one() {
    let host = TestHost::new(
        "[scheduler]\nrefresh = \"1s\"\n\n[[schedules]]\nname = \"every-second\"\nschedule = \"every 1s\"\nhandler = \"hello\"\npayload = { name = \"tick\" }\n",
    );
    let hosts: Vec<_> = (0..3).map(|_| spawn_serve(&host)).collect();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut hosts = hosts.into_iter();
    let mut killed = hosts.next().unwrap();
    killed.kill().unwrap(); // SIGKILL: no goodbye
    killed.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    for h in hosts {
        terminate(h);
    }

    let ticks = ticks(&host, "hello").await;
    let doubles: Vec<_> = ticks.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "ticks enqueued twice: {doubles:?}");
    let first = *ticks.keys().next().expect("some ticks fired");
    let last = *ticks.keys().last().unwrap();
    let expected = (last - first).num_seconds() + 1;
    assert_eq!(
        ticks.len() as i64,
        expected,
        "a tick is missing between {first} and {last}"
    );
    assert!(ticks.len() >= 25, "only {} ticks in 30 s", ticks.len());
}

#[test]
fn schedules_are_managed_at_runtime_from_the_cli() {
    let host = TestHost::new("[scheduler]\nrefresh = \"200ms\"\n");
    let serve = spawn_serve(&host);

    // Refused at add, and nothing saved.
    let out = host.run_cli(&["schedule", "add", "bad", "61 * * * *", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("minute") && stderr(&out).contains("bad"),
        "{}",
        stderr(&out)
    );
    let out = host.run_cli(&["schedule", "add", "ghost", "every 1s", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
    let out = host.run_cli(&["schedule", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );

    // Added at runtime: the running host fires it without a restart.
    let out = host.run_cli(&[
        "schedule",
        "add",
        "greet",
        "every 1s",
        "hello",
        "--payload",
        r#"{"name":"sched"}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fired = |host: &TestHost| {
        let out = host.run_cli(&["jobs", "--schedule", "greet", "--json", "--limit", "1000"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["jobs"]
            .as_array()
            .unwrap()
            .len()
    };
    wait_for(|| fired(&host) >= 2, "the added schedule to fire");

    // Disabled: it stops firing (allow one tick in flight).
    assert!(
        host.run_cli(&["schedule", "disable", "greet"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(600));
    let at_disable = fired(&host);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        fired(&host) <= at_disable + 1,
        "a disabled schedule kept firing"
    );
    let list = stdout(&host.run_cli(&["schedule", "list"]));
    assert!(list.contains("greet") && list.contains("false"), "{list}");

    // Run now works while disabled; remove takes it away.
    let before = fired(&host);
    let out = host.run_cli(&["schedule", "run", "greet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fired(&host), before + 1);
    assert!(
        host.run_cli(&["schedule", "enable", "greet"])
            .status
            .success()
    );
    wait_for(
        || fired(&host) >= before + 3,
        "the re-enabled schedule to fire",
    );
    assert!(
        host.run_cli(&["schedule", "remove", "greet"])
            .status
            .success()
    );
    let out = host.run_cli(&["schedule", "list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    terminate(serve);
}

#[test]
fn a_bad_declared_schedule_refuses_the_start() {
    let host = TestHost::new(
        "[[schedules]]\nname = \"nightly\"\nschedule = \"0 25 * * *\"\nhandler = \"hello\"\n",
    );
    let out = host.run_cli(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nightly") && stderr(&out).contains("hour"),
        "{}",
        stderr(&out)
    );
}

fn wait_for(mut check: impl FnMut() -> bool, what: &str) {
    crate::support::wait_until(Duration::from_secs(20), what, || check().then_some(()));
}

#[test]
fn a_declared_schedule_is_changed_in_the_config_not_at_runtime() {
    let host = TestHost::new(
        "[[schedules]]\nname = \"nightly\"\nschedule = \"0 3 * * *\"\nhandler = \"hello\"\n",
    );
    for verb in ["remove", "disable", "enable"] {
        let out = host.run_cli(&["schedule", verb, "nightly"]);
        assert_eq!(out.status.code(), Some(2), "{verb}");
        assert!(
            stderr(&out).contains("declared in the config file"),
            "{verb}: {}",
            stderr(&out)
        );
    }
}

//! Runtime management: enable, disable, run-now, remove, list; on a running
//! loop, across processes and across restarts.

use super::*;
use crate::job::JobStatus;
use crate::scheduler::{ScheduleDef, SchedulerError};
use crate::store::{OverlapPolicy, Schedule};

#[tokio::test]
async fn enable_disable_run_now_and_remove_apply_at_once() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .add(ScheduleDef::new("m", "every 1m", "ping"))
        .await
        .unwrap();

    let info = scheduler.disable("m").await.unwrap();
    assert_eq!((info.schedule.enabled, info.next_fire), (false, None));
    env.set(t0() + secs(120));
    scheduler.fire_due(env.now()).await;
    assert!(jobs(&*store).await.is_empty(), "disabled fires nothing");
    assert_eq!(scheduler.stats().schedules, 0);

    let job = scheduler.run_now("m").await.unwrap();
    let run = store.get(job).await.unwrap();
    assert_eq!((run.run_at, run.status), (env.now(), JobStatus::Pending));

    let info = scheduler.enable("m").await.unwrap();
    assert_eq!(
        info.next_fire,
        Some(t0() + secs(180)),
        "ticks passed while disabled are not caught up"
    );
    env.set(t0() + secs(180));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(120), t0() + secs(180)]);

    scheduler.remove("m").await.unwrap();
    env.set(t0() + secs(240));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await.len(), 2, "removed fires nothing");
    for err in [
        scheduler.remove("m").await.unwrap_err(),
        scheduler.enable("m").await.map(drop).unwrap_err(),
        scheduler.run_now("m").await.map(drop).unwrap_err(),
    ] {
        assert!(
            matches!(err, SchedulerError::NotFound(ref n) if n == "m"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn run_now_counts_for_overlap_and_does_not_collide_with_a_tick() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .add(ScheduleDef {
            overlap: OverlapPolicy::Skip,
            ..ScheduleDef::new("x", "every 1m", "ping")
        })
        .await
        .unwrap();
    env.set(t0() + secs(60));
    let manual = scheduler.run_now("x").await.unwrap();
    scheduler.fire_due(env.now()).await;
    assert_eq!(
        jobs(&*store).await.len(),
        1,
        "the run-now job blocks the tick"
    );
    store.cancel(manual).await.unwrap();
    env.set(t0() + secs(120));
    scheduler.fire_due(env.now()).await;
    let second = scheduler.run_now("x").await.unwrap();
    let all = jobs(&*store).await;
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().any(|j| j.id == second),
        "a run-now at a claimed tick still enqueues"
    );
}

#[tokio::test]
async fn the_running_loop_applies_changes() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    let mut passes = scheduler.passes();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Arc::clone(&scheduler).run(shutdown));
    settle(&scheduler, &mut passes).await;

    scheduler
        .add(ScheduleDef::new("m", "every 1m", "ping"))
        .await
        .unwrap();
    env.set(t0() + secs(60));
    settle(&scheduler, &mut passes).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(60)], "added and fired");

    scheduler.disable("m").await.unwrap();
    env.set(t0() + secs(120));
    settle(&scheduler, &mut passes).await;
    assert_eq!(ticks(&*store).await.len(), 1, "disabled");

    scheduler.enable("m").await.unwrap();
    scheduler.run_now("m").await.unwrap();
    env.set(t0() + secs(180));
    settle(&scheduler, &mut passes).await;
    assert_eq!(
        ticks(&*store).await[1..],
        [t0() + secs(120), t0() + secs(180)]
    );

    scheduler.remove("m").await.unwrap();
    env.set(t0() + secs(240));
    settle(&scheduler, &mut passes).await;
    assert_eq!(ticks(&*store).await.len(), 3, "removed");

    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), running)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn another_process_changes_are_noticed() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    let cli = env.store().await;
    cli.upsert_schedule(&Schedule::new("elsewhere", "every 1m", "ping"))
        .await
        .unwrap();
    cli.upsert_schedule(&Schedule::new("foreign", "every 1m", "not-here"))
        .await
        .unwrap();
    let listed = scheduler.list().await.unwrap();
    assert_eq!(listed[0].next_fire, Some(t0() + secs(60)));
    assert_eq!(
        listed[1].problem.as_deref(),
        Some("schedule \"foreign\": no loaded plugin provides handler \"not-here\"")
    );
    assert_eq!(
        listed[1].next_fire, None,
        "not fired by a host without the handler"
    );

    env.set(t0() + secs(60));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(60)]);

    cli.set_schedule_enabled("elsewhere", false).await.unwrap();
    scheduler.refresh().await.unwrap();
    env.set(t0() + secs(120));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await.len(), 1, "disabled elsewhere");

    cli.set_schedule_enabled("elsewhere", true).await.unwrap();
    let mut changed = Schedule::new("elsewhere", "every 1m", "report");
    changed.payload = serde_json::json!({"v": 2});
    cli.upsert_schedule(&changed).await.unwrap();
    scheduler.refresh().await.unwrap();
    env.set(t0() + secs(180));
    scheduler.fire_due(env.now()).await;
    let last = jobs(&*store).await.pop().unwrap();
    assert_eq!(
        (last.handler.as_str(), last.payload["v"].as_i64()),
        ("report", Some(2))
    );

    cli.delete_schedule("elsewhere").await.unwrap();
    scheduler.refresh().await.unwrap();
    assert_eq!(scheduler.next_wake(), None);
    cli.close().await.unwrap();
}

#[tokio::test]
async fn runtime_schedules_survive_a_restart() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .sync_config(&[ScheduleDef::new("declared", "every 1m", "ping")])
        .await
        .unwrap();
    scheduler
        .add(ScheduleDef::new("runtime", "every 1m", "report"))
        .await
        .unwrap();
    env.set(t0() + secs(60));
    scheduler.fire_due(env.now()).await;
    drop(scheduler);
    store.close().await.unwrap();

    env.set(t0() + secs(90));
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .sync_config(&[ScheduleDef::new("declared", "every 1m", "ping")])
        .await
        .unwrap();
    let listed = scheduler.list().await.unwrap();
    let names: Vec<_> = listed.iter().map(|i| i.schedule.name.as_str()).collect();
    assert_eq!(names, ["declared", "runtime"]);
    assert!(listed.iter().all(|i| i.next_fire == Some(t0() + secs(120))));
    assert!(
        listed
            .iter()
            .all(|i| i.schedule.last_tick == Some(t0() + secs(60))),
        "re-declaring keeps the last tick"
    );
    env.set(t0() + secs(120));
    scheduler.fire_due(env.now()).await;
    assert_eq!(jobs(&*store).await.len(), 4);
    store.close().await.unwrap();
}

#[tokio::test]
async fn schedules_firing_more_often_than_the_floor_are_refused() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    for expr in ["every 1ms", "every 999ms"] {
        let err = scheduler
            .add(ScheduleDef::new("cannon", expr, "ping"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("scheduler.min_interval"),
            "{expr}: {err}"
        );
    }
    assert!(
        store.list_schedules().await.unwrap().is_empty(),
        "nothing saved"
    );
    // The default floor is one second: the fastest cron form still passes.
    scheduler
        .add(ScheduleDef::new("each-second", "* * * * * *", "ping"))
        .await
        .unwrap();
    scheduler
        .add(ScheduleDef::new("interval", "every 1s", "ping"))
        .await
        .unwrap();

    // A higher floor catches a cron expression's shortest gap, and a record
    // another process wrote below it is shown with the problem, not fired.
    let strict = Arc::new(Scheduler::new(
        Arc::clone(&store),
        env.clock.clone(),
        SchedulerSettings {
            min_interval: Duration::from_secs(60),
            ..SchedulerSettings::default()
        },
        HANDLERS.iter().map(|h| h.to_string()).collect(),
    ));
    let err = strict
        .add(ScheduleDef::new("fast", "*/20 * * * * *", "ping"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("20s apart"), "{err}");
    strict.refresh().await.unwrap();
    let listed = strict.list().await.unwrap();
    let each = listed
        .iter()
        .find(|i| i.schedule.name == "each-second")
        .unwrap();
    assert!(
        each.problem
            .as_deref()
            .unwrap_or("")
            .contains("min_interval")
    );
    assert_eq!(each.next_fire, None);
}

#[tokio::test]
async fn schedules_the_config_declares_are_changed_in_the_config_only() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = Arc::new(Scheduler::new(
        Arc::clone(&store),
        env.clock.clone(),
        SchedulerSettings {
            declared: ["declared".to_string()].into(),
            ..SchedulerSettings::default()
        },
        HANDLERS.iter().map(|h| h.to_string()).collect(),
    ));
    scheduler
        .sync_config(&[ScheduleDef::new("declared", "every 1m", "ping")])
        .await
        .unwrap();
    scheduler
        .add(ScheduleDef::new("runtime", "every 1m", "ping"))
        .await
        .unwrap();
    for refused in [
        scheduler.remove("declared").await.map(|_| ()),
        scheduler.disable("declared").await.map(|_| ()),
        scheduler.enable("declared").await.map(|_| ()),
    ] {
        let err = refused.unwrap_err();
        assert!(matches!(err, SchedulerError::ConfigManaged(_)), "{err}");
        assert!(
            err.to_string().contains("change or remove it there"),
            "{err}"
        );
    }
    let record = store.get_schedule("declared").await.unwrap();
    assert!(record.enabled, "nothing changed");
    scheduler.run_now("declared").await.unwrap();
    scheduler.disable("runtime").await.unwrap();
    scheduler.remove("runtime").await.unwrap();
}

/// A reload that takes a schedule's handler away stops it firing here; one
/// that brings it back starts it again, from after its last claimed tick.
#[tokio::test]
async fn schedules_follow_the_loaded_handler_set() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .add(ScheduleDef::new("m", "every 1m", "ping"))
        .await
        .unwrap();
    env.set(t0() + secs(60));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(60)]);

    scheduler.set_known_handlers(Vec::new()).await.unwrap();
    let info = &scheduler.list().await.unwrap()[0];
    assert!(info.problem.is_some(), "{info:?}");
    env.set(t0() + secs(120));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await.len(), 1, "no handler here: no fire");

    let all = HANDLERS.iter().map(|h| h.to_string()).collect();
    scheduler.set_known_handlers(all).await.unwrap();
    let info = &scheduler.list().await.unwrap()[0];
    assert_eq!(info.problem, None);
    assert_eq!(
        info.next_fire,
        Some(t0() + secs(120)),
        "after the last claimed tick"
    );
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(60), t0() + secs(120)]);
}

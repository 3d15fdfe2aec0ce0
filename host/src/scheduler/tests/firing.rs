//! Firing: job fields, once per tick across hosts, late and missed ticks,
//! the missed-tick and overlap policies.

use serde_json::json;

use super::*;
use crate::job::{JobStatus, Priority};
use crate::scheduler::ScheduleDef;
use crate::store::conformance::{finish, lease_one};
use crate::store::{MissedPolicy, OverlapPolicy};

fn every_minute(name: &str) -> ScheduleDef {
    ScheduleDef::new(name, "every 1m", "ping")
}

#[tokio::test]
async fn a_due_tick_enqueues_the_schedules_job() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .add(ScheduleDef {
            payload: json!({"to": "ops"}),
            queue: "reports".into(),
            priority: Priority::High,
            max_attempts: Some(2),
            ..ScheduleDef::new("weekly", "0 9 * * MON", "report")
        })
        .await
        .unwrap();
    let due = at("2030-01-07T09:00:00Z");
    assert_eq!(scheduler.next_wake(), Some(due));
    assert_eq!(scheduler.fire_due(due - secs(1)).await, 0, "not due yet");
    assert!(jobs(&*store).await.is_empty());

    env.set(due + chrono::Duration::milliseconds(7));
    assert_eq!(scheduler.fire_due(env.now()).await, 1);
    let [job] = &jobs(&*store).await[..] else {
        panic!("one job expected");
    };
    assert_eq!(
        (job.handler.as_str(), &job.payload, job.queue.as_str()),
        ("report", &json!({"to": "ops"}), "reports")
    );
    assert_eq!(
        (job.priority, job.max_attempts, job.run_at),
        (Priority::High, 2, due)
    );
    assert_eq!(
        job.idempotency_key.as_deref(),
        Some("schedule:weekly:2030-01-07T09:00:00Z")
    );
    assert_eq!(
        job.schedule.as_deref(),
        Some("weekly"),
        "the job names its schedule"
    );
    store
        .enqueue(crate::job::NewJob::new("report", json!({})))
        .await
        .unwrap();
    let by_schedule = store
        .list(&ListQuery {
            schedule: Some("weekly".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_schedule.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        [job.id],
        "the filter leaves out jobs of no schedule"
    );
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(scheduler.next_wake(), Some(at("2030-01-14T09:00:00Z")));
    let stats = scheduler.stats();
    assert_eq!((stats.schedules, stats.fired), (1, 1));
    assert_eq!(
        stats.lateness_p99,
        Some(std::time::Duration::from_millis(7))
    );
    assert_eq!(scheduler.fire_due(env.now()).await, 0, "a tick fires once");
    assert_eq!(
        store.get_schedule("weekly").await.unwrap().last_tick,
        Some(due)
    );
}

#[tokio::test]
async fn any_number_of_hosts_enqueue_one_job_per_tick() {
    let env = Env::new();
    let store = env.store().await;
    let hosts: Vec<_> = (0..3).map(|_| env.scheduler(&store)).collect();
    let other_process = env.store().await;
    let far = env.scheduler(&other_process);
    hosts[0].add(every_minute("sync")).await.unwrap();
    for host in hosts.iter().chain([&far]) {
        host.refresh().await.unwrap();
    }
    for minute in 1..=3 {
        env.set(t0() + secs(60 * minute));
        let (a, b, c, d) = tokio::join!(
            hosts[0].fire_due(env.now()),
            hosts[1].fire_due(env.now()),
            hosts[2].fire_due(env.now()),
            far.fire_due(env.now()),
        );
        assert_eq!((a, b, c, d), (1, 1, 1, 1), "every host fires");
    }
    assert_eq!(
        ticks(&*store).await,
        [t0() + secs(60), t0() + secs(120), t0() + secs(180)]
    );
    let all = hosts.iter().chain([&far]).map(|h| h.stats());
    let (fired, other) = all.fold((0, 0), |(f, o), s| (f + s.fired, o + s.claimed_by_other));
    assert_eq!((fired, other), (3, 9));
}

/// Host A fires at t0 and goes away; host B starts after a gap.
async fn after_downtime(
    missed: MissedPolicy,
    gap: chrono::Duration,
) -> (Env, Arc<dyn Store>, Arc<Scheduler>) {
    let env = Env::new();
    let store = env.store().await;
    let a = env.scheduler(&store);
    a.add(ScheduleDef {
        missed,
        ..ScheduleDef::new("hourly", "every 1h", "ping")
    })
    .await
    .unwrap();
    env.set(t0() + secs(3600));
    a.fire_due(env.now()).await;
    drop(a);
    env.set(t0() + secs(3600) + gap);
    let b = env.scheduler(&store);
    b.refresh().await.unwrap();
    b.fire_due(env.now()).await;
    (env, store, b)
}

#[tokio::test]
async fn skip_enqueues_nothing_for_a_downtime_gap() {
    let gap = secs(5 * 3600 + 1800);
    let (env, store, b) = after_downtime(MissedPolicy::Skip, gap).await;
    assert_eq!(
        ticks(&*store).await,
        [t0() + secs(3600)],
        "only the tick fired before the gap"
    );
    let stats = b.stats();
    assert_eq!((stats.missed, stats.fired, stats.caught_up), (5, 0, 0));
    assert_eq!(
        b.next_wake(),
        Some(t0() + secs(7 * 3600)),
        "on schedule again"
    );
    env.set(t0() + secs(7 * 3600));
    b.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await.len(), 2);
}

#[tokio::test]
async fn catch_up_once_enqueues_exactly_one_job_for_a_gap() {
    let gap = secs(5 * 3600 + 1800);
    let (env, store, b) = after_downtime(MissedPolicy::RunOnce, gap).await;
    assert_eq!(
        ticks(&*store).await,
        [t0() + secs(3600), t0() + secs(6 * 3600)],
        "one job, for the latest missed tick"
    );
    let stats = b.stats();
    assert_eq!((stats.missed, stats.fired, stats.caught_up), (5, 1, 1));
    b.fire_due(env.now()).await;
    let again = env.scheduler(&store);
    again.refresh().await.unwrap();
    again.fire_due(env.now()).await;
    assert_eq!(
        ticks(&*store).await.len(),
        2,
        "a second start catches up nothing more"
    );
}

#[tokio::test]
async fn late_ticks_within_the_grace_window_still_fire() {
    let env = Env::new();
    let store = env.store().await;
    let a = env.scheduler(&store);
    a.add(every_minute("m")).await.unwrap();
    env.set(t0() + secs(60));
    a.fire_due(env.now()).await;
    // Down for 100 s: the tick at 2:00 is 40 s late (fires), none is missed.
    env.set(t0() + secs(160));
    let b = env.scheduler(&store);
    b.refresh().await.unwrap();
    b.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(60), t0() + secs(120)]);
    assert_eq!(b.stats().missed, 0);
    assert_eq!(
        b.stats().lateness_p50,
        Some(std::time::Duration::from_secs(40))
    );
    // This host's loop stalls until 4:55: 3:00 is missed, 4:00 only late.
    env.set(t0() + secs(295));
    b.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await[2..], [t0() + secs(240)]);
    assert_eq!(b.stats().missed, 1);
}

#[tokio::test]
async fn overlap_skip_holds_while_the_previous_job_waits_or_runs() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .add(ScheduleDef {
            overlap: OverlapPolicy::Skip,
            ..every_minute("exclusive")
        })
        .await
        .unwrap();
    scheduler
        .add(ScheduleDef::new("free", "every 1m", "report"))
        .await
        .unwrap();
    let fire_at = |minute: i64| {
        env.set(t0() + secs(60 * minute));
        scheduler.fire_due(env.now())
    };
    let count = |handler: &'static str| {
        let store = Arc::clone(&store);
        async move {
            jobs(&*store)
                .await
                .into_iter()
                .filter(|j| j.handler == handler)
                .count()
        }
    };
    fire_at(1).await;
    fire_at(2).await;
    assert_eq!(
        (count("ping").await, count("report").await),
        (1, 2),
        "pending blocks the next tick"
    );
    let lease = lease_one(&*store, "ping").await;
    fire_at(3).await;
    assert_eq!(count("ping").await, 1, "running blocks the next tick");
    finish(&*store, &lease).await;
    fire_at(4).await;
    assert_eq!(
        count("ping").await,
        2,
        "a finished job lets the next tick fire"
    );
    assert_eq!(count("report").await, 4, "overlap allow fires every tick");
    assert_eq!(scheduler.stats().skipped_overlap, 2);
}

#[tokio::test]
async fn a_one_off_schedule_fires_once() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    scheduler
        .add(ScheduleDef::new(
            "launch",
            "at 2030-01-01T00:00:30Z",
            "ping",
        ))
        .await
        .unwrap();
    env.set(t0() + secs(30));
    scheduler.fire_due(env.now()).await;
    env.set(t0() + secs(3600));
    scheduler.fire_due(env.now()).await;
    assert_eq!(ticks(&*store).await, [t0() + secs(30)]);
    assert_eq!(scheduler.next_wake(), None);
    assert_eq!(scheduler.list().await.unwrap()[0].next_fire, None);
}

#[tokio::test]
async fn a_one_off_missed_while_down_follows_the_missed_policy() {
    for (missed, expected) in [(MissedPolicy::Skip, 0), (MissedPolicy::RunOnce, 1)] {
        let env = Env::new();
        let store = env.store().await;
        let a = env.scheduler(&store);
        a.add(ScheduleDef {
            missed,
            ..ScheduleDef::new("launch", "at 2030-01-01T01:00:00Z", "ping")
        })
        .await
        .unwrap();
        drop(a);
        env.set(t0() + secs(2 * 3600));
        let b = env.scheduler(&store);
        b.refresh().await.unwrap();
        b.fire_due(env.now()).await;
        assert_eq!(ticks(&*store).await.len(), expected, "{missed}");
        assert_eq!(b.stats().missed, 1);
    }
}

//! Definitions: TOML form, validation messages, refusal at `add` and at start.

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::job::Priority;
use crate::scheduler::{ScheduleDef, SchedulerError};
use crate::store::{MissedPolicy, OverlapPolicy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    schedules: Vec<ScheduleDef>,
}

fn known(h: &str) -> bool {
    HANDLERS.contains(&h)
}

#[test]
fn toml_tables_read_with_defaults() {
    let file: ConfigFile = toml::from_str(
        r#"
        [[schedules]]
        name = "nightly-cleanup"
        schedule = "30 3 * * *"
        timezone = "Europe/Berlin"
        handler = "report"
        payload = { days = 30, tags = ["a"] }
        queue = "maintenance"
        priority = "low"
        enabled = false
        missed = "catch-up-once"
        overlap = "skip"
        max_attempts = 2

        [[schedules]]
        name = "heartbeat"
        schedule = "every 30s"
        handler = "ping"
        "#,
    )
    .expect("valid config");
    let [full, minimal] = &file.schedules[..] else {
        panic!("two schedules expected");
    };
    assert_eq!(full.payload, json!({"days": 30, "tags": ["a"]}));
    assert_eq!(
        (
            full.priority,
            full.enabled,
            full.missed,
            full.overlap,
            full.max_attempts
        ),
        (
            Priority::Low,
            false,
            MissedPolicy::RunOnce,
            OverlapPolicy::Skip,
            Some(2)
        )
    );
    assert_eq!(*minimal, ScheduleDef::new("heartbeat", "every 30s", "ping"));
    let record = minimal.to_record();
    assert_eq!(
        (
            record.timezone.as_str(),
            record.queue.as_str(),
            record.enabled
        ),
        ("UTC", "default", true)
    );
    assert_eq!(
        ScheduleDef::from(full.to_record()).to_record(),
        full.to_record()
    );
    assert!(full.validate(&known).is_ok());
}

#[test]
fn toml_refuses_unknown_fields_and_policies() {
    let err = toml::from_str::<ConfigFile>(
        "[[schedules]]\nname = \"a\"\nschedule = \"@daily\"\nhandler = \"ping\"\ncron = \"x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `cron`"), "{err}");
    let err = toml::from_str::<ConfigFile>(
        "[[schedules]]\nname = \"a\"\nschedule = \"@daily\"\nhandler = \"ping\"\nmissed = \"run-twice\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"run-twice\"") && err.contains("skip, catch-up-once"),
        "{err}"
    );
    let json = serde_json::to_value(ScheduleDef {
        missed: MissedPolicy::RunOnce,
        ..ScheduleDef::new("a", "@daily", "ping")
    })
    .unwrap();
    assert_eq!(json["missed"], "catch-up-once");
}

#[test]
fn validation_names_the_schedule_and_the_fault() {
    let check = |def: ScheduleDef| def.validate(&known).unwrap_err().to_string();
    assert_eq!(
        check(ScheduleDef::new("bad-cron", "61 * * * *", "ping")),
        "schedule \"bad-cron\": invalid schedule \"61 * * * *\": minute: 61 is out of range 0-59"
    );
    assert_eq!(
        check(ScheduleDef {
            timezone: Some("Mars/Base".into()),
            ..ScheduleDef::new("mars", "@daily", "ping")
        }),
        "schedule \"mars\": unknown time zone \"Mars/Base\""
    );
    assert_eq!(
        check(ScheduleDef::new("orphan", "@daily", "email.send")),
        "schedule \"orphan\": no loaded plugin provides handler \"email.send\""
    );
    assert!(
        check(ScheduleDef {
            queue: "bad queue".into(),
            ..ScheduleDef::new("q", "@daily", "ping")
        })
        .contains("\"bad queue\"")
    );
    assert!(
        check(ScheduleDef {
            max_attempts: Some(0),
            ..ScheduleDef::new("zero", "@daily", "ping")
        })
        .contains("max_attempts must be at least 1")
    );
    assert!(check(ScheduleDef::new("has space", "@daily", "ping")).contains("' '"));
    assert!(check(ScheduleDef::new("", "@daily", "ping")).contains("name must not be empty"));
    assert!(check(ScheduleDef::new("x".repeat(129), "@daily", "ping")).contains("limit is 128"));
}

#[tokio::test]
async fn add_refuses_bad_definitions_and_saves_nothing() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    let bad_expr = scheduler
        .add(ScheduleDef::new("a", "every 5x", "ping"))
        .await
        .unwrap_err();
    assert!(
        matches!(bad_expr, SchedulerError::Expression { .. }),
        "{bad_expr}"
    );
    assert!(
        bad_expr.to_string().contains("unknown unit \"x\""),
        "{bad_expr}"
    );
    let unknown = scheduler
        .add(ScheduleDef::new("b", "@hourly", "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, SchedulerError::UnknownHandler { .. }),
        "{unknown}"
    );
    assert!(store.list_schedules().await.unwrap().is_empty());
    assert!(scheduler.list().await.unwrap().is_empty());

    scheduler
        .add(ScheduleDef::new("c", "@hourly", "ping"))
        .await
        .unwrap();
    let taken = scheduler
        .add(ScheduleDef::new("c", "@daily", "report"))
        .await
        .unwrap_err();
    assert!(
        matches!(taken, SchedulerError::AlreadyExists(ref n) if n == "c"),
        "{taken}"
    );
    assert_eq!(store.get_schedule("c").await.unwrap().spec, "@hourly");
}

#[tokio::test]
async fn start_refuses_the_whole_config_if_one_schedule_is_bad() {
    let env = Env::new();
    let store = env.store().await;
    let scheduler = env.scheduler(&store);
    let good = ScheduleDef::new("good", "@hourly", "ping");
    let err = scheduler
        .sync_config(&[good.clone(), ScheduleDef::new("bad", "@hourly", "missing")])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule \"bad\": no loaded plugin provides handler \"missing\""
    );
    let err = scheduler
        .sync_config(&[good.clone(), ScheduleDef::new("late", "0 0 30 2 *", "ping")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("would never fire"), "{err}");
    let err = scheduler
        .sync_config(&[good.clone(), good.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SchedulerError::Duplicate(ref n) if n == "good"),
        "{err}"
    );
    assert!(
        store.list_schedules().await.unwrap().is_empty(),
        "nothing saved"
    );

    scheduler.sync_config(&[good]).await.unwrap();
    let listed = scheduler.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].next_fire, Some(t0() + secs(3600)));
}

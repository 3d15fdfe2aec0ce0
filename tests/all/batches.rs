//! Batches on real `serve` processes (`POST /api/v1/batches`): progress
//! visible while the jobs run, `on_complete` and `on_success` each enqueued
//! exactly once, also with two hosts draining one store (SQLite file and
//! Redis); a dead job fires `on_complete` but not `on_success` (until its
//! DLQ retry succeeds); cancel; bad input refused with nothing written;
//! the CLI; a plugin starting a batch through `jobs.start-batch` (WIT
//! 0.1.1), and plugins built against WIT 0.1.0 still loading.

use std::time::Duration;

use serde_json::{Value, json};

use crate::http_client::Server;
use crate::support::{TestHost, redis, stderr, stdout, wait_until};

/// The callback handlers (and `item`, which echoes its payload, or fails
/// before attempt N when it says `"succeed_from_attempt": N`).
const DECLARE: &str = "[plugins.decl_probe]\n\
    settings = { declare = \"list:item,batch_done,batch_ok\" }\n";

/// Jobs in the two-host batches: the issue's 10,000. Both tests together
/// (four `serve` processes on two busy cores) took about 12 s each in a
/// debug build, the 3 s last item included.
const BIG: usize = 10_000;

/// Jobs per atomic chunk in the big batches: several chunks.
const CHUNK: usize = 500;

fn start_body(items: Vec<Value>) -> Value {
    json!({
        "handler": "probe.sleep",
        "items": items,
        "batch_size": CHUNK,
        "on_complete": {"handler": "batch_done", "payload": {"to": "ops"}},
        "on_success": {"handler": "batch_ok"},
    })
}

fn get(api: &Server, path: &str) -> Value {
    let r = api.get(path, None);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Waits for the batch's end (a ceiling, answered by the commit).
fn wait(api: &Server, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let answer = get(api, &format!("/api/v1/batches/{id}/wait?timeout=60s"));
        if answer["finished"] == true {
            return answer["batch"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "batch {id} did not finish: {answer}"
        );
    }
}

/// The jobs of `handler`, however many.
fn jobs_of(api: &Server, handler: &str) -> Vec<Value> {
    get(api, &format!("/api/v1/jobs?handler={handler}&limit=1000"))["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

/// Counts add up to the total.
fn consistent(b: &Value) {
    let sum: u64 = ["pending", "running", "succeeded", "dead", "cancelled"]
        .iter()
        .map(|k| b[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, b["total"].as_u64().unwrap(), "{b}");
}

/// Runs a batch of [`BIG`] through `front`'s API while `front` and a
/// second host (`worker`, same store) drain it. The last item sleeps 3 s,
/// so there is a stretch where all but it have finished: progress must be
/// seen there at the latest.
fn big_batch_across_two_hosts(front: &TestHost, worker: &TestHost) {
    // The worker first: it makes the SQLite file the front host then opens.
    let second = Server::start(worker);
    let api = Server::start(front);
    let mut items = vec![json!({"ms": 0}); BIG - 1];
    items.push(json!({"ms": 3000}));
    let started_at = std::time::Instant::now();
    let r = api.post("/api/v1/batches", None, &start_body(items));
    assert_eq!(r.status, 201, "{}", r.text());
    let started = r.json();
    let id = started["batch"]["id"].as_str().unwrap().to_owned();
    assert_eq!(started["jobs"].as_array().unwrap().len(), BIG);
    assert_eq!(started["batch"]["total"], BIG);
    assert_eq!(started["batch"]["enqueued"], BIG);

    // Progress while it runs: a read strictly between none and all done,
    // and never going back.
    let mut last = 0.0;
    let midway = wait_until(Duration::from_secs(300), "progress midway", || {
        let b = get(&api, &format!("/api/v1/batches/{id}"));
        consistent(&b);
        let percent = b["percent"].as_f64().unwrap();
        assert!(percent >= last, "progress went back: {last} then {b}");
        last = percent;
        (percent > 0.0 && percent < 100.0).then_some(b)
    });
    assert_eq!(midway["finished"], false, "{midway}");
    assert_eq!(midway["on_complete"]["fired"], false, "{midway}");

    let done = wait(&api, &id);
    println!(
        "a batch of {BIG} drained on two hosts in {:?}",
        started_at.elapsed()
    );
    assert_eq!(done["succeeded"], BIG, "{done}");
    assert_eq!(done["percent"], 100.0);
    assert_eq!(done["on_complete"]["fired"], true);
    assert_eq!(done["on_success"]["fired"], true);
    for (handler, cb) in [("batch_done", "on_complete"), ("batch_ok", "on_success")] {
        let made = jobs_of(&api, handler);
        assert_eq!(made.len(), 1, "{handler}: exactly one job: {made:?}");
        assert_eq!(made[0]["id"], done[cb]["job"]);
        let job = get(
            &api,
            &format!("/api/v1/jobs/{}/wait", made[0]["id"].as_str().unwrap()),
        );
        assert_eq!(job["job"]["status"], "succeeded", "{job}");
    }
    let on_complete = get(
        &api,
        &format!(
            "/api/v1/jobs/{}",
            done["on_complete"]["job"].as_str().unwrap()
        ),
    );
    assert_eq!(on_complete["payload"], json!({"batch": id, "to": "ops"}));
    // Both hosts ran jobs of it (every 50th job asked).
    let hosts: std::collections::BTreeSet<String> = started["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .step_by(50)
        .map(|id| {
            let job = get(&api, &format!("/api/v1/jobs/{}", id.as_str().unwrap()));
            job["attempts"][0]["host"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(hosts.len(), 2, "both hosts ran jobs: {hosts:?}");
    second.stop();
    api.stop();
}

const WORKERS: &str = "[workers]\nqueues = { default = 8 }\n";

#[test]
fn a_batch_shows_progress_and_fires_each_callback_once_on_two_hosts_sharing_sqlite() {
    let worker = TestHost::new(&format!("{WORKERS}{DECLARE}"));
    let store_file = worker.config().store_path();
    let front = TestHost::new(&format!(
        "[store]\npath = {:?}\n{WORKERS}{DECLARE}",
        store_file.display().to_string()
    ));
    big_batch_across_two_hosts(&front, &worker);
}

#[test]
fn a_batch_shows_progress_and_fires_each_callback_once_on_two_hosts_sharing_redis() {
    let server = redis::start();
    let store = redis::store_table(&server.url(), "batches:");
    let worker = TestHost::new(&format!("{store}{WORKERS}{DECLARE}"));
    let front = TestHost::new(&format!("{store}{WORKERS}{DECLARE}"));
    big_batch_across_two_hosts(&front, &worker);
}

#[test]
fn a_batch_with_a_dead_job_fires_on_complete_not_on_success_until_its_retry_succeeds() {
    let host = TestHost::new(&format!("{WORKERS}{DECLARE}"));
    let api = Server::start(&host);
    let mut items: Vec<Value> = (0..9).map(|i| json!({"i": i})).collect();
    items.push(json!({"i": 9, "succeed_from_attempt": 2}));
    let body = json!({
        "handler": "item", "items": items, "max_attempts": 1, "batch_size": 4,
        "on_complete": {"handler": "batch_done"}, "on_success": {"handler": "batch_ok"},
    });
    let r = api.post("/api/v1/batches", None, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["batch"]["id"].as_str().unwrap().to_owned();
    let done = wait(&api, &id);
    assert_eq!(
        (done["succeeded"].as_u64(), done["dead"].as_u64()),
        (Some(9), Some(1)),
        "{done}"
    );
    assert_eq!(done["on_complete"]["fired"], true);
    assert_eq!(done["on_success"]["fired"], false);
    let cb = get(
        &api,
        &format!(
            "/api/v1/jobs/{}/wait",
            done["on_complete"]["job"].as_str().unwrap()
        ),
    );
    assert_eq!(cb["job"]["status"], "succeeded", "{cb}");
    assert!(
        jobs_of(&api, "batch_ok").is_empty(),
        "on_success must not fire"
    );

    // The DLQ retry (attempt 2) succeeds: now all succeeded, and
    // on_success fires; on_complete is not enqueued a second time.
    let dead = &get(&api, "/api/v1/dlq")["jobs"][0];
    let r = api.post(
        &format!("/api/v1/dlq/{}/retry", dead["id"].as_str().unwrap()),
        None,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let all = wait(&api, &id);
    assert_eq!(all["succeeded"], 10, "{all}");
    assert_eq!(all["on_success"]["fired"], true);
    let ok = get(
        &api,
        &format!(
            "/api/v1/jobs/{}/wait",
            all["on_success"]["job"].as_str().unwrap()
        ),
    );
    assert_eq!(ok["job"]["status"], "succeeded", "{ok}");
    assert_eq!(jobs_of(&api, "batch_done").len(), 1);
    assert_eq!(jobs_of(&api, "batch_ok").len(), 1);
    api.stop();
}

#[test]
fn cancelling_a_batch_stops_its_running_jobs_and_cancels_the_rest() {
    let host = TestHost::new(&format!(
        "[workers]\nqueues = {{ default = 2 }}\n\
         [handlers.\"probe.sleep\"]\ntimeout = \"120s\"\nmax_attempts = 5\n{DECLARE}"
    ));
    let api = Server::start(&host);
    let body = json!({
        "handler": "probe.sleep", "items": vec![json!({"ms": 60_000}); 6],
        "on_complete": {"handler": "batch_done"}, "on_success": {"handler": "batch_ok"},
    });
    let started = api.post("/api/v1/batches", None, &body).json();
    let id = started["batch"]["id"].as_str().unwrap().to_owned();
    wait_until(Duration::from_secs(60), "two jobs to run", || {
        (get(&api, &format!("/api/v1/batches/{id}"))["running"] == 2).then_some(())
    });
    let r = api.post(&format!("/api/v1/batches/{id}/cancel"), None, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let done = wait(&api, &id);
    assert_eq!(done["cancelled"], 6, "{done}");
    assert_eq!(done["on_complete"]["fired"], true);
    assert_eq!(done["on_success"]["fired"], false);
    for job in started["jobs"].as_array().unwrap() {
        let j = get(&api, &format!("/api/v1/jobs/{}", job.as_str().unwrap()));
        assert_eq!(j["status"], "cancelled", "{j}");
        assert!(
            j["attempts"].as_array().unwrap().len() <= 1,
            "never retried: {j}"
        );
    }
    api.stop();
}

#[test]
fn bad_batches_are_refused_and_write_nothing() {
    let host = TestHost::new(DECLARE);
    let api = Server::start(&host);
    let cases = [
        (
            json!({"handler": "item", "items": []}),
            400,
            "1 to 10000 items",
        ),
        (
            json!({"handler": "nosuch", "items": [1]}),
            404,
            "items[0]: unknown handler",
        ),
        (
            json!({"handler": "item", "items": vec![json!(1); 10_001]}),
            400,
            "1 to 10000 items",
        ),
        (
            json!({"handler": "item", "items": [1], "batch_size": 0}),
            400,
            "batch_size",
        ),
        (
            json!({"handler": "item", "items": [1], "on_success": {"handler": "nosuch"}}),
            404,
            "on_success: unknown handler",
        ),
        (
            json!({"handler": "item", "items": [1], "on_complete": {"handler": "batch_done", "payload": {"batch": 1}}}),
            400,
            "reserved",
        ),
        (
            json!({"handler": "item", "items": [1], "on_complete": {"handler": "batch_done", "payload": [1]}}),
            400,
            "JSON object",
        ),
        (
            json!({"handler": "item", "items": [1], "max_attempts": 0}),
            400,
            "max_attempts",
        ),
        (
            json!({"handler": "item", "items": [1], "bogus": 1}),
            400,
            "bogus",
        ),
        (
            json!({"handler": "item", "items": [1], "retry": {"delays": []}}),
            400,
            "\"message\":\"retry: `delays` is empty",
        ),
    ];
    for (body, code, says) in cases {
        let r = api.post("/api/v1/batches", None, &body);
        assert_eq!(r.status, code, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    assert!(
        get(&api, "/api/v1/jobs")["jobs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let missing = "0190b0b0-0000-7000-8000-000000000000";
    assert_eq!(
        api.get(&format!("/api/v1/batches/{missing}"), None).status,
        404
    );
    let r = api.post(
        &format!("/api/v1/batches/{missing}/cancel"),
        None,
        &json!({}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(api.get("/api/v1/batches/not-an-id", None).status, 400);

    // The CLI starts one on the store the host drains, and shows it.
    let on_complete = r#"{"handler": "batch_done", "payload": {"via": "cli"}}"#;
    let out = host.run_cli(&[
        "batch",
        "start",
        "item",
        "[1, 2, 3]",
        "--on-complete",
        on_complete,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    let done = wait(&api, &id);
    assert_eq!(done["succeeded"], 3, "{done}");
    let out = host.run_cli(&["batch", "show", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["on_complete"]["fired"], true, "{shown}");
    let bad = host.run_cli(&["batch", "start", "item", "not json"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    let bad = host.run_cli(&["batch", "start", "nosuch", "[1]"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("items[0]: unknown handler"),
        "{}",
        stderr(&bad)
    );
    api.stop();
}

#[test]
fn a_batch_start_repeated_with_its_key_answers_the_first_batch() {
    let host = TestHost::new(DECLARE);
    let api = Server::start(&host);
    let body = json!({"handler": "item", "items": [{"n": 1}, {"n": 2}], "idempotency_key": "newsletter-12"});
    let first = api.post("/api/v1/batches", None, &body);
    assert_eq!(first.status, 201, "{}", first.text());
    let again = api.post("/api/v1/batches", None, &body);
    assert_eq!(again.status, 200, "{}", again.text());
    let (first, again) = (first.json(), again.json());
    assert_eq!(
        (&again["batch"]["id"], &again["jobs"]),
        (&first["batch"]["id"], &first["jobs"])
    );
    assert_eq!(
        (&first["created"], &again["created"]),
        (&json!(true), &json!(false))
    );
    let id = first["batch"]["id"].as_str().unwrap().to_owned();
    assert_eq!(wait(&api, &id)["succeeded"], 2);
    assert_eq!(
        jobs_of(&api, "item").len(),
        2,
        "the repeat enqueued nothing"
    );

    // The same key with other items is refused, naming the batch.
    let other = json!({"handler": "item", "items": [{"n": 3}], "idempotency_key": "newsletter-12"});
    let r = api.post("/api/v1/batches", None, &other);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("newsletter-12") && r.text().contains(&id),
        "{}",
        r.text()
    );

    // The CLI's --key is the same key.
    let out = host.run_cli(&[
        "batch",
        "start",
        "item",
        r#"[{"n": 1}, {"n": 2}]"#,
        "--key",
        "newsletter-12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), id);
    assert_eq!(jobs_of(&api, "item").len(), 2);
    api.stop();
}

/// The probe plugin may enqueue the batch's and the callbacks' handlers.
const PROBE_GRANT: &str = "[plugins.probe]\njobs = [\"item\", \"batch_ok\"]\n";

#[test]
fn a_plugin_starts_a_batch_through_the_jobs_interface() {
    let host = TestHost::new(&format!("{WORKERS}{DECLARE}{PROBE_GRANT}"));
    let api = Server::start(&host);
    let run = |payload: Value| {
        let r = api.post(
            "/api/v1/jobs",
            None,
            &json!({"handler": "probe.batch", "payload": payload, "max_attempts": 1}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        get(&api, &format!("/api/v1/jobs/{id}/wait?timeout=60s"))["job"].clone()
    };
    let job = run(json!({
        "handler": "item", "items": [{"n": 1}, {"n": 2}, {"n": 3}], "on_success": "batch_ok",
    }));
    assert_eq!(job["status"], "succeeded", "{job}");
    let id = job["result"]["batch"].as_str().unwrap().to_owned();
    let done = wait(&api, &id);
    assert_eq!(done["succeeded"], 3, "{done}");
    assert_eq!(done["on_success"]["fired"], true, "{done}");
    let cb = get(
        &api,
        &format!(
            "/api/v1/jobs/{}",
            done["on_success"]["job"].as_str().unwrap()
        ),
    );
    assert_eq!(cb["payload"], json!({"batch": id, "from": "probe"}));

    // A callback of a handler the grant does not list refuses the whole
    // batch: the job fails for good and no item job is written.
    let denied = run(json!({
        "handler": "item", "items": [{"n": 4}], "on_complete": "batch_done",
    }));
    assert_eq!(denied["status"], "dead", "{denied}");
    assert!(
        denied["error"]
            .as_str()
            .unwrap_or_default()
            .contains("denied")
            || denied.to_string().contains("denied"),
        "{denied}"
    );
    assert_eq!(
        jobs_of(&api, "item").len(),
        3,
        "nothing of the refused batch"
    );
    api.stop();
}

/// Plugins built against WIT 0.1.0 (the same components with their
/// package version set back to 0.1.0: for these, whose imports are the
/// same in every 0.1, a build against 0.1.0 differs only there) load on
/// this newer 0.1 host and run, `jobs.enqueue` included: the linker
/// matches 0.1.x names by their 0.1 track.
#[test]
fn plugins_built_against_wit_0_1_0_load_and_run_on_this_host() {
    let old = tempfile::tempdir().unwrap();
    for name in ["hello", "probe"] {
        let built =
            std::fs::read(crate::support::plugin_dir().join(format!("{name}.wasm"))).unwrap();
        let current = format!("@{}", taskhost::runtime::WIT_VERSION);
        let back = crate::support::bytes_replaced(&built, current.as_bytes(), b"@0.1.0");
        std::fs::write(old.path().join(format!("{name}.wasm")), back).unwrap();
    }
    let host = TestHost::with_host_table(
        &format!("plugins = {:?}\n", old.path().display().to_string()),
        "[workers]\nqueues = { default = 2 }\n[plugins.probe]\njobs = [\"hello\"]\n",
    );
    let api = Server::start(&host);
    let body = json!({"handler": "probe.fanout", "payload": {
        "count": 2, "handler": "hello", "payload": {"name": "old"},
    }});
    let r = api.post("/api/v1/jobs", None, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let fanout = get(&api, &format!("/api/v1/jobs/{id}/wait?timeout=60s"))["job"].clone();
    assert_eq!(fanout["status"], "succeeded", "{fanout}");
    for child in fanout["result"].as_array().unwrap() {
        let child = get(
            &api,
            &format!("/api/v1/jobs/{}/wait?timeout=60s", child.as_str().unwrap()),
        );
        assert_eq!(child["job"]["status"], "succeeded", "{child}");
        assert_eq!(child["job"]["result"]["greeting"], "Hello, old!", "{child}");
    }
    api.stop();
}

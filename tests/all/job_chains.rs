//! Chains of jobs on a real `serve` (`POST /api/v1/chains`, `taskhost
//! chain`): the seed's `validate_order → process_payment →
//! send_confirmation`, results flowing under `previous` in order; a
//! failing middle step stops the chain and its DLQ retry resumes it; a
//! step's own retry policy replaces its handler's; a plugin starts one
//! through `jobs.start-chain` (WIT 0.1.2).

use serde_json::{Value, json};

use crate::http_client::Server;
use crate::support::{TestHost, stderr, stdout};

/// A host whose `decl_probe` provides the seed's handler names; each
/// echoes its payload as its result.
/// `process_payment`'s own policy waits an hour between attempts, so a
/// step that finishes its retries in seconds used the step's policy.
fn host() -> TestHost {
    TestHost::new(
        "[workers]\nqueues = { default = 4 }\n\
         [plugins.decl_probe]\nsettings = { declare = \"list:validate_order,process_payment,send_confirmation\" }\n\
         [handlers.process_payment]\nretry = { delays = [\"1h\"], max_attempts = 5 }\n\
         [plugins.probe]\njobs = [\"validate_order\", \"send_confirmation\"]\n",
    )
}

fn order_chain(payment: Value) -> Value {
    json!({"steps": [
        {"handler": "validate_order", "payload": {"order_id": "o-1"}},
        {"handler": "process_payment", "payload": payment, "max_attempts": 1},
        {"handler": "send_confirmation", "payload": {"channel": "email"}},
    ]})
}

/// Waits for the chain's end (a ceiling, answered by the commit).
fn wait(api: &Server, id: &str) -> Value {
    let r = api.get(&format!("/api/v1/chains/{id}/wait?timeout=60s"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["finished"], true, "{answer}");
    answer["chain"].clone()
}

fn job(api: &Server, id: &Value) -> Value {
    let r = api.get(&format!("/api/v1/jobs/{}", id.as_str().unwrap()), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn statuses(chain: &Value) -> Vec<String> {
    chain["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_order_chain_runs_in_order_with_each_result_passed_on() {
    let host = host();
    let api = Server::start(&host);
    let r = api.post("/api/v1/chains", None, &order_chain(json!({"amount": 42})));
    assert_eq!(r.status, 201, "{}", r.text());
    let made = r.json();
    assert_eq!(made["status"], "running");
    let chain = wait(&api, made["id"].as_str().unwrap());
    assert_eq!(chain["status"], "succeeded", "{chain}");
    assert_eq!(statuses(&chain), ["succeeded"; 3]);
    let jobs: Vec<Value> = (0..3)
        .map(|i| job(&api, &chain["steps"][i]["job"]))
        .collect();
    assert_eq!(jobs[0]["payload"], json!({"order_id": "o-1"}));
    assert_eq!(
        jobs[1]["payload"],
        json!({"previous": {"order_id": "o-1"}, "amount": 42})
    );
    assert_eq!(
        jobs[2]["payload"],
        json!({"previous": jobs[1]["result"].clone(), "channel": "email"})
    );
    // Each step started only after the one before it finished.
    for pair in jobs.windows(2) {
        let (done, next) = (&pair[0]["finished_at"], &pair[1]["started_at"]);
        assert!(
            done.as_str().unwrap() <= next.as_str().unwrap(),
            "{done} then {next}"
        );
    }
    api.stop();
}

#[test]
fn a_dead_middle_step_fails_the_chain_and_its_dlq_retry_resumes_it() {
    let host = host();
    let api = Server::start(&host);
    // Attempt 1 fails for good (max_attempts 1); the DLQ retry is attempt 2.
    let body = order_chain(json!({"amount": 42, "succeed_from_attempt": 2}));
    let made = api.post("/api/v1/chains", None, &body).json();
    let id = made["id"].as_str().unwrap().to_owned();
    let failed = wait(&api, &id);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(statuses(&failed), ["succeeded", "dead", "cancelled"]);
    let never = api.get(
        &format!(
            "/api/v1/jobs/{}",
            failed["steps"][2]["job"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(never.status, 404, "the last step was never enqueued");

    let payment = failed["steps"][1]["job"].as_str().unwrap();
    let r = api.post(&format!("/api/v1/dlq/{payment}/retry"), None, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let resumed = wait(&api, &id);
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    let last = job(&api, &resumed["steps"][2]["job"]);
    assert_eq!(last["payload"]["previous"]["amount"], 42);
    api.stop();
}

#[test]
fn a_steps_own_retry_policy_replaces_its_handlers() {
    let host = host();
    let api = Server::start(&host);
    // Attempts 1 and 2 fail retryably; the step waits 200 ms, then 400 ms
    // (its policy), not the handler's hour.
    let body = json!({"steps": [
        {"handler": "validate_order", "payload": {"order_id": "o-3"}},
        {"handler": "process_payment", "payload": {"retry_until_attempt": 3},
         "retry": {"delays": ["200ms", "400ms"]}},
        {"handler": "send_confirmation"},
    ]});
    let r = api.post("/api/v1/chains", None, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let chain = wait(&api, r.json()["id"].as_str().unwrap());
    assert_eq!(chain["status"], "succeeded", "{chain}");
    let payment = job(&api, &chain["steps"][1]["job"]);
    assert_eq!(
        payment["retry"],
        json!({"kind": "delays", "max_attempts": 3, "delays": ["200ms", "400ms"]})
    );
    let runs = payment["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retryable", "retryable", "success"], "{payment}");
    // Each retry started no sooner than its delay after the run before.
    let at =
        |i: usize| chrono::DateTime::parse_from_rfc3339(runs[i]["at"].as_str().unwrap()).unwrap();
    for (i, min_ms) in [(1, 200), (2, 400)] {
        let gap = at(i) - at(i - 1);
        assert!(gap.num_milliseconds() >= min_ms, "retry {i} after {gap}");
    }
    // The same policy's budget ends a step that never recovers.
    let body = json!({"steps": [
        {"handler": "process_payment", "payload": {"retry_until_attempt": 99},
         "retry": {"delays": ["100ms"], "max_attempts": 2}},
        {"handler": "send_confirmation"},
    ]});
    let chain = wait(
        &api,
        api.post("/api/v1/chains", None, &body).json()["id"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(chain["status"], "failed", "{chain}");
    assert_eq!(statuses(&chain), ["dead", "cancelled"]);
    assert_eq!(
        job(&api, &chain["steps"][0]["job"])["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    api.stop();
}

#[test]
fn a_plugin_starts_a_chain_through_the_jobs_interface() {
    let host = host();
    let api = Server::start(&host);
    let run = |steps: Value| {
        let body =
            json!({"handler": "probe.chain", "payload": {"steps": steps}, "max_attempts": 1});
        let r = api.post("/api/v1/jobs", None, &body);
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let done = api.get(&format!("/api/v1/jobs/{id}/wait?timeout=60s"), None);
        assert_eq!(done.status, 200, "{}", done.text());
        done.json()["job"].clone()
    };
    let job = run(json!([
        ["validate_order", {"order_id": "o-p"}],
        ["send_confirmation", {"channel": "sms"}],
    ]));
    assert_eq!(job["status"], "succeeded", "{job}");
    let chain = wait(&api, job["result"]["chain"].as_str().unwrap());
    assert_eq!(chain["status"], "succeeded", "{chain}");
    let last = self::job(&api, &chain["steps"][1]["job"]);
    assert_eq!(
        last["payload"],
        json!({"previous": {"order_id": "o-p"}, "channel": "sms"})
    );

    // A step of a handler the grant does not list refuses the whole chain:
    // the job fails for good, naming it, and no step is enqueued.
    let before = api.get("/api/v1/jobs?handler=validate_order", None).json()["jobs"]
        .as_array()
        .unwrap()
        .len();
    let denied = run(json!([
        ["validate_order", {"order_id": "o-q"}],
        ["process_payment", {}],
    ]));
    assert_eq!(denied["status"], "dead", "{denied}");
    let error = denied["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("denied") && error.contains("process_payment"),
        "{denied}"
    );
    let after = api.get("/api/v1/jobs?handler=validate_order", None).json()["jobs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before, "nothing of the refused chain was enqueued");
    api.stop();
}

#[test]
fn cancelling_a_chain_stops_its_running_step_and_the_rest_never_run() {
    let host = host();
    let api = Server::start(&host);
    let body = json!({"steps": [
        {"handler": "probe.sleep", "payload": {"ms": 60_000}},
        {"handler": "send_confirmation"},
    ]});
    let made = api.post("/api/v1/chains", None, &body).json();
    let id = made["id"].as_str().unwrap().to_owned();
    let first = made["steps"][0]["job"].as_str().unwrap().to_owned();
    crate::support::wait_until(
        std::time::Duration::from_secs(60),
        "the first step to run",
        || (job(&api, &json!(first))["status"] == "running").then_some(()),
    );
    let r = api.post(&format!("/api/v1/chains/{id}/cancel"), None, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let chain = wait(&api, &id);
    assert_eq!(chain["status"], "cancelled", "{chain}");
    assert_eq!(statuses(&chain), ["cancelled", "cancelled"]);
    let again = api.post(&format!("/api/v1/chains/{id}/cancel"), None, &json!({}));
    assert_eq!(again.status, 409, "{}", again.text());
    api.stop();
}

#[test]
fn bad_chains_are_refused_and_the_cli_makes_one() {
    let host = host();
    let api = Server::start(&host);
    let cases = [
        (json!({"steps": []}), 400, "1 to 100 steps"),
        (
            json!({"steps": [{"handler": "validate_order"}, {"handler": "nosuch"}]}),
            404,
            "steps[1]: unknown handler",
        ),
        (
            json!({"steps": [{"handler": "validate_order", "payload": {"previous": 1}}]}),
            400,
            "reserved",
        ),
        (
            json!({"steps": [{"handler": "validate_order", "payload": [1]}]}),
            400,
            "JSON object",
        ),
        (
            json!({"steps": [{"handler": "validate_order"}, {"handler": "send_confirmation", "retry": {"delays": []}}]}),
            400,
            "steps[1]: retry: `delays` is empty",
        ),
        (
            json!({"steps": [{"handler": "validate_order", "retry": {"delays": ["soon"]}}]}),
            400,
            "soon",
        ),
    ];
    for (body, code, says) in cases {
        let r = api.post("/api/v1/chains", None, &body);
        assert_eq!(r.status, code, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    let missing = api.get("/api/v1/chains/0190b0b0-0000-7000-8000-000000000000", None);
    assert_eq!(missing.status, 404);

    let steps = r#"[{"handler":"validate_order","payload":{"order_id":"o-2"}},{"handler":"send_confirmation"}]"#;
    let out = host.run_cli(&["chain", steps]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    let chain = wait(&api, &id);
    assert_eq!(chain["status"], "succeeded", "{chain}");
    let bad = host.run_cli(&["chain", "not json"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    api.stop();
}

//! The HTTP API over real HTTP against a running host: every endpoint, the
//! auth matrix, the bad-input table (each refusal changes nothing),
//! `/metrics`, the OpenAPI document, and Schemathesis against it.

use serde_json::{Value, json};

use crate::http_client::{Server, raw};
use crate::support::TestHost;

pub(crate) const ENQ: &str = "enqueue-token";
pub(crate) const READ: &str = "read-token";
pub(crate) const ADMIN: &str = "admin-token";

/// A config with the API on a free port, three tokens, `api_keys` added to
/// `[api]` and `extra` after it.
pub(crate) fn config(api_keys: &str, extra: &str) -> String {
    let token = |name: &str, secret: &str, scope: &str| {
        format!(
            "[[api.tokens]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [\"{scope}\"]\n",
            taskhost::api::hash_token(secret)
        )
    };
    format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n{api_keys}\n{}{}{}{extra}",
        token("app", ENQ, "enqueue"),
        token("dashboard", READ, "read"),
        token("ops", ADMIN, "admin")
    )
}

fn started() -> (TestHost, Server) {
    let host = TestHost::new(&config(
        "",
        "[scheduler]\nrefresh = \"200ms\"\n[workers]\nqueues = { default = 8, mail = 2 }\n[handlers.\"probe.spin\"]\nrate = \"5/s\"\nconcurrency = 2\n",
    ));
    let server = Server::start(&host);
    (host, server)
}

/// Waits for a job to finish through the API's long poll.
pub(crate) fn finished(server: &Server, id: &str) -> Value {
    let r = server.get(&format!("/api/v1/jobs/{id}/wait?timeout=30s"), Some(READ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["finished"], true, "{}", r.text());
    server.get(&format!("/api/v1/jobs/{id}"), Some(READ)).json()
}

#[test]
fn jobs_endpoints_enqueue_read_wait_list_and_cancel() {
    let (_host, server) = started();
    let r = server.post(
        "/api/v1/jobs",
        Some(ENQ),
        &json!({"handler": "hello", "payload": {"name": "api"}, "idempotency_key": "order-1"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let again = server.post(
        "/api/v1/jobs",
        Some(ENQ),
        &json!({"handler": "hello", "payload": {"name": "api"}, "idempotency_key": "order-1"}),
    );
    assert_eq!(
        (again.status, again.json()["id"].as_str().unwrap()),
        (200, id.as_str())
    );
    assert_eq!(again.json()["created"], false);

    let job = finished(&server, &id);
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["attempts"][0]["outcome"], "success");
    let result = server
        .get(&format!("/api/v1/jobs/{id}/result"), Some(READ))
        .json();
    assert_eq!(
        result["result"],
        json!({"greeting": "Hello, api!", "attempt": 1})
    );

    let r = server.post(
        "/api/v1/jobs/batch",
        Some(ENQ),
        &json!({"jobs": [
            {"handler": "hello", "payload": {"name": "b1"}, "queue": "bulk", "priority": "low",
             "retry": {"base": "2s", "factor": 3, "max_attempts": 4, "jitter": 0}},
            {"handler": "hello", "payload": {"name": "b2"}, "queue": "bulk", "delay": "1h"},
        ]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (r.json()["total"].as_u64(), r.json()["enqueued"].as_u64()),
        (Some(2), Some(2))
    );
    let delayed = r.json()["ids"][1].as_str().unwrap().to_string();
    // A job's own retry policy is kept with it, with its budget.
    let own = server
        .get(
            &format!("/api/v1/jobs/{}", r.json()["ids"][0].as_str().unwrap()),
            Some(READ),
        )
        .json();
    assert_eq!(
        (&own["retry"], &own["max_attempts"]),
        (
            &json!({"kind": "exponential", "max_attempts": 4, "base": "2s", "factor": 3.0, "max_delay": "1h", "jitter": 0.0}),
            &json!(4)
        ),
        "{own}"
    );

    let page = server
        .get("/api/v1/jobs?queue=bulk&limit=1", Some(READ))
        .json();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().expect("a second page").to_string();
    let page2 = server
        .get(
            &format!("/api/v1/jobs?queue=bulk&limit=1&cursor={next}"),
            Some(READ),
        )
        .json();
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 1);
    assert_ne!(page["jobs"][0]["id"], page2["jobs"][0]["id"]);
    let scheduled = server
        .get("/api/v1/jobs?status=scheduled", Some(READ))
        .json();
    assert_eq!(scheduled["jobs"][0]["id"], delayed.as_str());

    let r = server.post(
        &format!("/api/v1/jobs/{delayed}/cancel"),
        Some(ADMIN),
        &json!({}),
    );
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (200, Some("cancelled"))
    );
    let r = server.post(
        &format!("/api/v1/jobs/{id}/cancel"),
        Some(ADMIN),
        &json!({}),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "conflict"),
        "a finished job cannot be cancelled"
    );
    let r = server.get(
        "/api/v1/jobs/01900000-0000-7000-8000-000000000000",
        Some(READ),
    );
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    server.stop();
}

#[test]
fn dlq_queue_schedule_and_stats_endpoints() {
    let (_host, server) = started();
    let dead = server
        .post(
            "/api/v1/jobs",
            Some(ENQ),
            &json!({"handler": "probe.outcome", "payload": {"kind": "permanent"}}),
        )
        .json();
    let dead = dead["id"].as_str().unwrap().to_string();
    assert_eq!(finished(&server, &dead)["status"], "dead");
    let dlq = server.get("/api/v1/dlq", Some(READ)).json();
    assert_eq!(dlq["jobs"][0]["id"], dead.as_str());
    let one = server.get(&format!("/api/v1/dlq/{dead}"), Some(READ));
    assert_eq!(one.status, 200);
    assert!(
        one.json()["attempts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("permanent failure")
    );
    let r = server.post(
        &format!("/api/v1/dlq/{dead}/retry"),
        Some(ADMIN),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        finished(&server, &dead)["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = server.post("/api/v1/dlq/retry-all", Some(ADMIN), &json!({}));
    assert_eq!(r.json()["count"], 1);
    assert_eq!(finished(&server, &dead)["status"], "dead");
    let r = server.delete("/api/v1/dlq", Some(ADMIN));
    assert_eq!(r.json()["count"], 1);
    assert_eq!(
        server.get("/api/v1/dlq", Some(READ)).json()["jobs"],
        json!([])
    );

    // Queues: pause holds work back, stats show it, resume releases it.
    assert_eq!(
        server
            .post("/api/v1/queues/mail/pause", Some(ADMIN), &json!({}))
            .json()["paused"],
        true
    );
    let held = server.post("/api/v1/jobs", Some(ENQ), &json!({"handler": "hello", "payload": {"name": "q"}, "queue": "mail", "priority": "high"})).json();
    let stats = server.get("/api/v1/queues/mail/stats", Some(READ)).json();
    assert_eq!(
        (
            stats["paused"].as_bool(),
            stats["pending"]["high"].as_u64(),
            stats["total"].as_u64()
        ),
        (Some(true), Some(1), Some(1))
    );
    let all_queues = server.get("/api/v1/queues", Some(READ)).json();
    assert!(
        all_queues
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "mail")
    );
    assert_eq!(
        server
            .post("/api/v1/queues/mail/resume", Some(ADMIN), &json!({}))
            .json()["paused"],
        false
    );
    assert_eq!(
        finished(&server, held["id"].as_str().unwrap())["status"],
        "succeeded"
    );
    server.post("/api/v1/queues/mail/pause", Some(ADMIN), &json!({}));
    server.post(
        "/api/v1/jobs",
        Some(ENQ),
        &json!({"handler": "hello", "payload": {"name": "x"}, "queue": "mail"}),
    );
    assert_eq!(
        server.delete("/api/v1/queues/mail", Some(ADMIN)).json()["count"],
        1
    );

    // Schedules.
    let r = server.post("/api/v1/schedules", Some(ADMIN), &json!({"name": "nightly", "schedule": "0 3 * * *", "timezone": "Europe/Berlin", "handler": "hello", "payload": {"name": "cron"}}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.json()["next_fire"].is_string());
    let r = server.post(
        "/api/v1/schedules",
        Some(ADMIN),
        &json!({"name": "nightly", "schedule": "0 3 * * *", "handler": "hello"}),
    );
    assert_eq!((r.status, r.code().as_str()), (409, "conflict"));
    let list = server.get("/api/v1/schedules", Some(READ)).json();
    assert_eq!(list[0]["schedule"]["name"], "nightly");
    assert_eq!(
        server
            .post("/api/v1/schedules/nightly/disable", Some(ADMIN), &json!({}))
            .json()["schedule"]["enabled"],
        false
    );
    assert_eq!(
        server
            .post("/api/v1/schedules/nightly/enable", Some(ADMIN), &json!({}))
            .json()["schedule"]["enabled"],
        true
    );
    let run = server.post("/api/v1/schedules/nightly/run", Some(ADMIN), &json!({}));
    assert_eq!(run.status, 201);
    assert_eq!(
        finished(&server, run.json()["id"].as_str().unwrap())["status"],
        "succeeded"
    );
    assert_eq!(
        server
            .delete("/api/v1/schedules/nightly", Some(ADMIN))
            .json()["removed"],
        "nightly"
    );
    assert_eq!(
        server
            .delete("/api/v1/schedules/nightly", Some(ADMIN))
            .status,
        404
    );

    // Statistics and inventory.
    let workers = server.get("/api/v1/workers/stats", Some(READ)).json();
    assert!(
        workers["total"]["processed"].as_u64().unwrap() >= 5,
        "{workers}"
    );
    assert!(workers["total"]["success_rate"].as_f64().unwrap() > 0.0);
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1);
    let sched = server.get("/api/v1/scheduler/stats", Some(READ)).json();
    assert!(sched["fired"].is_u64(), "{sched}");
    let stats = server.get("/api/v1/stats", Some(READ)).json();
    assert!(
        stats["handlers"].as_u64().unwrap() >= 2 && stats["queues"].is_array(),
        "{stats}"
    );
    let handlers = server.get("/api/v1/handlers", Some(READ)).json();
    let hello = handlers
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "hello")
        .unwrap()
        .clone();
    assert_eq!(hello["plugin"], "hello");
    assert_eq!(hello["rate"], Value::Null, "no rate: unlimited");
    let spin = handlers
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "probe.spin");
    assert_eq!(spin.unwrap()["rate"], "5/s");
    assert_eq!(spin.unwrap()["concurrency"], 2);
    assert_eq!(hello["concurrency"], Value::Null, "no concurrency limit");
    // The limits' standing, in the stats: nothing of probe.spin ran yet.
    assert_eq!(
        stats["flow_limits"],
        json!([{"handler": "probe.spin", "running": 0, "next_start": null, "held": false}]),
        "{stats}"
    );
    assert_eq!(hello["plugin_digest"].as_str().unwrap().len(), 64);
    assert!(
        hello["limits"]["timeout_ms"].is_u64()
            && hello["retry"]["max_attempts"].is_u64()
            && hello["retry"]["base"] == "1s",
        "{hello}"
    );
    let plugins = server.get("/api/v1/plugins", Some(READ)).json();
    assert!(
        plugins
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "probe" && p["handlers"].as_array().unwrap().len() > 5)
    );
    server.stop();
}

#[test]
fn health_metrics_and_openapi() {
    let (host, server) = started();
    let health = server.get("/health", None);
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json(),
        json!({"status": "ok", "store": true, "store_writable": true, "plugins": health.json()["plugins"], "workers": true, "scheduler": true, "reasons": []})
    );

    let before = server.get("/metrics", None).text();
    let id = server
        .post(
            "/api/v1/jobs",
            Some(ENQ),
            &json!({"handler": "hello", "payload": {"name": "m"}}),
        )
        .json();
    finished(&server, id["id"].as_str().unwrap());
    let metrics = server.get("/metrics", None);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let series = [
        "taskhost_jobs_enqueued_total{handler=\"hello\"}",
        "taskhost_jobs_succeeded_total{handler=\"hello\"}",
        "taskhost_job_duration_seconds_count{handler=\"hello\"}",
    ];
    // The worker counts a job just after the store records its end (which
    // is what `finished` waits for): wait for the count, not for time.
    let after = crate::support::wait_until(
        std::time::Duration::from_secs(30),
        "the job in the metrics",
        || {
            let text = server.get("/metrics", None).text();
            series
                .iter()
                .all(|s| value(&text, s) >= value(&before, s) + 1.0)
                .then_some(text)
        },
    );
    for series in series {
        assert_eq!(
            value(&after, series),
            value(&before, series) + 1.0,
            "{series}"
        );
    }
    // Jobs another process enqueued (the CLI, on the store) are in the
    // store-wide gauge; this host's own counters do not claim them.
    let out = host.run_cli(&[
        "enqueue",
        "hello",
        "--payload",
        r#"{"name":"cli"}"#,
        "--queue",
        "elsewhere",
    ]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let scraped = server.get("/metrics", None).text();
    assert_eq!(
        value(
            &scraped,
            "taskhost_store_jobs{queue=\"elsewhere\",priority=\"normal\",status=\"pending\"}"
        ),
        1.0,
        "{scraped}"
    );
    assert!(value(&scraped, "process_resident_memory_bytes") > 0.0);
    assert!(
        scraped.contains("taskhost_limit_held{handler=\"probe.spin\"} 0")
            && scraped.contains("taskhost_limited_running{handler=\"probe.spin\"} 0"),
        "{scraped}"
    );
    assert!(value(&scraped, "process_open_fds") > 0.0);
    // Every sample line parses as Prometheus text: name{labels} value.
    for line in after
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in {line:?}"
        );
        assert!(
            after.contains(&format!(
                "# TYPE {}",
                name.trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
            )),
            "{name} has no TYPE line"
        );
    }

    let doc = server.get("/api/v1/openapi.json", None).json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/jobs",
        "/api/v1/jobs/batch",
        "/api/v1/dlq/{id}/retry",
        "/api/v1/schedules/{name}/run",
        "/api/v1/chains",
        "/api/v1/chains/{id}",
        "/api/v1/chains/{id}/wait",
        "/api/v1/chains/{id}/cancel",
        "/api/v1/batches",
        "/api/v1/batches/{id}",
        "/api/v1/batches/{id}/wait",
        "/api/v1/batches/{id}/cancel",
        "/health",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    server.stop();
}

/// (method, path, scope needed) for every authenticated endpoint.
fn endpoints(job: &str) -> Vec<(&'static str, String, &'static str)> {
    let mut v: Vec<(&'static str, String, &'static str)> = vec![
        ("POST", "/api/v1/jobs".into(), "enqueue"),
        ("POST", "/api/v1/jobs/batch".into(), "enqueue"),
        (
            "POST",
            "/api/v1/jobs/00000000-0000-7000-8000-000000000000/cancel".into(),
            "admin",
        ),
        (
            "POST",
            "/api/v1/dlq/00000000-0000-7000-8000-000000000000/retry".into(),
            "admin",
        ),
        ("POST", "/api/v1/dlq/retry-all".into(), "admin"),
        ("DELETE", "/api/v1/dlq".into(), "admin"),
        ("POST", "/api/v1/schedules".into(), "admin"),
        ("DELETE", "/api/v1/schedules/none".into(), "admin"),
        ("POST", "/api/v1/schedules/none/enable".into(), "admin"),
        ("POST", "/api/v1/schedules/none/disable".into(), "admin"),
        ("POST", "/api/v1/schedules/none/run".into(), "admin"),
        ("POST", "/api/v1/queues/q/pause".into(), "admin"),
        ("POST", "/api/v1/queues/q/resume".into(), "admin"),
        ("DELETE", "/api/v1/queues/q".into(), "admin"),
        ("POST", "/api/v1/chains".into(), "enqueue"),
        (
            "POST",
            "/api/v1/chains/00000000-0000-7000-8000-000000000000/cancel".into(),
            "admin",
        ),
        ("POST", "/api/v1/batches".into(), "enqueue"),
        (
            "POST",
            "/api/v1/batches/00000000-0000-7000-8000-000000000000/cancel".into(),
            "admin",
        ),
    ];
    for path in [
        "/api/v1/stats".to_string(),
        "/api/v1/queues".into(),
        "/api/v1/queues/q/stats".into(),
        "/api/v1/workers/stats".into(),
        "/api/v1/scheduler/stats".into(),
        "/api/v1/handlers".into(),
        "/api/v1/plugins".into(),
        "/api/v1/jobs".into(),
        format!("/api/v1/jobs/{job}"),
        format!("/api/v1/jobs/{job}/result"),
        format!("/api/v1/jobs/{job}/wait?timeout=1s"),
        "/api/v1/dlq".into(),
        format!("/api/v1/dlq/{job}"),
        "/api/v1/schedules".into(),
        "/api/v1/chains/00000000-0000-7000-8000-000000000000".into(),
        "/api/v1/chains/00000000-0000-7000-8000-000000000000/wait?timeout=1s".into(),
        "/api/v1/batches/00000000-0000-7000-8000-000000000000".into(),
        "/api/v1/batches/00000000-0000-7000-8000-000000000000/wait?timeout=1s".into(),
    ] {
        v.push(("GET", path, "read"));
    }
    v
}

#[test]
fn the_auth_matrix_holds_for_every_endpoint() {
    let (_host, server) = started();
    let job = server
        .post(
            "/api/v1/jobs",
            Some(ENQ),
            &json!({"handler": "hello", "payload": {"name": "a"}}),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"handler": "hello", "payload": {"name": "auth"}});
    for (method, path, needed) in endpoints(&job) {
        let call = |token: Option<&str>| {
            let b = if method == "POST" {
                Some(body.to_string().into_bytes())
            } else {
                None
            };
            raw(
                &server.addr,
                method,
                &path,
                token,
                b.as_deref(),
                "application/json",
            )
        };
        assert_eq!(call(None).status, 401, "{method} {path} without a token");
        assert_eq!(
            call(Some("not-a-token")).status,
            401,
            "{method} {path} with an unknown token"
        );
        for (token, scope) in [(ENQ, "enqueue"), (READ, "read"), (ADMIN, "admin")] {
            let status = call(Some(token)).status;
            let allowed = scope == "admin" || scope == needed;
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{method} {path} with {scope}: {status}"
                );
            } else {
                assert_eq!(status, 403, "{method} {path} with {scope}");
            }
        }
    }
    // Health and the OpenAPI document need no token; metrics by default neither.
    for path in ["/health", "/api/v1/openapi.json", "/metrics"] {
        assert_eq!(server.get(path, None).status, 200, "{path}");
    }
    server.stop();
}

#[test]
fn bad_input_gets_a_precise_4xx_and_changes_nothing() {
    let host = TestHost::new(&config("max_body = \"4KiB\"\nmax_batch = 3", ""));
    let server = Server::start(&host);
    let post = |path: &str, body: &str| {
        raw(
            &server.addr,
            "POST",
            path,
            Some(ADMIN),
            Some(body.as_bytes()),
            "application/json",
        )
    };
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        ("/api/v1/jobs", "{\"handler\": \"hello\",".into(), 400, "invalid_json", "not valid JSON"),
        ("/api/v1/jobs", r#"{"handler": 5}"#.into(), 400, "invalid_request", "invalid type"),
        ("/api/v1/jobs", r#"{"handler": "hello", "colour": "red"}"#.into(), 400, "invalid_request", "colour"),
        ("/api/v1/jobs", json!({"handler": "hello", "payload": {"x": "y".repeat(5000)}}).to_string(), 413, "payload_too_large", "size limit"),
        ("/api/v1/jobs", r#"{"handler": "helo"}"#.into(), 404, "unknown_handler", "did you mean hello"),
        ("/api/v1/jobs", r#"{"handler": "hello", "priority": "urgent"}"#.into(), 400, "invalid_request", "urgent"),
        ("/api/v1/jobs", r#"{"handler": "hello", "delay": "-5s"}"#.into(), 400, "bad_request", "delay"),
        ("/api/v1/jobs", r#"{"handler": "hello", "delay": "5s", "run_at": "2030-01-01T00:00:00Z"}"#.into(), 400, "bad_request", "not both"),
        ("/api/v1/jobs", r#"{"handler": "hello", "queue": "no spaces"}"#.into(), 400, "bad_request", "queue name"),
        ("/api/v1/jobs", r#"{"handler": "hello", "run_at": "tomorrow 9am"}"#.into(), 400, "bad_request", "is not an RFC 3339 time such as 2026-01-31T09:00:00Z"),
        ("/api/v1/jobs", r#"{"handler": "hello", "retry": {"delays": ["1s"], "base": "2s"}}"#.into(), 400, "bad_request", "retry: give either `delays` or `base`"),
        ("/api/v1/jobs", r#"{"handler": "hello", "retry": {"factor": 0.5}}"#.into(), 400, "bad_request", "factor must be between 1 and 100"),
        ("/api/v1/jobs", r#"{"handler": "hello", "retry": {"backoff": "fast"}}"#.into(), 400, "invalid_request", "backoff"),
        ("/api/v1/jobs", r#"{"handler": "hello", "retry": {"max_attempts": 0}}"#.into(), 400, "bad_request", "max_attempts must be at least 1"),
        ("/api/v1/jobs/batch", json!({"jobs": (0..4).map(|_| json!({"handler": "hello"})).collect::<Vec<_>>()}).to_string(), 400, "batch_too_large", "limit is 3"),
        ("/api/v1/jobs/batch", json!({"jobs": [{"handler": "hello"}, {"handler": "nope"}]}).to_string(), 404, "unknown_handler", "jobs[1]"),
        ("/api/v1/schedules", r#"{"name": "s", "schedule": "61 * * * *", "handler": "hello"}"#.into(), 400, "bad_request", "minute"),
        ("/api/v1/schedules", r#"{"name": "s", "schedule": "0 9 * * *", "timezone": "Mars/Olympus", "handler": "hello"}"#.into(), 400, "bad_request", "Mars/Olympus"),
        ("/api/v1/schedules", r#"{"name": "s", "schedule": "0 9 * * *", "handler": "nope"}"#.into(), 404, "unknown_handler", "nope"),
    ];
    for (path, body, status, code, words) in &cases {
        let r = post(path, body);
        assert_eq!(
            (r.status, r.code().as_str()),
            (*status, *code),
            "{path} {body}: {}",
            r.text()
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(words),
            "{path} {body}: {}",
            r.text()
        );
    }
    let r = raw(
        &server.addr,
        "POST",
        "/api/v1/jobs",
        Some(ADMIN),
        Some(b"handler=hello"),
        "text/plain",
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    let r = server.get("/api/v1/jobs?status=sleeping", Some(READ));
    assert_eq!(r.status, 400);
    let r = server.get("/api/v1/jobs?limit=5000", Some(READ));
    assert_eq!(r.status, 400);
    let r = server.get("/api/v1/jobs/not-an-id", Some(READ));
    assert_eq!((r.status, r.code().as_str()), (400, "bad_request"));
    assert_eq!(server.get("/api/v1/nothing-here", Some(READ)).status, 404);
    // Refusals axum makes before any handler runs have the error shape too.
    let r = server.delete("/api/v1/jobs", Some(ADMIN));
    assert_eq!(
        (r.status, r.code().as_str()),
        (405, "method_not_allowed"),
        "{}",
        r.text()
    );
    let r = server.get("/api/v1/queues/%FF%FE/stats", Some(READ));
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "bad_request"),
        "{}",
        r.text()
    );

    // Nothing was written.
    assert_eq!(
        server.get("/api/v1/jobs", Some(READ)).json()["jobs"],
        json!([])
    );
    assert_eq!(
        server.get("/api/v1/schedules", Some(READ)).json(),
        json!([])
    );
    server.stop();
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let host = TestHost::new("[api]\nlisten = \"0.0.0.0:0\"\n");
    let out = host.run_cli(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = crate::support::stderr(&out);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without an API token"),
        "{err}"
    );
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_outside_the_schema() {
    let (_host, server) = started();
    let st = crate::http_client::schemathesis();
    let base = format!("http://{}", server.addr);
    let out = std::process::Command::new(&st)
        .args(["run", &format!("{base}/api/v1/openapi.json"), "--url", &base])
        .args(["--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"])
        .args(["--max-examples", "25", "--seed", "1", "--request-timeout", "65"])
        .args(["-H", &format!("Authorization: Bearer {ADMIN}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    server.stop();
}

#[test]
fn the_openapi_document_passes_a_real_validator() {
    let (host, server) = started();
    let doc = server.get("/api/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    let file = host.path().join("openapi.json");
    std::fs::write(&file, doc.text()).unwrap();
    let validator = crate::http_client::python_tool("openapi-spec-validator");
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", validator.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the OpenAPI document is invalid:\n{text}"
    );
    // Query parameters are declared as such (generated clients depend on it).
    let doc = doc.json();
    let list = &doc["paths"]["/api/v1/jobs"]["get"]["parameters"];
    let status = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "status")
        .unwrap();
    assert_eq!(status["in"], "query", "{status}");
    assert_ne!(status["required"], true, "{status}");
}

/// `taskhost --url <server> ARGS…` with `TASKHOST_TOKEN` set.
fn remote_cli(server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::support::taskhost_bin())
        .arg("--url")
        .arg(format!("http://{}", server.addr))
        .args(args)
        .env("TASKHOST_TOKEN", token)
        .env_remove("TASKHOST_CONFIG")
        .output()
        .expect("taskhost runs")
}

#[test]
fn the_admin_commands_work_against_a_running_host_with_the_same_output() {
    let (host, server) = started();
    let out = remote_cli(
        &server,
        ENQ,
        &[
            "enqueue",
            "hello",
            "--payload",
            r#"{"name":"remote"}"#,
            "--key",
            "r-1",
        ],
    );
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let id = crate::support::stdout(&out).trim().to_string();
    let out = remote_cli(&server, READ, &["wait", &id, "--timeout", "30s"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    assert_eq!(
        crate::support::stdout(&out).trim(),
        r#"{"attempt":1,"greeting":"Hello, remote!"}"#
    );
    let dead = remote_cli(
        &server,
        ENQ,
        &[
            "enqueue",
            "probe.outcome",
            "--payload",
            r#"{"kind":"permanent"}"#,
        ],
    );
    let dead = crate::support::stdout(&dead).trim().to_string();
    assert_eq!(
        remote_cli(&server, READ, &["wait", &dead, "--timeout", "30s"])
            .status
            .code(),
        Some(1)
    );

    // The same commands print the same, locally and through the API.
    for args in [
        vec!["jobs", "--json"],
        vec!["jobs"],
        vec!["job", id.as_str()],
        vec!["dlq", "list"],
        vec!["dlq", "show", dead.as_str(), "--json"],
        vec!["queue", "stats"],
    ] {
        let local = host.run_cli(&args);
        let remote = remote_cli(&server, READ, &args);
        assert!(
            remote.status.success(),
            "{args:?}: {}",
            crate::support::stderr(&remote)
        );
        assert_eq!(
            crate::support::stdout(&remote),
            crate::support::stdout(&local),
            "{args:?}"
        );
    }

    let out = remote_cli(
        &server,
        ADMIN,
        &["schedule", "add", "tick", "every 1h", "hello"],
    );
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let out = remote_cli(&server, READ, &["schedule", "list"]);
    assert!(
        crate::support::stdout(&out).contains("tick"),
        "{}",
        crate::support::stdout(&out)
    );
    assert!(
        remote_cli(&server, ADMIN, &["schedule", "remove", "tick"])
            .status
            .success()
    );
    assert!(
        remote_cli(&server, ADMIN, &["queue", "pause", "mail"])
            .status
            .success()
    );
    let out = remote_cli(&server, ADMIN, &["dlq", "retry", "--all"]);
    assert_eq!(crate::support::stdout(&out).trim(), "1 job(s) queued again");

    // Refusals keep their exit code 2 and the host's message.
    let out = remote_cli(&server, ENQ, &["enqueue", "helo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::support::stderr(&out).contains("did you mean hello"),
        "{}",
        crate::support::stderr(&out)
    );
    let out = remote_cli(&server, READ, &["queue", "purge", "mail"]);
    assert_eq!(out.status.code(), Some(2), "a read token cannot purge");
    assert!(
        crate::support::stderr(&out).contains("lacks the admin scope"),
        "{}",
        crate::support::stderr(&out)
    );
    server.stop();
}

//! The web dashboard in headless Chromium against a real `taskhost serve`
//! with jobs in several states: every page shows the store's numbers, the
//! actions change the store, read-only tokens and CSRF-less posts are
//! refused. Screenshots land in `target/dashboard-screenshots/`.

use serde_json::{Value, json};

use crate::api::{ADMIN, ENQ, READ, config, finished};
use crate::http_client::{Response, Server, with_headers};
use crate::support::browser::Browser;
use crate::support::{TestHost, wait_until};
use std::time::Duration;

/// A host with tokens, workers on `default` and `mail` and a quick scheduler.
fn started(extra_api: &str) -> (TestHost, Server) {
    let host = TestHost::new(&config(
        extra_api,
        "[scheduler]\nrefresh = \"200ms\"\n[workers]\nqueues = { default = 4, mail = 2 }\n\
         [handlers.\"probe.sleep\"]\ntimeout = \"10m\"\n\
         [handlers.\"probe.spin\"]\nrate = \"30/s\"\nconcurrency = 2\n\
         [plugins.probe]\nhttp = [\"http://127.0.0.1:9\"]\n",
    ));
    let server = Server::start(&host);
    (host, server)
}

fn enqueue(server: &Server, body: Value) -> String {
    let r = server.post("/api/v1/jobs", Some(ENQ), &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn job(server: &Server, id: &str) -> Value {
    server.get(&format!("/api/v1/jobs/{id}"), Some(READ)).json()
}

/// Jobs in every state a test can hold still: one succeeded, one dead,
/// one running (asleep for ten minutes), one retrying in an hour, one
/// scheduled an hour out, and one pending in the paused `mail` queue.
struct Seeded {
    ok: String,
    dead: String,
    scheduled: String,
    pending: String,
}

fn seed(server: &Server) -> Seeded {
    let ok = enqueue(
        server,
        json!({"handler": "hello", "payload": {"name": "ok"}, "idempotency_key": "order-7"}),
    );
    assert_eq!(finished(server, &ok)["status"], "succeeded");
    let dead = enqueue(
        server,
        json!({"handler": "probe.outcome", "payload": {"kind": "permanent"}}),
    );
    assert_eq!(finished(server, &dead)["status"], "dead");
    let running = enqueue(
        server,
        json!({"handler": "probe.sleep", "payload": {"ms": 600_000}}),
    );
    let retrying = enqueue(
        server,
        json!({"handler": "probe.outcome", "max_attempts": 3,
               "payload": {"kind": "retry-after", "retry_after_ms": 3_600_000}}),
    );
    for (id, state) in [(&running, "running"), (&retrying, "retrying")] {
        wait_until(Duration::from_secs(60), state, || {
            (job(server, id)["status"] == state).then_some(())
        });
    }
    let scheduled = enqueue(
        server,
        json!({"handler": "hello", "payload": {"name": "later"}, "delay": "1h"}),
    );
    let r = server.post("/api/v1/queues/mail/pause", Some(ADMIN), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let pending = enqueue(
        server,
        json!({"handler": "hello", "queue": "mail", "priority": "high",
               "retry": {"delays": ["1s", "1m"]},
               "payload": {"name": "<script>window.pwned = 1</script> it's"}}),
    );
    Seeded {
        ok,
        dead,
        scheduled,
        pending,
    }
}

fn base(server: &Server) -> String {
    format!("http://{}", server.addr)
}

/// Signs in through the login form.
fn sign_in(browser: &Browser, server: &Server, token: &str) {
    browser.goto(&format!("{}/", base(server)));
    assert!(
        browser.current_url().ends_with("/login"),
        "not signed in yet, so sent to the login form: {}",
        browser.current_url()
    );
    browser.type_into(&browser.find("input#token"), token);
    browser.submit(&browser.find("main form button"));
}

/// The overview's row for (queue, priority): pending, scheduled, running,
/// retrying, dead.
fn counts_row(rows: &[Vec<String>], queue: &str, priority: &str) -> Vec<String> {
    rows.iter()
        .find(|r| r[0] == queue && r[1] == priority)
        .unwrap_or_else(|| panic!("no row for {queue}/{priority} in {rows:?}"))[2..]
        .to_vec()
}

/// Clicks the button labelled `label` inside the form posting to `action`.
fn press(browser: &Browser, action: &str, label: &str) {
    let button = browser.find(&format!("form[action=\"{action}\"] button"));
    assert_eq!(browser.text(&button), label);
    browser.submit(&button);
}

#[test]
fn pages_show_the_store_and_actions_change_it() {
    let (_host, server) = started("");
    let s = seed(&server);
    let browser = Browser::start();
    sign_in(&browser, &server, ADMIN);

    // Overview: per queue × priority.
    assert_eq!(browser.title(), "Overview · taskhost");
    let rows = browser.table("table.counts");
    assert_eq!(
        counts_row(&rows, "default", "normal"),
        ["0", "1", "1", "1", "1"]
    );
    assert_eq!(counts_row(&rows, "mail", "high"), ["1", "0", "0", "0", "0"]);
    let hosts = browser.table("table.hosts");
    assert_eq!(
        hosts[0][2], "3",
        "three finished runs on this host: {hosts:?}"
    );
    assert_eq!(
        browser.text_of("figure.chart .hour"),
        "1 succeeded, 2 failed"
    );
    assert_eq!(
        browser.find_all("figure.chart svg rect").len(),
        120,
        "two bars a minute"
    );
    browser.screenshot("overview");

    // Jobs: filter, then the pending job's detail shows the hostile payload
    // as text, never as markup.
    browser.goto(&format!("{}/jobs?status=scheduled", base(&server)));
    let jobs = browser.table("table.jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0][0], s.scheduled);
    assert_eq!(browser.text_of("p.count"), "1 matching jobs");
    // Search by idempotency key (with its handler).
    browser.goto(&format!("{}/jobs", base(&server)));
    browser.type_into(&browser.find("input[name=handler]"), "hello");
    browser.type_into(&browser.find("input[name=key]"), "order-7");
    browser.submit(&browser.find("form.filters button"));
    assert!(
        browser.current_url().ends_with(&format!("/jobs/{}", s.ok)),
        "{}",
        browser.current_url()
    );
    browser.goto(&format!("{}/jobs", base(&server)));
    browser.screenshot("jobs");
    browser.goto(&format!("{}/jobs/{}", base(&server), s.pending));
    assert!(
        browser
            .text_of("pre.payload")
            .contains("<script>window.pwned = 1</script>")
    );
    assert_eq!(browser.eval("return window.pwned === undefined;"), true);
    assert!(
        browser.text_of("dl.fields").contains("Retry policy")
            && browser.text_of("dl.fields").contains("delays 1s, 1m"),
        "the job's own retry policy is shown"
    );
    // "Copy as curl" enqueues the same job, quotes and all.
    let curl = browser.text_of("pre.curl");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{curl} --silent --fail"))
        .env("TASKHOST_URL", base(&server))
        .env("TASKHOST_TOKEN", ENQ)
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{curl}: {out:?}");
    let copy: Value = serde_json::from_slice(&out.stdout).unwrap();
    let copy = job(&server, copy["id"].as_str().unwrap());
    let original = job(&server, &s.pending);
    for key in [
        "handler",
        "payload",
        "queue",
        "priority",
        "max_attempts",
        "retry",
    ] {
        assert_eq!(copy[key], original[key], "{key}");
    }
    // Cancel the scheduled job from its page.
    browser.goto(&format!("{}/jobs/{}", base(&server), s.scheduled));
    press(
        &browser,
        &format!("/actions/jobs/{}/cancel", s.scheduled),
        "Cancel",
    );
    assert_eq!(
        browser.text_of("p.flash"),
        format!("job {} cancelled", s.scheduled)
    );
    assert_eq!(job(&server, &s.scheduled)["status"], "cancelled");

    // Dead letters: the dead job with its error; retry it, then purge.
    browser.goto(&format!("{}/jobs/{}", base(&server), s.dead));
    assert_eq!(browser.table("table.attempts")[0][3], "permanent");
    browser.screenshot("job");
    browser.goto(&format!("{}/dead", base(&server)));
    assert_eq!(browser.text_of("p.count"), "1 dead jobs");
    let dead = browser.table("table.dead");
    assert_eq!(dead[0][1], s.dead, "after the selection box");
    assert!(dead[0][8].contains("permanent failure"), "{dead:?}");
    browser.screenshot("dead");
    press(
        &browser,
        &format!("/actions/jobs/{}/retry", s.dead),
        "Retry",
    );
    assert!(browser.current_url().contains("/dead?done="));
    let retried = finished(&server, &s.dead);
    assert_eq!(
        retried["attempts"].as_array().unwrap().len(),
        2,
        "ran again"
    );
    assert_eq!(retried["status"], "dead");
    // Retry selected: tick its box.
    browser.goto(&format!("{}/dead", base(&server)));
    browser.click(&browser.find(&format!("input[name=id][value=\"{}\"]", s.dead)));
    press(&browser, "/actions/dead/retry-selected", "Retry selected");
    assert_eq!(browser.text_of("p.flash"), "1 dead jobs queued again");
    let retried = finished(&server, &s.dead);
    assert_eq!(
        retried["attempts"].as_array().unwrap().len(),
        3,
        "ran again"
    );
    browser.goto(&format!("{}/dead", base(&server)));
    press(&browser, "/actions/dead/purge", "Purge all");
    // A confirmation first; nothing deleted yet.
    assert_eq!(browser.title(), "Confirm · taskhost");
    assert_eq!(job(&server, &s.dead)["status"], "dead");
    press(&browser, "/actions/dead/purge", "Yes, do it");
    assert_eq!(browser.text_of("p.flash"), "1 dead jobs deleted");
    assert_eq!(
        server
            .get(&format!("/api/v1/jobs/{}", s.dead), Some(READ))
            .status,
        404
    );

    // Queues: mail is paused; resume it and the pending job runs.
    browser.goto(&format!("{}/queues", base(&server)));
    let queues = browser.table("table.queues");
    let mail = queues.iter().find(|q| q[0] == "mail").unwrap();
    assert_eq!(
        (mail[1].as_str(), mail[2].as_str()),
        ("paused", "2"),
        "the job and its copy"
    );
    browser.screenshot("queues");
    press(&browser, "/actions/queues/mail/resume", "Resume");
    assert_eq!(finished(&server, &s.pending)["status"], "succeeded");
    press(&browser, "/actions/queues/default/pause", "Pause");
    let listed = server.get("/api/v1/queues", Some(READ)).json();
    let paused: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["name"].as_str().unwrap(), q["paused"].as_bool().unwrap()))
        .collect();
    assert!(
        paused.contains(&("default", true)) && paused.contains(&("mail", false)),
        "{paused:?}"
    );

    // Schedules: next five fires, disable.
    let r = server.post(
        "/api/v1/schedules",
        Some(ADMIN),
        &json!({"name": "nightly", "schedule": "15 0 * * *", "handler": "hello"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    browser.goto(&format!("{}/schedules", base(&server)));
    let fires = browser.find_all("table.schedules ol.fires li");
    assert_eq!(fires.len(), 5);
    assert!(browser.text(&fires[0]).contains("00:15:00"));
    let row = &browser.table("table.schedules")[0];
    assert!(row[1].starts_with("at 00:15 every day, UTC"), "{row:?}");
    // Run now (the default queue is paused, so its job stays current).
    press(&browser, "/actions/schedules/nightly/run", "Run now");
    let flash = browser.text_of("p.flash");
    let id = flash
        .strip_prefix("schedule nightly enqueued job ")
        .unwrap_or_else(|| panic!("{flash}"));
    assert_eq!(job(&server, id)["handler"], "hello");
    assert_eq!(browser.table("table.schedules")[0][6], id);
    browser.screenshot("schedules");
    press(&browser, "/actions/schedules/nightly/disable", "Disable");
    let list = server.get("/api/v1/schedules", Some(READ)).json();
    assert_eq!(list[0]["schedule"]["enabled"], false);

    // Plugins and handlers: the registry's digests and limits.
    browser.goto(&format!("{}/plugins", base(&server)));
    let plugins = server.get("/api/v1/plugins", Some(READ)).json();
    let shown = browser.table("table.plugins");
    for p in plugins.as_array().unwrap() {
        let row = shown
            .iter()
            .find(|r| r[0] == p["name"].as_str().unwrap())
            .unwrap();
        assert_eq!(row[2], p["digest"].as_str().unwrap());
    }
    let probe = shown.iter().find(|r| r[0] == "probe").unwrap();
    assert_eq!(probe[4], "http: http://127.0.0.1:9", "{probe:?}");
    let handlers = browser.table("table.handlers");
    assert!(handlers.iter().any(|h| h[0] == "hello"), "{handlers:?}");
    let column = |name: &str| handlers.iter().find(|h| h[0] == name).unwrap()[7].clone();
    assert_eq!(column("probe.spin"), "30/s, 2 at once", "{handlers:?}");
    assert_eq!(column("hello"), "—", "{handlers:?}");
    // Per-handler runs: the dead job ran three times, the retrying one once.
    let runs = browser.table("table.runs");
    let outcome = runs.iter().find(|r| r[0] == "probe.outcome").unwrap();
    assert_eq!(outcome[1..4], ["4", "0", "4"], "{runs:?}");
    browser.screenshot("plugins");

    // The overview is live: a job enqueued now shows up without a reload.
    browser.goto(&format!("{}/", base(&server)));
    let before = browser.table("table.counts");
    assert_eq!(
        before.last().unwrap()[3],
        "0",
        "no scheduled jobs left: {before:?}"
    );
    browser.eval("window.__stillThisPage = true; return null;");
    enqueue(
        &server,
        json!({"handler": "hello", "payload": {"name": "live"}, "delay": "1h"}),
    );
    browser.wait_for(
        "[...document.querySelectorAll('table.counts tbody tr')].some(r => \
         r.cells[0].textContent === 'default' && r.cells[1].textContent === 'normal' \
         && r.cells[3].textContent === '1')",
        "the overview to show the new scheduled job",
    );
    assert_eq!(
        browser.eval("return window.__stillThisPage === true;"),
        true
    );
    // Readable on a phone: one column, the tables scroll inside their box.
    browser.resize(390, 844);
    assert_eq!(
        browser.eval("return document.documentElement.scrollWidth <= window.innerWidth;"),
        true,
        "no sideways scrolling of the page itself"
    );
    browser.screenshot("overview-phone");
}

/// The `Cookie` header of a signed-in token.
fn cookie_for(token: &str) -> String {
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    format!("taskhost_token={hex}")
}

/// The CSRF token a page hands to `cookie`'s session.
fn csrf_of(server: &Server, cookie: &str) -> String {
    let r = with_headers(
        &server.addr,
        "GET",
        "/dead",
        &[("Cookie", cookie)],
        None,
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let at = text.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    text[at..at + 64].to_string()
}

fn post_form(server: &Server, path: &str, cookie: &str, body: &str) -> Response {
    with_headers(
        &server.addr,
        "POST",
        path,
        &[("Cookie", cookie)],
        Some(body.as_bytes()),
        "application/x-www-form-urlencoded",
    )
}

#[test]
fn read_only_tokens_see_but_cannot_act_and_forms_need_their_csrf_token() {
    let (_host, server) = started("");
    let s = seed(&server);

    // The login form sets an HttpOnly, SameSite=Strict cookie.
    let r = post_form(&server, "/login", "", &format!("token={READ}"));
    assert_eq!(r.status, 303);
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let r = post_form(&server, "/login", "", "token=wrong");
    assert_eq!(r.status, 401);

    let browser = Browser::start();
    sign_in(&browser, &server, READ);
    let rows = browser.table("table.counts");
    assert_eq!(counts_row(&rows, "default", "normal")[4], "1");
    browser.goto(&format!("{}/dead", base(&server)));
    assert_eq!(browser.table("table.dead")[0][0], s.dead);
    assert!(
        browser.find_all("form[action^=\"/actions/\"]").is_empty(),
        "no action forms for read-only tokens"
    );

    // A direct POST with the read-only cookie and its valid CSRF token: 403.
    let read = cookie_for(READ);
    let csrf = csrf_of(&server, &read);
    let path = format!("/actions/jobs/{}/retry", s.dead);
    let r = post_form(&server, &path, &read, &format!("csrf={csrf}"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("read access only"));
    // An admin POST without the CSRF field, or with another session's: 403.
    let admin = cookie_for(ADMIN);
    let r = post_form(&server, &path, &admin, "back=%2Fdead");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("CSRF"));
    let r = post_form(&server, &path, &admin, &format!("csrf={csrf}"));
    assert_eq!(r.status, 403);
    assert_eq!(job(&server, &s.dead)["attempt"], 1, "nothing was retried");
    // With its own token the same POST works.
    let r = post_form(
        &server,
        &path,
        &admin,
        &format!("csrf={}", csrf_of(&server, &admin)),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        finished(&server, &s.dead)["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // No cookie at all: sent to the login form.
    let r = post_form(&server, &path, "", "");
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
}

#[test]
fn an_open_api_opens_the_dashboard_but_actions_still_need_the_csrf_field() {
    let host = TestHost::new("[workers]\nqueues = { default = 2 }\n");
    let server = Server::start(&host);
    let r = server.get("/", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let session = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let r = post_form(&server, "/actions/queues/default/pause", &session, "");
    assert_eq!(r.status, 403);
    assert_eq!(
        server.get("/api/v1/queues/default/stats", None).json()["paused"],
        false
    );
    let csrf = csrf_of(&server, &session);
    let r = post_form(
        &server,
        "/actions/queues/default/pause",
        &session,
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        server.get("/api/v1/queues/default/stats", None).json()["paused"],
        true
    );
}

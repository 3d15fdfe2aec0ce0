//! Deploying plugins through the API to three real `taskhost serve`
//! processes on one SQLite store: all run the new digest within 5 s, a
//! rollback returns all three, and refused uploads (not a component, a
//! WIT major version this host does not speak) change nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use taskhost::job::JobStatus;
use taskhost::runtime::component_digest;

use crate::hot_reload::served_digest;
use crate::http_client::{Server, raw};
use crate::support::{
    TestHost, eventually, finished, plugin_dir, plugin_variant, request, services,
    shared_cache_dir, stderr, stdout,
};

/// What the acceptance criteria allow for every host to follow a deploy.
const FOLLOW: Duration = Duration::from_secs(5);

/// A host on the store in `data`, with `hello` in its own plugin folder.
fn host_on(data: &Path) -> TestHost {
    host_with(data, "")
}

/// A host whose config adds `extra` (another store), with `hello` in its
/// own plugin folder.
fn host_with(data: &Path, extra: &str) -> TestHost {
    let host = TestHost::with_host_table(
        &format!(
            "plugins = \"plugins\"\ncache = {:?}\ndata = {:?}\n",
            shared_cache_dir().display().to_string(),
            data.display().to_string()
        ),
        extra,
    );
    let dir = host.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(plugin_dir().join("hello.wasm"), dir.join("hello.wasm")).unwrap();
    host
}

/// Waits until every server serves `digest` for `hello`; answers how long.
async fn all_serve(servers: &[Server], digest: &str, since: Instant) -> Duration {
    eventually(FOLLOW, "every host to serve the digest", || async {
        servers
            .iter()
            .all(|s| served_digest(s, "hello").as_deref() == Some(digest))
            .then(|| since.elapsed())
    })
    .await
}

/// `POST /api/v1/plugins?name=hello` with `bytes`.
fn upload(server: &Server, bytes: &[u8]) -> crate::http_client::Response {
    raw(
        &server.addr,
        "POST",
        "/api/v1/plugins?name=hello",
        None,
        Some(bytes),
        "application/wasm",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_reaches_every_host_and_a_rollback_returns_them_all() {
    let data = tempfile::tempdir().unwrap();
    let hosts: Vec<TestHost> = (0..3).map(|_| host_on(data.path())).collect();
    let servers: Vec<Server> = hosts.iter().map(Server::start).collect();
    let old = component_digest(&std::fs::read(plugin_dir().join("hello.wasm")).unwrap());
    let next = std::fs::read(plugin_variant("hello")).unwrap();
    let new = component_digest(&next);
    all_serve(&servers, &old, Instant::now()).await;

    // Refused uploads change nothing anywhere.
    let junk = upload(&servers[0], b"not a component at all");
    assert_eq!((junk.status, junk.code()), (422, "plugin_refused".into()));
    assert!(
        junk.text().contains("not a WebAssembly file"),
        "{}",
        junk.text()
    );
    // The same plugin claiming a future major version (as long as the
    // current one, so the component's sizes stay valid).
    let current = format!("@{}", taskhost::runtime::WIT_VERSION);
    let major = format!("@9{}", &current[2..]);
    let future = crate::support::bytes_replaced(&next, current.as_bytes(), major.as_bytes());
    let refused = upload(&servers[0], &future);
    assert_eq!(refused.status, 422, "{}", refused.text());
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("taskhost:plugin{major}"))
            && message.contains(&format!("speaks taskhost:plugin{current}")),
        "{message}"
    );
    let bad_name = raw(
        &servers[0].addr,
        "POST",
        "/api/v1/plugins?name=..%2Fetc",
        None,
        Some(&next),
        "application/wasm",
    );
    assert_eq!(bad_name.status, 400, "{}", bad_name.text());
    for s in &servers {
        assert_eq!(served_digest(s, "hello").as_deref(), Some(&*old));
    }

    // Deploy through one host with the CLI: all three follow.
    let variant = plugin_variant("hello");
    let url = format!("http://{}", servers[0].addr);
    let deployed_at = Instant::now();
    let out = hosts[0].run_cli(&["--url", &url, "plugin", "deploy", variant.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&new), "{}", stdout(&out));
    let took = all_serve(&servers, &new, deployed_at).await;
    println!("deploy: all three hosts serve the new digest {took:?} after the upload began");

    // Jobs run on the new version, whichever host takes them; the digest
    // is in the job's JSON and in `taskhost job`.
    let s = services(&hosts[1]).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let req = request("hello", json!({"name": format!("d{n}")}));
        ids.push(s.enqueuer.enqueue(req).await.unwrap().id);
    }
    for id in &ids {
        let job = finished(s.store.as_ref(), *id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.attempts[0].plugin_digest.as_deref(), Some(&*new));
    }
    let shown = servers[2]
        .get(&format!("/api/v1/jobs/{}", ids[0]), None)
        .json();
    assert_eq!(shown["attempts"][0]["plugin_digest"], json!(new));
    let out = hosts[2].run_cli(&["job", &ids[0].to_string()]);
    assert!(
        stdout(&out).contains(&format!("sha256:{}", &new[..16])),
        "{}",
        stdout(&out)
    );
    let doc = servers[0].get("/api/v1/openapi.json", None).json();
    assert!(
        doc["components"]["schemas"]["Attempt"]["properties"]["plugin_digest"].is_object(),
        "the OpenAPI document describes the attempt's digest"
    );

    // A host that starts later on the store (its folder holds the old
    // file) converges on the deployed release too.
    let late = host_on(data.path());
    let started = Instant::now();
    let late_server = Server::start(&late);
    all_serve(std::slice::from_ref(&late_server), &new, started).await;
    late_server.stop();

    // Roll back through another host: all three return to the old version.
    let url = format!("http://{}", servers[1].addr);
    let rolled_at = Instant::now();
    let out = hosts[1].run_cli(&["--url", &url, "plugin", "rollback", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&old), "{}", stdout(&out));
    let took = all_serve(&servers, &old, rolled_at).await;
    println!("rollback: all three hosts serve the old digest {took:?} after the request");
    let id = s
        .enqueuer
        .enqueue(request("hello", json!({"name": "back"})))
        .await
        .unwrap()
        .id;
    let job = finished(s.store.as_ref(), id).await;
    assert_eq!(job.attempts[0].plugin_digest.as_deref(), Some(&*old));

    // Nothing earlier to roll back to: refused, naming why.
    let out = hosts[1].run_cli(&["--url", &url, "plugin", "rollback", "hello"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no earlier deployed version"),
        "{}",
        stderr(&out)
    );
    for server in servers {
        server.stop();
    }
}

/// The same on three hosts sharing a Redis store: a deploy through one
/// reaches all three, a rollback through another returns them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_deploy_reaches_every_host_and_a_rollback_returns_them_all() {
    let redis = crate::support::redis::start();
    let store = crate::support::redis::store_table(&redis.url(), "deploy:");
    let data: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<TestHost> = data.iter().map(|d| host_with(d.path(), &store)).collect();
    let servers: Vec<Server> = hosts.iter().map(Server::start).collect();
    let old = component_digest(&std::fs::read(plugin_dir().join("hello.wasm")).unwrap());
    let next = std::fs::read(plugin_variant("hello")).unwrap();
    let new = component_digest(&next);
    all_serve(&servers, &old, Instant::now()).await;

    let deployed_at = Instant::now();
    let answer = upload(&servers[2], &next);
    assert_eq!(answer.status, 201, "{}", answer.text());
    let took = all_serve(&servers, &new, deployed_at).await;
    println!("deploy on Redis: all three hosts serve the new digest {took:?} after the upload");

    let url = format!("http://{}", servers[0].addr);
    let rolled_at = Instant::now();
    let out = hosts[0].run_cli(&["--url", &url, "plugin", "rollback", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    all_serve(&servers, &old, rolled_at).await;
    for server in servers {
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_needs_the_admin_scope_and_a_body_under_the_cap() {
    use crate::api::{ADMIN, ENQ, READ, config};
    let host = TestHost::new(&config("max_plugin = \"64KiB\"", ""));
    let server = Server::start(&host);
    let next = std::fs::read(plugin_variant("hello")).unwrap();
    assert!(
        next.len() > 64 << 10,
        "the component is over the test's cap"
    );
    let post = |token: Option<&str>, body: &[u8]| {
        raw(
            &server.addr,
            "POST",
            "/api/v1/plugins?name=hello",
            token,
            Some(body),
            "application/wasm",
        )
    };
    assert_eq!(post(None, &next[..100]).status, 401);
    for token in [READ, ENQ] {
        let r = post(Some(token), &next[..100]);
        assert_eq!(
            (r.status, r.code()),
            (403, "forbidden".into()),
            "{}",
            r.text()
        );
    }
    let r = post(Some(ADMIN), &next);
    assert_eq!(r.status, 413, "{}", r.text());
    let r = raw(
        &server.addr,
        "POST",
        "/api/v1/plugins/hello/rollback",
        Some(READ),
        None,
        "application/json",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // Nothing changed: the folder's version serves, the store holds none.
    let plugins = server.get("/api/v1/plugins", Some(READ)).json();
    let hello = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hello")
        .unwrap();
    let old = component_digest(&std::fs::read(plugin_dir().join("hello.wasm")).unwrap());
    assert_eq!(hello["digest"], json!(old));
    let s = services(&host).await;
    assert_eq!(s.store.plugin_generation().await.unwrap(), 0);
    server.stop();
}
